//! One connection to a Modbus transport: a TCP socket or a serial port, opened lazily
//! and dropped after any failure it cannot vouch for.
//!
//! Guarantees:
//! - Every connect and every request is bounded by the caller's limit; tokio-modbus has no
//!   timeout of its own.
//! - After a timeout or a transport error the connection is dropped, so a late reply is
//!   never matched to the next request. A device exception is an answer: the connection
//!   stays.
//! - On a serial line, at least the configured pause (never less than 3.5 character
//!   times) separates the end of one exchange from the next request, and a reopened port
//!   starts with its input discarded.

use std::net::SocketAddr;
use std::time::Duration;

use std::pin::Pin;
use tokio::net::lookup_host;

use tokio::time::{sleep_until, timeout, Instant, Sleep};
use tokio_modbus::client::{Client, Context, Reader};
use tokio_modbus::slave::SlaveContext;
use tokio_modbus::Slave;
use tokio_serial::SerialPort;

use crate::base::sample::Quality;
use crate::config::{Endpoint, Parity, RegisterKind, SerialSettings};

use super::plan::ReadRequest;
use super::reading::Data;

/// Why a request produced no data.
#[derive(Debug, Clone, PartialEq)]
pub enum ReadFailure {
    /// The device answered with this exception code.
    Exception(u8),
    /// No answer within the limit.
    Timeout,
    /// The transport failed or the answer did not fit the request.
    Transport(String),
}

impl ReadFailure {
    pub fn quality(&self) -> Quality {
        match self {
            ReadFailure::Exception(code) => Quality::Exception(*code),
            ReadFailure::Timeout => Quality::Timeout,
            ReadFailure::Transport(_) => Quality::Disconnected,
        }
    }
}

/// A transport and, while it is trusted, its open connection.
pub struct Link {
    endpoint: Endpoint,
    serial: SerialSettings,
    ctx: Option<Context>,
    /// When the line may carry the next request (serial only).
    quiet_until: Instant,
    /// One timer re-armed for each request: registering a fresh timer per request would
    /// wake the runtime's timer driver every time, which costs more than the request.
    deadline: Pin<Box<Sleep>>,
}

impl Link {
    pub fn new(endpoint: Endpoint, serial: SerialSettings) -> Link {
        Link {
            endpoint,
            serial,
            ctx: None,
            quiet_until: Instant::now(),
            deadline: Box::pin(sleep_until(Instant::now())),
        }
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    pub fn is_serial(&self) -> bool {
        matches!(self.endpoint, Endpoint::Rtu(_))
    }

    pub fn is_open(&self) -> bool {
        self.ctx.is_some()
    }

    /// Opens the connection, within `limit`.
    pub async fn open(&mut self, limit: Duration) -> Result<(), String> {
        if self.ctx.is_some() {
            return Ok(());
        }
        let ctx = match &self.endpoint {
            Endpoint::Tcp(address) => timeout(limit, connect_tcp(address))
                .await
                .map_err(|_| format!("connect timed out after {limit:?}"))??,
            Endpoint::Rtu(path) => {
                // A reopened port may still hold the late reply that made us close it.
                sleep_until(self.quiet_until).await;
                let port = open_serial(path, &self.serial)?;
                self.quiet_until = Instant::now() + self.serial.effective_pause();
                tokio_modbus::client::rtu::attach(port)
            }
        };
        self.ctx = Some(ctx);
        Ok(())
    }

    /// Drops the connection without a goodbye: it is no longer trusted.
    pub fn drop_connection(&mut self) {
        self.ctx = None;
        self.quiet_until = Instant::now() + self.serial.effective_pause();
    }

    /// Closes the connection politely (at shutdown).
    pub async fn close(&mut self, limit: Duration) {
        if let Some(mut ctx) = self.ctx.take() {
            // Best effort: the device may already be gone.
            let _ = timeout(limit, ctx.disconnect()).await;
        }
    }

    /// Sends one read to `unit`; the connection must be open. Drops the connection on
    /// anything but an answer.
    pub async fn read(&mut self, unit: u8, req: &ReadRequest, limit: Duration) -> Result<Data, ReadFailure> {
        if self.is_serial() {
            sleep_until(self.quiet_until).await;
        }
        let Some(ctx) = self.ctx.as_mut() else {
            return Err(ReadFailure::Transport("not connected".into()));
        };
        ctx.set_slave(Slave(unit));
        let (start, count) = (req.start, req.count);
        let call = async {
            match req.kind {
                RegisterKind::Coil => ctx.read_coils(start, count).await.map(|r| r.map(Data::Bits)),
                RegisterKind::Discrete => ctx.read_discrete_inputs(start, count).await.map(|r| r.map(Data::Bits)),
                RegisterKind::Holding => ctx
                    .read_holding_registers(start, count)
                    .await
                    .map(|r| r.map(Data::Words)),
                RegisterKind::Input => ctx.read_input_registers(start, count).await.map(|r| r.map(Data::Words)),
            }
        };
        self.deadline.as_mut().reset(Instant::now() + limit);
        let deadline = &mut self.deadline;
        let result = tokio::select! {
            biased;
            r = call => Ok(r),
            _ = deadline => Err(()),
        };
        if self.is_serial() {
            self.quiet_until = Instant::now() + self.serial.effective_pause();
        }
        match result {
            Err(_) => {
                self.drop_connection();
                Err(ReadFailure::Timeout)
            }
            Ok(Err(e)) => {
                self.drop_connection();
                Err(ReadFailure::Transport(e.to_string()))
            }
            Ok(Ok(Err(code))) => Err(ReadFailure::Exception(u8::from(code))),
            Ok(Ok(Ok(data))) => Ok(data),
        }
    }
}

async fn connect_tcp(address: &str) -> Result<Context, String> {
    let addrs: Vec<SocketAddr> = lookup_host(address)
        .await
        .map_err(|e| format!("resolving {address}: {e}"))?
        .collect();
    let addr = addrs
        .first()
        .ok_or_else(|| format!("{address} resolves to no address"))?;
    let stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    // Requests are small and answered one at a time: Nagle would only add latency.
    let _ = stream.set_nodelay(true);
    Ok(tokio_modbus::client::tcp::attach(stream))
}

fn open_serial(path: &str, s: &SerialSettings) -> Result<tokio_serial::SerialStream, String> {
    let parity = match s.parity {
        Parity::None => tokio_serial::Parity::None,
        Parity::Even => tokio_serial::Parity::Even,
        Parity::Odd => tokio_serial::Parity::Odd,
    };
    let data_bits = if s.data_bits == 7 {
        tokio_serial::DataBits::Seven
    } else {
        tokio_serial::DataBits::Eight
    };
    let stop_bits = if s.stop_bits == 2 {
        tokio_serial::StopBits::Two
    } else {
        tokio_serial::StopBits::One
    };
    let builder = tokio_serial::new(path, s.baud)
        .parity(parity)
        .data_bits(data_bits)
        .stop_bits(stop_bits);
    let port = tokio_serial::SerialStream::open(&builder).map_err(|e| format!("opening {path}: {e}"))?;
    port.clear(tokio_serial::ClearBuffer::Input)
        .map_err(|e| format!("clearing {path}: {e}"))?;
    Ok(port)
}
