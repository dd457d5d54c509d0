//! Segment files: the bytes of sealed chunks, outside sled, one file per hour.
//!
//! sled does not give the pages of removed values back to the file system for a long time
//! (its issues #1124, #1333), so a budget measured with `du` cannot be kept by removing
//! sled values. Chunk bytes therefore live in `<data_dir>/segments/<period-start-ms>.seg`,
//! one file per UTC hour of the chunk's first sample, and sled's `chunks` tree keeps only
//! an [`Entry`] per chunk: where its bytes are and the header fields a read needs to skip
//! it without opening the file. Retention evicts whole segments, and deleting the file is
//! what gives the space back.
//!
//! **Why an hour.** A file can be deleted only once every chunk in it is older than the
//! promise, so the period bounds how much data beyond `raw_retention` the budget has to
//! carry: with an hour, about an hour (plus one chunk's span). A day would keep up to a
//! day too many, which a budget sized for hours of history cannot hold; minutes would
//! make thousands of small files and fsyncs for no gain, since a seal (every 10 min) or an
//! import batch already spans minutes. An hour gives 24 files a day, each holding every
//! sensor's chunks of that hour.
//!
//! **A file is a sequence of chunks** exactly as [`chunk::encode`] writes them (header with
//! count, time span and CRC-32, then the payload), appended, never rewritten. An entry
//! points at one chunk by offset and length; bytes that no entry points at (left by a crash
//! between the append and the index transaction) are harmless and leave with their file.
//!
//! **Crash consistency.** [`Segments::append`] writes and fsyncs the bytes (and the
//! directory, when it creates a file) before it returns the entries, and only then does
//! the caller commit them to sled with the WAL removals. A file is deleted only after the
//! removal of its last entry is durable (`Store::sync` lists the emptied segments with
//! [`Segments::emptied`], flushes sled, then calls [`Segments::delete_empty`]), and at
//! open every file no entry points at is deleted.
//!
//! **Live counts** per segment are kept in memory, rebuilt from the index by the first
//! write after open (a read-only open, such as `forewarn query` on a stopped agent, does
//! not pay for a scan of the whole index); that first count also deletes the files no
//! entry points at. An append counts its chunks before any other writer may delete the
//! file, so a late chunk of an old hour is never written into a file being deleted.

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::chunk::{self, Header};
use super::space::Reserve;
use super::StoreError;

/// A segment's name: the first millisecond (UTC) of its period.
pub type SegmentId = i64;

/// The period of one segment file: an hour (see the module doc).
pub const PERIOD_MS: i64 = 3_600_000;

/// Open read handles kept: enough for a query over a few hours without reopening files,
/// few enough that a store of months never holds thousands of descriptors.
const OPEN_FILES: usize = 16;

/// First byte of an index entry; a v1 value (chunk bytes kept in sled) starts with the
/// chunk format byte instead.
const ENTRY_TAG: u8 = 0xA2;
const ENTRY_LEN: usize = 1 + 8 + 8 + 4 + 4 + 8 + 8 + 4;

/// The segment a chunk starting at `ts_ms` belongs to.
pub fn period_of(ts_ms: i64) -> SegmentId {
    ts_ms.div_euclid(PERIOD_MS) * PERIOD_MS
}

/// Where a chunk's bytes are, with the header fields reads and retention need.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Entry {
    pub segment: SegmentId,
    pub offset: u64,
    pub len: u32,
    pub header: Header,
}

impl Entry {
    pub fn encode(&self) -> [u8; ENTRY_LEN] {
        let mut out = [0u8; ENTRY_LEN];
        out[0] = ENTRY_TAG;
        out[1..9].copy_from_slice(&self.segment.to_le_bytes());
        out[9..17].copy_from_slice(&self.offset.to_le_bytes());
        out[17..21].copy_from_slice(&self.len.to_le_bytes());
        out[21..25].copy_from_slice(&self.header.count.to_le_bytes());
        out[25..33].copy_from_slice(&self.header.first_ms.to_le_bytes());
        out[33..41].copy_from_slice(&self.header.last_ms.to_le_bytes());
        out[41..45].copy_from_slice(&self.header.crc.to_le_bytes());
        out
    }

    pub fn decode(v: &[u8]) -> Result<Entry, StoreError> {
        if v.len() != ENTRY_LEN || v[0] != ENTRY_TAG {
            return Err(StoreError::Corrupt("chunk index entry of an unknown format".into()));
        }
        let b8 = |i: usize| -> [u8; 8] { v[i..i + 8].try_into().unwrap_or_default() };
        let b4 = |i: usize| -> [u8; 4] { v[i..i + 4].try_into().unwrap_or_default() };
        Ok(Entry {
            segment: i64::from_le_bytes(b8(1)),
            offset: u64::from_le_bytes(b8(9)),
            len: u32::from_le_bytes(b4(17)),
            header: Header {
                count: u32::from_le_bytes(b4(21)),
                first_ms: i64::from_le_bytes(b8(25)),
                last_ms: i64::from_le_bytes(b8(33)),
                crc: u32::from_le_bytes(b4(41)),
            },
        })
    }
}

/// A value of the `chunks` tree: an index entry, or (schema 1, not yet migrated) the
/// chunk's bytes themselves.
pub enum Stored<'a> {
    Segment(Entry),
    Inline(&'a [u8]),
}

impl<'a> Stored<'a> {
    pub fn of(v: &'a [u8]) -> Result<Stored<'a>, StoreError> {
        if v.first() == Some(&ENTRY_TAG) {
            Entry::decode(v).map(Stored::Segment)
        } else {
            chunk::header(v).map(|_| Stored::Inline(v))
        }
    }

    pub fn header(&self) -> Result<Header, StoreError> {
        match self {
            Stored::Segment(e) => Ok(e.header),
            Stored::Inline(v) => chunk::header(v),
        }
    }
}

#[derive(Default)]
struct Counts {
    /// Index entries pointing into each segment.
    live: HashMap<SegmentId, u64>,
    /// Segments whose last entry was removed; deleted once that removal is durable.
    empty: BTreeSet<SegmentId>,
}

/// The segment files of one store.
pub struct Segments {
    dir: PathBuf,
    /// The `chunks` tree, read once to build the counts.
    index: sled::Tree,
    /// `None` until the first write needs them.
    counts: Mutex<Option<Counts>>,
    /// Most recently used first.
    open: Mutex<Vec<(SegmentId, Arc<File>)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain counters and handles: still usable after a panic elsewhere.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn io_error(path: &Path, e: std::io::Error, reserve: Option<&Reserve>) -> StoreError {
    if e.kind() == ErrorKind::StorageFull {
        // The same error as the reserve's, so writers wait for space instead of failing.
        let free = reserve.map_or(0, Reserve::free);
        return StoreError::NoSpace { free };
    }
    StoreError::Segment {
        path: path.display().to_string(),
        error: e.to_string(),
    }
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    // A new directory entry is durable only once its directory is synced.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(dir, e, None))
}

impl Segments {
    /// The segments under `data_dir`. Nothing is scanned yet: the counts are built on the
    /// first write (see [`Segments::counted`]).
    pub fn open(data_dir: &Path, index: &sled::Tree) -> Result<Segments, StoreError> {
        let dir = data_dir.join("segments");
        if !dir.exists() {
            fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e, None))?;
            sync_dir(data_dir)?;
        }
        Ok(Segments {
            dir,
            index: index.clone(),
            counts: Mutex::new(None),
            open: Mutex::new(Vec::new()),
        })
    }

    /// The live counts, built from the index on first use, which also deletes the files
    /// no entry points at (a crash between an append and its transaction, or before a
    /// deletion). Only writers need the counts, so an open that only reads (a query on
    /// a stopped agent) never scans the whole index; no append can be in flight before
    /// the first one, which builds them.
    fn counted(&self) -> Result<MutexGuard<'_, Option<Counts>>, StoreError> {
        let mut guard = lock(&self.counts);
        if guard.is_none() {
            *guard = Some(self.count_and_sweep()?);
        }
        Ok(guard)
    }

    fn count_and_sweep(&self) -> Result<Counts, StoreError> {
        let mut live: HashMap<SegmentId, u64> = HashMap::new();
        for v in self.index.iter().values() {
            if let Ok(Stored::Segment(e)) = Stored::of(&v?) {
                *live.entry(e.segment).or_default() += 1;
            }
        }
        let orphans: Vec<SegmentId> = self
            .on_disk()?
            .into_iter()
            .filter(|id| !live.contains_key(id))
            .collect();
        for id in &orphans {
            let path = self.path(*id);
            fs::remove_file(&path).map_err(|e| io_error(&path, e, None))?;
        }
        if !orphans.is_empty() {
            tracing::info!(files = orphans.len(), "deleted segment files no chunk refers to");
            sync_dir(&self.dir)?;
        }
        Ok(Counts {
            live,
            empty: BTreeSet::new(),
        })
    }

    fn path(&self, id: SegmentId) -> PathBuf {
        self.dir.join(format!("{id}.seg"))
    }

    /// Ids of the segment files present.
    pub fn on_disk(&self) -> Result<Vec<SegmentId>, StoreError> {
        let entries = fs::read_dir(&self.dir).map_err(|e| io_error(&self.dir, e, None))?;
        let mut ids: Vec<SegmentId> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name();
                name.to_str()?.strip_suffix(".seg")?.parse().ok()
            })
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// Appends encoded chunks to the files of their periods and makes them durable;
    /// returns one entry per chunk, in order, already counted as live. The caller commits
    /// the entries to the index next, or hands them to [`Segments::forget`] if it cannot.
    pub fn append(&self, reserve: &Reserve, values: &[Vec<u8>]) -> Result<Vec<Entry>, StoreError> {
        let mut by_segment: HashMap<SegmentId, Vec<usize>> = HashMap::new();
        let mut headers = Vec::with_capacity(values.len());
        for (i, v) in values.iter().enumerate() {
            let h = chunk::header(v)?;
            by_segment.entry(period_of(h.first_ms)).or_default().push(i);
            headers.push(h);
        }
        let mut entries: Vec<Option<Entry>> = vec![None; values.len()];
        // Held until the entries are counted, so no deletion can run in between.
        let mut guard = self.counted()?;
        let counts = guard.get_or_insert_with(Counts::default);
        for (segment, members) in by_segment {
            reserve.check()?;
            let offsets = self.append_file(segment, members.iter().map(|&i| &values[i][..]), reserve)?;
            for (&i, offset) in members.iter().zip(offsets) {
                entries[i] = Some(Entry {
                    segment,
                    offset,
                    len: values[i].len() as u32,
                    header: headers[i],
                });
            }
            *counts.live.entry(segment).or_default() += members.len() as u64;
            counts.empty.remove(&segment);
        }
        Ok(entries.into_iter().flatten().collect())
    }

    /// Writes `values` at the end of one segment file and fsyncs it; returns their offsets.
    /// A failed write is cut off again, so a full disk leaves no partial record behind.
    fn append_file<'v>(
        &self,
        segment: SegmentId,
        values: impl Iterator<Item = &'v [u8]>,
        reserve: &Reserve,
    ) -> Result<Vec<u64>, StoreError> {
        let path = self.path(segment);
        let created = !path.exists();
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| io_error(&path, e, Some(reserve)))?;
        let start = f.metadata().map_err(|e| io_error(&path, e, Some(reserve)))?.len();
        let mut buf = Vec::new();
        let mut offsets = Vec::new();
        for v in values {
            offsets.push(start + buf.len() as u64);
            buf.extend_from_slice(v);
        }
        if let Err(e) = f.write_all(&buf).and_then(|()| f.sync_data()) {
            let _ = f.set_len(start);
            return Err(io_error(&path, e, Some(reserve)));
        }
        if created {
            sync_dir(&self.dir)?;
        }
        Ok(offsets)
    }

    /// Entries [`Segments::append`] counted that never reached the index.
    pub fn forget(&self, entries: &[Entry]) {
        // Counted by the append that made them, so the counts exist.
        if let Some(counts) = lock(&self.counts).as_mut() {
            for e in entries {
                release(counts, e.segment);
            }
        }
    }

    /// Builds the counts if they are not yet: call it before removing index entries, so
    /// that a removal is never both missing from the scan and subtracted after it.
    pub fn prepare(&self) -> Result<(), StoreError> {
        self.counted().map(|_| ())
    }

    /// Index entries pointing into these segments (one id per entry) were removed.
    pub fn released(&self, segments: &[SegmentId]) -> Result<(), StoreError> {
        let mut guard = self.counted()?;
        let counts = guard.get_or_insert_with(Counts::default);
        for &id in segments {
            release(counts, id);
        }
        Ok(())
    }

    /// Segments whose last entry has been removed, to delete once those removals are
    /// durable: take this list before flushing sled, then hand it to
    /// [`Segments::delete_empty`], so that a removal made during the flush waits for
    /// the next one.
    pub fn emptied(&self) -> Vec<SegmentId> {
        lock(&self.counts)
            .as_ref()
            .map(|c| c.empty.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Deletes the files of `ids` that still have no entry; returns how many went.
    pub fn delete_empty(&self, ids: &[SegmentId]) -> Result<usize, StoreError> {
        let mut guard = lock(&self.counts);
        let Some(counts) = guard.as_mut() else {
            return Ok(0);
        };
        let mut open = lock(&self.open);
        let mut deleted = 0;
        for &id in ids {
            if !counts.empty.remove(&id) || counts.live.get(&id).is_some_and(|&n| n > 0) {
                continue;
            }
            counts.live.remove(&id);
            open.retain(|(s, _)| *s != id);
            let path = self.path(id);
            match fs::remove_file(&path) {
                Ok(()) => deleted += 1,
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => {
                    counts.empty.insert(id);
                    return Err(io_error(&path, e, None));
                }
            }
        }
        Ok(deleted)
    }

    /// The bytes of the chunk `e` points at; a file cut short or missing is an error
    /// confined to that chunk (the caller reports and skips it).
    pub fn read(&self, e: &Entry) -> Result<Vec<u8>, StoreError> {
        let f = self.handle(e.segment)?;
        let mut buf = vec![0u8; e.len as usize];
        f.read_exact_at(&mut buf, e.offset).map_err(|err| {
            StoreError::Corrupt(format!(
                "segment {} cut short at chunk offset {}: {err}",
                e.segment, e.offset
            ))
        })?;
        let h = chunk::header(&buf)?;
        if h != e.header {
            return Err(StoreError::Corrupt(format!(
                "segment {} holds another chunk at offset {}",
                e.segment, e.offset
            )));
        }
        Ok(buf)
    }

    fn handle(&self, id: SegmentId) -> Result<Arc<File>, StoreError> {
        let mut open = lock(&self.open);
        if let Some(i) = open.iter().position(|(s, _)| *s == id) {
            let hit = open.remove(i);
            let f = hit.1.clone();
            open.insert(0, hit);
            return Ok(f);
        }
        // Opened under the lock: a deletion (which takes it too) cannot slip in between
        // and leave a handle of a deleted file cached for a later file of the same name.
        let path = self.path(id);
        let f = Arc::new(File::open(&path).map_err(|e| io_error(&path, e, None))?);
        open.insert(0, (id, f.clone()));
        open.truncate(OPEN_FILES);
        Ok(f)
    }

    /// Bytes the file of `segment` occupies on disk (allocated blocks, as `du` counts).
    pub fn disk_bytes(&self, segment: SegmentId) -> u64 {
        fs::metadata(self.path(segment)).map_or(0, |m| m.blocks() * 512)
    }

    /// Live entries of `segment`, as counted.
    #[cfg(test)]
    pub fn live(&self, segment: SegmentId) -> u64 {
        let guard = self.counted().unwrap_or_else(|e| panic!("{e}"));
        guard.as_ref().and_then(|c| c.live.get(&segment).copied()).unwrap_or(0)
    }
}

fn release(counts: &mut Counts, segment: SegmentId) {
    if let Some(n) = counts.live.get_mut(&segment) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            counts.empty.insert(segment);
        }
    }
}

#[cfg(test)]
#[path = "segment_tests.rs"]
mod tests;
