//! A Sparkplug B destination's event loop: one MQTT connection per session, with the
//! NDEATH of its `bdSeq` as the will; on CONNACK it subscribes to its NCMD topic (and the
//! primary host's STATE), sends NBIRTH and a DBIRTH per device once the host is online,
//! then DDATA per batch while the [`Window`] has room. Births and the protocol numbers are
//! the [`Session`]'s business; this file only does the I/O.
//!
//! QoS: births go at QoS 0 as Sparkplug requires; DDATA goes at QoS 1, where Sparkplug
//! says 0, because the cursor may move only on a confirmation: a PUBACK is the broker's
//! word that it has the data, so no sample is lost between store and broker. Hosts read
//! QoS 1 messages like any other. Like the JSON sink, each connection is a clean session:
//! the store and the cursor are the state that matters.

use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, LastWill, Outgoing, Packet, Publish, QoS};
use tokio::sync::watch;

use super::encode::{self, BirthMetric};
use super::state::{next_bd_seq, HostChange, Session};
use crate::base::time::now_ms;
use crate::config::SparkplugNode;
use crate::forward::engine::{Engine, Retry};
use crate::forward::plan::Batch;
use crate::forward::window::Window;
use crate::mqtt::{Connection, Failure};

pub struct SparkplugSink {
    pub connection: Connection,
    pub node: SparkplugNode,
    pub max_inflight: u16,
}

/// What one connection's loop works with.
struct Link<'a> {
    engine: &'a mut Engine,
    window: &'a mut Window<Batch>,
    session: &'a mut Session,
}

impl SparkplugSink {
    pub async fn run(self, mut engine: Engine, mut shutdown: watch::Receiver<bool>) {
        let mut retry = Retry::new(self.connection.broker(), &engine.name);
        let mut window: Window<Batch> = Window::new(self.max_inflight);
        let mut session = Session::new(self.node.primary_host.is_some());
        loop {
            let mut link = Link {
                engine: &mut engine,
                window: &mut window,
                session: &mut session,
            };
            let failure = self.connection_loop(&mut link, &mut shutdown, &mut retry).await;
            let Some(failure) = failure else { return };
            window.clear();
            engine.failed();
            let delay = retry.failed(failure.text(), failure.is_configuration());
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    fn topic(&self, kind: &str, device: Option<&str>) -> String {
        encode::topic(&self.node.group, kind, &self.node.node, device)
    }

    /// One connection (one `bdSeq`), until shutdown (`None`) or failure.
    async fn connection_loop(
        &self,
        link: &mut Link<'_>,
        shutdown: &mut watch::Receiver<bool>,
        retry: &mut Retry,
    ) -> Option<Failure> {
        let bd_seq = link.engine.next_session(next_bd_seq);
        link.session.connecting(bd_seq);
        let (client, mut events) = self.client(bd_seq);
        let mut connected = false;
        let mut tick = tokio::time::interval(link.engine.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if *shutdown.borrow() {
                self.close(&client, &mut events, bd_seq).await;
                return None;
            }
            if connected {
                self.publish(link, &client);
            }
            tokio::select! {
                event = events.poll() => match event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        connected = true;
                        retry.succeeded();
                        self.subscribe(&client);
                        tracing::info!(destination = %link.engine.name, bd_seq, "sparkplug session started");
                    }
                    // Births go at QoS 0 and leave with packet id 0; only DDATA is in the window.
                    Ok(Event::Outgoing(Outgoing::Publish(pkid))) if pkid != 0 => link.window.outgoing(pkid),
                    Ok(Event::Incoming(Packet::PubAck(ack))) => {
                        for batch in link.window.acked(ack.pkid) {
                            link.engine.confirmed(&batch);
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => self.command(link, &p),
                    Ok(_) => {}
                    Err(e) => return Some(Failure::from_error(&e, &format!("forward[{}]", link.engine.name))),
                },
                _ = tick.tick() => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    fn client(&self, bd_seq: u64) -> (AsyncClient, EventLoop) {
        let mut options = self.connection.options();
        options.set_clean_session(true);
        options.set_inflight(self.max_inflight);
        options.set_max_packet_size(16 << 20, 1 << 20);
        // Sparkplug: the NDEATH is the will, at QoS 1, not retained, with this session's bdSeq.
        let will = encode::ndeath(now_ms(), bd_seq);
        options.set_last_will(LastWill::new(self.topic("NDEATH", None), will, QoS::AtLeastOnce, false));
        // Room for the births of many devices besides the data window.
        AsyncClient::new(options, usize::from(self.max_inflight) + 256)
    }

    fn subscribe(&self, client: &AsyncClient) {
        let mut topics = vec![self.topic("NCMD", None)];
        if let Some(host) = &self.node.primary_host {
            topics.push(encode::state_topic(host));
        }
        for t in topics {
            if client.try_subscribe(t.clone(), QoS::AtLeastOnce).is_err() {
                tracing::warn!(topic = %t, "cannot subscribe; the request queue is full");
            }
        }
    }

    /// An NCMD or a STATE.
    fn command(&self, link: &mut Link<'_>, p: &Publish) {
        let name = &link.engine.name;
        if p.topic == self.topic("NCMD", None) {
            if encode::asks_rebirth(&p.payload) {
                tracing::info!(destination = %name, "a host asked for a rebirth");
                link.session.rebirth();
            }
            return;
        }
        let Some(host) = &self.node.primary_host else { return };
        if p.topic != encode::state_topic(host) {
            return;
        }
        match encode::host_state(&p.payload).map(|(on, ts)| link.session.host_state(on, ts)) {
            Some(HostChange::Online) => {
                tracing::info!(destination = %name, %host, "primary host online; sending births and data")
            }
            Some(HostChange::Offline) => {
                tracing::warn!(destination = %name, %host, "primary host offline; data stays in the store")
            }
            Some(HostChange::None) => {}
            None => tracing::warn!(destination = %name, %host, "a STATE message that is not one; ignored"),
        }
    }

    /// Births when due, then DDATA while the window has room and there is data.
    fn publish(&self, link: &mut Link<'_>, client: &AsyncClient) {
        if !link.session.may_publish() {
            // Data is held behind the cursor: the planner is not even asked.
            return;
        }
        if link.session.births_due() && !self.births(link, client) {
            return;
        }
        while link.window.has_room() {
            let Some(batch) = link.engine.next_batch() else { return };
            let device = encode::device_id(&batch.asset);
            let sensors = batch.items.iter().map(|(_, i)| encode::item_value(i).0);
            if link.session.needs_dbirth(&device, sensors) && !self.dbirth(link, client, &batch.asset) {
                link.engine.rewind();
                return;
            }
            let now = now_ms();
            let historical_before = now.saturating_sub(link.engine.live_window_ms);
            let items = batch.items.iter().map(|(_, i)| i);
            let payload = encode::ddata(now, link.session.seq(), items, historical_before);
            let topic = self.topic("DDATA", Some(&device));
            if client.try_publish(topic, QoS::AtLeastOnce, false, payload).is_err() {
                // The request queue is full; the batch goes again from the cursor.
                link.engine.rewind();
                return;
            }
            link.session.seq_used();
            link.engine.sent(&batch);
            link.window.queued(batch);
        }
    }

    /// NBIRTH and a DBIRTH per device; `false` when the request queue took not all.
    fn births(&self, link: &mut Link<'_>, client: &AsyncClient) -> bool {
        let payload = encode::nbirth(now_ms(), link.session.nbirth_seq(), link.session.bd_seq());
        if client
            .try_publish(self.topic("NBIRTH", None), QoS::AtMostOnce, false, payload)
            .is_err()
        {
            return false;
        }
        link.session.nbirth_sent();
        let assets: Vec<Arc<str>> = link.engine.assets().iter().map(|(a, _)| a.clone()).collect();
        // A device whose DBIRTH did not fit is born before its next data instead.
        assets.iter().all(|a| self.dbirth(link, client, a))
    }

    /// A DBIRTH of the asset's device with every sensor it has now and its last value.
    fn dbirth(&self, link: &mut Link<'_>, client: &AsyncClient, asset: &str) -> bool {
        let engine = &*link.engine;
        let Some((_, targets)) = engine.assets().iter().find(|(a, _)| &**a == asset) else {
            return true;
        };
        let metrics: Vec<BirthMetric> = targets
            .iter()
            .map(|t| BirthMetric {
                name: t.name.to_string(),
                alias: t.sensor,
                last: engine
                    .last_sample(t.sensor)
                    .map(|s| (s.ts_ms, encode::sample_value(&s))),
            })
            .collect();
        let sensors: Vec<_> = targets.iter().map(|t| t.sensor).collect();
        let device = encode::device_id(asset);
        let payload = encode::dbirth(now_ms(), link.session.seq(), &metrics);
        if client
            .try_publish(self.topic("DBIRTH", Some(&device)), QoS::AtMostOnce, false, payload)
            .is_err()
        {
            return false;
        }
        link.session.dbirth_sent(Arc::from(device), sensors);
        true
    }

    /// A deliberate end: the NDEATH first (a clean DISCONNECT drops the will), then
    /// DISCONNECT, waiting briefly for it to leave.
    async fn close(&self, client: &AsyncClient, events: &mut EventLoop, bd_seq: u64) {
        let death = encode::ndeath(now_ms(), bd_seq);
        let _ = client.try_publish(self.topic("NDEATH", None), QoS::AtMostOnce, false, death);
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
}
