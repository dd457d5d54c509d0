//! The one owner of the upstream MQTT connection. It sends the outbox oldest first with
//! QoS 1 and removes an entry only when the broker's PUBACK for it has arrived.
//!
//! rumqttc's `publish` only queues in memory and gives no packet id, so the publisher
//! matches each `Outgoing::Publish(pkid)` event to the entry it queued (the event loop
//! takes requests in order) and each `PubAck(pkid)` back to that entry. On any connection
//! error the client and its event loop are dropped whole, queued requests included, and a
//! fresh pair starts from the head of the outbox after a backoff with jitter: nothing
//! stale can be matched to a new packet id, and nothing unacknowledged is forgotten.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS};
use tokio::sync::{watch, Notify};

use super::outbox::Outbox;
use crate::backoff::Backoff;
use crate::stats::Stats;

/// Connection settings of the upstream broker.
#[derive(Debug, Clone)]
pub struct UpstreamOptions {
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub keep_alive: Duration,
    pub max_inflight: u16,
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
}

enum SessionEnd {
    Shutdown,
    Failed(String),
}

impl Publisher {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(30));
        let mut was_connected = true;
        loop {
            match self.session(&mut shutdown, &mut backoff, &mut was_connected).await {
                SessionEnd::Shutdown => return,
                SessionEnd::Failed(error) => {
                    let delay = backoff.next_delay();
                    if was_connected {
                        tracing::warn!(broker = %format!("{}:{}", self.options.host, self.options.port), %error, retry_in = ?delay, outbox = self.outbox.len(), "upstream broker unreachable; alerts are kept in the outbox");
                        was_connected = false;
                    } else {
                        tracing::debug!(%error, retry_in = ?delay, "upstream still unreachable");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown.changed() => return,
                    }
                }
            }
        }
    }

    async fn session(
        &self,
        shutdown: &mut watch::Receiver<bool>,
        backoff: &mut Backoff,
        was_connected: &mut bool,
    ) -> SessionEnd {
        let o = &self.options;
        let mut mqtt = MqttOptions::new(&o.client_id, &o.host, o.port);
        mqtt.set_keep_alive(o.keep_alive);
        mqtt.set_inflight(o.max_inflight);
        // The outbox is the session state that matters; a clean session keeps the
        // broker from replaying anything the outbox would not also resend.
        mqtt.set_clean_session(true);
        let window = usize::from(o.max_inflight);
        let (client, mut events): (AsyncClient, EventLoop) = AsyncClient::new(mqtt, window + 8);

        let mut connected = false;
        let mut queued: VecDeque<u64> = VecDeque::new();
        let mut inflight: HashMap<u16, u64> = HashMap::new();
        let mut cursor: Option<u64> = None;
        let mut draining_since: Option<tokio::time::Instant> = None;
        let mut tick = tokio::time::interval(Duration::from_millis(200));

        loop {
            if *shutdown.borrow() && draining_since.is_none() {
                draining_since = Some(tokio::time::Instant::now());
            }
            if let Some(since) = draining_since {
                if self.outbox.is_empty() || !connected || since.elapsed() >= self.drain_grace {
                    let _ = client.try_disconnect();
                    return SessionEnd::Shutdown;
                }
            }
            if connected {
                while queued.len() + inflight.len() < window {
                    let next = match self.outbox.next_after(cursor) {
                        Ok(Some(e)) => e,
                        Ok(None) => break,
                        Err(e) => {
                            tracing::error!(error = %e, "cannot read the outbox");
                            break;
                        }
                    };
                    if client
                        .try_publish(next.topic, QoS::AtLeastOnce, false, next.payload)
                        .is_err()
                    {
                        break;
                    }
                    queued.push_back(next.seq);
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
                    }
                    Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                        if let Some(seq) = queued.pop_front() {
                            inflight.insert(pkid, seq);
                        }
                    }
                    Ok(Event::Incoming(Packet::PubAck(ack))) => {
                        if let Some(seq) = inflight.remove(&ack.pkid) {
                            tracing::debug!(seq, "alert acknowledged by the broker");
                            if let Err(e) = self.outbox.remove(seq) {
                                tracing::error!(seq, error = %e, "cannot remove an acknowledged alert; it will be sent again");
                            }
                            self.stats.alerts_published.inc();
                            self.stats.outbox_depth.set(self.outbox.len() as u64);
                        }
                    }
                    Ok(_) => {}
                    Err(e) => return SessionEnd::Failed(e.to_string()),
                },
                _ = self.wake.notified() => {}
                _ = tick.tick() => {}
                _ = shutdown.changed(), if draining_since.is_none() => {}
            }
        }
    }
}
