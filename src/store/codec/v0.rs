//! Format 0, the layout before format 1: a varint count, then per point a
//! varint zigzag timestamp delta, a varint of the value bits XORed with the
//! previous value's, and a quality byte. Stores still hold such chunks, so
//! they must keep decoding; nothing writes this format any more.

use super::{get_varint, unzigzag, CodecError, Point, Result};

/// Format 0, so chunks written before format 1 still read.
pub(super) fn decode_v0(mut rest: &[u8]) -> Result<Vec<Point>> {
    let count = get_varint(&mut rest)?;
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

#[cfg(test)]
mod tests {
    use super::super::{decode, put_varint, zigzag};
    use super::*;

    #[test]
    fn format_0_still_decodes() {
        // Format 0: count, then per point zigzag ts delta, XORed value bits, quality.
        let mut v0 = vec![0, 1];
        put_varint(&mut v0, zigzag(5));
        put_varint(&mut v0, 1f64.to_bits());
        v0.push(2);
        let one = Point {
            ts_ms: 5,
            value: 1.0,
            quality: 2,
        };
        assert_eq!(decode(&v0), Ok(vec![one]));
    }
}
