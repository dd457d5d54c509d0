//! Forward cursors: how far each telemetry destination has confirmed each sensor's
//! history, in the `forward` tree (key: destination name ‖ 0 ‖ sensor id BE).
//!
//! A sensor's cursor is three times ([`SensorCursor`]): everything at or before `low` is
//! confirmed; when a backlog was found, `(low, gap_to]` is the gap still to backfill and
//! `(gap_to, high]` is confirmed live data. The forwarder moves them only after the
//! destination confirmed; retention evicts a chunk only when every destination that
//! covers its sensor has confirmed it ([`Cursors::protected`]), so data not yet
//! forwarded is kept like young data.
//!
//! Writes check the store's reserve and are made durable by the store's next flush (the
//! pipeline flushes every `flush_interval`): a crash repeats at most the confirmations of
//! that interval, as duplicates, never a gap.

use std::collections::HashMap;

use super::{Reserve, Store, StoreError};
use crate::base::sample::SensorId;

/// One sensor's progress at one destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SensorCursor {
    /// Everything at or before this is confirmed.
    pub low: i64,
    /// With a gap: its upper end; `(low, gap_to]` is not confirmed yet.
    pub gap_to: i64,
    /// Confirmed live data reaches this far.
    pub high: i64,
}

/// How a confirmed batch moves a cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advance {
    /// Live data confirmed through this time.
    High(i64),
    /// Backfill (oldest first) confirmed through this time.
    Low(i64),
    /// Backfill (newest first) confirmed down to just after this time.
    GapTo(i64),
}

impl SensorCursor {
    /// Nothing forwarded yet: the whole history is backlog.
    pub const FRESH: SensorCursor = SensorCursor {
        low: i64::MIN,
        gap_to: i64::MIN,
        high: i64::MIN,
    };

    pub fn has_gap(&self) -> bool {
        self.low < self.gap_to
    }

    /// Every sample at or before this time is confirmed.
    pub fn through(&self) -> i64 {
        if self.has_gap() {
            self.low
        } else {
            self.high
        }
    }

    /// Turns what lies between the last confirmation and `horizon` into a gap, so live
    /// data after `horizon` goes first. Without effect while a gap is open or when the
    /// cursor is already past `horizon`.
    pub fn open_gap(&mut self, horizon: i64) {
        if !self.has_gap() && self.high < horizon {
            self.low = self.high;
            self.gap_to = horizon;
            self.high = horizon;
        }
    }

    pub fn apply(&mut self, advance: Advance) {
        match advance {
            Advance::High(ts) => self.high = self.high.max(ts),
            Advance::Low(ts) => self.low = self.low.max(ts),
            Advance::GapTo(ts) => self.gap_to = self.gap_to.min(ts),
        }
        if self.low >= self.gap_to {
            // The gap is closed: everything through `high` is confirmed.
            self.low = self.high;
            self.gap_to = self.high;
        }
    }

    fn encode(&self) -> [u8; 24] {
        let mut v = [0u8; 24];
        v[..8].copy_from_slice(&self.low.to_be_bytes());
        v[8..16].copy_from_slice(&self.gap_to.to_be_bytes());
        v[16..].copy_from_slice(&self.high.to_be_bytes());
        v
    }

    fn decode(v: &[u8]) -> Option<SensorCursor> {
        let at = |i: usize| Some(i64::from_be_bytes(v.get(i..i + 8)?.try_into().ok()?));
        (v.len() == 24).then_some(())?;
        Some(SensorCursor {
            low: at(0)?,
            gap_to: at(8)?,
            high: at(16)?,
        })
    }
}

/// One destination's cursors, by sensor.
pub type DestinationCursors = (String, Vec<(SensorId, SensorCursor)>);

/// The cursors of every destination.
#[derive(Clone)]
pub struct Cursors {
    tree: sled::Tree,
    /// Per destination, a session number a protocol must not repeat (Sparkplug's
    /// `bdSeq`); its own tree so cursor keys stay sensor-shaped.
    sessions: sled::Tree,
    reserve: Reserve,
}

fn prefix(dest: &str) -> Vec<u8> {
    let mut k = dest.as_bytes().to_vec();
    k.push(0);
    k
}

fn key(dest: &str, sensor: SensorId) -> Vec<u8> {
    let mut k = prefix(dest);
    k.extend_from_slice(&sensor.to_be_bytes());
    k
}

/// The key of a destination's late-journal position (five bytes after the name, so it
/// never reads as a sensor's key).
fn late_key(dest: &str) -> Vec<u8> {
    let mut k = prefix(dest);
    k.extend_from_slice(b"~late");
    k
}

/// Destination and sensor of a key.
fn split(k: &[u8]) -> Option<(&str, SensorId)> {
    let nul = k.iter().position(|b| *b == 0)?;
    let dest = std::str::from_utf8(&k[..nul]).ok()?;
    let sensor = SensorId::from_be_bytes(k.get(nul + 1..)?.try_into().ok()?);
    Some((dest, sensor))
}

impl Store {
    /// The forward cursors, in this store's database.
    pub fn cursors(&self) -> Result<Cursors, StoreError> {
        Ok(Cursors {
            tree: self.db().open_tree("forward")?,
            sessions: self.db().open_tree("forward_session")?,
            reserve: self.reserve(),
        })
    }
}

impl Cursors {
    /// Every sensor cursor of `dest`.
    pub fn load(&self, dest: &str) -> Result<HashMap<SensorId, SensorCursor>, StoreError> {
        let mut out = HashMap::new();
        for item in self.tree.scan_prefix(prefix(dest)) {
            let (k, v) = item?;
            if k.as_ref() == late_key(dest).as_slice() {
                continue;
            }
            let (_, sensor) = split(&k).ok_or_else(|| StoreError::Corrupt("forward cursor key".into()))?;
            let c = SensorCursor::decode(&v).ok_or_else(|| StoreError::Corrupt(format!("forward cursor of {dest}")))?;
            out.insert(sensor, c);
        }
        Ok(out)
    }

    /// Writes these cursors of `dest` (durable with the store's next flush).
    pub fn save(&self, dest: &str, cursors: &[(SensorId, SensorCursor)]) -> Result<(), StoreError> {
        if cursors.is_empty() {
            return Ok(());
        }
        self.reserve.check()?;
        let mut batch = sled::Batch::default();
        for (sensor, c) in cursors {
            batch.insert(key(dest, *sensor), &c.encode()[..]);
        }
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    /// How far `dest` has taken the late journal (0: nothing yet).
    pub fn late(&self, dest: &str) -> Result<u64, StoreError> {
        Ok(self
            .tree
            .get(late_key(dest))?
            .and_then(|v| v.as_ref().try_into().ok().map(u64::from_be_bytes))
            .unwrap_or(0))
    }

    /// Records that `dest` has taken the late journal through `seq`.
    pub fn save_late(&self, dest: &str, seq: u64) -> Result<(), StoreError> {
        self.reserve.check()?;
        self.tree.insert(late_key(dest), &seq.to_be_bytes())?;
        Ok(())
    }

    /// The late-journal position every destination with cursors has passed (`u64::MAX`
    /// when there is none: nobody needs the journal).
    pub fn late_taken_by_all(&self) -> Result<u64, StoreError> {
        let mut dests: Vec<String> = Vec::new();
        for item in self.tree.iter().keys() {
            let k = item?;
            let Some(nul) = k.iter().position(|b| *b == 0) else {
                continue;
            };
            let dest = String::from_utf8_lossy(&k[..nul]).into_owned();
            if dests.last() != Some(&dest) {
                dests.push(dest);
            }
        }
        let mut min = u64::MAX;
        for d in &dests {
            min = min.min(self.late(d)?);
        }
        Ok(min)
    }

    /// Forgets `sensors` of `dest` (no longer forwarded there), so they stop holding
    /// retention back.
    pub fn remove(&self, dest: &str, sensors: &[SensorId]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for s in sensors {
            batch.remove(key(dest, *s));
        }
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    /// The session number last written for `dest`.
    pub fn session(&self, dest: &str) -> Result<Option<u64>, StoreError> {
        let Some(v) = self.sessions.get(dest.as_bytes())? else {
            return Ok(None);
        };
        let bytes: [u8; 8] = v
            .as_ref()
            .try_into()
            .map_err(|_| StoreError::Corrupt(format!("forward session of {dest}")))?;
        Ok(Some(u64::from_be_bytes(bytes)))
    }

    /// Writes the session number of `dest` and flushes it at once: a session about to
    /// start must not reuse the number after a crash.
    pub fn save_session(&self, dest: &str, n: u64) -> Result<(), StoreError> {
        self.reserve.check()?;
        self.sessions.insert(dest.as_bytes(), &n.to_be_bytes()[..])?;
        self.sessions.flush()?;
        Ok(())
    }

    /// Removes the cursors of destinations not in `keep`; returns their names.
    pub fn retain_destinations(&self, keep: &[&str]) -> Result<Vec<String>, StoreError> {
        for item in self.sessions.iter() {
            let (k, _) = item?;
            if !keep.iter().any(|d| d.as_bytes() == &k[..]) {
                self.sessions.remove(k)?;
            }
        }
        let mut gone: Vec<String> = Vec::new();
        let mut batch = sled::Batch::default();
        for item in self.tree.iter() {
            let (k, _) = item?;
            let Some((dest, _)) = split(&k) else { continue };
            if !keep.contains(&dest) {
                if gone.last().map(String::as_str) != Some(dest) {
                    gone.push(dest.to_string());
                }
                batch.remove(k);
            }
        }
        self.tree.apply_batch(batch)?;
        Ok(gone)
    }

    /// Per sensor with a cursor: the time through which every destination has confirmed
    /// it, and the destination furthest behind.
    pub fn protected(&self) -> Result<HashMap<SensorId, (i64, String)>, StoreError> {
        let mut out: HashMap<SensorId, (i64, String)> = HashMap::new();
        for item in self.tree.iter() {
            let (k, v) = item?;
            let (Some((dest, sensor)), Some(c)) = (split(&k), SensorCursor::decode(&v)) else {
                continue;
            };
            let through = c.through();
            match out.get(&sensor) {
                Some((t, _)) if *t <= through => {}
                _ => {
                    out.insert(sensor, (through, dest.to_string()));
                }
            }
        }
        Ok(out)
    }

    /// Every destination with cursors and its sensors' cursors, for `store-stats`.
    pub fn all(&self) -> Result<Vec<DestinationCursors>, StoreError> {
        let mut out: Vec<DestinationCursors> = Vec::new();
        for item in self.tree.iter() {
            let (k, v) = item?;
            let (Some((dest, sensor)), Some(c)) = (split(&k), SensorCursor::decode(&v)) else {
                continue;
            };
            match out.last_mut() {
                Some((d, list)) if d == dest => list.push((sensor, c)),
                _ => out.push((dest.to_string(), vec![(sensor, c)])),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreOptions;

    #[test]
    fn a_gap_opens_fills_and_closes() {
        let mut c = SensorCursor::FRESH;
        c.open_gap(1_000);
        assert!(c.has_gap());
        assert_eq!(
            (c.low, c.gap_to, c.high, c.through()),
            (i64::MIN, 1_000, 1_000, i64::MIN)
        );
        c.apply(Advance::High(1_500));
        c.apply(Advance::Low(400));
        assert_eq!(c.through(), 400);
        // A second open_gap while one is open changes nothing.
        c.open_gap(5_000);
        assert_eq!((c.low, c.gap_to, c.high), (400, 1_000, 1_500));
        c.apply(Advance::Low(1_000));
        assert!(!c.has_gap());
        assert_eq!(c.through(), 1_500);
    }

    #[test]
    fn newest_first_backfill_closes_from_the_top() {
        let mut c = SensorCursor {
            low: 100,
            gap_to: 100,
            high: 100,
        };
        c.open_gap(900);
        c.apply(Advance::GapTo(500));
        assert_eq!((c.low, c.gap_to, c.through()), (100, 500, 100));
        c.apply(Advance::GapTo(50));
        assert!(!c.has_gap());
        assert_eq!(c.through(), 900);
    }

    #[test]
    fn cursors_survive_a_reopen_and_protect_the_slowest() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
            let cursors = store.cursors().unwrap();
            let at = |t| SensorCursor {
                low: t,
                gap_to: t,
                high: t,
            };
            cursors.save("a", &[(1, at(10)), (2, at(20))]).unwrap();
            cursors.save("b", &[(1, at(5))]).unwrap();
            cursors.save("old", &[(3, at(1))]).unwrap();
            store.flush().unwrap();
        }
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let cursors = store.cursors().unwrap();
        assert_eq!(cursors.load("a").unwrap()[&2].high, 20);
        let p = cursors.protected().unwrap();
        assert_eq!(p[&1], (5, "b".to_string()));
        assert_eq!(p[&2], (20, "a".to_string()));
        assert_eq!(
            cursors.retain_destinations(&["a", "b"]).unwrap(),
            vec!["old".to_string()]
        );
        assert!(!cursors.protected().unwrap().contains_key(&3));
        cursors.remove("b", &[1]).unwrap();
        assert_eq!(cursors.protected().unwrap()[&1].0, 10);
        cursors.save_late("a", 7).unwrap();
        assert_eq!(cursors.late("a").unwrap(), 7);
        assert_eq!(cursors.load("a").unwrap().len(), 2, "the late position is no sensor");
        assert_eq!(cursors.late_taken_by_all().unwrap(), 7, "b has no cursor left");
        cursors.save("c", &[(1, SensorCursor::FRESH)]).unwrap();
        assert_eq!(cursors.late_taken_by_all().unwrap(), 0, "c has taken nothing");
        cursors.save_late("c", 9).unwrap();
        assert_eq!(cursors.late_taken_by_all().unwrap(), 7);
    }

    #[test]
    fn session_numbers_survive_a_reopen_and_go_with_their_destination() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
            let cursors = store.cursors().unwrap();
            assert_eq!(cursors.session("sp").unwrap(), None);
            cursors.save_session("sp", 7).unwrap();
            cursors.save_session("other", 1).unwrap();
        }
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let cursors = store.cursors().unwrap();
        assert_eq!(cursors.session("sp").unwrap(), Some(7));
        cursors.retain_destinations(&["sp"]).unwrap();
        assert_eq!(cursors.session("other").unwrap(), None);
        assert_eq!(cursors.session("sp").unwrap(), Some(7));
    }
}
