//! A Modbus TCP server over an in-memory bank of the four tables, built on tokio-modbus's server.
//! It plays the PLC of the demo plant and the device of the integration tests, which can
//! also make it misbehave (answer with an exception, or not at all) to exercise the
//! poller's unhappy paths.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;
use tokio_modbus::server::tcp::{accept_tcp_connection, Server};
use tokio_modbus::server::Service;
use tokio_modbus::{ExceptionCode, Request, Response};

use crate::config::RegisterKind;

/// How the server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Behaviour {
    #[default]
    Normal,
    /// Never answers: the client's timeout must fire.
    Silent,
    /// Answers every read with this exception code.
    Exception(u8),
    /// Answers normally, this many milliseconds late.
    Delay(u64),
}

#[derive(Debug, Default)]
struct Bank {
    holding: HashMap<u16, u16>,
    input: HashMap<u16, u16>,
    coils: HashMap<u16, bool>,
    discrete: HashMap<u16, bool>,
    behaviour: Behaviour,
    requests: u64,
    connections: u64,
}

/// Shared register bank; clones see the same registers.
#[derive(Debug, Clone, Default)]
pub struct RegisterBank(Arc<Mutex<Bank>>);

impl RegisterBank {
    fn bank(&self) -> std::sync::MutexGuard<'_, Bank> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes consecutive registers starting at `address` (holding or input; for the bit
    /// tables, a word is a bit that is set when the word is not zero).
    pub fn set(&self, kind: RegisterKind, address: u16, words: &[u16]) {
        let mut b = self.bank();
        for (i, w) in words.iter().enumerate() {
            let a = address.wrapping_add(i as u16);
            match kind {
                RegisterKind::Holding => b.holding.insert(a, *w).map(|_| ()),
                RegisterKind::Input => b.input.insert(a, *w).map(|_| ()),
                RegisterKind::Coil => b.coils.insert(a, *w != 0).map(|_| ()),
                RegisterKind::Discrete => b.discrete.insert(a, *w != 0).map(|_| ()),
            };
        }
    }

    /// Client connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.bank().connections
    }

    /// Requests answered or refused so far.
    pub fn requests(&self) -> u64 {
        self.bank().requests
    }

    pub fn set_behaviour(&self, behaviour: Behaviour) {
        self.bank().behaviour = behaviour;
    }

    fn read<T: Copy>(table: &HashMap<u16, T>, address: u16, count: u16) -> Result<Vec<T>, ExceptionCode> {
        (0..count)
            .map(|i| {
                address
                    .checked_add(i)
                    .and_then(|a| table.get(&a).copied())
                    .ok_or(ExceptionCode::IllegalDataAddress)
            })
            .collect()
    }

    fn answer(&self, req: Request<'static>) -> Result<Response, ExceptionCode> {
        let b = self.bank();
        match req {
            Request::ReadCoils(a, n) => Self::read(&b.coils, a, n).map(Response::ReadCoils),
            Request::ReadDiscreteInputs(a, n) => Self::read(&b.discrete, a, n).map(Response::ReadDiscreteInputs),
            Request::ReadHoldingRegisters(a, n) => Self::read(&b.holding, a, n).map(Response::ReadHoldingRegisters),
            Request::ReadInputRegisters(a, n) => Self::read(&b.input, a, n).map(Response::ReadInputRegisters),
            _ => Err(ExceptionCode::IllegalFunction),
        }
    }
}

type Reply = Pin<Box<dyn Future<Output = Result<Response, ExceptionCode>> + Send>>;

struct BankService(RegisterBank);

impl Service for BankService {
    type Request = Request<'static>;
    type Response = Response;
    type Exception = ExceptionCode;
    type Future = Reply;

    fn call(&self, req: Self::Request) -> Self::Future {
        let behaviour = {
            let mut b = self.0.bank();
            b.requests += 1;
            b.behaviour
        };
        let reply = match behaviour {
            Behaviour::Silent => return Box::pin(std::future::pending()),
            Behaviour::Exception(code) => Err(ExceptionCode::new(code)),
            Behaviour::Normal => self.0.answer(req),
            Behaviour::Delay(ms) => {
                let reply = self.0.answer(req);
                return Box::pin(async move {
                    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                    reply
                });
            }
        };
        Box::pin(std::future::ready(reply))
    }
}

/// Serves `bank` on `listener` until the listener fails.
pub async fn serve(listener: TcpListener, bank: RegisterBank) -> std::io::Result<()> {
    let server = Server::new(listener);
    let on_connected = |stream, addr| {
        let bank = bank.clone();
        bank.bank().connections += 1;
        async move { accept_tcp_connection(stream, addr, move |_| Ok(Some(BankService(bank.clone())))) }
    };
    server
        .serve(
            &on_connected,
            |e| tracing::debug!(error = %e, "modbus server connection ended"),
        )
        .await
}
