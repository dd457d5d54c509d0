use super::*;

fn small_seal() -> StoreOptions {
    StoreOptions {
        cache_bytes: 1 << 20,
        seal: SealPolicy {
            max_unsealed: 50,
            max_age: Duration::from_secs(3600),
            min_chunk: 10,
        },
    }
}

#[test]
fn flushed_samples_survive_reopen_sealed_or_not() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), small_seal()).unwrap();
        let a = store.sensor_id("a").unwrap();
        let b = store.sensor_id("b").unwrap();
        assert_ne!(a, b);
        for i in 0..100 {
            store.append(&[Sample::good(a, i * 1000, i as f64)]);
            if i % 3 == 0 {
                store.append(&[Sample::bad(b, i * 1000, Quality::Timeout)]);
            }
            store.flush().unwrap();
        }
        store.append(&[Sample::good(a, 999_999, 1.0)]); // never flushed
    }
    let store = Store::open(dir.path(), small_seal()).unwrap();
    assert_eq!(store.lookup_sensor("a").unwrap(), Some(0));
    let a = store.read(0, 0, i64::MAX).unwrap();
    assert_eq!(a.len(), 100);
    assert!(a.windows(2).all(|w| w[0].ts_ms < w[1].ts_ms));
    assert_eq!(a[42].value, 42.0);
    let b = store.read(1, 0, i64::MAX).unwrap();
    assert_eq!(b.len(), 34);
    assert!(b.iter().all(|s| s.quality == Quality::Timeout && s.value.is_nan()));
    assert_eq!(store.read(0, 10_000, 12_000).unwrap().len(), 3);
}

#[test]
fn duplicates_merge_last_wins() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), small_seal()).unwrap();
    let s = store.sensor_id("x").unwrap();
    for round in 0..3 {
        for i in 0..30 {
            store.append(&[Sample::good(s, i * 1000, round as f64)]);
        }
        store.flush().unwrap();
    }
    let got = store.read(s, 0, i64::MAX).unwrap();
    assert_eq!(got.len(), 30);
    assert!(got.iter().all(|x| x.value == 2.0));
}

#[test]
fn a_corrupt_chunk_does_not_hide_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), small_seal()).unwrap();
    let s = store.sensor_id("x").unwrap();
    for i in 0..60 {
        store.append(&[Sample::good(s, i * 1000, 1.0)]);
    }
    store.flush().unwrap(); // 60 >= max_unsealed: sealed into one chunk
    for i in 60..120 {
        store.append(&[Sample::good(s, i * 1000, 2.0)]);
    }
    store.flush().unwrap();
    let (_, v) = store.inner.chunks.iter().next().unwrap().unwrap();
    let Ok(Stored::Segment(e)) = Stored::of(&v) else {
        panic!("a sealed chunk is an index entry")
    };
    let path = dir.path().join(format!("segments/{}.seg", e.segment));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[(e.offset + u64::from(e.len) - 1) as usize] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let got = store.read(s, 0, i64::MAX).unwrap();
    assert_eq!(got.len(), 60);
    assert!(got.iter().all(|x| x.value == 2.0));
}

/// Opens again a store just dropped: sled's background writers may hold its file lock
/// for a moment after the last handle is gone.
pub(crate) fn reopen(dir: &Path, opts: StoreOptions) -> Store {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match Store::open(dir, opts) {
            Ok(store) => return store,
            Err(e) if Instant::now() < deadline && e.to_string().contains("lock") => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("{e}"),
        }
    }
}

/// A small tmpfs at `at`, unmounted on drop; `None` where mounting is not allowed.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size_kib: u64) -> Option<Tmpfs> {
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_kib}k"), "tmpfs"])
            .arg(at)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(at.to_path_buf()))
    }

    /// Writes one file until the filesystem is full.
    fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.0.join("filler")).unwrap();
        let block = vec![0x5Au8; 64 << 10];
        while f.write_all(&block).is_ok() {}
        let small = [0u8; 512];
        while f.write_all(&small).is_ok() {}
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A segment write that meets a full disk (the reserve checked, then another process
/// took the space) is reported as no space, and the WAL records it would have replaced
/// stay: nothing is lost, and the seal succeeds once space is back.
#[test]
fn a_segment_write_on_a_full_disk_keeps_the_wal_records() {
    let dir = tempfile::tempdir().unwrap();
    let Some(fs) = Tmpfs::mount(dir.path(), 16 << 10) else {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let data = dir.path().join("data");
    let opts = StoreOptions {
        cache_bytes: 1 << 20,
        seal: SealPolicy {
            max_unsealed: 1000,
            max_age: Duration::from_millis(200),
            min_chunk: 10,
        },
    };
    {
        let mut store = Store::open(&data, opts).unwrap();
        let inner = Arc::get_mut(&mut store.inner).unwrap();
        inner.reserve = Reserve::with_min_free(&data, 0);
        let s = store.sensor_id("x").unwrap();
        for i in 0..40 {
            store.append(&[Sample::good(s, i * 1000, i as f64)]);
        }
        assert_eq!(store.flush().unwrap().sealed_chunks, 0);
        fs.fill();
        std::thread::sleep(Duration::from_millis(250));
        let err = store.flush().unwrap_err();
        assert!(matches!(err, StoreError::NoSpace { .. }), "{err}");
        assert_eq!(store.read(s, 0, i64::MAX).unwrap().len(), 40);
    }
    std::fs::remove_file(dir.path().join("filler")).unwrap();
    let store = reopen(&data, opts);
    assert_eq!(store.read(0, 0, i64::MAX).unwrap().len(), 40, "replayed from the WAL");
    std::thread::sleep(Duration::from_millis(250));
    assert_eq!(store.flush().unwrap().sealed_chunks, 1);
    drop(store);
    let store = reopen(&data, opts);
    assert_eq!(store.read(0, 0, i64::MAX).unwrap().len(), 40);
    assert!(store.inner.wal.is_empty());
}
