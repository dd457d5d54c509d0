//! Compression of one sensor's samples into a chunk payload.
//!
//! Format 0: a varint count, then per point a zigzag varint timestamp delta, the XOR of
//! the value's bits with the previous value's as a varint, and the quality byte. Lossless
//! for every f64 bit pattern; `decode` never panics on corrupt input.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub ts_ms: i64,
    pub value: f64,
    pub quality: u8,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CodecError {
    Truncated,
    BadVersion(u8),
    Overflow,
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::Truncated => f.write_str("chunk payload is truncated"),
            CodecError::BadVersion(v) => write!(f, "unknown chunk format {v}"),
            CodecError::Overflow => f.write_str("chunk payload has an oversized number"),
        }
    }
}

impl std::error::Error for CodecError {}

const VERSION: u8 = 0;

pub fn encode(points: &[Point], out: &mut Vec<u8>) {
    out.push(VERSION);
    put_varint(out, points.len() as u64);
    let (mut ts, mut bits) = (0i64, 0u64);
    for p in points {
        put_varint(out, zigzag(p.ts_ms.wrapping_sub(ts)));
        put_varint(out, p.value.to_bits() ^ bits);
        out.push(p.quality);
        ts = p.ts_ms;
        bits = p.value.to_bits();
    }
}

pub fn decode(buf: &[u8]) -> Result<Vec<Point>, CodecError> {
    let (&version, mut rest) = buf.split_first().ok_or(CodecError::Truncated)?;
    if version != VERSION {
        return Err(CodecError::BadVersion(version));
    }
    let count = get_varint(&mut rest)?;
    // Each point takes at least 3 bytes: a count larger than that is corruption, and
    // must not turn into a huge allocation.
    if count > (rest.len() / 3) as u64 {
        return Err(CodecError::Truncated);
    }
    let mut points = Vec::with_capacity(count as usize);
    let (mut ts, mut bits) = (0i64, 0u64);
    for _ in 0..count {
        ts = ts.wrapping_add(unzigzag(get_varint(&mut rest)?));
        bits ^= get_varint(&mut rest)?;
        let (&quality, tail) = rest.split_first().ok_or(CodecError::Truncated)?;
        rest = tail;
        points.push(Point {
            ts_ms: ts,
            value: f64::from_bits(bits),
            quality,
        });
    }
    Ok(points)
}

pub(crate) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub(crate) fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(crate) fn get_varint(buf: &mut &[u8]) -> Result<u64, CodecError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = buf.split_first().ok_or(CodecError::Truncated)?;
        *buf = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(CodecError::Overflow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_bit_exact() {
        let pts: Vec<Point> = [0.0, -0.0, f64::NAN, f64::INFINITY, 1.5, 1e-310]
            .iter()
            .enumerate()
            .map(|(i, &v)| Point {
                ts_ms: i64::MIN + i as i64 * 1000,
                value: v,
                quality: i as u8,
            })
            .collect();
        let mut buf = Vec::new();
        encode(&pts, &mut buf);
        let back = decode(&buf).unwrap();
        assert_eq!(back.len(), pts.len());
        for (a, b) in pts.iter().zip(&back) {
            assert_eq!(
                (a.ts_ms, a.value.to_bits(), a.quality),
                (b.ts_ms, b.value.to_bits(), b.quality)
            );
        }
    }

    #[test]
    fn corrupt_input_is_an_error() {
        let mut buf = Vec::new();
        encode(
            &[Point {
                ts_ms: 5,
                value: 1.0,
                quality: 0,
            }; 10],
            &mut buf,
        );
        for cut in 0..buf.len() {
            assert!(decode(&buf[..cut]).is_err());
        }
        assert_eq!(decode(&[9]), Err(CodecError::BadVersion(9)));
    }
}
