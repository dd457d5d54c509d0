//! The Rice code that turns residuals into bits: `q = z >> r` in unary, then
//! the `r` low bits. Residuals cluster near zero but a gap or a reset can be
//! huge, so a unary prefix of `ESC` ones escapes to an explicit bit length:
//! no value then costs more than 21 bits above its own bit length, where a
//! plain unary prefix would grow with the value. The parameter is fitted per
//! chunk from the residuals themselves.

use super::bits::{BitReader, BitWriter};
use super::Result;

/// Unary prefixes this long switch to an explicit bit length.
const ESC: u64 = 16;

fn rice_len(z: u64, r: u32) -> u64 {
    match z >> r {
        q if q < ESC => q + 1 + u64::from(r),
        _ => ESC + 6 + u64::from(63 - z.leading_zeros()),
    }
}

/// Best Rice parameter near the typical size. The mean bit length is used,
/// not the mean, so that one huge jump cannot drag r up for everything else.
pub(super) fn best_rice(zs: &[u64]) -> (u32, u64) {
    let bits: u64 = zs.iter().map(|z| u64::from(64 - z.leading_zeros())).sum();
    let centre = (bits / zs.len().max(1) as u64) as u32;
    (centre.saturating_sub(3)..=(centre + 1).min(63))
        .map(|r| (r, zs.iter().map(|&z| rice_len(z, r)).sum()))
        .min_by_key(|&(_, cost)| cost)
        .unwrap_or((0, 0))
}

pub(super) fn write_rice(w: &mut BitWriter, z: u64, r: u32) {
    match z >> r {
        q if q < ESC => {
            w.write((1 << (q + 1)) - 2, q as u32 + 1);
            w.write(z, r);
        }
        _ => {
            let len = 64 - z.leading_zeros();
            w.write((1 << ESC) - 1, ESC as u32);
            w.write(u64::from(len - 1), 6);
            w.write(z, len - 1);
        }
    }
}

pub(super) fn read_rice(rd: &mut BitReader, r: u32) -> Result<u64> {
    let q = u64::from((!rd.peek()).leading_zeros()).min(ESC);
    rd.skip(q + u64::from(q < ESC))?;
    if q < ESC {
        return Ok((q << r) | rd.read(r)?);
    }
    let len = rd.read(6)? as u32;
    Ok((1 << len) | rd.read(len)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rice_codes_read_back_at_their_planned_length() {
        let zs = [0, 1, 5, 31, 32, 1 << 20, u64::MAX];
        for r in [0, 1, 4, 63] {
            let mut w = BitWriter::default();
            for &z in &zs {
                let before = w.bit_len();
                write_rice(&mut w, z, r);
                assert_eq!((w.bit_len() - before) as u64, rice_len(z, r), "z={z} r={r}");
            }
            let bytes = w.finish();
            let mut rd = BitReader::new(&bytes);
            for &z in &zs {
                assert_eq!(read_rice(&mut rd, r), Ok(z), "r={r}");
            }
            assert_eq!(rd.finish(), Ok(()));
        }
    }
}
