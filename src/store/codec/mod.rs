//! Compressing codec for one chunk (typically 100 to 5,000 samples) of ONE
//! sensor's time series: the payload forewarn stores as one sled value.
//!
//! Format 1 (bit fields MSB first; varints are unsigned LEB128):
//!
//! ```text
//! u8      version = 1 (format 0, the old varint/XOR layout, still decodes)
//! varint  n samples; nothing follows when n == 0
//! varint  exception-run count, then per run, byte aligned:
//!         varint gap since the previous run's end | varint (len - 1) << 1 | has_raw
//!         u8 quality of the run | [u64 LE f64 bits of every value in the run if has_raw]
//! bits    timestamps: series (predictor 2 or 3)
//! bits    1 bit value mode
//!         1 = decimal: 1 bit mul, 4 bits d, series of k for each sample not in
//!             a has_raw run; value = k / 10^d, or k * 10^-d if mul; |k| < 2^53
//!         0 = XOR (Gorilla): 64 raw bits, then per value '0' same bits | '10'
//!             XOR inside the previous zero window | '11' 6 bits leading zeros,
//!             6 bits length - 1, the meaningful bits
//! bits    zero padding to a byte boundary; nothing may follow
//!
//! series = 1 bit dictionary flag (set only for decimal values), then
//!   flag 0: V base, V unit, 2 bits predictor, [V step if predictor 3], 6 bits
//!     r, 1 bit sparse, [6 bits r0 if sparse], then the zigzag residuals z of
//!     s = (k - base) / unit against the predictor (0: zero, 1: previous,
//!     2: linear, 3: previous + step; the first item is predicted as 0).
//!     Dense: Rice(z, r) each. Sparse: Rice(zero-run length, r0) and
//!     Rice(z - 1, r) for the nonzero residual that ends the run, alternately.
//!   flag 1: V size m, series of the m distinct k by falling frequency, series
//!     of each item's index in that list
//! V = 7-bit bit length N, then N bits. Rice(z, r): q = z >> r as q ones and a
//! zero, then the r low bits; q >= 16 escapes to 16 ones, 6 bits (bit length
//! - 1), then the bits below the leading one.
//! ```
//!
//! Why: real sensors are quantised and noisy, so their f64 bits look random to
//! XOR while the decimal integers k move by a few units; the encoder still
//! keeps whichever mode is smaller. `k / 10^d` (text) and `k * 10^-d` (Modbus
//! register times scale) disagree on about one value in seven, hence both.
//! Values d cannot reproduce (NaN, inf, -0.0, strays) go raw into exception
//! runs, which also carry non-zero qualities, so a clean chunk pays one byte
//! there. The unit turns whole-second timestamps and ADC-stepped values into
//! steps of one; the dictionary serves few-valued sensors; Rice parameters are
//! fitted per chunk, so ms jitter costs a few bits, not Gorilla's fixed 9;
//! zero runs take regular timestamps and flat values below one bit a sample.
//!
//! Guarantees: lossless for any input (timestamps, qualities, order, exact f64
//! bits including NaN payloads; unsorted timestamps too, as arithmetic wraps
//! mod 2^64). `decode` never panics and returns `Err` for malformed input; it
//! rejects counts above max(8 x payload bytes, 65,536) before allocating, so
//! its time and memory stay proportional to that bound.
//!
//! Each part of the format keeps its writer and reader in one file (`bits`,
//! `rice`, `series`, `values`, `exceptions`; `v0` only reads), so the two
//! sides of a field change together; this file strings the parts into a chunk.

mod bits;
mod exceptions;
mod rice;
mod series;
mod v0;
mod values;

use std::fmt;

use bits::{BitReader, BitWriter};
use exceptions::{read_exceptions, write_exceptions};
use series::{write_series, SeriesReader, MAX_SPARSE};
use values::{plan_decimal, write_xor, ValueReader, XorState, POW10};

pub(crate) use bits::{get_varint, put_varint, unzigzag, zigzag};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub ts_ms: i64,
    pub value: f64,
    /// 0 = good; anything else marks a bad sample (value often NaN).
    pub quality: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodecError {
    Truncated,
    BadVersion(u8),
    Overflow,
    Corrupt(&'static str),
    TrailingBytes,
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::Truncated => f.write_str("chunk payload is truncated"),
            CodecError::BadVersion(v) => write!(f, "unknown chunk format {v}"),
            CodecError::Overflow => f.write_str("chunk payload has an oversized number"),
            CodecError::Corrupt(why) => write!(f, "corrupt chunk payload: {why}"),
            CodecError::TrailingBytes => f.write_str("chunk payload has trailing bytes"),
        }
    }
}

impl std::error::Error for CodecError {}

type Result<T, E = CodecError> = std::result::Result<T, E>;

const VERSION: u8 = 1;

/// Appends the compressed chunk; `points` should be sorted by `ts_ms`.
pub fn encode(points: &[Point], out: &mut Vec<u8>) {
    encode_chunk(points, out);
}

/// Returns whether decimal mode won, for the tests.
fn encode_chunk(points: &[Point], out: &mut Vec<u8>) -> bool {
    out.push(VERSION);
    put_varint(out, points.len() as u64);
    if points.is_empty() {
        return false;
    }
    let mut head = BitWriter::default();
    let ts: Vec<i64> = points.iter().map(|p| p.ts_ms).collect();
    write_series(&mut head, &ts, &[2, 3], false);

    let mut best = (Vec::new(), head.clone(), false);
    write_exceptions(points, &[], &mut best.0);
    best.1.write(0, 1);
    write_xor(points, &mut best.1);
    if let Some(plan) = plan_decimal(points) {
        let mut exc = Vec::new();
        write_exceptions(points, &plan.ks, &mut exc);
        let mut bits = head;
        bits.write(1, 1);
        bits.write(u64::from(plan.mul), 1);
        bits.write(plan.d as u64, 4);
        let ks: Vec<i64> = plan.ks.iter().flatten().copied().collect();
        write_series(&mut bits, &ks, &[0, 1, 2], true);
        let size = |exc: &Vec<u8>, bits: &BitWriter| exc.len() + bits.bit_len().div_ceil(8);
        if size(&exc, &bits) < size(&best.0, &best.1) {
            best = (exc, bits, true);
        }
    }
    out.extend_from_slice(&best.0);
    out.extend_from_slice(&best.1.finish());
    best.2
}

/// Decodes a chunk from [`encode`] (or format 0); malformed input is an `Err`.
pub fn decode(buf: &[u8]) -> Result<Vec<Point>, CodecError> {
    let (&version, mut rest) = buf.split_first().ok_or(CodecError::Truncated)?;
    match version {
        0 => return v0::decode_v0(rest),
        VERSION => {}
        _ => return Err(CodecError::BadVersion(version)),
    }
    let n = get_varint(&mut rest)?;
    // Series longer than MAX_SPARSE are dense, so beyond that each sample
    // costs a timestamp bit: a larger count is corruption, and checking it
    // first bounds the allocation below.
    if n > (rest.len() as u64 * 8).max(MAX_SPARSE as u64) {
        return Err(CodecError::Corrupt("sample count exceeds payload"));
    }
    let n = n as usize;
    if n == 0 {
        return if rest.is_empty() {
            Ok(Vec::new())
        } else {
            Err(CodecError::TrailingBytes)
        };
    }
    let runs = read_exceptions(&mut rest, n)?;
    let mut rd = BitReader::new(rest);
    let mut points = Vec::with_capacity(n);
    let mut ts = SeriesReader::new(&mut rd, false)?;
    for _ in 0..n {
        let ts_ms = ts.next(&mut rd)?;
        points.push(Point {
            ts_ms,
            value: 0.0,
            quality: 0,
        });
    }
    let mut values = if rd.read(1)? == 1 {
        let mul = rd.read(1)? == 1;
        let d = rd.read(4)? as usize;
        if d >= POW10.len() {
            return Err(CodecError::Corrupt("decimal exponent out of range"));
        }
        ValueReader::Decimal(mul, d, SeriesReader::new(&mut rd, true)?)
    } else if runs.iter().any(|r| r.3.is_some()) {
        return Err(CodecError::Corrupt("raw exception in XOR mode"));
    } else {
        ValueReader::Xor(XorState::default())
    };
    // read_exceptions checked the runs are sorted, disjoint and within n.
    let mut i = 0;
    for &(start, end, quality, raw) in &runs {
        for p in &mut points[i..start] {
            p.value = values.next(&mut rd)?;
        }
        for p in &mut points[start..end] {
            p.quality = quality;
            p.value = match raw {
                Some(bits) => f64::from_bits(bits),
                None => values.next(&mut rd)?,
            };
        }
        i = end;
    }
    for p in &mut points[i..] {
        p.value = values.next(&mut rd)?;
    }
    rd.finish()?;
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        /// Sum of uniforms: roughly normal, enough to look like sensor noise.
        fn gauss(&mut self) -> f64 {
            let sum: f64 = (0..4).map(|_| (self.next() % 1000) as f64).sum();
            sum / 1e3 * 1.7 - 3.4
        }
    }

    fn pt(ts_ms: i64, value: f64, quality: u8) -> Point {
        Point { ts_ms, value, quality }
    }

    /// Compares values by bits, since NaN != NaN. Returns (bytes, decimal?).
    fn round_trip(points: &[Point]) -> (usize, bool) {
        let mut buf = vec![];
        let decimal = encode_chunk(points, &mut buf);
        let key = |p: &Point| (p.ts_ms, p.value.to_bits(), p.quality);
        let back: Vec<_> = decode(&buf).expect("decodes").iter().map(key).collect();
        assert_eq!(back, points.iter().map(key).collect::<Vec<_>>());
        (buf.len(), decimal)
    }

    /// Noisy drifting 0.01-quantised values, as text (`k / 100`) or a scaled register.
    fn quantised(n: i64, rng: &mut Rng, mul: bool) -> Vec<Point> {
        let step = 1000 + (rng.next() % 3) as i64;
        let ks = (0..n).map(|i| 2000 + i / 50 + (rng.gauss() * 4.0).round() as i64);
        let v = |k: i64| {
            if mul {
                k as f64 * 0.01
            } else {
                k as f64 / 100.0
            }
        };
        let pts = ks.enumerate().map(|(i, k)| pt((1 << 40) + i as i64 * step, v(k), 0));
        pts.collect()
    }

    #[test]
    fn edge_cases_round_trip() {
        let specials = [0.0, -0.0, f64::NAN, -f64::NAN, 5e-324, f64::INFINITY];
        let payloads = [0x7ff8_dead_beef_0001, 0xfff0_0000_0000_0001, 1 << 63];
        let payloads = payloads.map(f64::from_bits);
        let extremes = [f64::MAX, f64::MIN, 0.1 + 0.2, 1e15, -f64::INFINITY];
        for set in [&specials[..], &payloads, &extremes] {
            for q in [0, 3] {
                let pts = (0..40).map(|i| pt(i, set[i as usize % set.len()], q * (i % 2) as u8));
                round_trip(&pts.collect::<Vec<_>>());
            }
        }
        round_trip(&[]);
        round_trip(&[pt(i64::MIN, -0.0, 0)]);
        round_trip(&(0..50).map(|i| pt(i, f64::NAN, 1)).collect::<Vec<_>>());
        let odd_times = [[i64::MIN, i64::MAX, i64::MIN, 0], [5, 5, 3, -7], [0, -1, 1 << 62, 0]];
        for times in odd_times {
            round_trip(&times.map(|t| pt(t, 1.5, (t & 7) as u8)));
        }
        let mut rng = Rng(7);
        let random: Vec<Point> = (0..300).map(|i| pt(i, f64::from_bits(rng.next()), 0)).collect();
        assert!(!round_trip(&random).1, "random doubles should use XOR mode");
        let bad = random.iter().map(|p| pt(rng.next() as i64, p.value, rng.next() as u8));
        round_trip(&bad.collect::<Vec<_>>());
        let levels = [0.054711, 0.382638, -0.273216];
        let pressure: Vec<Point> = (0..300).map(|i| pt(i, levels[i as usize % 5 % 3], 0)).collect();
        assert!(round_trip(&pressure).0 < 300 / 2, "few-valued: dictionary");
    }

    #[test]
    fn picks_the_expected_mode() {
        let mut rng = Rng(42);
        for mul in [false, true] {
            let (bytes, decimal) = round_trip(&quantised(1000, &mut rng, mul));
            assert!(decimal && bytes < 1000, "mul={mul}: {bytes} bytes");
        }
        // An outage of bad NaN samples and a stray -0.0 must not spoil decimal mode.
        let mut pts = quantised(1000, &mut rng, false);
        for p in &mut pts[300..400] {
            (p.value, p.quality) = (f64::NAN, 2);
        }
        pts[500].value = -0.0;
        let (bytes, decimal) = round_trip(&pts);
        assert!(decimal && bytes < 1000, "{bytes} bytes");
        let smooth: Vec<Point> = (0..500).map(|i| pt(i, (i as f64 / 7.0).sin(), 0)).collect();
        assert!(!round_trip(&smooth).1, "unquantised doubles should use XOR mode");
    }

    #[test]
    fn long_chunks_keep_a_bit_per_sample() {
        // Zero runs stop at MAX_SPARSE samples, so longer chunks keep >= 1 bit
        // per sample, which decode's bound on the sample count relies on.
        for n in [MAX_SPARSE as i64, MAX_SPARSE as i64 + 1] {
            let pts: Vec<Point> = (0..n).map(|i| pt(1_600_000_000_123 + i * 1000, 21.5, 0)).collect();
            let bytes = round_trip(&pts).0;
            assert_eq!(bytes < 100, n <= MAX_SPARSE as i64, "{n} samples: {bytes} bytes");
        }
    }

    #[test]
    fn corrupt_input_is_an_error() {
        assert_eq!(decode(&[]), Err(CodecError::Truncated));
        assert_eq!(decode(&[2, 0]), Err(CodecError::BadVersion(2)));
        assert_eq!(decode(&[1, 0, 0]), Err(CodecError::TrailingBytes));
        let mut huge = vec![1];
        put_varint(&mut huge, u64::MAX);
        assert!(matches!(decode(&huge), Err(CodecError::Corrupt(_))));
        let mut buf = vec![];
        encode(&quantised(200, &mut Rng(3), false), &mut buf);
        for len in 0..buf.len() {
            assert!(decode(&buf[..len]).is_err(), "truncated to {len} decoded");
        }
        buf.push(0);
        assert_eq!(decode(&buf), Err(CodecError::TrailingBytes));
    }

    #[test]
    fn fuzz_decode_never_panics() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut valid = vec![];
        for i in 0..4 {
            let mut pts = quantised(150, &mut rng, i == 1);
            pts[10 * i + 5] = pt(pts[10 * i + 5].ts_ms, f64::NAN, 9);
            for p in pts.iter_mut() {
                match i {
                    2 => p.value = (p.value * 2.0).round(),    // dictionary
                    3 => p.value = f64::from_bits(rng.next()), // XOR
                    _ => {}
                }
            }
            let mut buf = vec![];
            encode(&pts, &mut buf);
            valid.push(buf);
        }
        for round in 0..20_000 {
            let mut buf = valid[round % valid.len()].clone();
            if round % 4 == 0 {
                buf = (0..rng.next() % 64).map(|_| rng.next() as u8).collect();
                buf.iter_mut().take(1).for_each(|b| *b %= 2);
            }
            for _ in 0..1 + rng.next() % 4 {
                let at = (rng.next() as usize) % buf.len().max(1);
                match (buf.get_mut(at), rng.next() % 3) {
                    (Some(b), 0) => *b ^= 1 << (rng.next() % 8),
                    (Some(b), 1) => *b = rng.next() as u8,
                    _ => buf.truncate(at),
                }
            }
            if let Ok(points) = decode(&buf) {
                assert!(points.len() <= (buf.len() * 8).max(MAX_SPARSE));
            }
        }
    }
}
