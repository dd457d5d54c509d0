//! Sealed chunks: the compressed, checksummed history of one sensor over a span of time.
//!
//! Key: sensor id (4 bytes BE) ‖ first timestamp (8 bytes, sign-flipped BE so negative
//! times sort first) ‖ seal sequence (8 bytes BE, so two chunks that start at the same
//! instant never overwrite each other). Bytes: a fixed header — format, count, first and
//! last timestamp, CRC-32 of the payload — then the codec payload; they are kept in a
//! segment file, and the key's value in sled is the index entry pointing at them (see
//! `segment`), which repeats the header so a range read skips a chunk without opening
//! its file. The CRC turns silent corruption into a reported error confined to that
//! chunk.

use super::codec::{self, Point};
use super::StoreError;
use crate::base::sample::SensorId;

const FORMAT: u8 = 1;
pub const HEADER_LEN: usize = 1 + 4 + 8 + 8 + 4;

pub fn ts_key(ts_ms: i64) -> [u8; 8] {
    ((ts_ms as u64) ^ (1 << 63)).to_be_bytes()
}

pub fn key(sensor: SensorId, start_ms: i64, seal_seq: u64) -> [u8; 20] {
    let mut k = [0u8; 20];
    k[..4].copy_from_slice(&sensor.to_be_bytes());
    k[4..12].copy_from_slice(&ts_key(start_ms));
    k[12..].copy_from_slice(&seal_seq.to_be_bytes());
    k
}

/// The key range of a sensor's chunks that start at or before `to_ms`.
pub fn range_until(sensor: SensorId, to_ms: i64) -> std::ops::RangeInclusive<[u8; 20]> {
    key(sensor, i64::MIN, 0)..=key(sensor, to_ms, u64::MAX)
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Header {
    pub count: u32,
    pub first_ms: i64,
    pub last_ms: i64,
    pub crc: u32,
}

/// Encodes points sorted by time.
pub fn encode(points: &[Point]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(points.len() * 4);
    codec::encode(points, &mut payload);
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.push(FORMAT);
    out.extend_from_slice(&(points.len() as u32).to_le_bytes());
    out.extend_from_slice(&points.first().map_or(0, |p| p.ts_ms).to_le_bytes());
    out.extend_from_slice(&points.last().map_or(0, |p| p.ts_ms).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

pub fn header(value: &[u8]) -> Result<Header, StoreError> {
    if value.len() < HEADER_LEN || value[0] != FORMAT {
        return Err(StoreError::Corrupt(
            "chunk header is truncated or of an unknown format".into(),
        ));
    }
    let u32_at = |i: usize| u32::from_le_bytes([value[i], value[i + 1], value[i + 2], value[i + 3]]);
    let i64_at = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&value[i..i + 8]);
        i64::from_le_bytes(b)
    };
    Ok(Header {
        count: u32_at(1),
        first_ms: i64_at(5),
        last_ms: i64_at(13),
        crc: u32_at(21),
    })
}

pub fn decode(value: &[u8]) -> Result<Vec<Point>, StoreError> {
    let h = header(value)?;
    let payload = &value[HEADER_LEN..];
    if crc32fast::hash(payload) != h.crc {
        return Err(StoreError::Corrupt("chunk checksum mismatch".into()));
    }
    let points = codec::decode(payload).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    if points.len() != h.count as usize {
        return Err(StoreError::Corrupt("chunk count does not match its header".into()));
    }
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_sensor_then_time() {
        assert!(key(1, -5, 0) < key(1, 3, 0));
        assert!(key(1, i64::MAX, 0) < key(2, i64::MIN, 0));
        assert!(key(1, 3, 1) < key(1, 3, 2));
    }

    #[test]
    fn corruption_is_detected() {
        let pts: Vec<Point> = (0..100)
            .map(|i| Point {
                ts_ms: i * 1000,
                value: i as f64,
                quality: 0,
            })
            .collect();
        let mut v = encode(&pts);
        assert_eq!(decode(&v).unwrap(), pts);
        let last = v.len() - 1;
        v[last] ^= 0x40;
        assert!(matches!(decode(&v), Err(StoreError::Corrupt(_))));
        assert!(header(&v[..10]).is_err());
    }
}
