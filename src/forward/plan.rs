//! What a destination sends next: the planner reads the store behind the destination's
//! cursors and cuts batches, one asset at a time, live data first and the backlog beside
//! it at `backfill_rate`.
//!
//! The planner keeps two cursors per sensor: `confirmed` (what the destination has
//! acknowledged; the only one written to disk) and `sent` (what is in flight too, so the
//! next batch starts after it). A batch carries the [`Advance`]s it makes; they are
//! applied to `confirmed` only when the destination confirmed the batch, in send order.
//! After a failure `sent` falls back to `confirmed`, so what was in flight is sent again:
//! duplicates come only from that window, gaps never.
//!
//! A gap is opened only while nothing of the sensor is in flight (`sent == confirmed`),
//! so both cursors always agree on where the backlog is.

use std::collections::HashMap;
use std::sync::Arc;

use crate::base::sample::{Quality, Sample, SensorId};
use crate::config::{BackfillOrder, Shaping};
use crate::store::bucket::{aggregate, Bucket};
use crate::store::cursor::{Advance, SensorCursor};
use crate::store::{Store, StoreError};

/// A sensor this destination forwards.
#[derive(Debug, Clone)]
pub struct Target {
    pub sensor: SensorId,
    pub name: Arc<str>,
}

/// One value to send: a raw sample or a rollup bucket.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Raw(Sample),
    Rollup { sensor: SensorId, bucket: Bucket },
}

/// A batch of one asset, with the cursor moves it makes once confirmed.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub asset: Arc<str>,
    pub items: Vec<(Arc<str>, Item)>,
    pub advances: Vec<(SensorId, Advance)>,
    /// Samples read that the deadband held back.
    pub suppressed: u64,
    /// Late-journal records this batch completes: the destination's journal position
    /// moves here once it is confirmed.
    pub late: Option<u64>,
}

/// The planner's settings.
#[derive(Debug, Clone, Copy)]
pub struct PlanOptions {
    pub batch: usize,
    pub backfill_rate: u32,
    pub backfill_order: BackfillOrder,
    pub live_window_ms: i64,
    pub shaping: Shaping,
}

/// Deadband memory of a sensor: the last value sent, its time and quality.
#[derive(Debug, Clone, Copy)]
struct LastSent {
    value: f64,
    ts_ms: i64,
    quality: Quality,
}

pub struct Planner {
    opts: PlanOptions,
    /// Asset, then its sensors.
    assets: Vec<(Arc<str>, Vec<Target>)>,
    pub confirmed: HashMap<SensorId, SensorCursor>,
    sent: HashMap<SensorId, SensorCursor>,
    last_sent: HashMap<SensorId, LastSent>,
    /// Backfill samples that may go now; refilled at `backfill_rate`.
    tokens: f64,
    /// Round-robin position over the assets.
    next_asset: usize,
}

impl Planner {
    pub fn new(
        opts: PlanOptions,
        assets: Vec<(Arc<str>, Vec<Target>)>,
        confirmed: HashMap<SensorId, SensorCursor>,
    ) -> Planner {
        let mut confirmed = confirmed;
        for (_, targets) in &assets {
            for t in targets {
                confirmed.entry(t.sensor).or_insert(SensorCursor::FRESH);
            }
        }
        Planner {
            opts,
            assets,
            sent: confirmed.clone(),
            confirmed,
            last_sent: HashMap::new(),
            tokens: 0.0,
            next_asset: 0,
        }
    }

    /// Sensors forwarded now.
    pub fn sensors(&self) -> impl Iterator<Item = &Target> {
        self.assets.iter().flat_map(|(_, t)| t.iter())
    }

    /// The assets forwarded now, each with its sensors.
    pub fn assets(&self) -> &[(Arc<str>, Vec<Target>)] {
        &self.assets
    }

    /// Adds sensors that appeared since (MQTT inputs create them as they come).
    pub fn add(&mut self, asset: Arc<str>, target: Target) {
        self.confirmed.entry(target.sensor).or_insert(SensorCursor::FRESH);
        self.sent.entry(target.sensor).or_insert(SensorCursor::FRESH);
        match self.assets.iter_mut().find(|(a, _)| *a == asset) {
            Some((_, list)) => list.push(target),
            None => self.assets.push((asset, vec![target])),
        }
    }

    /// Lets `elapsed_s` seconds' worth of backlog go, up to one second's worth banked.
    pub fn refill(&mut self, elapsed_s: f64) {
        let rate = f64::from(self.opts.backfill_rate);
        self.tokens = (self.tokens + rate * elapsed_s).min(rate.max(self.opts.batch as f64));
    }

    /// The destination confirmed a batch: its advances become the durable cursor.
    /// Returns the cursors to save.
    pub fn confirm(&mut self, advances: &[(SensorId, Advance)]) -> Vec<(SensorId, SensorCursor)> {
        let mut out = Vec::with_capacity(advances.len());
        for (sensor, adv) in advances {
            let c = self.confirmed.entry(*sensor).or_insert(SensorCursor::FRESH);
            c.apply(*adv);
            out.push((*sensor, *c));
        }
        out
    }

    /// Whether the time-ordered reads have passed `ts` of `sensor` (sent or in flight):
    /// a late sample there goes through the late journal, else the reads take it.
    pub fn has_passed(&self, sensor: SensorId, ts: i64) -> bool {
        let Some(c) = self.sent.get(&sensor) else { return false };
        ts <= c.high && !(c.has_gap() && ts > c.low && ts <= c.gap_to)
    }

    /// Whether raw samples go as they are (late samples can join a rollup no more).
    pub fn sends_raw(&self) -> bool {
        !matches!(self.opts.shaping, Shaping::Rollup { .. })
    }

    /// The connection failed: everything in flight goes again.
    pub fn rewind(&mut self) {
        self.sent = self.confirmed.clone();
    }

    /// The next batch to send, if anything is due; `None` when all is sent that may go.
    pub fn next_batch(&mut self, store: &Store, now_ms: i64) -> Result<Option<Batch>, StoreError> {
        for _ in 0..self.assets.len() {
            let i = self.next_asset % self.assets.len();
            self.next_asset = i + 1;
            let batch = self.plan_asset(store, i, now_ms)?;
            if !batch.items.is_empty() || !batch.advances.is_empty() {
                return Ok(Some(batch));
            }
        }
        Ok(None)
    }

    fn plan_asset(&mut self, store: &Store, i: usize, now_ms: i64) -> Result<Batch, StoreError> {
        let (asset, targets) = (self.assets[i].0.clone(), self.assets[i].1.clone());
        let mut batch = Batch {
            asset,
            ..Batch::default()
        };
        let horizon = self.align(now_ms.saturating_sub(self.opts.live_window_ms));
        let live_until = self.align(now_ms);
        for t in &targets {
            if self.sent.get(&t.sensor) != self.confirmed.get(&t.sensor) {
                continue;
            }
            // Never past the newest sample written: a sample that arrives later with a
            // time at or before that is journaled as late, so none falls behind a cursor
            // unseen.
            let Some(newest) = store.newest(t.sensor)? else {
                continue;
            };
            for c in [&mut self.sent, &mut self.confirmed] {
                c.entry(t.sensor)
                    .or_insert(SensorCursor::FRESH)
                    .open_gap(horizon.min(newest));
            }
        }
        for t in &targets {
            let room = self.opts.batch.saturating_sub(batch.items.len());
            if room == 0 {
                return Ok(batch);
            }
            let c = self.sent[&t.sensor];
            let limit = self.read_limit(room);
            let samples = store.read_after(t.sensor, c.high, live_until, limit)?;
            let complete = samples.len() < limit;
            self.take(&mut batch, t, samples, complete, Direction::Live(live_until));
        }
        for t in &targets {
            let room = self
                .opts
                .batch
                .saturating_sub(batch.items.len())
                .min(self.tokens as usize);
            let c = self.sent[&t.sensor];
            if room == 0 {
                break;
            }
            if !c.has_gap() {
                continue;
            }
            let before = batch.items.len() as u64 + batch.suppressed;
            match self.opts.backfill_order {
                BackfillOrder::Oldest => {
                    let limit = self.read_limit(room);
                    let samples = store.read_after(t.sensor, c.low, c.gap_to, limit)?;
                    let complete = samples.len() < limit;
                    self.take(&mut batch, t, samples, complete, Direction::Oldest(c.gap_to));
                }
                BackfillOrder::Newest => {
                    let (samples, complete) = read_before(store, t.sensor, c.low, c.gap_to, self.read_limit(room))?;
                    self.take(&mut batch, t, samples, complete, Direction::Newest(c.low));
                }
            }
            self.tokens -= (batch.items.len() as u64 + batch.suppressed - before) as f64;
        }
        Ok(batch)
    }

    /// Samples to read for `room` items: rollups make many samples one item.
    fn read_limit(&self, room: usize) -> usize {
        match self.opts.shaping {
            Shaping::Rollup { .. } => room.saturating_mul(1000).min(200_000),
            _ => room,
        }
    }

    /// With rollups, the end of the last whole bucket before `ts`; else `ts`.
    fn align(&self, ts: i64) -> i64 {
        match self.opts.shaping {
            Shaping::Rollup { every_ms } => ts.div_euclid(every_ms) * every_ms - 1,
            _ => ts,
        }
    }

    /// Adds what was read of one sensor to the batch and records the advance.
    /// `complete`: the read returned everything up to the direction's far end.
    fn take(&mut self, batch: &mut Batch, t: &Target, samples: Vec<Sample>, complete: bool, dir: Direction) {
        let (items, reached) = match self.opts.shaping {
            Shaping::Rollup { every_ms } => rollups(t.sensor, &samples, every_ms, complete, dir),
            _ => (
                samples.iter().map(|s| Item::Raw(*s)).collect(),
                edge(&samples, complete, dir),
            ),
        };
        let Some(reached) = reached else { return };
        let c = self.sent[&t.sensor];
        let adv = match dir {
            Direction::Live(_) if reached > c.high => Advance::High(reached),
            Direction::Oldest(_) if reached > c.low => Advance::Low(reached),
            Direction::Newest(_) if reached < c.gap_to => Advance::GapTo(reached),
            // Nothing new: no batch for it, or the planner would spin.
            _ => return,
        };
        let read = items.len();
        let kept = self.deadband(t.sensor, items, dir);
        batch.suppressed += (read - kept.len()) as u64;
        batch.items.extend(kept.into_iter().map(|i| (t.name.clone(), i)));
        self.sent.entry(t.sensor).or_insert(SensorCursor::FRESH).apply(adv);
        batch.advances.push((t.sensor, adv));
    }

    /// Drops raw samples within the deadband of the last one sent of their stream.
    fn deadband(&mut self, sensor: SensorId, items: Vec<Item>, dir: Direction) -> Vec<Item> {
        let Shaping::Deadband { delta, max_silence_ms } = self.opts.shaping else {
            return items;
        };
        // Live data keeps the memory; backfill is judged on its own, never against live.
        let mut last = match dir {
            Direction::Live(_) => self.last_sent.get(&sensor).copied(),
            _ => None,
        };
        let mut kept = Vec::new();
        for item in items {
            let Item::Raw(s) = item else { continue };
            let send = match last {
                None => true,
                Some(l) => {
                    l.quality != s.quality
                        || (s.quality.is_good() && (s.value - l.value).abs() > delta)
                        || (s.ts_ms - l.ts_ms).abs() >= max_silence_ms
                }
            };
            if send {
                last = Some(LastSent {
                    value: s.value,
                    ts_ms: s.ts_ms,
                    quality: s.quality,
                });
                kept.push(item);
            }
        }
        if let (Direction::Live(_), Some(l)) = (dir, last) {
            self.last_sent.insert(sensor, l);
        }
        kept
    }
}

#[derive(Debug, Clone, Copy)]
enum Direction {
    /// Live data up to this time.
    Live(i64),
    /// The gap upwards, to its top.
    Oldest(i64),
    /// The gap downwards, to its bottom.
    Newest(i64),
}

/// How far a raw read lets the cursor move; `None` when it does not move.
fn edge(samples: &[Sample], complete: bool, dir: Direction) -> Option<i64> {
    match dir {
        // A live read stops at the newest sample, not at now: a sample of this same
        // millisecond may still be on its way.
        Direction::Live(_) => samples.last().map(|s| s.ts_ms),
        Direction::Oldest(top) if complete => Some(top),
        Direction::Oldest(_) => samples.last().map(|s| s.ts_ms),
        Direction::Newest(bottom) if complete => Some(bottom),
        Direction::Newest(_) => samples.first().map(|s| s.ts_ms - 1),
    }
}

/// Whole buckets of what was read, and how far they let the cursor move.
fn rollups(
    sensor: SensorId,
    samples: &[Sample],
    every_ms: i64,
    complete: bool,
    dir: Direction,
) -> (Vec<Item>, Option<i64>) {
    let mut buckets = aggregate(samples, every_ms);
    let bucket_of = |ts: i64| ts.div_euclid(every_ms) * every_ms;
    let reached = match dir {
        // Live and oldest-first reads end at an aligned bound when complete; otherwise
        // the last bucket may be partial: leave it for the next read.
        Direction::Live(until) | Direction::Oldest(until) => {
            if complete {
                Some(until)
            } else {
                let last = samples.last().map(|s| bucket_of(s.ts_ms));
                buckets.retain(|b| Some(b.start_ms) != last);
                last.map(|start| start - 1)
            }
        }
        Direction::Newest(bottom) => {
            if complete {
                Some(bottom)
            } else {
                let first = samples.first().map(|s| bucket_of(s.ts_ms));
                buckets.retain(|b| Some(b.start_ms) != first);
                first.map(|start| start + every_ms - 1)
            }
        }
    };
    let items = buckets
        .into_iter()
        .map(|bucket| Item::Rollup { sensor, bucket })
        .collect();
    (items, reached)
}

/// The newest samples of `(after, until]`, at most `limit`, read in widening windows so
/// a long gap is not decoded whole; `true` when they are all there is.
fn read_before(
    store: &Store,
    sensor: SensorId,
    after: i64,
    until: i64,
    limit: usize,
) -> Result<(Vec<Sample>, bool), StoreError> {
    let span = i128::from(until) - i128::from(after);
    let mut window: i128 = 3_600_000;
    loop {
        // Within the span, `until - window` fits an i64.
        let from = if window >= span {
            after
        } else {
            (i128::from(until) - window) as i64
        };
        let mut samples = store.read(sensor, from.saturating_add(1), until)?;
        if samples.len() > limit {
            samples.drain(..samples.len() - limit);
            return Ok((samples, false));
        }
        if from == after {
            return Ok((samples, true));
        }
        window *= 4;
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
