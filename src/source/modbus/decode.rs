//! Turning registers into numbers: the data types and the four byte orders.
//!
//! The registers arrive as big-endian 16-bit words. The bytes of a value are laid out as
//! `A B C D …` (most significant first) by `ABCD`; `DCBA` reverses all bytes, `BADC`
//! swaps the two bytes of each word, `CDAB` reverses the order of the words (for 64-bit
//! values the same rules give `HGFEDCBA`, `BADCFEHG`, `GHEFCDAB`). Strings are two
//! characters per register, the first in the high byte (`ABCD`) or the low byte (`BADC`).

use crate::base::float::widen_f32;
use crate::config::{DataType, WordOrder};

/// Decodes `words` (exactly `dt.words()` of them) into a number. `bool` and `bit` read
/// as "register is not zero" here (the bit is picked by the caller); strings are NaN.
pub fn decode(words: &[u16], dt: DataType, order: WordOrder) -> f64 {
    let bits = ordered_bits(words, dt, order);
    match dt {
        DataType::Bool | DataType::Bit => f64::from(u8::from(bits != 0)),
        DataType::String => f64::NAN,
        DataType::U16 => bits as u16 as f64,
        DataType::I16 => bits as u16 as i16 as f64,
        DataType::U32 => bits as u32 as f64,
        DataType::I32 => bits as u32 as i32 as f64,
        DataType::F32 => widen_f32(f32::from_bits(bits as u32)),
        DataType::U64 => bits as f64,
        DataType::I64 => bits as i64 as f64,
        DataType::F64 => f64::from_bits(bits),
    }
}

/// The exact value of an integer type, which an f64 cannot hold beyond 2^53 (a 64-bit
/// energy counter); `None` for floats, strings and bits.
pub fn decode_integer(words: &[u16], dt: DataType, order: WordOrder) -> Option<i128> {
    let bits = ordered_bits(words, dt, order);
    Some(match dt {
        DataType::U16 => i128::from(bits as u16),
        DataType::I16 => i128::from(bits as u16 as i16),
        DataType::U32 => i128::from(bits as u32),
        DataType::I32 => i128::from(bits as u32 as i32),
        DataType::U64 => i128::from(bits),
        DataType::I64 => i128::from(bits as i64),
        _ => return None,
    })
}

/// The value's bytes in the given order, as the low bytes of a u64.
fn ordered_bits(words: &[u16], dt: DataType, order: WordOrder) -> u64 {
    let mut bytes = [0u8; 8];
    let n = usize::from(dt.words()) * 2;
    for (i, w) in words.iter().take(n / 2).enumerate() {
        bytes[2 * i..2 * i + 2].copy_from_slice(&w.to_be_bytes());
    }
    let b = &mut bytes[..n];
    match order {
        WordOrder::ABCD => {}
        WordOrder::DCBA => b.reverse(),
        WordOrder::BADC => b.chunks_exact_mut(2).for_each(|p| p.swap(0, 1)),
        WordOrder::CDAB => {
            b.reverse();
            b.chunks_exact_mut(2).for_each(|p| p.swap(0, 1));
        }
    }
    let mut be8 = [0u8; 8];
    be8[8 - n..].copy_from_slice(b);
    u64::from_be_bytes(be8)
}

/// Encodes a value into registers: the inverse of [`decode`], for simulators and tests.
pub fn encode(value: f64, dt: DataType, order: WordOrder) -> Vec<u16> {
    let n = usize::from(dt.words()) * 2;
    let bits: u64 = match dt {
        DataType::Bool | DataType::Bit => u64::from(value != 0.0),
        DataType::String => 0,
        DataType::U16 => value as u16 as u64,
        DataType::I16 => value as i16 as u16 as u64,
        DataType::U32 => value as u32 as u64,
        DataType::I32 => value as i32 as u32 as u64,
        DataType::F32 => (value as f32).to_bits() as u64,
        DataType::U64 => value as u64,
        DataType::I64 => value as i64 as u64,
        DataType::F64 => value.to_bits(),
    };
    let be8 = bits.to_be_bytes();
    let mut b = be8[8 - n..].to_vec();
    // Every order is its own inverse.
    match order {
        WordOrder::ABCD => {}
        WordOrder::DCBA => b.reverse(),
        WordOrder::BADC => b.chunks_exact_mut(2).for_each(|p| p.swap(0, 1)),
        WordOrder::CDAB => {
            b.reverse();
            b.chunks_exact_mut(2).for_each(|p| p.swap(0, 1));
        }
    }
    b.chunks_exact(2).map(|p| u16::from_be_bytes([p[0], p[1]])).collect()
}

/// Decodes text of two characters per register. Trailing NULs and spaces (the usual
/// padding) are dropped; bytes that are not UTF-8 are shown as U+FFFD.
pub fn decode_string(words: &[u16], order: WordOrder) -> String {
    let mut bytes: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
    if order == WordOrder::BADC {
        bytes.chunks_exact_mut(2).for_each(|p| p.swap(0, 1));
    }
    let text = String::from_utf8_lossy(&bytes);
    text.trim_end_matches(['\0', ' ']).to_string()
}

/// Encodes text into `length` registers, NUL-padded: the inverse of [`decode_string`].
pub fn encode_string(text: &str, length: u16, order: WordOrder) -> Vec<u16> {
    let mut bytes = text.as_bytes().to_vec();
    bytes.resize(usize::from(length) * 2, 0);
    if order == WordOrder::BADC {
        bytes.chunks_exact_mut(2).for_each(|p| p.swap(0, 1));
    }
    bytes
        .chunks_exact(2)
        .map(|p| u16::from_be_bytes([p[0], p[1]]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use DataType::*;
    use WordOrder::*;

    #[test]
    fn f32_in_every_order() {
        // 123.456f32 = 0x42F6E979: A=42 B=F6 C=E9 D=79
        let v = 123.456;
        assert_eq!(decode(&[0x42F6, 0xE979], F32, ABCD), v);
        assert_eq!(decode(&[0x79E9, 0xF642], F32, DCBA), v);
        assert_eq!(decode(&[0xF642, 0x79E9], F32, BADC), v);
        assert_eq!(decode(&[0xE979, 0x42F6], F32, CDAB), v);
    }

    #[test]
    fn integers_and_signs() {
        assert_eq!(decode(&[0xFFFF], I16, ABCD), -1.0);
        assert_eq!(decode(&[0xFFFF], U16, ABCD), 65535.0);
        assert_eq!(decode(&[0x0001, 0x0000], U32, CDAB), 1.0);
        assert_eq!(decode(&[0xFFFF, 0xFFFE], I32, ABCD), -2.0);
        assert_eq!(decode(&[0, 0, 0, 7], U64, ABCD), 7.0);
        assert_eq!(decode(&[7, 0, 0, 0], I64, CDAB), 7.0);
    }

    #[test]
    fn sixty_four_bit_orders() {
        // 0x0102030405060708 as ABCDEFGH, HGFEDCBA, BADCFEHG, GHEFCDAB.
        let v = 0x0102_0304_0506_0708u64 as f64;
        assert_eq!(decode(&[0x0102, 0x0304, 0x0506, 0x0708], U64, ABCD), v);
        assert_eq!(decode(&[0x0807, 0x0605, 0x0403, 0x0201], U64, DCBA), v);
        assert_eq!(decode(&[0x0201, 0x0403, 0x0605, 0x0807], U64, BADC), v);
        assert_eq!(decode(&[0x0708, 0x0506, 0x0304, 0x0102], U64, CDAB), v);
    }

    #[test]
    fn strings_in_both_byte_orders() {
        assert_eq!(decode_string(&[0x4142, 0x4300, 0x0000], ABCD), "ABC");
        assert_eq!(decode_string(&[0x4241, 0x0043], BADC), "ABC");
        assert_eq!(decode_string(&encode_string("SN-42 ", 4, BADC), BADC), "SN-42");
    }

    #[test]
    fn encode_inverts_decode() {
        for dt in [U16, I16, U32, I32, U64, I64, F32, F64] {
            for order in [ABCD, DCBA, BADC, CDAB] {
                let v = if matches!(dt, U16 | U32 | U64) { 4660.0 } else { -1234.0 };
                let words = encode(v, dt, order);
                assert_eq!(words.len(), usize::from(dt.words()));
                assert_eq!(decode(&words, dt, order), v, "{dt:?} {order:?}");
            }
        }
    }
}
