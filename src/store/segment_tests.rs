use super::*;
use crate::store::codec::Point;

fn chunk_at(start_ms: i64, n: i64) -> Vec<u8> {
    let pts: Vec<Point> = (0..n)
        .map(|i| Point {
            ts_ms: start_ms + i * 1000,
            value: i as f64,
            quality: 0,
        })
        .collect();
    chunk::encode(&pts)
}

fn open(dir: &Path) -> (sled::Db, sled::Tree, Segments) {
    let db = sled::Config::new().path(dir.join("db")).open().unwrap();
    let index = db.open_tree("chunks").unwrap();
    let segments = Segments::open(dir, &index).unwrap();
    (db, index, segments)
}

#[test]
fn periods_are_utc_hours_and_negative_times_floor() {
    assert_eq!(period_of(0), 0);
    assert_eq!(period_of(3_599_999), 0);
    assert_eq!(period_of(3_600_000), 3_600_000);
    assert_eq!(period_of(-1), -3_600_000);
}

#[test]
fn entries_round_trip_and_other_values_are_not_entries() {
    let e = Entry {
        segment: -3_600_000,
        offset: 1 << 40,
        len: 1234,
        header: Header {
            count: 7,
            first_ms: -5,
            last_ms: 9,
            crc: 0xdead_beef,
        },
    };
    assert_eq!(Entry::decode(&e.encode()).unwrap(), e);
    let v1 = chunk_at(0, 10);
    assert!(matches!(Stored::of(&v1), Ok(Stored::Inline(_))));
    assert!(Stored::of(&e.encode()[..10]).is_err());
}

#[test]
fn chunks_go_to_the_file_of_their_hour_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, _index, segs) = open(dir.path());
    let reserve = Reserve::of(dir.path());
    let values = vec![chunk_at(10_000, 50), chunk_at(PERIOD_MS + 5, 20), chunk_at(20_000, 30)];
    let entries = segs.append(&reserve, &values).unwrap();
    assert_eq!(entries.len(), 3);
    assert_eq!(segs.on_disk().unwrap(), vec![0, PERIOD_MS]);
    assert_eq!(
        (entries[0].segment, entries[1].segment, entries[2].segment),
        (0, PERIOD_MS, 0)
    );
    for (e, v) in entries.iter().zip(&values) {
        assert_eq!(&segs.read(e).unwrap(), v);
    }
    assert_eq!((segs.live(0), segs.live(PERIOD_MS)), (2, 1));
}

#[test]
fn a_file_goes_only_when_its_last_entry_is_released() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, _index, segs) = open(dir.path());
    let reserve = Reserve::of(dir.path());
    let entries = segs.append(&reserve, &[chunk_at(0, 10), chunk_at(60_000, 10)]).unwrap();
    segs.released(&[0]).unwrap();
    assert_eq!(segs.delete_empty(&segs.emptied()).unwrap(), 0);
    assert!(segs.read(&entries[1]).is_ok());
    segs.released(&[0]).unwrap();
    // A late chunk of the same hour arrives before the deletion: the file stays.
    let late = segs.append(&reserve, &[chunk_at(120_000, 10)]).unwrap();
    assert_eq!(segs.delete_empty(&segs.emptied()).unwrap(), 0);
    assert!(segs.read(&late[0]).is_ok());
    segs.released(&[0]).unwrap();
    assert_eq!(segs.delete_empty(&segs.emptied()).unwrap(), 1);
    assert!(segs.on_disk().unwrap().is_empty());
    assert!(matches!(segs.read(&late[0]), Err(StoreError::Segment { .. })));
}

#[test]
fn a_truncated_or_overwritten_segment_is_reported_per_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, _index, segs) = open(dir.path());
    let reserve = Reserve::of(dir.path());
    let entries = segs.append(&reserve, &[chunk_at(0, 100), chunk_at(1000, 100)]).unwrap();
    let path = dir.path().join("segments/0.seg");
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(entries[1].offset + 10).unwrap();
    assert!(segs.read(&entries[0]).is_ok());
    assert!(matches!(segs.read(&entries[1]), Err(StoreError::Corrupt(_))));
    let wrong = Entry {
        offset: 1,
        ..entries[0]
    };
    assert!(segs.read(&wrong).is_err());
}

#[test]
fn files_no_entry_points_at_are_deleted_before_the_first_write() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (_db, index, segs) = open(dir.path());
        let reserve = Reserve::of(dir.path());
        let kept = segs.append(&reserve, &[chunk_at(0, 10)]).unwrap();
        index.insert(b"k", &kept[0].encode()[..]).unwrap();
        // Appended, then a crash before the index transaction.
        segs.append(&reserve, &[chunk_at(5 * PERIOD_MS, 10)]).unwrap();
        index.flush().unwrap();
    }
    let (_db, _index, segs) = open(dir.path());
    // Opening alone scans nothing.
    assert_eq!(segs.on_disk().unwrap(), vec![0, 5 * PERIOD_MS]);
    segs.prepare().unwrap();
    assert_eq!(segs.on_disk().unwrap(), vec![0]);
    assert_eq!(segs.live(0), 1);
}
