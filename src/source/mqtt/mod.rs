//! MQTT input: subscriptions with topic templates and payload decoders, delivered
//! at least once from the broker to disk.
//!
//! **At-least-once.** With `qos = 1` the client uses manual acknowledgements: a message's
//! PUBACK is sent only after the pipeline has flushed its samples to the store (see
//! [`crate::source::Ack`]). Until then the broker keeps the message, and with
//! `clean_session = false` it keeps it across restarts of the agent, so a `kill -9` at any
//! point loses nothing; a redelivered message merges with its stored samples (same sensor
//! and timestamp). Acknowledgements are tagged with the connection they belong to: after a
//! reconnect a packet id may name another message, so acks of an older connection are
//! dropped (the broker redelivers those messages anyway). That bookkeeping is a state
//! without I/O ([`acks`]); the client loop here only polls rumqttc, feeds it, and hands
//! over the acks it releases.
//!
//! **Bad input.** A malformed payload, a topic no subscription maps, a non-finite number,
//! a time too far in the future or before 2000, or a sensor the input may not create
//! ([`limits`]: too long a name, past `max_sensors`) is counted per subscription (logs,
//! `/healthz`), logged with rate limiting, and acknowledged so the broker does not resend
//! it forever. It never takes good readings of the same payload with it. So is a value
//! that is no number (`non_numeric`), and a Sparkplug metric whose alias no birth explains
//! (`unknown_alias`; the input then asks the node to rebirth, see [`decoders`] and
//! [`sparkplug::births`]). Readings of one message on the same sensor and millisecond keep
//! the last (`collapsed`), as the store would, so that `samples` counts what is stored.
//!
//! **Large messages.** A payload larger than `max_payload` is acknowledged, counted as
//! `oversized` and logged with its topic and size, never decoded. The limit cannot be
//! rumqttc's packet limit: over it rumqttc drops the connection, and a persistent session
//! sends the same message again on the next one, forever. Announcing a limit to the broker
//! is MQTT 5's `Maximum Packet Size`, and rumqttc's client here speaks 3.1.1, which has
//! none. So the client reads any packet MQTT allows (256 MiB) and the input discards the
//! large ones after acknowledging them. The cost is memory for one such message while it
//! is read: acceptable on a 1 GB gateway for the rare stray message, and an operator who
//! expects worse bounds it at the broker (Mosquitto's `max_packet_size`), where the
//! publisher is refused instead.
//!
//! **Refused messages.** The pipeline refuses messages while the disk is full, without
//! acknowledging them. A broker resends unacknowledged messages only on a new connection,
//! so once samples are accepted again the pipeline hands the refusals back
//! ([`Ack::redeliver`]) and the input drops its connection once; the persistent session
//! (`clean_session = false`) resends them on the next one. With a clean session the broker
//! discards them instead: they were never acknowledged, and such a session promises
//! nothing across connections.
//!
//! Reconnects use exponential backoff with jitter; subscriptions are renewed on every
//! connect.

mod acks;
mod decoders;
pub(crate) mod influx;
pub(crate) mod json;
mod limits;
mod one_per_ms;
pub(crate) mod sparkplug;

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, Packet, Publish, QoS, SubscribeReasonCode};
use tokio::sync::{mpsc, watch};

use crate::base::backoff::Backoff;
use crate::base::sample::{now_ms, Sample, SensorId};
use crate::base::time::EARLIEST_MS;
use crate::config::TopicTemplate;
use crate::config::{InputQos, InputSettings, PayloadFormat, Subscription};
use crate::mqtt::Connection;
use crate::source::{Ack, Batch};
use crate::stats::{InputStats, Stats};
use crate::store::Store;
use acks::{AckState, Settled};
use decoders::Decoders;
use one_per_ms::OnePerMs;

/// The largest remaining length an MQTT packet can declare (four length bytes).
const MAX_MQTT_PACKET: usize = 268_435_455;

/// One value decoded from a payload, with the names a sensor-name template can use.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// Template variables, e.g. `("field", "temp")`.
    pub vars: Vec<(String, String)>,
    /// Milliseconds since the Unix epoch, when the payload carries a time.
    pub ts_ms: Option<i64>,
    pub value: f64,
}

/// Why (part of) a payload could not be decoded; each variant says where.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("malformed payload: {0}")]
    Malformed(String),
    #[error("not a finite number: {0}")]
    NonFinite(String),
    #[error("unreadable time: {0}")]
    BadTime(String),
    /// A line of a text payload; `line` and `column` are 1-based, the column counts
    /// bytes so it stays meaningful for non-UTF-8 input.
    #[error("line {line}, column {column}: {reason}")]
    Line { line: usize, column: usize, reason: String },
    /// The MQTT topic does not have the shape the decoder needs.
    #[error("topic {topic:?}: {reason}")]
    Topic { topic: String, reason: String },
    /// A binary payload is not a valid message; `reason` names the field path.
    #[error("payload on {topic:?}: {reason}")]
    Payload { topic: String, reason: String },
    /// Sparkplug metrics named by an alias that no birth certificate bound.
    #[error("{count} metric aliases without a birth certificate")]
    UnknownAlias { count: usize },
    /// A metric or field whose value is not a number (a string, bytes, a dataset...).
    #[error("{name:?} is a {kind}, not a number")]
    NonNumeric { name: String, kind: &'static str },
}

/// Fills a template; `None` when a placeholder has no value.
fn render(template: &str, vars: &[&[(String, String)]]) -> Option<String> {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}')? + open;
        let name = &rest[open + 1..close];
        let value = vars
            .iter()
            .flat_map(|v| v.iter())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())?;
        out.extend(value.chars().map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':') {
                c
            } else {
                '_'
            }
        }));
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    (!out.is_empty()).then_some(out)
}

struct Compiled {
    topic: TopicTemplate,
    config: Subscription,
    sensor: String,
    stats: Arc<InputStats>,
}

/// One `[[mqtt]]` input.
pub struct MqttSource {
    pub settings: InputSettings,
    /// Opened at start-up from `settings.endpoint`.
    pub connection: Connection,
    pub store: Store,
    /// The batch queue to the pipeline.
    pub batches: mpsc::Sender<Batch>,
    pub stats: Arc<Stats>,
}

impl MqttSource {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        let (client, mut events): (AsyncClient, EventLoop) = AsyncClient::new(self.mqtt_options(), 1024);
        let (ack_tx, mut ack_rx) = mpsc::unbounded_channel::<(u64, Settled)>();
        let mut input = Input::new(&self, client, ack_tx);
        loop {
            input.send_acks();
            let flow = tokio::select! {
                event = events.poll() => match event {
                    Ok(event) => input.on_event(event).await,
                    Err(e) => input.backoff(&e, &mut shutdown).await,
                },
                Some((epoch, settled)) = ack_rx.recv() => {
                    input.on_settled(epoch, settled, &mut events);
                    ControlFlow::Continue(())
                }
                _ = shutdown.changed() => {
                    input.finish(&mut events, &mut ack_rx).await;
                    ControlFlow::Break(())
                }
            };
            if flow.is_break() {
                return Ok(());
            }
        }
    }

    fn mqtt_options(&self) -> MqttOptions {
        let mut options = self.connection.options();
        options.set_clean_session(self.settings.clean_session);
        options.set_manual_acks(true);
        // Any packet MQTT allows: a smaller limit would make rumqttc drop the connection on
        // a large message and the session redeliver it forever (`max_payload` is applied
        // after the message is acknowledged instead). What this client sends is small.
        options.set_max_packet_size(MAX_MQTT_PACKET, 1 << 20);
        options
    }

    /// The samples of a message, and the NCMD topic of a Sparkplug node to ask for a
    /// rebirth. Readings of one sensor and millisecond collapse into the last one, as the
    /// store would keep them, so that `samples` counts what is stored and `collapsed` what
    /// is not.
    fn decode(
        &self,
        p: &Publish,
        subs: &[Compiled],
        unmatched: &InputStats,
        decoders: &mut Decoders,
        ids: &mut HashMap<String, SensorId>,
        now: i64,
    ) -> (Vec<Sample>, Option<String>) {
        let Some((sub, topic_vars)) = subs.iter().find_map(|s| s.topic.capture(&p.topic).map(|v| (s, v))) else {
            unmatched
                .unknown_topic
                .event(|n| tracing::warn!(topic = %p.topic, count = n, "message on a topic no subscription maps"));
            return (Vec::new(), None);
        };
        let st = &sub.stats;
        st.messages.inc();
        let decoded = decoders.decode(&sub.config, &p.topic, &p.payload, st);
        let topic_level = [("topic".to_string(), p.topic.replace('/', "."))];
        let max_ts = now + self.settings.max_future.as_millis() as i64;
        let mut samples = OnePerMs::with_capacity(decoded.readings.len());
        for r in decoded.readings {
            let ts = r.ts_ms.unwrap_or(now);
            if !admit_time(ts, max_ts, &p.topic, st) {
                continue;
            }
            let Some(name) = render(&sub.sensor, &[&topic_vars, &r.vars, &topic_level]) else {
                st.malformed.event(|n| {
                    tracing::warn!(topic = %p.topic, template = %sub.sensor, count = n, "the reading has no value for a placeholder of the sensor name; reading refused")
                });
                continue;
            };
            let Some(id) = self.sensor_id(&name, ids, &p.topic, st) else {
                continue;
            };
            if samples.push(Sample::good(id, ts, r.value)) {
                st.collapsed.event(|n| {
                    tracing::warn!(topic = %p.topic, sensor = %name, ts, count = n, "readings of one sensor in the same millisecond: the store keeps one value per millisecond, the last")
                });
            }
        }
        let samples = samples.samples;
        st.samples.add(samples.len() as u64);
        (samples, decoded.rebirth)
    }

    /// The id of a reading's sensor, created if the input may ([`limits`]); `None` (counted
    /// and logged) when the reading is refused.
    fn sensor_id(
        &self,
        name: &str,
        ids: &mut HashMap<String, SensorId>,
        topic: &str,
        st: &InputStats,
    ) -> Option<SensorId> {
        if let Some(id) = ids.get(name) {
            return Some(*id);
        }
        if let Err(why) = limits::admit_new(name, ids.len(), self.settings.max_sensors) {
            st.sensor_limit
                .event(|n| tracing::warn!(topic, error = %why, count = n, "sensor not created; reading refused"));
            return None;
        }
        match self.store.sensor_id(name) {
            Ok(id) => Some(*ids.entry(name.to_owned()).or_insert(id)),
            Err(e) => {
                tracing::error!(sensor = %name, error = %e, "cannot register sensor");
                None
            }
        }
    }
}

/// Whether a reading's time may be stored: not past `max_ts`, not before 2000.
fn admit_time(ts: i64, max_ts: i64, topic: &str, st: &InputStats) -> bool {
    if ts > max_ts {
        st.future
            .event(|n| tracing::warn!(topic, ts, count = n, "time too far in the future; reading refused"));
        return false;
    }
    if ts < EARLIEST_MS {
        st.past.event(|n| {
            tracing::warn!(
                topic,
                ts,
                count = n,
                "time before 2000-01-01 (a clock that was never set?); reading refused"
            )
        });
        return false;
    }
    true
}

/// A running input: the client, the compiled subscriptions, and what the loop keeps
/// between events. Acknowledgement bookkeeping is [`AckState`]'s; this only carries it
/// out.
struct Input<'a> {
    source: &'a MqttSource,
    client: AsyncClient,
    client_id: String,
    qos: QoS,
    subs: Vec<Compiled>,
    unmatched: Arc<InputStats>,
    decoders: Decoders,
    ids: HashMap<String, SensorId>,
    acks: AckState,
    /// Where an [`Ack`] sends its message once the samples are durable.
    ack_tx: mpsc::UnboundedSender<(u64, Settled)>,
    backoff: Backoff,
}

impl<'a> Input<'a> {
    fn new(source: &'a MqttSource, client: AsyncClient, ack_tx: mpsc::UnboundedSender<(u64, Settled)>) -> Input<'a> {
        let client_id = source.connection.client_id().to_string();
        let subs = source
            .settings
            .subscriptions
            .iter()
            .map(|s| Compiled {
                topic: s.topic.clone(),
                config: s.source.clone(),
                sensor: s.sensor.clone(),
                stats: source.stats.input(&format!("{client_id}:{}", s.source.topic)),
            })
            .collect();
        let sparkplug = source
            .settings
            .subscriptions
            .iter()
            .any(|s| s.source.format == PayloadFormat::Sparkplug);
        let qos = match source.settings.qos {
            InputQos::AtMostOnce => QoS::AtMostOnce,
            InputQos::AtLeastOnce => QoS::AtLeastOnce,
        };
        Input {
            source,
            client,
            qos,
            subs,
            unmatched: source.stats.input(&format!("{client_id}:<no subscription>")),
            decoders: Decoders::open(&source.store, &client_id, sparkplug),
            client_id,
            ids: HashMap::new(),
            acks: AckState::default(),
            ack_tx,
            backoff: Backoff::new(Duration::from_millis(250), Duration::from_secs(30)),
        }
    }

    /// Hands rumqttc the acks that are ready, as far as its request queue has room. Its
    /// queue is drained by `events.poll()` in this same task, so waiting here would wait
    /// forever.
    fn send_acks(&mut self) {
        let client = &self.client;
        self.acks.send_ready(|p| client.try_ack(p).is_ok());
    }

    async fn on_event(&mut self, event: Event) -> ControlFlow<()> {
        match event {
            Event::Incoming(Packet::ConnAck(ack)) => self.on_connected(ack.session_present),
            Event::Incoming(Packet::SubAck(ack)) if ack.return_codes.contains(&SubscribeReasonCode::Failure) => {
                tracing::error!(client = %self.client_id, "the broker refused a subscription (check its ACLs)");
            }
            Event::Incoming(Packet::Publish(p)) => return self.on_publish(p).await,
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn on_connected(&mut self, session_present: bool) {
        self.acks.connected();
        self.backoff.reset();
        tracing::info!(client = %self.client_id, broker = %self.source.connection.broker(), session_present, "mqtt input connected");
        // Subscribe even when the broker kept our session: the config may have gained
        // subscriptions since, and subscribing again is harmless.
        for s in &self.subs {
            if let Err(e) = self.client.try_subscribe(s.topic.filter(), self.qos) {
                tracing::error!(topic = %s.config.topic, error = %e, "cannot subscribe");
            }
        }
    }

    /// Decodes a message and hands its samples to the pipeline with an [`Ack`] that
    /// answers the broker once they are durable. Waits while the pipeline is full, so the
    /// broker holds what the agent cannot take yet. `Break` when the pipeline is gone.
    async fn on_publish(&mut self, p: Publish) -> ControlFlow<()> {
        let ack = self.ack_for(&p);
        if p.payload.len() > self.source.settings.max_payload {
            self.skip_oversized(&p);
            if let Some(ack) = ack {
                ack.done();
            }
            return ControlFlow::Continue(());
        }
        let now = now_ms();
        let (samples, rebirth) =
            self.source
                .decode(&p, &self.subs, &self.unmatched, &mut self.decoders, &mut self.ids, now);
        if let Some(topic) = rebirth {
            self.request_rebirth(topic, now);
        }
        match (samples.is_empty(), ack) {
            // Nothing to store: acknowledge at once.
            (true, Some(ack)) => ack.done(),
            (true, None) => {}
            (false, ack) => {
                if self.source.batches.send(Batch { samples, ack }).await.is_err() {
                    return ControlFlow::Break(());
                }
            }
        }
        ControlFlow::Continue(())
    }

    /// Asks a Sparkplug edge node to publish its births again, on this input's connection.
    /// QoS 0, as host applications send commands: a lost request is asked again by the
    /// next message the node sends without a usable birth.
    fn request_rebirth(&self, topic: String, now: i64) {
        let payload = decoders::rebirth_request(now);
        match self.client.try_publish(topic.as_str(), QoS::AtMostOnce, false, payload) {
            Ok(()) => {
                tracing::info!(client = %self.client_id, %topic, "asked a sparkplug node to rebirth: data arrived that no birth certificate explains")
            }
            Err(e) => {
                tracing::warn!(client = %self.client_id, %topic, error = %e, "cannot ask a sparkplug node to rebirth")
            }
        }
    }

    /// The [`Ack`] of a QoS 1 message, tagged with this connection. It keeps only the
    /// packet id and QoS (all rumqttc's ack reads), not the payload, so acks waiting for a
    /// flush or for space cost little.
    fn ack_for(&self, p: &Publish) -> Option<Ack> {
        if p.qos == QoS::AtMostOnce {
            return None;
        }
        let mut handle = Publish::new("", p.qos, Vec::new());
        handle.pkid = p.pkid;
        let epoch = self.acks.epoch();
        let (done, refused) = (self.ack_tx.clone(), self.ack_tx.clone());
        Some(Ack::with_redelivery(
            move || {
                let _ = done.send((epoch, Settled::Durable(handle)));
            },
            move || {
                let _ = refused.send((epoch, Settled::Refused));
            },
        ))
    }

    /// Counts and logs a message over `max_payload`, on the subscription its topic maps to.
    fn skip_oversized(&self, p: &Publish) {
        let st = self
            .subs
            .iter()
            .find(|s| s.topic.capture(&p.topic).is_some())
            .map_or(&self.unmatched, |s| &s.stats);
        let (size, max) = (p.payload.len(), self.source.settings.max_payload);
        st.oversized.event(|n| {
            tracing::warn!(topic = %p.topic, size, max_payload = max, count = n, "message larger than max_payload; acknowledged and skipped")
        });
    }

    /// A message handed to the pipeline was settled: durable ones are acknowledged; a
    /// refused one, now that samples are accepted again, drops the connection so that the
    /// broker resends (see [`acks`]).
    fn on_settled(&mut self, epoch: u64, settled: Settled, events: &mut EventLoop) {
        match settled {
            Settled::Durable(publish) => {
                self.acks.ack_ready(epoch, publish);
            }
            Settled::Refused if self.acks.redeliver(epoch) => {
                tracing::info!(client = %self.client_id, clean_session = self.source.settings.clean_session, "reconnecting so that the broker resends the messages refused while samples were not accepted");
                // rumqttc reconnects on the next poll; no backoff, nothing failed.
                events.clean();
                self.acks.disconnected();
            }
            Settled::Refused => {}
        }
    }

    /// The connection failed: its pending acks are void. Waits out the backoff; `Break`
    /// on shutdown.
    async fn backoff(&mut self, error: &ConnectionError, shutdown: &mut watch::Receiver<bool>) -> ControlFlow<()> {
        let delay = self.backoff.next_delay();
        if self.acks.is_connected() {
            tracing::warn!(client = %self.client_id, broker = %self.source.connection.broker(), %error, retry_in = ?delay, "mqtt input disconnected; unacknowledged messages stay with the broker");
        } else {
            tracing::debug!(client = %self.client_id, %error, retry_in = ?delay, "mqtt input still disconnected");
        }
        self.acks.disconnected();
        tokio::select! {
            _ = tokio::time::sleep(delay) => ControlFlow::Continue(()),
            _ = shutdown.changed() => ControlFlow::Break(()),
        }
    }

    /// Shutdown: the acks of the pipeline's last flush still arrive while it drains, so
    /// they are sent for a moment longer, on this connection only.
    async fn finish(&mut self, events: &mut EventLoop, ack_rx: &mut mpsc::UnboundedReceiver<(u64, Settled)>) {
        let deadline = tokio::time::sleep(Duration::from_millis(500));
        tokio::pin!(deadline);
        loop {
            self.send_acks();
            tokio::select! {
                // Only acks now: a reconnect for refused messages waits for the next start.
                Some((epoch, settled)) = ack_rx.recv() => {
                    if let Settled::Durable(publish) = settled {
                        self.acks.ack_ready(epoch, publish);
                    }
                }
                event = events.poll() => {
                    // A lost connection voids the rest; no reconnect while stopping.
                    if event.is_err() {
                        self.acks.disconnected();
                        break;
                    }
                }
                _ = &mut deadline => break,
            }
        }
        let _ = self.client.try_disconnect();
    }
}

/// xorshift64*: the decoders' fuzz loops are deterministic, so a failure reproduces on
/// every run.
#[cfg(test)]
pub(crate) struct FuzzRng(pub u64);

#[cfg(test)]
impl FuzzRng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (0 for `n` = 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::sensor_glob;

    #[test]
    fn templates_render_and_glob() {
        let topic = [("machine".to_string(), "pump7".to_string())];
        let field = [("field".to_string(), "temp/C".to_string())];
        assert_eq!(
            render("{machine}.{field}", &[&topic, &field]).as_deref(),
            Some("pump7.temp_C")
        );
        assert_eq!(render("{machine}.{nope}", &[&topic]), None);
        assert_eq!(sensor_glob("{machine}.{field}", "p/{machine}"), "*.*");
        assert_eq!(sensor_glob("boiler.pressure", "x"), "boiler.pressure");
        assert_eq!(sensor_glob("{topic}", "plant/{m}/temp"), "plant.*.temp");
    }
}
