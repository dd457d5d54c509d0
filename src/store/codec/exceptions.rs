//! Exception runs: byte-aligned records, ahead of the bit streams, for
//! samples with a non-zero quality or a value stored raw. Keeping them out of
//! the series spares good samples any per-sample flag, so a clean chunk pays
//! one byte here, and runs make an outage of identical bad samples cost one
//! record instead of one per sample.

use super::{get_varint, put_varint, CodecError, Point, Result};

/// Runs share quality and raw bits, so an outage of identical NaNs is one record.
pub(super) fn write_exceptions(points: &[Point], ks: &[Option<i64>], out: &mut Vec<u8>) {
    let mut runs: Vec<Run> = Vec::new();
    for (i, p) in points.iter().enumerate() {
        let raw = matches!(ks.get(i), Some(None)).then(|| p.value.to_bits());
        if p.quality == 0 && raw.is_none() {
            continue;
        }
        match runs.last_mut() {
            Some(r) if r.1 == i && r.2 == p.quality && r.3 == raw => r.1 += 1,
            _ => runs.push((i, i + 1, p.quality, raw)),
        }
    }
    put_varint(out, runs.len() as u64);
    let mut end = 0;
    for (start, stop, quality, raw) in runs {
        put_varint(out, (start - end) as u64);
        put_varint(out, ((stop - start - 1) as u64) << 1 | u64::from(raw.is_some()));
        out.push(quality);
        if let Some(bits) = raw {
            out.extend_from_slice(&bits.to_le_bytes());
        }
        end = stop;
    }
}

/// (start, end, quality, raw value bits)
type Run = (usize, usize, u8, Option<u64>);

pub(super) fn read_exceptions(rest: &mut &[u8], n: usize) -> Result<Vec<Run>> {
    let count = get_varint(rest)?;
    // A record takes at least three bytes, which bounds the allocation.
    if count > (rest.len() / 3) as u64 {
        return Err(CodecError::Corrupt("exception count exceeds payload"));
    }
    let mut runs = Vec::with_capacity(count as usize);
    let mut end = 0u64;
    for _ in 0..count {
        let start = end.checked_add(get_varint(rest)?);
        let len_raw = get_varint(rest)?;
        let stop = start.and_then(|s| s.checked_add((len_raw >> 1) + 1));
        let (&quality, tail) = rest.split_first().ok_or(CodecError::Truncated)?;
        *rest = tail;
        let raw = if len_raw & 1 == 1 {
            let (bytes, tail) = rest.split_at_checked(8).ok_or(CodecError::Truncated)?;
            *rest = tail;
            Some(u64::from_le_bytes(bytes.try_into().map_err(|_| CodecError::Truncated)?))
        } else {
            None
        };
        match (start, stop) {
            (Some(s), Some(e)) if e <= n as u64 && (quality != 0 || raw.is_some()) => {
                runs.push((s as usize, e as usize, quality, raw));
                end = e;
            }
            _ => return Err(CodecError::Corrupt("bad exception run")),
        }
    }
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_round_trip_and_stay_in_bounds() {
        let qualities = [0, 0, 3, 3, 3, 0, 7, 0, 0, 0];
        let points: Vec<Point> = qualities
            .iter()
            .enumerate()
            .map(|(i, &quality)| Point {
                ts_ms: i as i64,
                value: f64::NAN,
                quality,
            })
            .collect();
        let ks: Vec<Option<i64>> = (0..10).map(|i| (!(7..=8).contains(&i)).then_some(i)).collect();
        let mut out = vec![];
        write_exceptions(&points, &ks, &mut out);
        let nan = Some(f64::NAN.to_bits());
        let want = vec![(2, 5, 3, None), (6, 7, 7, None), (7, 9, 0, nan)];
        let mut rest: &[u8] = &out;
        assert_eq!(read_exceptions(&mut rest, 10), Ok(want));
        assert!(rest.is_empty());
        assert!(read_exceptions(&mut &out[..], 8).is_err(), "run past the end");
        // A run with quality 0 and no raw value would mark nothing.
        assert!(read_exceptions(&mut &[1, 0, 0, 0][..], 10).is_err());
        let mut clean = vec![];
        write_exceptions(&points[..2], &[], &mut clean);
        assert_eq!(clean, [0]);
    }
}
