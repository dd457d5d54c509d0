//! Schema 1 → 2: chunk bytes move out of sled values into segment files.
//!
//! A store written before segment files kept each chunk's bytes as its value in the
//! `chunks` tree. Opening it first marks it schema 2 and `migrating` in `meta` (so an
//! older build refuses it and an interrupted migration is resumed), then moves them in
//! steps of a few hundred chunks: the bytes are
//! appended to their segment files and fsynced, then one sled batch replaces those values
//! by index entries, then sled is flushed. A crash anywhere leaves every chunk either
//! still in sled or in a durable segment with its entry, never neither; bytes appended
//! by an interrupted step are unused and leave with their file, and the next open
//! continues with the values still in sled. Reads understand both kinds of value, so a
//! store whose migration cannot finish (no space) stays readable.
//!
//! sled gives the pages of the replaced values back to the file system only as it
//! rewrites its own files, so the directory is larger than before for a while after the
//! migration; retention measures it as it is.

use std::ops::Bound;

use super::segment::{Segments, Stored};
use super::space::Reserve;
use super::StoreError;

/// Chunks moved per step, at most.
const STEP_CHUNKS: usize = 500;
/// Chunk bytes moved per step, at most (the step is held in memory).
const STEP_BYTES: usize = 8 << 20;

/// Moves every chunk kept in a sled value into its segment file; returns how many moved.
pub fn to_segments(
    db: &sled::Db,
    chunks: &sled::Tree,
    segments: &Segments,
    reserve: &Reserve,
) -> Result<usize, StoreError> {
    let mut moved = 0;
    let mut after: Option<sled::IVec> = None;
    loop {
        let (keys, values) = next_step(chunks, after.as_ref())?;
        let Some(last) = keys.last() else { break };
        after = Some(last.clone());
        reserve.check()?;
        let entries = segments.append(reserve, &values)?;
        let mut batch = sled::Batch::default();
        for (k, e) in keys.iter().zip(&entries) {
            batch.insert(k, &e.encode()[..]);
        }
        if let Err(e) = chunks.apply_batch(batch) {
            segments.forget(&entries);
            return Err(e.into());
        }
        db.flush()?;
        moved += keys.len();
    }
    Ok(moved)
}

/// The next chunks after `after` whose bytes are still in sled.
type Step = (Vec<sled::IVec>, Vec<Vec<u8>>);

fn next_step(chunks: &sled::Tree, after: Option<&sled::IVec>) -> Result<Step, StoreError> {
    let from = match after {
        Some(k) => Bound::Excluded(k.clone()),
        None => Bound::Unbounded,
    };
    let (mut keys, mut values, mut bytes) = (Vec::new(), Vec::new(), 0);
    for item in chunks.range::<sled::IVec, _>((from, Bound::Unbounded)) {
        let (k, v) = item?;
        match Stored::of(&v) {
            Ok(Stored::Inline(bytes_of)) => {
                bytes += bytes_of.len();
                values.push(bytes_of.to_vec());
                keys.push(k);
            }
            Ok(Stored::Segment(_)) => {}
            // Left where it is: reads report it, as they did before.
            Err(e) => tracing::error!(key = ?k, error = %e, "unreadable chunk not migrated"),
        }
        if keys.len() >= STEP_CHUNKS || bytes >= STEP_BYTES {
            break;
        }
    }
    Ok((keys, values))
}

#[cfg(test)]
mod tests {
    use crate::store::chunk;
    use crate::store::codec::Point;
    use crate::store::segment::{Segments, Stored};
    use crate::store::{Reserve, Store, StoreOptions};

    fn points(sensor: u32, hour: i64) -> Vec<Point> {
        (0..600)
            .map(|i| Point {
                ts_ms: hour * 3_600_000 + i * 1000,
                value: f64::from(sensor) + i as f64 / 10.0,
                quality: 0,
            })
            .collect()
    }

    /// A schema 1 store: chunk bytes as sled values.
    fn write_v1(dir: &std::path::Path, sensors: u32, hours: i64) {
        let db = sled::open(dir).unwrap();
        db.open_tree("meta")
            .unwrap()
            .insert(b"schema", &1u64.to_be_bytes())
            .unwrap();
        let chunks = db.open_tree("chunks").unwrap();
        for s in 0..sensors {
            for h in 0..hours {
                let pts = points(s, h);
                chunks
                    .insert(
                        chunk::key(s, pts[0].ts_ms, (s as u64) << 8 | h as u64),
                        chunk::encode(&pts),
                    )
                    .unwrap();
            }
        }
        db.flush().unwrap();
    }

    fn assert_all_read_back(store: &Store, sensors: u32, hours: i64) {
        for s in 0..sensors {
            let got = store.read(s, 0, i64::MAX).unwrap();
            assert_eq!(got.len(), 600 * hours as usize, "sensor {s}");
            assert_eq!(got[599].value, f64::from(s) + 59.9);
        }
    }

    #[test]
    fn a_schema_1_store_moves_its_chunks_into_segments() {
        let dir = tempfile::tempdir().unwrap();
        write_v1(dir.path(), 30, 3);
        let store = crate::store::tests::reopen(dir.path(), StoreOptions::default());
        assert_all_read_back(&store, 30, 3);
        let files = std::fs::read_dir(dir.path().join("segments")).unwrap().count();
        assert_eq!(files, 3);
        for v in store.inner.chunks.iter().values() {
            assert!(matches!(Stored::of(&v.unwrap()), Ok(Stored::Segment(_))));
        }
        let schema = store.inner.meta.get(b"schema").unwrap().unwrap();
        assert_eq!(schema.as_ref(), &2u64.to_be_bytes());
        drop(store);
        let store = crate::store::tests::reopen(dir.path(), StoreOptions::default());
        assert_all_read_back(&store, 30, 3);
    }

    /// A migration cut short (some values moved, bytes of an unfinished step appended but
    /// never indexed) continues at the next open and loses nothing.
    #[test]
    fn an_interrupted_migration_continues() {
        let dir = tempfile::tempdir().unwrap();
        write_v1(dir.path(), 4, 2);
        {
            // sled may hold the lock of the database write_v1 dropped for a moment.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            let db = loop {
                match sled::open(dir.path()) {
                    Ok(db) => break db,
                    Err(_) if std::time::Instant::now() < deadline => {
                        std::thread::sleep(std::time::Duration::from_millis(20));
                    }
                    Err(e) => panic!("{e}"),
                }
            };
            let chunks = db.open_tree("chunks").unwrap();
            let segments = Segments::open(dir.path(), &chunks).unwrap();
            let reserve = Reserve::of(dir.path());
            let (k, v) = chunks.iter().next().unwrap().unwrap();
            let e = segments.append(&reserve, &[v.to_vec()]).unwrap();
            chunks.insert(k, &e[0].encode()[..]).unwrap();
            let (_, v2) = chunks.iter().nth(1).unwrap().unwrap();
            segments.append(&reserve, &[v2.to_vec()]).unwrap();
            db.flush().unwrap();
        }
        let store = crate::store::tests::reopen(dir.path(), StoreOptions::default());
        assert_all_read_back(&store, 4, 2);
    }
}
