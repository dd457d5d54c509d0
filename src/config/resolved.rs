//! The config after `check`: what each engine receives, in the types it works with. Broker
//! URLs are parsed endpoints, topic templates are parsed, topics that do not depend on a
//! sample are rendered, QoS is an enum. Resolution runs inside `Config::load` after the
//! checks (a failure here is a config problem like any other), so `check` and `run`
//! cannot disagree, and nothing parses a config string once the agent runs.

use std::net::SocketAddr;
use std::time::Duration;

use super::{render_topic_at, sensor_template, BrokerEndpoint, Config, Subscription, TopicTemplate};

/// `[upstream]`, resolved: where alerts and status messages go.
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    pub endpoint: BrokerEndpoint,
    /// Alerts published but not yet acknowledged, at most.
    pub max_inflight: u16,
    pub agent: String,
    pub site: Option<String>,
    /// The alert topic template; `{asset}` is filled per alert.
    pub alert_topic: String,
    /// Rendered: birth, last will and goodbye.
    pub status_topic: String,
    /// Rendered: the periodic heartbeat.
    pub heartbeat_topic: String,
    pub heartbeat_interval: Duration,
}

/// The two QoS levels an input may subscribe with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputQos {
    /// Messages are stored as they come; none is acknowledged.
    AtMostOnce,
    /// Each message is acknowledged once its samples are durable.
    AtLeastOnce,
}

/// One `[[mqtt.subscribe]]`, resolved.
#[derive(Debug, Clone)]
pub struct SubscriptionSettings {
    pub topic: TopicTemplate,
    /// The sensor-name template with its per-format default filled in.
    pub sensor: String,
    /// The subscription as written (format, timestamp and value options).
    pub source: Subscription,
}

/// One `[[mqtt]]` input, resolved.
#[derive(Debug, Clone)]
pub struct InputSettings {
    pub endpoint: BrokerEndpoint,
    pub qos: InputQos,
    pub clean_session: bool,
    /// Messages stamped later than now plus this are refused.
    pub max_future: Duration,
    /// Distinct sensors the input may create while it runs.
    pub max_sensors: usize,
    /// Larger payloads are acknowledged and skipped, never decoded.
    pub max_payload: usize,
    pub subscriptions: Vec<SubscriptionSettings>,
}

impl Config {
    /// `[upstream]` for the publisher and the alert sink.
    pub fn upstream_settings(&self) -> Result<UpstreamSettings, String> {
        let u = &self.upstream;
        let (site, agent) = (u.site.as_deref(), self.agent.id.as_str());
        Ok(UpstreamSettings {
            endpoint: u.connection().resolve(self.upstream_client_id())?,
            max_inflight: u.max_inflight,
            agent: agent.to_string(),
            site: u.site.clone(),
            alert_topic: u.alert_topic.clone(),
            status_topic: render_topic_at(&u.status_topic, site, agent, ""),
            heartbeat_topic: render_topic_at(&u.heartbeat_topic, site, agent, ""),
            heartbeat_interval: u.heartbeat_interval.as_duration().max(Duration::from_secs(1)),
        })
    }

    /// `[http]`: the address the API listens on (and the CLI asks), `None` when disabled.
    pub fn http_listen(&self) -> Result<Option<SocketAddr>, String> {
        if !self.http.enabled {
            return Ok(None);
        }
        self.http
            .listen
            .parse()
            .map(Some)
            .map_err(|_| format!("{:?} is not ip:port", self.http.listen))
    }

    /// Every `[[mqtt]]` input, in order.
    pub fn input_settings(&self) -> Result<Vec<InputSettings>, String> {
        self.mqtt
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let subscriptions = m
                    .subscribe
                    .iter()
                    .map(|s| {
                        Ok(SubscriptionSettings {
                            topic: TopicTemplate::parse(&s.topic)?,
                            sensor: sensor_template(s),
                            source: s.clone(),
                        })
                    })
                    .collect::<Result<_, String>>()?;
                Ok(InputSettings {
                    endpoint: m.connection().resolve(self.mqtt_client_id(i))?,
                    qos: if m.qos == 0 {
                        InputQos::AtMostOnce
                    } else {
                        InputQos::AtLeastOnce
                    },
                    clean_session: m.clean_session,
                    max_future: m.max_future.as_duration(),
                    max_sensors: m.max_sensors,
                    max_payload: usize::try_from(m.max_payload.0).unwrap_or(usize::MAX),
                    subscriptions,
                })
            })
            .collect()
    }
}
