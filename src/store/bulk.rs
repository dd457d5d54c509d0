//! The store's bulk and maintenance side: history from elsewhere written straight into
//! sealed chunks (CSV import, archive restore), and the chunk-level access retention,
//! archiving and statistics need. Chunk bytes go to their segment files first (fsynced),
//! then the index entries to sled; the index is durable after [`Store::sync`], which also
//! deletes the segment files eviction emptied.

use std::collections::HashMap;

use super::codec::Point;
use super::segment::{SegmentId, Stored};
use super::{chunk, dedup_last_wins, ChunkRef, Store, StoreError, CHUNK_MAX, SEAL_SEQ_KEY};

/// Index entries per sled batch (see DESIGN: a batch of thousands grows sled's memory).
const INDEX_BATCH: usize = 500;
use crate::base::sample::SensorId;

impl Store {
    /// Bulk path for history from elsewhere (CSV import, archive restore): writes the
    /// points of one sensor straight into sealed chunks of at most [`CHUNK_MAX`] points,
    /// bypassing the WAL. Durable after the next [`Store::sync`].
    pub fn write_sealed(&self, sensor: SensorId, points: &mut Vec<Point>) -> Result<usize, StoreError> {
        self.write_sealed_all(std::iter::once((sensor, points)))
    }

    /// [`Store::write_sealed`] for many sensors at once: their chunks share one append
    /// and one fsync per segment file, instead of one per sensor.
    pub fn write_sealed_all<'p>(
        &self,
        parts: impl IntoIterator<Item = (SensorId, &'p mut Vec<Point>)>,
    ) -> Result<usize, StoreError> {
        self.inner.reserve.check()?;
        let seal_seq = self.next_seal_seq()?;
        let mut keys = Vec::new();
        let mut values = Vec::new();
        for (sensor, points) in parts {
            points.sort_by_key(|p| p.ts_ms);
            dedup_last_wins(points);
            for part in points.chunks(CHUNK_MAX) {
                keys.push(chunk::key(sensor, part[0].ts_ms, seal_seq));
                values.push(chunk::encode(part));
            }
        }
        self.insert_chunks(&keys, &values)
    }

    /// Stores an already encoded chunk (from an archive) under a fresh key.
    pub fn write_encoded_chunk(&self, sensor: SensorId, value: &[u8]) -> Result<(), StoreError> {
        self.write_encoded_chunks(sensor, &[value.to_vec()]).map(|_| ())
    }

    /// Stores already encoded chunks of one sensor, each checked first (header and
    /// checksum); one damaged chunk refuses the whole call, before anything is written.
    pub fn write_encoded_chunks(&self, sensor: SensorId, values: &[Vec<u8>]) -> Result<usize, StoreError> {
        self.inner.reserve.check()?;
        let mut starts = Vec::with_capacity(values.len());
        for v in values {
            starts.push(chunk::header(v)?.first_ms);
            chunk::decode(v)?;
        }
        let seal_seq = self.next_seal_seq()?;
        let keys: Vec<[u8; 20]> = starts.iter().map(|&t| chunk::key(sensor, t, seal_seq)).collect();
        self.insert_chunks(&keys, values)
    }

    /// Appends chunk bytes to their segment files (durable on return), then points the
    /// index at them.
    fn insert_chunks(&self, keys: &[[u8; 20]], values: &[Vec<u8>]) -> Result<usize, StoreError> {
        if keys.is_empty() {
            return Ok(0);
        }
        let entries = self.inner.segments.append(&self.inner.reserve, values)?;
        // A few hundred keys per batch: sled's memory grows with the size of one batch.
        for (i, (ks, es)) in keys.chunks(INDEX_BATCH).zip(entries.chunks(INDEX_BATCH)).enumerate() {
            let mut batch = sled::Batch::default();
            for (k, e) in ks.iter().zip(es) {
                batch.insert(&k[..], &e.encode()[..]);
            }
            if let Err(err) = self.inner.chunks.apply_batch(batch) {
                self.inner.segments.forget(&entries[i * INDEX_BATCH..]);
                return Err(err.into());
            }
        }
        Ok(keys.len())
    }

    pub(super) fn next_seal_seq(&self) -> Result<u64, StoreError> {
        let prev = self.inner.meta.fetch_and_update(SEAL_SEQ_KEY, |old| {
            let n = old.and_then(|v| v.try_into().ok().map(u64::from_be_bytes)).unwrap_or(0);
            Some((n + 1).to_be_bytes().to_vec())
        })?;
        Ok(prev
            .and_then(|v| v.as_ref().try_into().ok().map(u64::from_be_bytes))
            .unwrap_or(0))
    }

    /// Makes everything written so far durable (fsync), then deletes the segment files
    /// whose last chunk was removed: only now is that removal durable.
    pub fn sync(&self) -> Result<(), StoreError> {
        let emptied = self.inner.segments.emptied();
        self.inner.db.flush()?;
        let deleted = self.inner.segments.delete_empty(&emptied)?;
        if deleted > 0 {
            tracing::debug!(files = deleted, "deleted emptied segment files");
        }
        Ok(())
    }

    /// Every sealed chunk's key and header, in key order (sensor, then time), from the
    /// index alone (no segment file is read).
    pub fn chunk_headers(&self) -> impl Iterator<Item = Result<(ChunkRef, chunk::Header), StoreError>> + '_ {
        self.inner.chunks.iter().map(|item| {
            let (k, v) = item?;
            let stored = Stored::of(&v)?;
            let segment = match &stored {
                Stored::Segment(e) => Some(e.segment),
                Stored::Inline(_) => None,
            };
            let r = ChunkRef::from_key(&k, segment).ok_or_else(|| StoreError::Corrupt("chunk key".into()))?;
            Ok((r, stored.header()?))
        })
    }

    /// The raw bytes of a sealed chunk (header included), for archiving.
    pub fn chunk_bytes(&self, r: &ChunkRef) -> Result<Option<Vec<u8>>, StoreError> {
        match self.inner.chunks.get(r.key)? {
            Some(v) => self.stored_bytes(&v).map(Some),
            None => Ok(None),
        }
    }

    /// Deletes sealed chunks (retention). Not fsynced here: the caller syncs once, and
    /// [`Store::sync`] then deletes the segment files left without chunks.
    pub fn remove_chunks(&self, refs: &[ChunkRef]) -> Result<(), StoreError> {
        self.inner.reserve.check()?;
        self.inner.segments.prepare()?;
        let mut released = Vec::new();
        for r in refs {
            // One key at a time: the old value says which segment loses a chunk.
            if let Some(v) = self.inner.chunks.remove(r.key)? {
                if let Ok(Stored::Segment(e)) = Stored::of(&v) {
                    released.push(e.segment);
                }
            }
        }
        self.inner.segments.released(&released)
    }

    /// Bytes the file of `segment` occupies on disk, as `du` counts them.
    pub fn segment_disk_bytes(&self, segment: SegmentId) -> u64 {
        self.inner.segments.disk_bytes(segment)
    }

    /// Per-sensor counts and time span of what is unsealed (WAL and buffer).
    pub fn unsealed_summary(&self) -> HashMap<SensorId, (usize, i64, i64)> {
        let st = self.state();
        let mut out: HashMap<SensorId, (usize, i64, i64)> = HashMap::new();
        let points = st
            .unsealed
            .iter()
            .flat_map(|(id, u)| u.points.iter().map(move |p| (*id, p.ts_ms)));
        let pending = st.pending.iter().map(|s| (s.sensor, s.ts_ms));
        for (id, ts) in points.chain(pending) {
            let e = out.entry(id).or_insert((0, i64::MAX, i64::MIN));
            e.0 += 1;
            e.1 = e.1.min(ts);
            e.2 = e.2.max(ts);
        }
        out
    }
}
