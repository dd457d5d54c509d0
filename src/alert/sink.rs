//! Where observations become durable alerts: the lifecycle decides what to send, and the
//! messages are committed to the outbox together with the lifecycle records in one
//! fsynced transaction before the publisher is woken. An alert counts as raised (and is
//! logged and counted) only after that commit; a failed commit is an error for the
//! caller, because nothing durable can be promised any more.

use std::sync::Arc;

use tokio::sync::Notify;

use super::event::{AlertEvent, AlertState};
use super::lifecycle::{Lifecycle, Restored};
use super::{render_topic_at, AlertMessage, Outbox};
use crate::detect::{AlarmId, Observation};
use crate::stats::Stats;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("writing alerts to the outbox: {0}")]
    Store(#[from] StoreError),
    #[error("the outbox writer stopped: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// The lifecycle and the outbox it writes to.
pub struct AlertSink {
    lifecycle: Lifecycle,
    outbox: Outbox,
    wake: Arc<Notify>,
    stats: Arc<Stats>,
    agent: String,
    site: Option<String>,
    topic: String,
}

impl AlertSink {
    /// Takes a lifecycle whose alarms are all registered, restores its records from the
    /// outbox's database, and starts serving.
    pub fn open(
        mut lifecycle: Lifecycle,
        outbox: Outbox,
        wake: Arc<Notify>,
        stats: Arc<Stats>,
        agent: &str,
        site: Option<&str>,
        topic_template: &str,
    ) -> Result<(AlertSink, Restored), StoreError> {
        let restored = lifecycle.restore(outbox.load_states()?);
        Ok((
            AlertSink {
                lifecycle,
                outbox,
                wake,
                stats,
                agent: agent.to_string(),
                site: site.map(str::to_string),
                topic: topic_template.to_string(),
            },
            restored,
        ))
    }

    pub fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    /// Runs observations through the lifecycle and makes the resulting alerts durable.
    pub async fn observe(
        &mut self,
        observations: impl IntoIterator<Item = (AlarmId, Observation)>,
    ) -> Result<Vec<AlertMessage>, SinkError> {
        let mut events: Vec<AlertEvent> = Vec::new();
        for (id, obs) in observations {
            self.lifecycle.observe(id, obs, &mut events);
        }
        self.commit(events).await
    }

    /// Sends what is due by the clock alone (re-notifications) at `now_ms`.
    pub async fn tick(&mut self, now_ms: i64) -> Result<Vec<AlertMessage>, SinkError> {
        let mut events = Vec::new();
        self.lifecycle.tick(now_ms, &mut events);
        self.commit(events).await
    }

    async fn commit(&mut self, events: Vec<AlertEvent>) -> Result<Vec<AlertMessage>, SinkError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let alerts: Vec<(String, AlertEvent)> = events
            .into_iter()
            .map(|e| {
                (
                    render_topic_at(&self.topic, self.site.as_deref(), &self.agent, &e.asset),
                    e,
                )
            })
            .collect();
        let states = self.lifecycle.take_dirty();
        let (outbox, agent) = (self.outbox.clone(), self.agent.clone());
        let msgs = tokio::task::spawn_blocking(move || outbox.commit(&agent, &alerts, &states)).await??;
        self.stats.alerts_raised.add(msgs.len() as u64);
        self.stats.outbox_depth.set(self.outbox.len() as u64);
        self.wake.notify_one();
        for m in &msgs {
            let verb = match m.state {
                AlertState::Raised => "alert raised",
                AlertState::Updated => "alert updated",
                AlertState::Renotify => "alert renotified",
                AlertState::Cleared => "alert cleared",
            };
            tracing::info!(asset = %m.asset, rule = %m.rule, sensor = %m.sensor, value = m.value, seq = m.seq, children = m.children.len(), "{verb}");
        }
        Ok(msgs)
    }

    /// Writes lifecycle records that changed without sending anything (pending timers,
    /// last seen). Not fsynced here: the store's next flush makes them durable.
    pub async fn save_states(&mut self) -> Result<(), SinkError> {
        let states = self.lifecycle.take_dirty();
        if states.is_empty() {
            return Ok(());
        }
        let (outbox, agent) = (self.outbox.clone(), self.agent.clone());
        tokio::task::spawn_blocking(move || outbox.commit(&agent, &[], &states)).await??;
        Ok(())
    }
}
