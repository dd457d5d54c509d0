//! The store's bulk and maintenance side: history from elsewhere written straight into
//! sealed chunks (CSV import, archive restore), and the chunk-level access retention,
//! archiving and statistics need. Everything here is durable after [`Store::sync`].

use std::collections::HashMap;

use super::codec::Point;
use super::{chunk, dedup_last_wins, ChunkRef, Store, StoreError, CHUNK_MAX, SEAL_SEQ_KEY};
use crate::base::sample::SensorId;

impl Store {
    /// Bulk path for history from elsewhere (CSV import, archive restore): writes the
    /// points of one sensor straight into sealed chunks of at most [`CHUNK_MAX`] points,
    /// bypassing the WAL. Durable after the next [`Store::sync`].
    pub fn write_sealed(&self, sensor: SensorId, points: &mut Vec<Point>) -> Result<usize, StoreError> {
        self.inner.reserve.check()?;
        if points.is_empty() {
            return Ok(0);
        }
        points.sort_by_key(|p| p.ts_ms);
        dedup_last_wins(points);
        let seal_seq = self.next_seal_seq()?;
        let mut batch = sled::Batch::default();
        let mut n = 0;
        for part in points.chunks(CHUNK_MAX) {
            batch.insert(&chunk::key(sensor, part[0].ts_ms, seal_seq)[..], chunk::encode(part));
            n += 1;
        }
        self.inner.chunks.apply_batch(batch)?;
        Ok(n)
    }

    /// Stores an already encoded chunk (from an archive) under a fresh key.
    pub fn write_encoded_chunk(&self, sensor: SensorId, value: &[u8]) -> Result<(), StoreError> {
        self.inner.reserve.check()?;
        let header = chunk::header(value)?;
        chunk::decode(value)?;
        let seal_seq = self.next_seal_seq()?;
        self.inner
            .chunks
            .insert(chunk::key(sensor, header.first_ms, seal_seq), value)?;
        Ok(())
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

    /// Makes everything written so far durable (fsync).
    pub fn sync(&self) -> Result<(), StoreError> {
        self.inner.db.flush()?;
        Ok(())
    }

    /// Every sealed chunk's key and header, in key order (sensor, then time).
    pub fn chunk_headers(&self) -> impl Iterator<Item = Result<(ChunkRef, chunk::Header), StoreError>> + '_ {
        self.inner.chunks.iter().map(|item| {
            let (k, v) = item?;
            let r = ChunkRef::from_key(&k).ok_or_else(|| StoreError::Corrupt("chunk key".into()))?;
            Ok((r, chunk::header(&v)?))
        })
    }

    /// The raw bytes of a sealed chunk (header included), for archiving.
    pub fn chunk_bytes(&self, r: &ChunkRef) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.inner.chunks.get(r.key)?.map(|v| v.to_vec()))
    }

    /// Deletes sealed chunks (retention). Not fsynced here: the caller syncs once.
    pub fn remove_chunks(&self, refs: &[ChunkRef]) -> Result<(), StoreError> {
        self.inner.reserve.check()?;
        let mut batch = sled::Batch::default();
        for r in refs {
            batch.remove(&r.key[..]);
        }
        self.inner.chunks.apply_batch(batch)?;
        Ok(())
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
