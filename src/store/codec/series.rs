//! The integer series coder behind timestamps, decimal values and the
//! dictionary's parts. Each chunk gets its own model, because sensors differ
//! too much for fixed ones: a common unit divided out of the offsets from the
//! first item (whole seconds, ADC steps), the cheapest predictor, Rice
//! parameters fitted to the residuals, zero runs when residuals are mostly
//! zero (regular ticks, flat values), and for decimal values a frequency-ranked
//! dictionary when few distinct values occur. The encoder tries the options
//! and keeps the smallest; the reader follows whatever the header says.

use super::bits::{BitReader, BitWriter};
use super::rice::{best_rice, read_rice, write_rice};
use super::{unzigzag, zigzag, CodecError, Result};

/// Longest series that may use zero runs (below one bit per sample).
pub(super) const MAX_SPARSE: usize = 1 << 16;

fn predict(order: u64, p1: i64, p2: i64, step: i64) -> i64 {
    match order {
        0 => 0,
        1 => p1,
        2 => p1.wrapping_mul(2).wrapping_sub(p2),
        _ => p1.wrapping_add(step),
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn write_uvar(w: &mut BitWriter, v: u64) {
    let len = 64 - v.leading_zeros();
    w.write(u64::from(len), 7);
    w.write(v, len);
}

fn read_uvar(rd: &mut BitReader) -> Result<u64> {
    match rd.read(7)? as u32 {
        len @ 0..=64 => rd.read(len),
        _ => Err(CodecError::Corrupt("bad bit length")),
    }
}

/// Writes whichever of the plain and the dictionary form is smaller.
pub(super) fn write_series(w: &mut BitWriter, ks: &[i64], orders: &[u64], allow_dict: bool) {
    let plain = plain_series(ks, ks.first().copied().unwrap_or(0), orders);
    match allow_dict.then(|| dict_series(ks, plain.bit_len())).flatten() {
        Some(dict) if dict.bit_len() < plain.bit_len() => {
            w.write(1, 1);
            w.append(&dict);
        }
        _ => {
            w.write(0, 1);
            w.append(&plain);
        }
    }
}

/// Frequency-ranked indices make few-valued sensors (states, ADC levels)
/// cost about their entropy, which predictors on k cannot reach.
fn dict_series(ks: &[i64], plain_bits: usize) -> Option<BitWriter> {
    let mut sorted = ks.to_vec();
    sorted.sort_unstable();
    let mut counts: Vec<(i64, usize)> = Vec::new();
    for k in sorted {
        match counts.last_mut() {
            Some((v, c)) if *v == k => *c += 1,
            _ => counts.push((k, 1)),
        }
    }
    // The indices cannot cost less than their entropy: skip hopeless cases
    // before paying for the encoding.
    let n = ks.len() as f64;
    let entropy: f64 = counts.iter().map(|&(_, c)| c as f64 * (n / c as f64).log2()).sum();
    if counts.is_empty() || counts.len() > ks.len() / 4 || entropy >= plain_bits as f64 {
        return None;
    }
    let mut by_freq: Vec<usize> = (0..counts.len()).collect();
    by_freq.sort_by_key(|&i| std::cmp::Reverse(counts[i].1));
    let mut rank = vec![0; counts.len()];
    for (r, &i) in by_freq.iter().enumerate() {
        rank[i] = r as i64;
    }
    let lookup = |k: &i64| counts.binary_search_by_key(k, |c| c.0).map_or(0, |i| rank[i]);
    let idx: Vec<i64> = ks.iter().map(lookup).collect();
    let values: Vec<i64> = by_freq.iter().map(|&i| counts[i].0).collect();
    let mut w = BitWriter::default();
    write_uvar(&mut w, values.len() as u64);
    write_series(&mut w, &values, &[0, 1], false);
    w.write(0, 1);
    w.append(&plain_series(&idx, 0, &[0, 1, 2]));
    Some(w)
}

/// Divides out the largest common unit of the steps (whole seconds, ADC
/// levels) and codes the rest with the cheapest predictor in `orders`.
fn plain_series(ks: &[i64], base: i64, orders: &[u64]) -> BitWriter {
    let mut unit = 0;
    for k in ks {
        unit = gcd(unit, k.wrapping_sub(base).unsigned_abs());
        if unit == 1 {
            break;
        }
    }
    let unit = unit.max(1);
    // unit == 2^63 only when every offset is 0 or i64::MIN; wrapping_div still divides.
    let s: Vec<i64> = ks
        .iter()
        .map(|k| k.wrapping_sub(base).wrapping_div(unit as i64))
        .collect();
    // Long series stay dense, which keeps the decoder's bound on n valid.
    let sparse_ok = s.len() <= MAX_SPARSE;
    let mut best = (u64::MAX, 0, 0, Vec::new());
    for &order in orders {
        let step = if order == 3 { median_step(&s) } else { 0 };
        let (mut p1, mut p2) = (0, 0);
        let mut zs = Vec::with_capacity(s.len());
        for (i, &v) in s.iter().enumerate() {
            let pred = if i == 0 { 0 } else { predict(order, p1, p2, step) };
            zs.push(zigzag(v.wrapping_sub(pred)));
            (p2, p1) = (p1, v);
        }
        let cost = rice_plan(&zs, sparse_ok).0;
        if cost < best.0 {
            best = (cost, order, step, zs);
        }
    }
    let (_, order, step, zs) = best;
    let (_, r, r0) = rice_plan(&zs, sparse_ok);
    let mut w = BitWriter::default();
    write_uvar(&mut w, zigzag(base));
    write_uvar(&mut w, unit);
    w.write(order, 2);
    if order == 3 {
        write_uvar(&mut w, zigzag(step));
    }
    w.write(u64::from(r), 6);
    w.write(u64::from(r0.is_some()), 1);
    let Some(r0) = r0 else {
        zs.iter().for_each(|&z| write_rice(&mut w, z, r));
        return w;
    };
    w.write(u64::from(r0), 6);
    let (runs, nonzero) = split_runs(&zs);
    for (i, &run) in runs.iter().enumerate() {
        write_rice(&mut w, run, r0);
        if let Some(&z) = nonzero.get(i) {
            write_rice(&mut w, z, r);
        }
    }
    w
}

/// (bits, r, Some(r0) when zero runs pay off): dense codes every residual;
/// sparse codes zero-run lengths with r0, each nonzero residual minus one with r.
fn rice_plan(zs: &[u64], sparse_ok: bool) -> (u64, u32, Option<u32>) {
    let (r, dense) = best_rice(zs);
    let (runs, nonzero) = split_runs(zs);
    let ((r0, c0), (r1, c1)) = (best_rice(&runs), best_rice(&nonzero));
    match sparse_ok && c0 + c1 + 6 < dense {
        true => (c0 + c1 + 6, r1, Some(r0)),
        false => (dense, r, None),
    }
}

/// Splits residuals into zero-run lengths, each followed by one nonzero
/// residual minus one, except possibly the final run.
fn split_runs(zs: &[u64]) -> (Vec<u64>, Vec<u64>) {
    let (mut runs, mut nonzero, mut run) = (Vec::new(), Vec::new(), 0);
    for &z in zs {
        if z == 0 {
            run += 1;
            continue;
        }
        runs.push(run);
        nonzero.push(z - 1);
        run = 0;
    }
    if run > 0 {
        runs.push(run);
    }
    (runs, nonzero)
}

fn median_step(s: &[i64]) -> i64 {
    let mut steps: Vec<i64> = s.windows(2).map(|w| w[1].wrapping_sub(w[0])).collect();
    let mid = steps.len() / 2;
    if steps.is_empty() {
        return 0;
    }
    *steps.select_nth_unstable(mid).1
}

pub(super) struct SeriesReader {
    base: i64,
    unit: i64,
    order: u64,
    step: i64,
    r: u32,
    /// Rice parameter of zero-run lengths, for sparse series.
    r0: Option<u32>,
    /// Zeros left in the current run, or None when a run length is due.
    zeros: Option<u64>,
    started: bool,
    p1: i64,
    p2: i64,
    dict: Vec<i64>,
}

impl SeriesReader {
    pub(super) fn new(rd: &mut BitReader, allow_dict: bool) -> Result<Self> {
        if rd.read(1)? == 1 {
            let m = read_uvar(rd)?;
            // Distinct entries cost a bit each, so this bounds the allocation.
            if !allow_dict || m == 0 || m > rd.bits_left() {
                return Err(CodecError::Corrupt("bad dictionary"));
            }
            let mut entries = SeriesReader::new(rd, false)?;
            let dict = (0..m).map(|_| entries.next(rd)).collect::<Result<_>>()?;
            let mut idx = SeriesReader::new(rd, false)?;
            idx.dict = dict;
            return Ok(idx);
        }
        let base = unzigzag(read_uvar(rd)?);
        let unit = read_uvar(rd)?;
        if unit == 0 || unit > 1 << 63 {
            return Err(CodecError::Corrupt("bad series unit"));
        }
        let order = rd.read(2)?;
        let step = if order == 3 { unzigzag(read_uvar(rd)?) } else { 0 };
        let r = rd.read(6)? as u32;
        let r0 = if rd.read(1)? == 1 {
            Some(rd.read(6)? as u32)
        } else {
            None
        };
        let unit = unit as i64;
        let (zeros, started, p1, p2, dict) = (None, false, 0, 0, Vec::new());
        Ok(Self {
            base,
            unit,
            order,
            step,
            r,
            r0,
            zeros,
            started,
            p1,
            p2,
            dict,
        })
    }

    fn residual(&mut self, rd: &mut BitReader) -> Result<u64> {
        let Some(r0) = self.r0 else {
            return read_rice(rd, self.r);
        };
        let zeros = match self.zeros {
            Some(z) => z,
            None => read_rice(rd, r0)?,
        };
        if zeros > 0 {
            self.zeros = Some(zeros - 1);
            return Ok(0);
        }
        self.zeros = None;
        // Wrapping only matters for corrupt input, which then decodes to junk.
        Ok(read_rice(rd, self.r)?.wrapping_add(1))
    }

    pub(super) fn next(&mut self, rd: &mut BitReader) -> Result<i64> {
        let z = self.residual(rd)?;
        let pred = if self.started {
            predict(self.order, self.p1, self.p2, self.step)
        } else {
            0
        };
        let s = pred.wrapping_add(unzigzag(z));
        (self.started, self.p2, self.p1) = (true, self.p1, s);
        let k = self.base.wrapping_add(self.unit.wrapping_mul(s));
        if self.dict.is_empty() {
            return Ok(k);
        }
        let entry = usize::try_from(k).ok().and_then(|i| self.dict.get(i));
        entry
            .copied()
            .ok_or(CodecError::Corrupt("dictionary index out of range"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_timestamps_are_nearly_free() {
        let bits = |ts: &[i64]| {
            let mut w = BitWriter::default();
            write_series(&mut w, ts, &[2, 3], false);
            w.bit_len()
        };
        let ts: Vec<i64> = (0..3600).map(|i| 1_600_000_000_123 + i * 1000).collect();
        assert!(bits(&ts) < 3600 * 8 / 5, "1 Hz: < 0.2 bytes/sample");
        // SKAB-like: whole seconds with a 2 s gap every ~20 samples.
        let gappy: Vec<i64> = (0..3600).map(|i| i * 1000 + i / 20 * 1000).collect();
        assert!(bits(&gappy) < 3600 / 2);
    }
}
