//! Scheduled retraining: for each asset with `[asset.model] retrain`, a task that every
//! `retrain` trains a candidate model on the last `retrain_history` of the store (read
//! through the agent's own store handle, off the async threads), scores it against the
//! current model on the labelled history and promotes it or keeps it as a shadow
//! ([`crate::detect::retrain`]). A promotion reloads the models, as SIGHUP does. A failed
//! round is logged and the next one runs on schedule; the current model is never touched
//! by a round that did not promote.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use super::signals::wait_true;
use crate::config::Asset;
use crate::detect::retrain::{retrain, Decision};
use crate::store::Store;

/// One asset's retraining schedule.
struct Retrainer {
    store: Store,
    asset: Asset,
    data_dir: PathBuf,
    every: Duration,
    history: Duration,
    /// The pipeline's model reload.
    reload: Arc<Notify>,
}

/// A retraining task per asset that asks for one.
pub(super) fn spawn(
    assets: &[Asset],
    store: &Store,
    data_dir: &std::path::Path,
    reload: &Arc<Notify>,
    shutdown: &watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    assets
        .iter()
        .filter_map(|a| {
            let mc = a.model.as_ref()?;
            let every = mc.retrain?.as_duration();
            tracing::info!(asset = %a.id, every = %mc.retrain?, history = %mc.retrain_history, "scheduled retraining");
            let r = Retrainer {
                store: store.clone(),
                asset: a.clone(),
                data_dir: data_dir.to_path_buf(),
                every,
                history: mc.retrain_history.as_duration(),
                reload: reload.clone(),
            };
            Some(tokio::spawn(r.run(shutdown.clone())))
        })
        .collect()
}

impl Retrainer {
    async fn run(self, shutdown: watch::Receiver<bool>) {
        // The first round waits a full period: a just-started agent has a current model.
        let start = tokio::time::Instant::now() + self.every;
        let mut tick = tokio::time::interval_at(start, self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let stop = wait_true(shutdown);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = &mut stop => return,
            }
            self.round().await;
        }
    }

    async fn round(&self) {
        let (store, asset, dir) = (self.store.clone(), self.asset.clone(), self.data_dir.clone());
        let to = crate::base::time::now_ms();
        let from = to.saturating_sub(self.history.as_millis() as i64);
        let done = tokio::task::spawn_blocking(move || retrain(&store, &asset, &dir, from, to)).await;
        let id = &self.asset.id;
        let outcome = match done {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => {
                tracing::warn!(asset = %id, error = %e, "retraining failed; the current model stays");
                return;
            }
            Err(e) => {
                tracing::error!(asset = %id, error = %e, "retraining task failed");
                return;
            }
        };
        let rates = |s: &crate::detect::skab::Score| format!("FAR {:.2}% MAR {:.2}%", s.far, s.mar);
        let candidate = rates(&outcome.candidate);
        let current = outcome.current.as_ref().map_or_else(|| "none".to_string(), rates);
        let file = outcome.written.display();
        match &outcome.decision {
            Decision::Promote => {
                tracing::info!(asset = %id, version = outcome.version, %candidate, %current, %file, training = %outcome.training.describe(), "retrained model promoted");
                self.reload.notify_one();
            }
            Decision::Shadow { reason } => {
                tracing::warn!(asset = %id, %candidate, %current, %reason, %file, "retrained model kept as shadow");
            }
        }
    }
}
