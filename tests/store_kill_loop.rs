//! Crash safety of the store under `kill -9` at random points: `forewarn import` is killed
//! again and again while it writes (sealing chunks and fsyncing as it goes). After every
//! kill the database must open, and every row the process reported durable must be there,
//! value for value.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use forewarn::store::{Store, StoreOptions};

const ROUNDS: usize = 20;
const ROWS: usize = 40_000;
const SENSORS: usize = 4;

fn value(round: usize, row: usize, sensor: usize) -> f64 {
    ((round * 7 + row * 3 + sensor * 11) % 1000) as f64 / 10.0
}

#[test]
fn nothing_reported_durable_is_lost_across_20_kills() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("forewarn.toml");
    std::fs::write(
        &config,
        format!(
            "[agent]\nid = \"k\"\ndata_dir = \"{}\"\n[upstream]\nbroker = \"mqtt://127.0.0.1:1\"\n[http]\nenabled = false\n",
            data.display()
        ),
    )
    .unwrap();

    let mut durable_rows = Vec::new();
    for round in 0..ROUNDS {
        // Each round has its own day, so rounds never overwrite each other.
        let csv = dir.path().join(format!("round{round}.csv"));
        let mut text = String::from("time");
        for s in 0..SENSORS {
            text += &format!(",s{s}");
        }
        text.push('\n');
        let day0 = 1_700_000_000_000i64 + round as i64 * 86_400_000;
        for row in 0..ROWS {
            text += &(day0 + row as i64 * 1000).to_string();
            for s in 0..SENSORS {
                text += &format!(",{}", value(round, row, s));
            }
            text.push('\n');
        }
        std::fs::write(&csv, text).unwrap();

        let mut child = Command::new(env!("CARGO_BIN_EXE_forewarn"))
            .args(["--log", "warn", "import", "--config"])
            .arg(&config)
            .arg("--csv")
            .arg(&csv)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut durable = 0usize;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("imported ") {
                    durable = rest
                        .split_whitespace()
                        .next()
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(durable);
                }
            }
            durable
        });
        // Kill somewhere between start-up and the end of the import.
        let delay = Duration::from_millis(fastrand::u64(5..400));
        let start = Instant::now();
        while start.elapsed() < delay {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = child.kill();
        let _ = child.wait();
        let durable = reader.join().unwrap();
        durable_rows.push((day0, round, durable));

        // The database opens after every kill.
        let store = Store::open(&data, StoreOptions::default())
            .unwrap_or_else(|e| panic!("round {round}: store does not open: {e}"));
        drop(store);
    }

    let store = Store::open(&data, StoreOptions::default()).unwrap();
    let mut checked = 0;
    for (day0, round, durable) in &durable_rows {
        for s in 0..SENSORS {
            let Some(id) = store.lookup_sensor(&format!("s{s}")).unwrap() else {
                assert_eq!(
                    *durable, 0,
                    "round {round}: sensor s{s} unknown but {durable} rows reported durable"
                );
                continue;
            };
            let got = store.read(id, *day0, day0 + 86_400_000 - 1).unwrap();
            assert!(
                got.len() >= *durable,
                "round {round} s{s}: {} rows stored, {durable} reported durable",
                got.len()
            );
            for (row, sample) in got.iter().take(*durable).enumerate() {
                assert_eq!(sample.ts_ms, day0 + row as i64 * 1000, "round {round} s{s} row {row}");
                assert_eq!(sample.value, value(*round, row, s), "round {round} s{s} row {row}");
            }
            checked += durable;
        }
    }
    eprintln!(
        "durable rows per round: {:?}",
        durable_rows.iter().map(|(_, _, d)| d).collect::<Vec<_>>()
    );
    // The kills must not all have come before the first durable point: the test would
    // then prove nothing.
    assert!(
        durable_rows.iter().filter(|(_, _, d)| *d > 0).count() >= ROUNDS / 4,
        "{durable_rows:?}"
    );
    assert!(checked > 0);
}
