//! Encoding of write-ahead records: one record per flush, holding every sample that
//! arrived since the previous flush, so sled sees one key per second instead of one per
//! sample (a key costs ~100 bytes of sled overhead; a sample here costs ~12).

use super::codec::{get_varint, put_varint, unzigzag, zigzag, CodecError};
use crate::base::sample::{Quality, Sample};

/// Key of a record: its sequence number, big-endian so sled iterates in write order.
pub fn key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

pub fn seq_of(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.try_into().ok()?))
}

pub fn encode(samples: &[Sample]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + samples.len() * 14);
    put_varint(&mut out, samples.len() as u64);
    let mut ts = 0i64;
    for s in samples {
        put_varint(&mut out, u64::from(s.sensor));
        put_varint(&mut out, zigzag(s.ts_ms.wrapping_sub(ts)));
        out.extend_from_slice(&s.value.to_le_bytes());
        out.push(s.quality.to_byte());
        ts = s.ts_ms;
    }
    out
}

pub fn decode(mut buf: &[u8]) -> Result<Vec<Sample>, CodecError> {
    let count = get_varint(&mut buf)?;
    if count > (buf.len() / 11) as u64 {
        return Err(CodecError::Truncated);
    }
    let mut out = Vec::with_capacity(count as usize);
    let mut ts = 0i64;
    for _ in 0..count {
        let sensor = u32::try_from(get_varint(&mut buf)?).map_err(|_| CodecError::Overflow)?;
        ts = ts.wrapping_add(unzigzag(get_varint(&mut buf)?));
        if buf.len() < 9 {
            return Err(CodecError::Truncated);
        }
        let (value, rest) = buf.split_at(8);
        let value = f64::from_le_bytes(value.try_into().map_err(|_| CodecError::Truncated)?);
        let quality = Quality::from_byte(rest[0]);
        buf = &rest[1..];
        out.push(Sample {
            sensor,
            ts_ms: ts,
            value,
            quality,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let samples = vec![
            Sample::good(1, 1_700_000_000_000, 21.5),
            Sample::bad(2, 1_700_000_000_000, Quality::Exception(2)),
            Sample::good(1, 1_699_999_999_000, -3.25),
        ];
        let back = decode(&encode(&samples)).unwrap();
        assert_eq!(back.len(), 3);
        assert_eq!(back[0], samples[0]);
        assert!(back[1].value.is_nan() && back[1].quality == Quality::Exception(2));
        assert_eq!(back[2], samples[2]);
        assert!(decode(&encode(&samples)[..10]).is_err());
    }
}
