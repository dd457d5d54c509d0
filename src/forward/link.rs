//! A broker destination's event loop: hands batches to rumqttc at QoS 1 while the window
//! has room, tells the [`Window`] which packet id each one got and which PUBACKs came,
//! and confirms batches in send order. A clean session each time: the store and the
//! cursor are the session state that matters, so after a failure the client, its event
//! loop and everything in flight are dropped whole and sent again from the cursor.
//! Batches go as JSON; Sparkplug B has its own sink (`super::sparkplug`).

use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, Outgoing, Packet, QoS};
use tokio::sync::watch;

use super::encode;
use super::engine::{Engine, Retry};
use super::plan::Batch;
use super::window::Window;
use crate::config::render_topic;
use crate::mqtt::{Connection, Failure};

pub struct BrokerSink {
    pub connection: Connection,
    /// `{asset}` still to fill.
    pub topic: String,
    pub max_inflight: u16,
}

impl BrokerSink {
    pub async fn run(self, mut engine: Engine, mut shutdown: watch::Receiver<bool>) {
        let mut retry = Retry::new(self.connection.broker(), &engine.name);
        let mut window: Window<Batch> = Window::new(self.max_inflight);
        loop {
            let failure = self
                .connection_loop(&mut engine, &mut window, &mut shutdown, &mut retry)
                .await;
            let Some(failure) = failure else { return };
            window.clear();
            engine.failed();
            let delay = retry.failed(failure.text(), failure.is_configuration());
            if !engine.pause(delay, &mut shutdown).await {
                return;
            }
        }
    }

    /// One connection, until shutdown (`None`) or failure.
    async fn connection_loop(
        &self,
        engine: &mut Engine,
        window: &mut Window<Batch>,
        shutdown: &mut watch::Receiver<bool>,
        retry: &mut Retry,
    ) -> Option<Failure> {
        let (client, mut events) = self.link();
        let mut connected = false;
        let mut tick = tokio::time::interval(engine.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if *shutdown.borrow() {
                close(&client, &mut events).await;
                return None;
            }
            if connected {
                self.fill(engine, window, &client);
            } else {
                engine.measure_if_due();
            }
            tokio::select! {
                event = events.poll() => match event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        connected = true;
                        retry.succeeded();
                    }
                    Ok(Event::Outgoing(Outgoing::Publish(pkid))) => window.outgoing(pkid),
                    Ok(Event::Incoming(Packet::PubAck(ack))) => {
                        for batch in window.acked(ack.pkid) {
                            engine.confirmed(&batch);
                        }
                    }
                    Ok(_) => {}
                    Err(e) => return Some(Failure::from_error(&e, &format!("forward[{}]", engine.name))),
                },
                _ = tick.tick() => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    fn link(&self) -> (AsyncClient, EventLoop) {
        let mut options = self.connection.options();
        options.set_clean_session(true);
        options.set_inflight(self.max_inflight);
        // Batches are large; leave room beyond rumqttc's default 10 KiB packets.
        options.set_max_packet_size(16 << 20, 1 << 20);
        AsyncClient::new(options, usize::from(self.max_inflight) + 8)
    }

    /// Hands the client batches while the window has room and there is data.
    fn fill(&self, engine: &mut Engine, window: &mut Window<Batch>, client: &AsyncClient) {
        while window.has_room() {
            let Some(batch) = engine.next_batch() else { return };
            let payload = encode::json(&engine.agent, &batch);
            let topic = render_topic(&self.topic, &engine.agent, &batch.asset);
            if client.try_publish(topic, QoS::AtLeastOnce, false, payload).is_err() {
                // The request queue is full; the batch goes again from the cursor.
                engine.rewind();
                return;
            }
            engine.sent(&batch);
            window.queued(batch);
        }
    }
}

/// Sends DISCONNECT and waits briefly for it to leave.
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
