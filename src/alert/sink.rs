//! Where observations become durable alerts: the lifecycle decides what to send, and the
//! messages are committed to the outbox together with the lifecycle records in one
//! fsynced transaction before the publisher is woken. An alert counts as raised (and is
//! logged and counted) only after that commit.
//!
//! A commit the write reserve refuses (the disk is nearly full) is held in memory, in
//! order, and committed before anything newer once space is back: the disk-full alert
//! itself must survive the disk being full. Any other failed commit is an error for the
//! caller, because nothing durable can be promised any more.

use std::sync::Arc;

use tokio::sync::Notify;

use super::event::{AlertEvent, AlertState};
use super::labelled::LabelNotice;
use super::lifecycle::{Lifecycle, Restored};
use super::outbox::StateWrite;
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
    /// Alerts and lifecycle records the reserve refused, oldest first.
    held: Vec<(String, AlertEvent)>,
    held_states: Vec<StateWrite>,
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
                held: Vec::new(),
                held_states: Vec::new(),
            },
            restored,
        ))
    }

    pub fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    /// Suppresses the alarms of `under` and their descendants ([`Lifecycle::set_maintenance`]).
    pub fn set_maintenance(&mut self, under: &std::collections::BTreeSet<String>) {
        self.lifecycle.set_maintenance(under);
    }

    /// Makes label events durable in the outbox, raising the label mark to `mark`, and
    /// wakes the publisher. A refusal of the write reserve is an error here: the caller
    /// keeps the labels unannounced and tries again (the mark has not moved).
    pub async fn announce(&mut self, notices: Vec<LabelNotice>, mark: Option<u64>) -> Result<usize, SinkError> {
        if notices.is_empty() && mark.is_none() {
            return Ok(0);
        }
        let items: Vec<(String, LabelNotice)> = notices
            .into_iter()
            .map(|n| {
                let topic = render_topic_at(&self.topic, self.site.as_deref(), &self.agent, &n.label.span.asset);
                (topic, n)
            })
            .collect();
        let (outbox, agent) = (self.outbox.clone(), self.agent.clone());
        let msgs = tokio::task::spawn_blocking(move || outbox.commit_labels(&agent, &items, mark)).await??;
        self.stats.outbox_depth.set(self.outbox.len() as u64);
        if !msgs.is_empty() {
            self.wake.notify_one();
        }
        for m in &msgs {
            tracing::info!(asset = %m.asset, label = %m.label, label_id = m.label_id, author = %m.author, seq = m.seq, event = ?m.event, "label announced");
        }
        Ok(msgs.len())
    }

    /// The highest label id announced so far.
    pub async fn label_mark(&self) -> Result<u64, SinkError> {
        let outbox = self.outbox.clone();
        Ok(tokio::task::spawn_blocking(move || outbox.label_mark()).await??)
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
        let suppressed = self.lifecycle.take_suppressed();
        if suppressed > 0 {
            self.stats.alarms_suppressed.add(suppressed);
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
        if events.is_empty() && self.held.is_empty() {
            return Ok(Vec::new());
        }
        let mut alerts = std::mem::take(&mut self.held);
        alerts.extend(events.into_iter().map(|e| {
            (
                render_topic_at(&self.topic, self.site.as_deref(), &self.agent, &e.asset),
                e,
            )
        }));
        let mut states = std::mem::take(&mut self.held_states);
        states.extend(self.lifecycle.take_dirty());
        let Some(msgs) = self.write(alerts, states).await? else {
            return Ok(Vec::new());
        };
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
        if !self.held.is_empty() {
            // Held alerts go first, with every record, so that order is kept.
            return self.commit(Vec::new()).await.map(|_| ());
        }
        let mut states = std::mem::take(&mut self.held_states);
        states.extend(self.lifecycle.take_dirty());
        if states.is_empty() {
            return Ok(());
        }
        self.write(Vec::new(), states).await.map(|_| ())
    }

    /// Commits alerts and records; `None` when the reserve refused them, which are then
    /// held for the next commit.
    async fn write(
        &mut self,
        alerts: Vec<(String, AlertEvent)>,
        states: Vec<StateWrite>,
    ) -> Result<Option<Vec<AlertMessage>>, SinkError> {
        let (outbox, agent) = (self.outbox.clone(), self.agent.clone());
        let (result, alerts, states) = tokio::task::spawn_blocking(move || {
            let r = outbox.commit(&agent, &alerts, &states);
            (r, alerts, states)
        })
        .await?;
        let was_held = self.stats.alerts_held.get();
        match result {
            Ok(msgs) => {
                if was_held > 0 {
                    tracing::info!(alerts = was_held, "space is back: held alerts written to the outbox");
                    self.stats.alerts_held.set(0);
                }
                Ok(Some(msgs))
            }
            Err(StoreError::NoSpace { free }) => {
                if was_held == 0 && !alerts.is_empty() {
                    tracing::warn!(
                        alerts = alerts.len(),
                        free,
                        "the disk is nearly full: alerts are held in memory until space is back"
                    );
                }
                self.stats.alerts_held.set(alerts.len() as u64);
                self.held = alerts;
                self.held_states = states;
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }
}
