//! Retraining an asset's model on its recent store history, and the rule that decides
//! whether the candidate replaces the current model.
//!
//! A candidate is trained on the last `retrain_history` with the labels applied as
//! `forewarn train` applies them; ticks where the current model alarms on that history
//! and no false-alarm label says it was wrong are left out too, so an unlabelled fault the
//! current model caught is not learned as healthy. Candidate and current model are then
//! scored on the same labelled history, and the candidate is promoted only if it is not
//! worse on false alarms (FAR) and not worse on misses (MAR) ([`decide`]); otherwise it is
//! written as the shadow file, for an operator to look at. A promotion is a versioned
//! write ([`super::versions`]): the replaced model stays available for a rollback.

use std::path::PathBuf;

use super::history::{Clocked, Evaluation, History, HistoryError, TrainingSet};
use super::model::Model;
use super::skab::Score;
use super::versions::{self, VersionError};
use crate::base::label::LabelKind;
use crate::config::Asset;
use crate::store::Store;

/// Differences below this (in percentage points) are ties: equal figures are not worse.
const TIE: f64 = 1e-9;

/// What to do with a candidate model.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Write it as the current model and reload.
    Promote,
    /// Keep it as the shadow file only.
    Shadow { reason: String },
}

/// Promote unless the candidate has a higher false-alarm rate or a higher missed-alarm
/// rate than the current model on the same labelled history; with no current model the
/// candidate is promoted.
pub fn decide(candidate: &Score, current: Option<&Score>) -> Decision {
    let Some(current) = current else {
        return Decision::Promote;
    };
    let mut worse = Vec::new();
    if candidate.far > current.far + TIE {
        worse.push(format!("FAR {:.2}% > {:.2}%", candidate.far, current.far));
    }
    if candidate.mar > current.mar + TIE {
        worse.push(format!("MAR {:.2}% > {:.2}%", candidate.mar, current.mar));
    }
    if worse.is_empty() {
        Decision::Promote
    } else {
        Decision::Shadow {
            reason: format!("worse than the current model: {}", worse.join(", ")),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RetrainError {
    #[error("asset {0:?} has no [asset.model] section")]
    NoModel(String),
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error(transparent)]
    Version(#[from] VersionError),
}

/// What one retraining did.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub decision: Decision,
    pub candidate: Score,
    /// `None` when there was no loadable current model.
    pub current: Option<Score>,
    pub training: TrainingSet,
    /// The file written: the current model (promoted) or the shadow.
    pub written: PathBuf,
    /// The version the candidate was written with.
    pub version: u64,
}

/// Trains a candidate for `asset` on its history `from_ms..=to_ms` in `store`, scores
/// it against the current model file in `data_dir`, and promotes or shadows it.
pub fn retrain(
    store: &Store,
    asset: &Asset,
    data_dir: &std::path::Path,
    from_ms: i64,
    to_ms: i64,
) -> Result<Outcome, RetrainError> {
    let Some(mc) = &asset.model else {
        return Err(RetrainError::NoModel(asset.id.clone()));
    };
    let path = mc.path(data_dir, &asset.id);
    let history = History::read(store, &asset.id, &asset.sensors, from_ms, to_ms)?;
    let opts = history.train_options(mc);
    let clocked = history.clock(opts.period_ms, opts.max_hold);
    // A current file that does not load (missing, other sensors) is nothing to beat.
    let current = Model::load(&path)
        .and_then(|m| {
            m.check_asset(&path.display().to_string(), &asset.id, &asset.sensors)
                .map(|()| m)
        })
        .ok()
        .map(|m| {
            // Its own clock only if the config's changed since it was trained (memory).
            let own = (m.period_ms != opts.period_ms || m.max_hold != opts.max_hold)
                .then(|| history.clock(m.period_ms, m.max_hold));
            let eval = own.as_ref().unwrap_or(&clocked).evaluate(&asset.id, &asset.sensors, &m);
            (own, eval)
        });
    let exclude = |i: usize| {
        current.as_ref().is_some_and(|(own, eval)| {
            let own = own.as_ref().unwrap_or(&clocked);
            clocked.kinds[i] != Some(LabelKind::FalseAlarm) && alarmed_at(own, eval, clocked.ticks[i].0)
        })
    };
    let (mut candidate, training) = clocked.train(&asset.id, &asset.sensors, &opts, "store (retrain)", &exclude)?;
    let cand_eval = clocked.evaluate(&asset.id, &asset.sensors, &candidate);
    let current = current.map(|(_, e)| e.score);
    let decision = decide(&cand_eval.score, current.as_ref());
    let written = match decision {
        Decision::Promote => {
            versions::save_version(&mut candidate, &path)?;
            path
        }
        Decision::Shadow { .. } => versions::save_shadow(&mut candidate, &path)?,
    };
    Ok(Outcome {
        decision,
        candidate: cand_eval.score,
        current,
        training,
        written,
        version: candidate.version,
    })
}

/// Whether the current model's alarm was on at `ts` (the alarm after the last of its
/// ticks starting at or before `ts`), on its own clock.
fn alarmed_at(own: &Clocked, eval: &Evaluation, ts: i64) -> bool {
    let at = own.ticks.partition_point(|(t, _)| *t <= ts);
    at > 0 && eval.alarms[at - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(far: f64, mar: f64) -> Score {
        Score {
            files: 1,
            test_rows: 100,
            f1: 0.0,
            far,
            mar,
            nab_standard: 0.0,
            nab_low_fp: 0.0,
            nab_low_fn: 0.0,
            changepoints: 0,
            missed_changepoints: 0,
            false_cp_detections: 0,
            missing_predictions: 0,
        }
    }

    #[test]
    fn a_candidate_no_worse_on_both_rates_is_promoted() {
        assert_eq!(decide(&score(1.0, 5.0), None), Decision::Promote);
        assert_eq!(decide(&score(1.0, 5.0), Some(&score(1.0, 5.0))), Decision::Promote);
        assert_eq!(decide(&score(0.0, 2.0), Some(&score(3.0, 5.0))), Decision::Promote);
    }

    #[test]
    fn a_candidate_worse_on_either_rate_stays_a_shadow_and_says_why() {
        let Decision::Shadow { reason } = decide(&score(2.0, 0.0), Some(&score(1.0, 10.0))) else {
            panic!("more false alarms must not be promoted");
        };
        assert!(reason.contains("FAR 2.00% > 1.00%"), "{reason}");
        let Decision::Shadow { reason } = decide(&score(0.0, 12.5), Some(&score(1.0, 10.0))) else {
            panic!("more misses must not be promoted");
        };
        assert!(
            reason.contains("MAR 12.50% > 10.00%") && !reason.contains("FAR"),
            "{reason}"
        );
    }
}
