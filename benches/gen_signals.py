#!/usr/bin/env python3
"""Synthetic sensor signals for benches/store_vs_influxdb.sh.

Writes, into OUT_DIR:
  wide.csv       time column `time` (YYYY-MM-DD HH:MM:SS, UTC) + one column per sensor s0..sN-1
  lp/NNNNNN.lp   the same samples as InfluxDB line protocol, `m,sensor=sK value=V T`
                 (T in seconds), time-ordered (every sensor at t, then t+1, ...), in batch
                 files of --batch-lines lines (rounded down to whole rows)
  meta.json      sizes, start/end times and the signal parameters

Each sensor is a slow drift plus noise, quantised like a real sensor's display/ADC step:
  v(t) = base + A*sin(2*pi*t/P + phi) + random_walk(t) + N(0, sigma)
with P uniform in 1..6 h, A = 20..400 quanta, a random walk of 0.02..0.2 quanta/sqrt(s),
sigma = 0.5..3 quanta, and the quantum 0.1 (60 % of the sensors, 1 decimal) or 0.01
(40 %, 2 decimals). Everything comes from one seeded generator, so a given
(--sensors, --seconds, --seed) always gives byte-identical files.

Usage: gen_signals.py OUT_DIR [--sensors 500] [--seconds 86400] [--seed 20240101]
                              [--start 1704067200] [--batch-lines 10000]
Needs numpy.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

BLOCK_ROWS = 1800  # rows turned into text at a time (bounds memory for the string matrix)


def sensor_params(rng, n):
    quantum = np.where(rng.random(n) < 0.6, 0.1, 0.01)
    decimals = np.where(quantum == 0.1, 1, 2)
    # Typical ranges: a base level of 0..100 units (temperatures, pressures, flows...)
    base = np.round(rng.uniform(0.0, 100.0, n), 1)
    amp = rng.uniform(20, 400, n) * quantum
    period = rng.uniform(3600, 6 * 3600, n)
    phase = rng.uniform(0, 2 * np.pi, n)
    walk = rng.uniform(0.02, 0.2, n) * quantum
    sigma = rng.uniform(0.5, 3.0, n) * quantum
    return quantum, decimals, base, amp, period, phase, walk, sigma


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir")
    ap.add_argument("--sensors", type=int, default=500)
    ap.add_argument("--seconds", type=int, default=86400)
    ap.add_argument("--seed", type=int, default=20240101)
    ap.add_argument("--start", type=int, default=1704067200, help="epoch seconds of the first row (2024-01-01 00:00:00 UTC)")
    ap.add_argument("--batch-lines", type=int, default=10000)
    a = ap.parse_args()

    t0 = time.monotonic()
    n, secs = a.sensors, a.seconds
    os.makedirs(os.path.join(a.out_dir, "lp"), exist_ok=True)
    rng = np.random.default_rng(a.seed)
    quantum, decimals, base, amp, period, phase, walk, sigma = sensor_params(rng, n)

    # Integer codes (value / quantum), one row per sensor. int32 keeps 500 x 86400 at 173 MB.
    t = np.arange(secs, dtype=np.float64)
    codes = np.empty((n, secs), dtype=np.int32)
    for i in range(n):
        v = base[i] + amp[i] * np.sin(2 * np.pi * t / period[i] + phase[i])
        v += np.cumsum(rng.normal(0.0, walk[i], secs))
        v += rng.normal(0.0, sigma[i], secs)
        codes[i] = np.rint(v / quantum[i]).astype(np.int32)

    # Text of each sensor's distinct values, formatted once: str_cols[i][k] is the cell text.
    tables, index = [], []
    for i in range(n):
        uniq, inv = np.unique(codes[i], return_inverse=True)
        d = int(decimals[i])
        scale = 10 ** d
        tables.append(np.array([f"{c / scale:.{d}f}" for c in uniq.tolist()], dtype=object))
        index.append(inv.astype(np.int32))
    del codes

    names = [f"s{i}" for i in range(n)]
    prefixes = [f"m,sensor={name} value=" for name in names]
    rows_per_batch = max(1, a.batch_lines // n)
    batch_no, batch_buf, batch_rows = 0, [], 0
    lp_dir = os.path.join(a.out_dir, "lp")

    def flush_batch():
        nonlocal batch_no, batch_buf, batch_rows
        if batch_buf:
            with open(os.path.join(lp_dir, f"{batch_no:06d}.lp"), "w") as f:
                f.write("".join(batch_buf))
            batch_no += 1
            batch_buf, batch_rows = [], 0

    with open(os.path.join(a.out_dir, "wide.csv"), "w", buffering=1 << 22) as csv:
        csv.write("time," + ",".join(names) + "\n")
        for r0 in range(0, secs, BLOCK_ROWS):
            r1 = min(secs, r0 + BLOCK_ROWS)
            block = np.empty((n, r1 - r0), dtype=object)
            for i in range(n):
                block[i] = tables[i][index[i][r0:r1]]
            rows = block.T.tolist()
            out = []
            for k, row in enumerate(rows):
                ts = a.start + r0 + k
                out.append(time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)) + "," + ",".join(row) + "\n")
                sfx = f" {ts}\n"
                batch_buf.append("".join([p + v + sfx for p, v in zip(prefixes, row)]))
                batch_rows += 1
                if batch_rows >= rows_per_batch:
                    flush_batch()
            csv.write("".join(out))
        flush_batch()

    meta = {
        "sensors": n,
        "seconds": secs,
        "samples": n * secs,
        "start_epoch_s": a.start,
        "end_epoch_s": a.start + secs,
        "seed": a.seed,
        "lp_files": batch_no,
        "lp_lines_per_file": rows_per_batch * n,
        "quantum_0.1_sensors": int((quantum == 0.1).sum()),
        "quantum_0.01_sensors": int((quantum == 0.01).sum()),
        "csv_bytes": os.path.getsize(os.path.join(a.out_dir, "wide.csv")),
        "generate_seconds": round(time.monotonic() - t0, 1),
    }
    with open(os.path.join(a.out_dir, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(json.dumps(meta), file=sys.stderr)


if __name__ == "__main__":
    main()
