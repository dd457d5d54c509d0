//! The local history of every sensor: sled for what is small and changes, segment files
//! for the bulk of sealed chunks. Nothing else touches the database or the files.
//!
//! Trees:
//! - `wal`: write-ahead records, one per flush (see [`wal`]); the samples not yet sealed.
//! - `chunks`: the index of sealed chunks, one small entry per chunk (see [`segment`]):
//!   which segment file holds its bytes, where, and its count and time span.
//! - `meta`: the sensor registry, the schema version and the last label id.
//! - `rollups`: per-interval aggregates of evicted raw data (see [`rollup`]).
//! - `labels`: operators' labels of assets' history (see [`labels`]), never evicted.
//!
//! The chunks' bytes (compressed, checksummed, see [`chunk`]) live in
//! `segments/<period-start-ms>.seg`, one file per UTC hour of their first sample, so that
//! retention gives space back by deleting files: sled keeps the pages of removed values
//! for a long time, and the budget is what `du` measures.
//!
//! **Durability.** [`Store::append`] only buffers. [`Store::flush`] writes everything
//! buffered as one WAL record and fsyncs; when it returns, those samples survive
//! `kill -9` and power loss. The agent calls it every `storage.flush_interval`, so a
//! sample is durable at most one interval after it arrived; sources that must acknowledge
//! upstream (MQTT) wait for the flush that covers them.
//!
//! **Sealing.** When enough samples have accumulated, [`Store::flush`] seals them: per
//! sensor, sorted by time, into chunks. The chunk bytes are appended to their segment
//! files and fsynced first; then the index entries are written and the WAL records they
//! came from removed in one sled transaction. A crash leaves either the records or the
//! indexed chunks, never both and never neither (bytes appended without their entries are
//! unused, and deleted with their file). A segment write that fails (a full disk) fails
//! the seal before the transaction: the records stay, and the seal is tried again.
//! Sensors with too few samples for a useful chunk are carried forward into a fresh WAL
//! record in the same transaction.
//!
//! **Schema.** 2 since chunk bytes moved to segment files; a schema 1 store (bytes in
//! sled values) is migrated at open, in crash-safe steps (see [`migrate`]).
//!
//! Reads ([`Store::read`]) merge chunks, unsealed and buffered samples, sorted by time,
//! one value per timestamp (the last written wins, so a replayed input merges).

pub mod archive;
pub mod bucket;
mod bulk;
pub(crate) mod chunk;
pub(crate) mod codec;
pub mod cursor;
mod labels;
mod late;
mod migrate;
pub mod query;
pub(crate) mod registry;
pub mod retention;
pub(crate) mod rollup;
mod scan;
pub(crate) mod segment;
mod space;
pub mod stats;
pub(crate) mod wal;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use crate::base::sample::{Quality, Sample, SensorId};
pub use codec::Point;
use segment::{Segments, Stored};

const SCHEMA_KEY: &[u8] = b"schema";
/// 1: chunk bytes in sled values; 2: chunk bytes in segment files, sled keeps the index.
const SCHEMA_VERSION: u64 = 2;
const SEAL_SEQ_KEY: &[u8] = b"seal_seq";
/// Present while chunks of a schema 1 store may still be kept in sled values.
const MIGRATING_KEY: &[u8] = b"migrating";

pub use space::{Reserve, WRITE_RESERVE};

/// Points per chunk written by the bulk path, at most: an hour of 1 Hz data, large enough
/// to compress well and small enough to decode one quickly.
pub const CHUNK_MAX: usize = 3600;

/// Where a sealed chunk lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRef {
    pub sensor: SensorId,
    /// The segment file that holds its bytes (`None`: still in sled, not yet migrated).
    pub segment: Option<segment::SegmentId>,
    key: [u8; 20],
}

impl ChunkRef {
    fn from_key(k: &[u8], segment: Option<segment::SegmentId>) -> Option<ChunkRef> {
        let key: [u8; 20] = k.try_into().ok()?;
        Some(ChunkRef {
            sensor: SensorId::from_be_bytes(key[..4].try_into().ok()?),
            segment,
            key,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(String),
    #[error("corrupt data: {0}")]
    Corrupt(String),
    #[error("only {free} bytes free on the store's filesystem; writes wait until space is freed")]
    NoSpace { free: u64 },
    #[error("segment file {path}: {error}")]
    Segment { path: String, error: String },
    #[error("store schema {found} is newer than this build understands ({supported})")]
    Schema { found: u64, supported: u64 },
    #[error("label refused: {0}")]
    Label(#[from] crate::base::label::LabelError),
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Db(e.to_string())
    }
}

/// When unsealed samples become chunks.
#[derive(Debug, Clone, Copy)]
pub struct SealPolicy {
    /// Seal once this many samples are unsealed (bounds memory and WAL size).
    pub max_unsealed: usize,
    /// Seal at least this often.
    pub max_age: Duration,
    /// A sensor with fewer unsealed samples is carried forward instead of sealed, unless
    /// its oldest sample is older than `max_age` × 6.
    pub min_chunk: usize,
}

impl Default for SealPolicy {
    fn default() -> Self {
        SealPolicy {
            max_unsealed: 200_000,
            max_age: Duration::from_secs(600),
            min_chunk: 120,
        }
    }
}

/// Options of [`Store::open`].
#[derive(Debug, Clone, Copy)]
pub struct StoreOptions {
    pub cache_bytes: u64,
    pub seal: SealPolicy,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            cache_bytes: 32 << 20,
            seal: SealPolicy::default(),
        }
    }
}

/// What one [`Store::flush`] made durable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flushed {
    pub samples: usize,
    pub sealed_chunks: usize,
}

struct Unsealed {
    points: Vec<Point>,
    /// Wall-clock arrival of the oldest point, for the age-based seal.
    since: Instant,
}

struct State {
    /// Appended, not yet in the WAL.
    pending: Vec<Sample>,
    /// In the WAL, not yet sealed.
    unsealed: HashMap<SensorId, Unsealed>,
    unsealed_count: usize,
    next_wal_seq: u64,
    last_seal: Instant,
    /// Newest time written per sensor, learnt as sensors are flushed (see [`late`]).
    newest: HashMap<SensorId, i64>,
}

struct Inner {
    reserve: Reserve,
    db: sled::Db,
    wal: sled::Tree,
    chunks: sled::Tree,
    segments: Segments,
    meta: sled::Tree,
    rollups: sled::Tree,
    /// The late journal (see [`late`]) and whether it is kept.
    late: sled::Tree,
    keep_late: std::sync::atomic::AtomicBool,
    state: Mutex<State>,
    seal: SealPolicy,
}

/// Handle to the store; cheap to clone, shared by the writer and readers.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl Store {
    /// Opens (or creates) the store in `dir`, replaying the WAL and moving the chunks of
    /// a schema 1 store into segment files.
    pub fn open(dir: &Path, opts: StoreOptions) -> Result<Store, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(opts.cache_bytes)
            // sled's own background flush would race with ours (its issue #1308); the
            // store decides when data is durable.
            .flush_every_ms(None)
            .open()?;
        let meta = db.open_tree("meta")?;
        if check_schema(&meta)? < SCHEMA_VERSION {
            // Marked before the first entry of the new kind is written, so that an older
            // build refuses the store instead of misreading it, and an interrupted
            // migration is taken up again.
            meta.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())?;
            meta.insert(MIGRATING_KEY, &[1u8])?;
            db.flush()?;
        }
        let wal = db.open_tree("wal")?;
        let chunks = db.open_tree("chunks")?;
        let rollups = db.open_tree("rollups")?;
        let late = db.open_tree("late")?;
        let reserve = Reserve::of(dir);
        let segments = Segments::open(dir, &chunks)?;
        if meta.contains_key(MIGRATING_KEY)? {
            // A store that cannot be migrated now (no space) still opens: reads understand
            // both kinds of entry, and the next open tries again.
            match migrate::to_segments(&db, &chunks, &segments, &reserve) {
                Ok(moved) => {
                    meta.remove(MIGRATING_KEY)?;
                    db.flush()?;
                    tracing::info!(
                        chunks = moved,
                        "chunk bytes moved out of the database into segment files"
                    );
                }
                Err(e) => tracing::error!(error = %e, "chunks stay in the database until the next open"),
            }
        }
        let (unsealed, unsealed_count, next_wal_seq) = replay(&wal)?;
        let now = Instant::now();
        Ok(Store {
            inner: Arc::new(Inner {
                reserve,
                db,
                wal,
                chunks,
                segments,
                meta,
                rollups,
                late,
                keep_late: std::sync::atomic::AtomicBool::new(false),
                state: Mutex::new(State {
                    pending: Vec::new(),
                    unsealed,
                    unsealed_count,
                    next_wal_seq,
                    last_seal: now,
                    newest: HashMap::new(),
                }),
                seal: opts.seal,
            }),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind, still consistent
        // enough to read and flush; refusing all further writes would lose more.
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The id of a sensor name, registering it if new.
    pub fn sensor_id(&self, name: &str) -> Result<SensorId, StoreError> {
        if let Some(id) = registry::lookup(&self.inner.meta, name)? {
            return Ok(id);
        }
        self.inner.reserve.check()?;
        registry::id_for(&self.inner.meta, name)
    }

    /// The reserve every writer of this store's database checks first.
    pub fn reserve(&self) -> Reserve {
        self.inner.reserve.clone()
    }

    /// The id of a known sensor name.
    pub fn lookup_sensor(&self, name: &str) -> Result<Option<SensorId>, StoreError> {
        registry::lookup(&self.inner.meta, name)
    }

    /// Every registered sensor, by id.
    pub fn sensors(&self) -> Result<Vec<(SensorId, String)>, StoreError> {
        registry::all(&self.inner.meta)
    }

    /// Samples appended and not yet written (grows only while flushes fail).
    pub fn pending_len(&self) -> usize {
        self.state().pending.len()
    }

    /// Buffers samples; they are durable after the next [`Store::flush`].
    pub fn append(&self, samples: &[Sample]) {
        self.state().pending.extend_from_slice(samples);
    }

    /// Writes buffered samples as one WAL record and fsyncs; seals when due.
    /// Blocking (disk I/O): call it from a blocking context.
    pub fn flush(&self) -> Result<Flushed, StoreError> {
        // Below the reserve, keep the samples in memory and write them once space is back.
        self.inner.reserve.check()?;
        let mut st = self.state();
        let pending = std::mem::take(&mut st.pending);
        let mut flushed = Flushed {
            samples: pending.len(),
            sealed_chunks: 0,
        };
        if !pending.is_empty() {
            let journaled = self.take_late(&mut st, &pending).and_then(|late| self.journal(&late));
            if let Err(e) = journaled {
                st.pending = pending;
                return Err(e);
            }
            let seq = st.next_wal_seq;
            if let Err(e) = self.inner.wal.insert(wal::key(seq), wal::encode(&pending)) {
                // Put them back: the caller sees the error and nothing is lost in memory.
                st.pending = pending;
                return Err(e.into());
            }
            st.next_wal_seq += 1;
            let now = Instant::now();
            st.unsealed_count += pending.len();
            for s in &pending {
                st.unsealed
                    .entry(s.sensor)
                    .or_insert_with(|| Unsealed {
                        points: Vec::new(),
                        since: now,
                    })
                    .points
                    .push(point(s));
            }
        }
        let due = st.unsealed_count >= self.inner.seal.max_unsealed
            || (st.unsealed_count > 0 && st.last_seal.elapsed() >= self.inner.seal.max_age);
        let sealed = if due { self.seal(&mut st) } else { Ok(0) };
        // The new record is made durable even when sealing failed (a segment file that
        // met a full disk): its samples stay in the WAL, and the seal is tried again.
        self.inner.db.flush()?;
        flushed.sealed_chunks = sealed?;
        Ok(flushed)
    }

    /// Seals every sensor with enough unsealed samples (or old enough ones) into chunks,
    /// carries the rest forward, and drops the WAL records, atomically.
    fn seal(&self, st: &mut State) -> Result<usize, StoreError> {
        let policy = self.inner.seal;
        let stale = policy.max_age * 6;
        let mut chunks: Vec<([u8; 20], Vec<u8>)> = Vec::new();
        let mut carried: Vec<Sample> = Vec::new();
        let mut sealed_sensors: Vec<SensorId> = Vec::new();
        let seal_seq = self.next_seal_seq()?;
        for (&sensor, u) in st.unsealed.iter_mut() {
            if u.points.len() >= policy.min_chunk || u.since.elapsed() >= stale {
                u.points.sort_by_key(|p| p.ts_ms);
                dedup_last_wins(&mut u.points);
                let start = u.points[0].ts_ms;
                chunks.push((chunk::key(sensor, start, seal_seq), chunk::encode(&u.points)));
                sealed_sensors.push(sensor);
            } else {
                carried.extend(u.points.iter().map(|p| sample(sensor, p)));
            }
        }
        let carry_seq = st.next_wal_seq;
        let old_records: Vec<sled::IVec> = self.inner.wal.iter().keys().collect::<Result<_, _>>()?;
        let carried_record = (!carried.is_empty()).then(|| wal::encode(&carried));
        // The bytes are durable in their segment files before the index points at them
        // and before the WAL records go; a crash in between leaves only unused bytes.
        self.inner.reserve.check()?;
        let values: Vec<Vec<u8>> = chunks.iter_mut().map(|(_, v)| std::mem::take(v)).collect();
        let entries = self.inner.segments.append(&self.inner.reserve, &values)?;
        let (wal_tree, chunk_tree) = (&self.inner.wal, &self.inner.chunks);
        let result: Result<(), TransactionError<()>> = (wal_tree, chunk_tree).transaction(|(w, c)| {
            for ((k, _), e) in chunks.iter().zip(&entries) {
                c.insert(&k[..], &e.encode()[..])?;
            }
            for k in &old_records {
                w.remove(k)?;
            }
            if let Some(record) = &carried_record {
                w.insert(&wal::key(carry_seq)[..], record.as_slice())?;
            }
            Ok::<(), ConflictableTransactionError<()>>(())
        });
        if let Err(e) = result {
            self.inner.segments.forget(&entries);
            return Err(StoreError::Db(format!("sealing: {e:?}")));
        }

        let sealed = chunks.len();
        st.next_wal_seq = carry_seq + 1;
        for sensor in &sealed_sensors {
            st.unsealed.remove(sensor);
        }
        st.unsealed_count = carried.len();
        st.last_seal = Instant::now();
        tracing::debug!(chunks = sealed, carried = carried.len(), "sealed");
        Ok(sealed)
    }

    /// Samples of `sensor` with `from_ms <= ts <= to_ms`, sorted by time, one per
    /// timestamp. Includes samples not yet durable.
    pub fn read(&self, sensor: SensorId, from_ms: i64, to_ms: i64) -> Result<Vec<Sample>, StoreError> {
        let mut points: Vec<Point> = Vec::new();
        for item in self.inner.chunks.range(chunk::range_until(sensor, to_ms)) {
            let (k, v) = item?;
            let header = match Stored::of(&v).and_then(|s| s.header()) {
                Ok(h) => h,
                Err(e) => {
                    tracing::error!(key = ?k, error = %e, "skipping unreadable chunk");
                    continue;
                }
            };
            if header.last_ms < from_ms {
                continue;
            }
            match self.stored_bytes(&v).and_then(|b| chunk::decode(&b)) {
                Ok(pts) => points.extend(pts.into_iter().filter(|p| p.ts_ms >= from_ms && p.ts_ms <= to_ms)),
                Err(e) => tracing::error!(sensor, first_ms = header.first_ms, error = %e, "skipping corrupt chunk"),
            }
        }
        self.unsealed_points(sensor, &|p| p.ts_ms >= from_ms && p.ts_ms <= to_ms, &mut points);
        // Stable sort keeps write order among equal timestamps, so the last one wins.
        points.sort_by_key(|p| p.ts_ms);
        dedup_last_wins(&mut points);
        Ok(points.iter().map(|p| sample(sensor, p)).collect())
    }

    /// Adds the unsealed and the buffered points of `sensor` that `keep` accepts, in
    /// write order (so that after a stable sort the last written wins).
    pub(super) fn unsealed_points(&self, sensor: SensorId, keep: &dyn Fn(&Point) -> bool, points: &mut Vec<Point>) {
        let st = self.state();
        if let Some(u) = st.unsealed.get(&sensor) {
            points.extend(u.points.iter().filter(|p| keep(p)));
        }
        points.extend(
            st.pending
                .iter()
                .filter(|s| s.sensor == sensor)
                .map(point)
                .filter(|p| keep(p)),
        );
    }

    /// The chunk bytes an index value stands for: read from its segment file, or (a value
    /// not yet migrated) the value itself.
    fn stored_bytes(&self, v: &[u8]) -> Result<Vec<u8>, StoreError> {
        match Stored::of(v)? {
            Stored::Segment(e) => self.inner.segments.read(&e),
            Stored::Inline(bytes) => Ok(bytes.to_vec()),
        }
    }

    /// The sled database, for modules that keep their own trees in it (the alert outbox).
    pub fn db(&self) -> &sled::Db {
        &self.inner.db
    }
}

/// The schema of the store in `meta` (a new store gets the current one); refuses a newer
/// one than this build knows.
fn check_schema(meta: &sled::Tree) -> Result<u64, StoreError> {
    let Some(v) = meta.get(SCHEMA_KEY)? else {
        meta.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())?;
        return Ok(SCHEMA_VERSION);
    };
    let found = u64::from_be_bytes(
        v.as_ref()
            .try_into()
            .map_err(|_| StoreError::Corrupt("schema key".into()))?,
    );
    if found > SCHEMA_VERSION {
        return Err(StoreError::Schema {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(found)
}

/// The unsealed samples of the WAL, their count and the next record's sequence number.
fn replay(wal: &sled::Tree) -> Result<(HashMap<SensorId, Unsealed>, usize, u64), StoreError> {
    let mut unsealed: HashMap<SensorId, Unsealed> = HashMap::new();
    let mut count = 0;
    let mut next_seq = 0;
    let now = Instant::now();
    for item in wal.iter() {
        let (k, v) = item?;
        let seq = wal::seq_of(&k).ok_or_else(|| StoreError::Corrupt("wal key".into()))?;
        next_seq = seq + 1;
        // A record that does not decode is reported, and the rest replayed: one bad
        // record must not make the whole store unopenable.
        match wal::decode(&v) {
            Ok(samples) => {
                count += samples.len();
                for s in samples {
                    unsealed
                        .entry(s.sensor)
                        .or_insert_with(|| Unsealed {
                            points: Vec::new(),
                            since: now,
                        })
                        .points
                        .push(point(&s));
                }
            }
            Err(e) => tracing::error!(seq, error = %e, "skipping a corrupt write-ahead record"),
        }
    }
    if count > 0 {
        tracing::info!(samples = count, "replayed write-ahead log");
    }
    Ok((unsealed, count, next_seq))
}

fn point(s: &Sample) -> Point {
    Point {
        ts_ms: s.ts_ms,
        value: s.value,
        quality: s.quality.to_byte(),
    }
}

fn sample(sensor: SensorId, p: &Point) -> Sample {
    Sample {
        sensor,
        ts_ms: p.ts_ms,
        value: p.value,
        quality: Quality::from_byte(p.quality),
    }
}

/// Keeps the last of each run of equal timestamps (input sorted by time, stable).
fn dedup_last_wins(points: &mut Vec<Point>) {
    let mut out: Vec<Point> = Vec::with_capacity(points.len());
    for p in points.drain(..) {
        match out.last_mut() {
            Some(last) if last.ts_ms == p.ts_ms => *last = p,
            _ => out.push(p),
        }
    }
    *points = out;
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
