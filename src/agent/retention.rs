//! The retention task: every `retention_interval` it enforces the disk budget off the
//! async threads, sets the storage pressure the pipeline reads, and reports the two
//! storage alarms (`storage-budget`, `disk-full`) on the pseudo-asset [`STORAGE_ASSET`],
//! which the pipeline's lifecycle raises and clears like any other alarm.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::signals::wait_true;
use crate::detect::{AlarmId, Level, Observation, SensorValue};
use crate::stats::Stats;
use crate::store::retention::{self, Pressure};
use crate::store::Store;

/// The pseudo-asset of the agent's own alerts (storage).
pub const STORAGE_ASSET: &str = "_agent";
/// The storage-pressure gauge's value while the filesystem is nearly full.
pub(super) const PRESSURE_DISK_FULL: u64 = 2;

/// Periodic retention, and the storage alarms when the budget cannot be kept.
pub(super) struct Retention {
    pub store: Store,
    pub data_dir: std::path::PathBuf,
    pub policy: retention::Policy,
    pub every: Duration,
    pub stats: Arc<Stats>,
    /// To the pipeline, whose lifecycle turns them into alerts.
    pub alarms: mpsc::Sender<(AlarmId, Observation)>,
    /// `storage-budget` and `disk-full`, in [`STORAGE_RULES`] order.
    pub alarm_ids: [AlarmId; 2],
}

/// The agent's own alarms, on the asset [`STORAGE_ASSET`].
pub(super) const STORAGE_RULES: [&str; 2] = ["storage-budget", "disk-full"];

impl Retention {
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut was = Pressure::Ok;
        let stop = wait_true(shutdown);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = &mut stop => return,
            }
            let (store, dir, policy) = (self.store.clone(), self.data_dir.clone(), self.policy.clone());
            let report = match tokio::task::spawn_blocking(move || {
                retention::enforce(&store, &dir, &policy, crate::base::time::now_ms())
            })
            .await
            {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "retention pass failed");
                    continue;
                }
                Err(_) => continue,
            };
            self.stats.evicted_samples.add(report.evicted_samples);
            self.stats.storage_pressure.set(match report.pressure {
                Pressure::Ok => 0,
                Pressure::OverBudget => 1,
                Pressure::DiskFull => PRESSURE_DISK_FULL,
            });
            if report.pressure != was {
                match report.pressure {
                    Pressure::DiskFull => tracing::error!(free = report.free, "filesystem nearly full: refusing new samples until space is freed"),
                    Pressure::OverBudget => match &report.held_by {
                        Some((dest, through)) => tracing::error!(used = report.used, budget = self.policy.max_disk, destination = %dest, confirmed_through = %crate::base::time::format_rfc3339_ms(*through), behind_s = (crate::base::time::now_ms() - through) / 1000, "storage over budget: old data is kept for a telemetry destination that has not confirmed it; raising a storage alert"),
                        None => tracing::error!(used = report.used, budget = self.policy.max_disk, "storage over budget with nothing older than raw_retention left to evict; raising a storage alert"),
                    },
                    Pressure::Ok => tracing::info!("storage back within its budget"),
                }
                was = report.pressure;
            }
            // Two independent alarms; the lifecycle raises each once and clears it once,
            // across restarts too.
            let now = crate::base::time::now_ms();
            let budget = self.policy.max_disk as f64;
            for (id, active) in self.alarm_ids.into_iter().zip([
                report.pressure == Pressure::OverBudget,
                report.pressure == Pressure::DiskFull,
            ]) {
                // A backlog that holds old data names its destination, and how far
                // behind it is (seconds) in `sensors`.
                let (sensor, sensors) = match &report.held_by {
                    Some((dest, through)) if report.pressure == Pressure::OverBudget => (
                        format!("forward:{dest}"),
                        vec![SensorValue {
                            name: format!("forward:{dest}:behind_seconds"),
                            value: ((now - through) / 1000) as f64,
                            contribution: 1.0,
                        }],
                    ),
                    _ => ("data_dir".to_string(), Vec::new()),
                };
                let obs = Observation {
                    ts_ms: now,
                    level: if active { Level::Alarm } else { Level::Normal },
                    sensor,
                    value: report.used as f64,
                    threshold: budget,
                    clear_threshold: budget,
                    score: None,
                    sensors,
                    model_version: None,
                };
                if self.alarms.send((id, obs)).await.is_err() {
                    return;
                }
            }
        }
    }
}
