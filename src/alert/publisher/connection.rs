//! One upstream connection's event loop: it polls rumqttc, tells the publisher's state
//! ([`super::state`]) what happened, and carries out its answers (hand a request to the
//! client, remove an acknowledged alert from the outbox, count it, tell the `acked`
//! channel). Everything about which packet id is which lives in the state; this loop
//! owns only the client, the event loop and the timers, and drops them whole when the
//! connection fails.

use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, EventLoop, Outgoing, Packet, QoS};
use tokio::sync::watch;
use tokio::time::{interval, interval_at, Interval, MissedTickBehavior};

use super::state::{Acked, DrainStep, PublisherState, Slot, Want};
use super::{Publisher, Retry};
use crate::base::time::now_ms;
use crate::mqtt::Failure;

/// How a connection ended.
pub(super) enum End {
    Shutdown,
    Failed(Failure),
}

/// A client with its event loop, and the timers of one connection.
struct Link {
    client: AsyncClient,
    events: EventLoop,
    /// Wakes the loop to check the drain's grace period.
    tick: Interval,
    heartbeat: Interval,
}

impl Publisher {
    /// Runs one connection until shutdown or failure. `state` must be disconnected.
    pub(super) async fn connection(
        &self,
        state: &mut PublisherState,
        shutdown: &mut watch::Receiver<bool>,
        retry: &mut Retry,
    ) -> End {
        let mut link = self.link();
        loop {
            if *shutdown.borrow() {
                state.start_drain(Instant::now());
            }
            if let Some(disconnect) = self.drain(state, &link.client) {
                if disconnect {
                    close(&link.client, &mut link.events).await;
                }
                return End::Shutdown;
            }
            self.fill_window(state, &link.client);
            tokio::select! {
                event = link.events.poll() => match event {
                    Ok(event) => self.on_event(event, state, &link.client, retry),
                    Err(e) => return End::Failed(Failure::from_error(&e, "upstream")),
                },
                _ = self.wake.notified() => {}
                _ = link.tick.tick() => {}
                _ = link.heartbeat.tick(), if state.heartbeat_allowed() => self.send_heartbeat(state, &link.client),
                _ = shutdown.changed(), if !state.is_draining() => {}
            }
        }
    }

    fn link(&self) -> Link {
        let window = usize::from(self.options.max_inflight);
        let (client, events) = AsyncClient::new(self.mqtt_options(), window + 8);
        let every = self.options.heartbeat_interval;
        let mut heartbeat = interval_at(tokio::time::Instant::now() + every, every);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Link {
            client,
            events,
            tick: interval(Duration::from_millis(200)),
            heartbeat,
        }
    }

    /// Carries out the drain's next step; `Some(disconnect)` when the connection should
    /// end.
    fn drain(&self, state: &mut PublisherState, client: &AsyncClient) -> Option<bool> {
        match state.drain_step(Instant::now(), self.outbox.is_empty()) {
            DrainStep::Continue => None,
            DrainStep::Finish { disconnect } => Some(disconnect),
            DrainStep::SendGoodbye => {
                let goodbye = self.status.goodbye(now_ms());
                if publish(client, &self.options.status_topic, QoS::AtLeastOnce, true, goodbye) {
                    state.queued(Slot::Goodbye);
                }
                None
            }
        }
    }

    /// Hands the client the next alerts of the outbox while the window has room. A full
    /// request queue leaves the rest for the next round: the cursor has not moved.
    fn fill_window(&self, state: &mut PublisherState, client: &AsyncClient) {
        while let Want::AlertAfter(after) = state.want() {
            let next = match self.outbox.next_after(after) {
                Ok(Some(entry)) => entry,
                Ok(None) => break,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the outbox");
                    break;
                }
            };
            if !publish(client, &next.topic, QoS::AtLeastOnce, false, next.payload) {
                break;
            }
            state.queued(Slot::Alert(next.seq));
        }
    }

    fn send_heartbeat(&self, state: &mut PublisherState, client: &AsyncClient) {
        self.stats.outbox_depth.set(self.outbox.len() as u64);
        let beat = self.status.heartbeat(&self.stats, now_ms());
        if publish(client, &self.options.heartbeat_topic, QoS::AtMostOnce, false, beat) {
            state.queued(Slot::Heartbeat);
        }
    }

    fn on_event(&self, event: Event, state: &mut PublisherState, client: &AsyncClient, retry: &mut Retry) {
        match event {
            Event::Incoming(Packet::ConnAck(_)) => {
                state.connected();
                retry.connected(self.outbox.len());
                let birth = self.status.birth(now_ms());
                if publish(client, &self.options.status_topic, QoS::AtLeastOnce, true, birth) {
                    state.queued(Slot::Birth);
                }
            }
            Event::Outgoing(Outgoing::Publish(pkid)) => state.outgoing_publish(pkid),
            Event::Incoming(Packet::PubAck(ack)) => {
                if let Some(acked) = state.puback(ack.pkid) {
                    self.acknowledged(acked);
                }
            }
            _ => {}
        }
    }

    fn acknowledged(&self, acked: Acked) {
        match acked {
            Acked::Alert(seq) => {
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
            Acked::Birth => tracing::debug!("birth message acknowledged"),
            Acked::Goodbye => tracing::debug!("goodbye acknowledged"),
        }
    }
}

/// `try_publish`: false when the client's request queue is full (the event loop drains
/// it in this same task, so waiting here would wait forever).
fn publish(client: &AsyncClient, topic: &str, qos: QoS, retain: bool, payload: Vec<u8>) -> bool {
    client.try_publish(topic, qos, retain, payload).is_ok()
}

/// Sends DISCONNECT (so the broker discards the last will) and waits briefly for it to
/// leave.
async fn close(client: &AsyncClient, events: &mut EventLoop) {
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
