//! The two value modes. Decimal maps each value to an integer k with
//! `k / 10^d` (as parsed from text) or `k * 10^-d` (a register times its
//! scale), accepting k only where the decoder's formula gives back the exact
//! bits, and codes the k as a series; values no d reproduces go raw into the
//! exception runs. XOR (Gorilla) takes any bits and is the fallback for
//! unquantised values. The encoder writes both and keeps the smaller.

use super::bits::{BitReader, BitWriter};
use super::series::SeriesReader;
use super::{CodecError, Point, Result};

pub(super) const POW10: [f64; 10] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];
const NEG_POW10: [f64; 10] = [1e0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9];
/// Integers below 2^53 convert to f64 exactly, which the k <-> value mapping needs.
const MAX_K: f64 = 9_007_199_254_740_992.0;

pub(super) struct DecimalPlan {
    pub(super) d: usize,
    pub(super) mul: bool,
    /// `None` marks a value stored raw in the exception runs.
    pub(super) ks: Vec<Option<i64>>,
}

fn from_k(k: i64, d: usize, mul: bool) -> f64 {
    if mul {
        k as f64 * NEG_POW10[d]
    } else {
        k as f64 / POW10[d]
    }
}

/// Accepts k only if the decoder's formula gives back the exact bits.
fn to_k(v: f64, d: usize, mul: bool) -> Option<i64> {
    let k = (v * POW10[d]).round();
    if k.is_nan() || k.abs() >= MAX_K {
        return None;
    }
    (from_k(k as i64, d, mul).to_bits() == v.to_bits()).then_some(k as i64)
}

pub(super) fn plan_decimal(points: &[Point]) -> Option<DecimalPlan> {
    let misses = |p: &DecimalPlan| p.ks.iter().filter(|k| k.is_none()).count();
    match plan_for(points, false) {
        Some(div) if misses(&div) == 0 => Some(div),
        div => match (div, plan_for(points, true)) {
            (Some(div), Some(mul)) if misses(&div) <= misses(&mul) => Some(div),
            (div, mul) => mul.or(div),
        },
    }
}

/// Smallest d covering the good values; gives up once half the values would
/// be raw, where decimal mode cannot win, which also caps the search cost.
fn plan_for(points: &[Point], mul: bool) -> Option<DecimalPlan> {
    let (mut d, mut misses) = (0, 0);
    for p in points.iter().filter(|p| p.quality == 0) {
        if to_k(p.value, d, mul).is_none() {
            match (d + 1..POW10.len()).find(|&nd| to_k(p.value, nd, mul).is_some()) {
                Some(nd) => d = nd,
                None => misses += 1,
            }
            if misses > points.len() / 2 {
                return None;
            }
        }
    }
    let ks = points.iter().map(|p| to_k(p.value, d, mul)).collect();
    Some(DecimalPlan { d, mul, ks })
}

/// Gorilla XOR state: previous bits and the current leading/trailing window.
#[derive(Default)]
pub(super) struct XorState {
    prev: Option<u64>,
    lead: u32,
    trail: u32,
}

pub(super) fn write_xor(points: &[Point], w: &mut BitWriter) {
    let mut st = XorState::default();
    for p in points {
        let bits = p.value.to_bits();
        let x = bits ^ st.prev.unwrap_or(0);
        let (lead, trail) = (x.leading_zeros(), x.trailing_zeros());
        if st.prev.replace(bits).is_none() {
            w.write(bits, 64);
        } else if x == 0 {
            w.write(0, 1);
        } else if st.lead + st.trail > 0 && lead >= st.lead && trail >= st.trail {
            // (0, 0) doubles as "no window yet"; reusing it would gain nothing.
            w.write(0b10, 2);
            w.write(x >> st.trail, 64 - st.lead - st.trail);
        } else {
            let len = 64 - lead - trail;
            w.write(0b11, 2);
            w.write(u64::from(lead), 6);
            w.write(u64::from(len - 1), 6);
            w.write(x >> trail, len);
            (st.lead, st.trail) = (lead, trail);
        }
    }
}

pub(super) enum ValueReader {
    Xor(XorState),
    Decimal(bool, usize, SeriesReader),
}

impl ValueReader {
    pub(super) fn next(&mut self, rd: &mut BitReader) -> Result<f64> {
        let st = match self {
            ValueReader::Decimal(mul, d, series) => {
                let k = series.next(rd)?;
                if k.unsigned_abs() >= MAX_K as u64 {
                    return Err(CodecError::Corrupt("decimal value out of range"));
                }
                return Ok(from_k(k, *d, *mul));
            }
            ValueReader::Xor(st) => st,
        };
        let x = if st.prev.is_none() {
            rd.read(64)?
        } else if rd.read(1)? == 0 {
            0
        } else if rd.read(1)? == 0 {
            if st.lead + st.trail == 0 {
                return Err(CodecError::Corrupt("XOR window used before set"));
            }
            rd.read(64 - st.lead - st.trail)? << st.trail
        } else {
            let lead = rd.read(6)? as u32;
            let len = rd.read(6)? as u32 + 1;
            if lead + len > 64 {
                return Err(CodecError::Corrupt("XOR window too wide"));
            }
            (st.lead, st.trail) = (lead, 64 - lead - len);
            rd.read(len)? << st.trail
        };
        let bits = st.prev.unwrap_or(0) ^ x;
        st.prev = Some(bits);
        Ok(f64::from_bits(bits))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_decimal_form_accepts_only_its_own_values() {
        // Text and register producers reach different doubles for the same k.
        let (text, register): (f64, f64) = (3.0 / 10.0, 3.0 * 0.1);
        assert_ne!(text.to_bits(), register.to_bits());
        assert_eq!(to_k(text, 1, false), Some(3));
        assert_eq!(to_k(text, 1, true), None);
        assert_eq!(to_k(register, 1, true), Some(3));
        assert_eq!(to_k(register, 1, false), None);
        assert_eq!(to_k(MAX_K, 0, false), None);
        assert_eq!(to_k(-0.0, 0, false), None);
    }
}
