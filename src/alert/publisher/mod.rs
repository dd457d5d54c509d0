//! The one owner of the upstream MQTT connection. It sends the outbox oldest first with
//! QoS 1 and removes an entry only when the broker's PUBACK for it has arrived.
//!
//! rumqttc's `publish` only queues in memory and gives no packet id, so the publisher
//! matches each `Outgoing::Publish(pkid)` event to the message it queued (the event loop
//! takes requests in order; status messages and heartbeats take their place in that queue
//! too) and each `PubAck(pkid)` back to that message. On any connection error the client
//! and its event loop are dropped whole, queued requests included, and a fresh pair starts
//! from the head of the outbox after a backoff with jitter: nothing stale can be matched
//! to a new packet id, and nothing unacknowledged is forgotten.
//!
//! Each connection announces itself with a retained birth message on the status topic and
//! leaves a retained last will `offline`; a clean shutdown publishes `offline` itself. A
//! refused login or a failed TLS handshake is logged as an error (once per distinct
//! error) and retried with the same backoff: a broker that is being reconfigured is
//! picked up without a restart, and a wrong password never becomes a busy loop.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, LastWill, MqttOptions, Outgoing, Packet, QoS};
use tokio::sync::{mpsc, watch, Notify};

use super::outbox::Outbox;
use super::status::StatusInfo;
use crate::base::backoff::Backoff;
use crate::mqtt::{Connection, Failure};
use crate::stats::Stats;

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

/// What a packet id stands for.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Slot {
    Alert(u64),
    Birth,
    Goodbye,
    Heartbeat,
}

enum SessionEnd {
    Shutdown,
    Failed(Failure),
}

impl Publisher {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(30));
        let mut was_connected = true;
        let mut last_error: Option<String> = None;
        let broker = self.options.connection.broker().to_string();
        loop {
            match self.session(&mut shutdown, &mut backoff, &mut was_connected).await {
                SessionEnd::Shutdown => return,
                SessionEnd::Failed(failure) => {
                    let delay = backoff.next_delay();
                    let error = failure.text();
                    let repeated = last_error.as_deref() == Some(error);
                    match &failure {
                        f if f.is_configuration() && !repeated => {
                            tracing::error!(%broker, %error, retry_in = ?delay, outbox = self.outbox.len(), "cannot connect to the upstream broker; alerts are kept in the outbox")
                        }
                        Failure::Network(_) if was_connected => {
                            tracing::warn!(%broker, %error, retry_in = ?delay, outbox = self.outbox.len(), "upstream broker unreachable; alerts are kept in the outbox")
                        }
                        _ => {}
                    }
                    tracing::debug!(%error, retry_in = ?delay, "upstream connection attempt failed");
                    was_connected = false;
                    last_error = Some(error.to_string());
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

    async fn session(
        &self,
        shutdown: &mut watch::Receiver<bool>,
        backoff: &mut Backoff,
        was_connected: &mut bool,
    ) -> SessionEnd {
        let o = &self.options;
        let window = usize::from(o.max_inflight);
        let (client, mut events): (AsyncClient, EventLoop) = AsyncClient::new(self.mqtt_options(), window + 8);

        let mut connected = false;
        let mut queued: VecDeque<Slot> = VecDeque::new();
        let mut inflight: HashMap<u16, Slot> = HashMap::new();
        let mut cursor: Option<u64> = None;
        let mut draining_since: Option<tokio::time::Instant> = None;
        // None: not sent; Some(acked).
        let mut goodbye: Option<bool> = None;
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        let mut heartbeat =
            tokio::time::interval_at(tokio::time::Instant::now() + o.heartbeat_interval, o.heartbeat_interval);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let publish = |topic: &str, qos: QoS, retain: bool, payload: Vec<u8>| {
            client.try_publish(topic, qos, retain, payload).is_ok()
        };

        loop {
            if *shutdown.borrow() && draining_since.is_none() {
                draining_since = Some(tokio::time::Instant::now());
            }
            if let Some(since) = draining_since {
                if !connected || goodbye == Some(true) || since.elapsed() >= self.drain_grace {
                    if connected {
                        disconnect(&client, &mut events).await;
                    }
                    return SessionEnd::Shutdown;
                }
                if goodbye.is_none()
                    && self.outbox.is_empty()
                    && publish(
                        &o.status_topic,
                        QoS::AtLeastOnce,
                        true,
                        self.status.goodbye(crate::base::time::now_ms()),
                    )
                {
                    queued.push_back(Slot::Goodbye);
                    goodbye = Some(false);
                }
            }
            if connected {
                let alerts = |q: &VecDeque<Slot>, f: &HashMap<u16, Slot>| {
                    q.iter()
                        .chain(f.values())
                        .filter(|s| matches!(s, Slot::Alert(_)))
                        .count()
                };
                while alerts(&queued, &inflight) < window {
                    let next = match self.outbox.next_after(cursor) {
                        Ok(Some(e)) => e,
                        Ok(None) => break,
                        Err(e) => {
                            tracing::error!(error = %e, "cannot read the outbox");
                            break;
                        }
                    };
                    if !publish(&next.topic, QoS::AtLeastOnce, false, next.payload) {
                        break;
                    }
                    queued.push_back(Slot::Alert(next.seq));
                    cursor = Some(next.seq);
                }
            }
            tokio::select! {
                event = events.poll() => match event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        connected = true;
                        backoff.reset();
                        if !*was_connected {
                            tracing::info!(outbox = self.outbox.len(), "upstream broker connected; sending the outbox");
                        }
                        *was_connected = true;
                        if publish(&o.status_topic, QoS::AtLeastOnce, true, self.status.birth(crate::base::time::now_ms())) {
                            queued.push_back(Slot::Birth);
                        }
                    }
                    Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                        if let Some(slot) = queued.pop_front() {
                            // QoS 0 (heartbeats) has no packet id and no acknowledgement.
                            if pkid != 0 {
                                inflight.insert(pkid, slot);
                            }
                        }
                    }
                    Ok(Event::Incoming(Packet::PubAck(ack))) => match inflight.remove(&ack.pkid) {
                        Some(Slot::Alert(seq)) => {
                            tracing::debug!(seq, "alert acknowledged by the broker");
                            if let Err(e) = self.outbox.remove(seq) {
                                tracing::error!(seq, error = %e, "cannot remove an acknowledged alert; it will be sent again");
                            }
                            self.stats.alerts_published.inc();
                            self.stats.outbox_depth.set(self.outbox.len() as u64);
                            if let Some(acked) = &self.acked {
                                let _ = acked.send(seq);
                            }
                        }
                        Some(Slot::Goodbye) => goodbye = Some(true),
                        Some(Slot::Birth) => tracing::debug!("birth message acknowledged"),
                        Some(Slot::Heartbeat) | None => {}
                    },
                    Ok(_) => {}
                    Err(e) => return SessionEnd::Failed(Failure::from_error(&e, "upstream")),
                },
                _ = self.wake.notified() => {}
                _ = tick.tick() => {}
                _ = heartbeat.tick(), if connected && draining_since.is_none() => {
                    self.stats.outbox_depth.set(self.outbox.len() as u64);
                    if publish(&o.heartbeat_topic, QoS::AtMostOnce, false, self.status.heartbeat(&self.stats, crate::base::time::now_ms())) {
                        queued.push_back(Slot::Heartbeat);
                    }
                }
                _ = shutdown.changed(), if draining_since.is_none() => {}
            }
        }
    }
}

/// Sends DISCONNECT (so the broker discards the last will) and waits briefly for it to
/// leave.
async fn disconnect(client: &AsyncClient, events: &mut EventLoop) {
    if client.try_disconnect().is_err() {
        return;
    }
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        loop {
            match events.poll().await {
                Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
}
