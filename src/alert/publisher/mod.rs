//! The one owner of the upstream MQTT connection. It sends the outbox oldest first with
//! QoS 1 and removes an entry only when the broker's PUBACK for it has arrived.
//!
//! rumqttc's `publish` only queues in memory and gives no packet id, so the publisher
//! matches each `Outgoing::Publish(pkid)` event to the message it queued (the event loop
//! takes requests in order; status messages and heartbeats take their place in that queue
//! too) and each `PubAck(pkid)` back to that message. That bookkeeping is a state machine
//! without I/O ([`state`]); the event loop of one connection ([`connection`]) feeds it and
//! carries out its answers. On any connection error the client and its event loop are
//! dropped whole, queued requests included, the state forgets everything queued and in
//! flight, and a fresh pair starts from the head of the outbox after a backoff with
//! jitter: nothing stale can be matched to a new packet id, and nothing unacknowledged is
//! forgotten.
//!
//! Each connection announces itself with a retained birth message on the status topic and
//! leaves a retained last will `offline`; a clean shutdown publishes `offline` itself. A
//! refused login or a failed TLS handshake is logged as an error (once per distinct
//! error) and retried with the same backoff: a broker that is being reconfigured is
//! picked up without a restart, and a wrong password never becomes a busy loop.

mod connection;
mod state;

use std::sync::Arc;
use std::time::Duration;

use rumqttc::{LastWill, MqttOptions, QoS};
use tokio::sync::{mpsc, watch, Notify};

use super::outbox::Outbox;
use super::status::StatusInfo;
use crate::base::backoff::Backoff;
use crate::mqtt::{Connection, Failure};
use crate::stats::Stats;
use connection::End;
use state::PublisherState;

/// Connection settings of the upstream broker.
#[derive(Clone, Debug)]
pub struct UpstreamOptions {
    pub connection: Connection,
    pub max_inflight: u16,
    pub status_topic: String,
    pub heartbeat_topic: String,
    pub heartbeat_interval: Duration,
}

pub struct Publisher {
    pub options: UpstreamOptions,
    pub outbox: Outbox,
    /// Signalled when the outbox has a new entry.
    pub wake: Arc<Notify>,
    pub stats: Arc<Stats>,
    /// After shutdown, how long to keep draining the outbox before leaving the rest for
    /// the next start.
    pub drain_grace: Duration,
    pub status: StatusInfo,
    /// Told the sequence number of every alert the broker acknowledged (benchmarks).
    pub acked: Option<mpsc::UnboundedSender<u64>>,
}

impl Publisher {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut state = PublisherState::new(self.options.max_inflight, self.drain_grace);
        let mut retry = Retry::new(self.options.connection.broker());
        loop {
            match self.connection(&mut state, &mut shutdown, &mut retry).await {
                End::Shutdown => return,
                End::Failed(failure) => {
                    state.disconnected();
                    let delay = retry.failed(&failure, self.outbox.len());
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown.changed() => return,
                    }
                }
            }
        }
    }

    fn mqtt_options(&self) -> MqttOptions {
        let o = &self.options;
        let mut mqtt = o.connection.options();
        // Room for the status messages beside a full window of alerts.
        mqtt.set_inflight(o.max_inflight.saturating_add(2));
        // The outbox is the session state that matters; a clean session keeps the
        // broker from replaying anything the outbox would not also resend.
        mqtt.set_clean_session(true);
        mqtt.set_last_will(LastWill::new(
            &o.status_topic,
            self.status.will(),
            QoS::AtLeastOnce,
            true,
        ));
        mqtt
    }
}

/// The reconnect policy and what the logs have said about it: one warning when a working
/// connection is lost, one error per distinct configuration problem, the rest at debug.
struct Retry {
    broker: String,
    backoff: Backoff,
    was_connected: bool,
    last_error: Option<String>,
}

impl Retry {
    fn new(broker: &str) -> Retry {
        Retry {
            broker: broker.to_string(),
            backoff: Backoff::new(Duration::from_millis(250), Duration::from_secs(30)),
            // So that the first failure after start-up is reported.
            was_connected: true,
            last_error: None,
        }
    }

    fn connected(&mut self, outbox: usize) {
        self.backoff.reset();
        if !self.was_connected {
            tracing::info!(outbox, "upstream broker connected; sending the outbox");
        }
        self.was_connected = true;
    }

    /// Logs the failure as it deserves and returns how long to wait before the next try.
    fn failed(&mut self, failure: &Failure, outbox: usize) -> Duration {
        let delay = self.backoff.next_delay();
        let broker = &self.broker;
        let error = failure.text();
        let repeated = self.last_error.as_deref() == Some(error);
        match failure {
            f if f.is_configuration() && !repeated => {
                tracing::error!(%broker, %error, retry_in = ?delay, outbox, "cannot connect to the upstream broker; alerts are kept in the outbox")
            }
            Failure::Network(_) if self.was_connected => {
                tracing::warn!(%broker, %error, retry_in = ?delay, outbox, "upstream broker unreachable; alerts are kept in the outbox")
            }
            _ => {}
        }
        tracing::debug!(%error, retry_in = ?delay, "upstream connection attempt failed");
        self.was_connected = false;
        self.last_error = Some(error.to_string());
        delay
    }
}
