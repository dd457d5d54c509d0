//! Archives: sealed chunks exported to plain files before retention evicts them, so that
//! losing the online copy never means losing the data.
//!
//! Layout: `ARCHIVE_DIR/<sensor name>/<YYYY-MM-DD>.fwc` (the UTC day of the chunk's first
//! sample), each file a sequence of records `u32 length (LE) ‖ chunk`, where a chunk is
//! exactly what the store's segment files hold (header with count, time span and
//! CRC-32, then the compressed payload). Files are appended and fsynced before the chunk leaves the store.
//! `forewarn import --archive DIR` puts them back.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::{chunk, Store, StoreError};

fn io(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Db(format!("{}: {e}", path.display()))
}

/// Appends one chunk to its archive file and fsyncs it.
pub fn append(dir: &Path, sensor: &str, value: &[u8]) -> Result<PathBuf, StoreError> {
    let header = chunk::header(value)?;
    let sensor_dir = dir.join(sensor);
    let created = !sensor_dir.exists();
    fs::create_dir_all(&sensor_dir).map_err(|e| io(&sensor_dir, e))?;
    let path = sensor_dir.join(format!("{}.fwc", crate::base::time::format_date(header.first_ms)));
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| io(&path, e))?;
    let mut record = Vec::with_capacity(4 + value.len());
    record.extend_from_slice(&(value.len() as u32).to_le_bytes());
    record.extend_from_slice(value);
    f.write_all(&record).map_err(|e| io(&path, e))?;
    f.sync_all().map_err(|e| io(&path, e))?;
    if created {
        // A new directory entry is durable only once its parent is synced.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(path)
}

/// What a restore did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Restored {
    pub files: usize,
    pub chunks: usize,
    pub samples: u64,
    /// Records that failed their checksum or were cut short; skipped.
    pub damaged: usize,
}

/// The records of one archive file that pass their checksum; damaged ones are counted
/// in `done` and skipped, and a record cut short ends the file.
fn records(path: &Path, bytes: &[u8], done: &mut Restored) -> Vec<Vec<u8>> {
    let mut valid = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 4 {
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let Some(value) = rest.get(4..4 + len) else {
            tracing::error!(file = %path.display(), "archive record cut short; skipping the rest of the file");
            done.damaged += 1;
            break;
        };
        match chunk::decode(value) {
            Ok(_) => valid.push(value.to_vec()),
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "damaged archive record skipped");
                done.damaged += 1;
            }
        }
        rest = &rest[4 + len..];
    }
    valid
}

/// Loads every archive file under `dir` into `store`, one write (and one fsync of each
/// segment file it touches) per archive file. Chunks already present merge with their
/// copies on read (same timestamps), so restoring twice is harmless.
pub fn restore(dir: &Path, store: &Store) -> Result<Restored, StoreError> {
    let mut done = Restored::default();
    let mut sensors: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    sensors.sort();
    for sensor_dir in sensors.into_iter().filter(|p| p.is_dir()) {
        let Some(name) = sensor_dir.file_name().and_then(|n| n.to_str()).map(str::to_string) else {
            continue;
        };
        let id = store.sensor_id(&name)?;
        let mut files: Vec<PathBuf> = fs::read_dir(&sensor_dir)
            .map_err(|e| io(&sensor_dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "fwc"))
            .collect();
        files.sort();
        for path in files {
            let mut bytes = Vec::new();
            File::open(&path)
                .and_then(|mut f| f.read_to_end(&mut bytes))
                .map_err(|e| io(&path, e))?;
            done.files += 1;
            let valid = records(&path, &bytes, &mut done);
            // One write per file: the chunks share one append and fsync of their segment.
            done.chunks += store.write_encoded_chunks(id, &valid)?;
            done.samples += valid
                .iter()
                .filter_map(|v| chunk::header(v).ok())
                .map(|h| u64::from(h.count))
                .sum::<u64>();
        }
    }
    store.sync()?;
    Ok(done)
}
