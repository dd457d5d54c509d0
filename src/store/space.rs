//! The write reserve: free bytes the store keeps on its filesystem. sled turns a failed
//! write (ENOSPC) into a permanent error for the life of the process, so every writer of
//! the database (samples, chunks, the sensor registry, alert states, the outbox, labels,
//! cursors) asks the same [`Reserve`] first and, below it, waits with what it has in
//! memory instead of letting sled meet a full disk. Appends to segment files ask it too,
//! so that sealing does not take the last bytes sled needs.

use std::path::{Path, PathBuf};

use super::StoreError;

pub use crate::base::names::WRITE_RESERVE;

/// The reserve of one store's filesystem; cheap to clone, one `statvfs` per check.
#[derive(Debug, Clone)]
pub struct Reserve {
    dir: PathBuf,
    min_free: u64,
}

impl Reserve {
    /// The built-in reserve of the filesystem that holds `dir`.
    pub fn of(dir: &Path) -> Reserve {
        Reserve {
            dir: dir.to_path_buf(),
            min_free: WRITE_RESERVE,
        }
    }

    /// A reserve of `min_free` bytes, for tests that let a write meet the full disk.
    #[cfg(test)]
    pub fn with_min_free(dir: &Path, min_free: u64) -> Reserve {
        Reserve {
            dir: dir.to_path_buf(),
            min_free,
        }
    }

    /// Free bytes on the filesystem now (unknown counts as plenty: a check that cannot
    /// read the figure must not stop a working store).
    pub fn free(&self) -> u64 {
        fs2::available_space(&self.dir).unwrap_or(u64::MAX)
    }

    /// `Ok(free)` when a write may go ahead; [`StoreError::NoSpace`] below the reserve.
    pub fn check(&self) -> Result<u64, StoreError> {
        let free = self.free();
        if free < self.min_free {
            Err(StoreError::NoSpace { free })
        } else {
            Ok(free)
        }
    }
}
