//! The bit and byte primitives every part of the format is built from: an
//! MSB-first bit writer and reader, unsigned LEB128 varints and zigzag. Both
//! directions sit side by side so their bit order cannot drift apart. The
//! reader zero-fills past the end and leaves the bounds check to `skip`, so
//! a short payload becomes `CodecError::Truncated`, never a panic. Varints and
//! zigzag are `pub(crate)` because the store's write-ahead log (`wal.rs`) uses
//! them too.

use super::{CodecError, Result};

#[derive(Clone, Default)]
pub(super) struct BitWriter {
    buf: Vec<u8>,
    acc: u64,
    nacc: u32,
}

impl BitWriter {
    /// Appends the low `n` (<= 64) bits of `v`, most significant first.
    pub(super) fn write(&mut self, v: u64, n: u32) {
        if n > 32 {
            self.write(v >> 32, n - 32);
            return self.write(v, 32);
        }
        // nacc < 32 between calls, so 32 more bits always fit in acc.
        self.acc = (self.acc << n) | (v & ((1u64 << n) - 1));
        self.nacc += n;
        if self.nacc >= 32 {
            self.nacc -= 32;
            self.buf
                .extend_from_slice(&((self.acc >> self.nacc) as u32).to_be_bytes());
        }
    }

    pub(super) fn append(&mut self, other: &BitWriter) {
        for word in other.buf.chunks_exact(4) {
            self.write(u64::from(u32::from_be_bytes([word[0], word[1], word[2], word[3]])), 32);
        }
        self.write(other.acc, other.nacc);
    }

    pub(super) fn bit_len(&self) -> usize {
        self.buf.len() * 8 + self.nacc as usize
    }

    pub(super) fn finish(mut self) -> Vec<u8> {
        let pad = self.nacc.next_multiple_of(8) - self.nacc;
        self.write(0, pad);
        let tail = (self.acc as u32).to_be_bytes();
        self.buf.extend_from_slice(&tail[4 - self.nacc as usize / 8..]);
        self.buf
    }
}

pub(super) struct BitReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub(super) fn bits_left(&self) -> u64 {
        (self.buf.len() * 8 - self.pos) as u64
    }

    /// The next 57 or more bits, left aligned and zero-filled past the end.
    pub(super) fn peek(&self) -> u64 {
        let mut word = [0u8; 8];
        match self.buf.get(self.pos / 8..self.pos / 8 + 8) {
            Some(bytes) => word.copy_from_slice(bytes),
            None => {
                let rest = self.buf.get(self.pos / 8..).unwrap_or_default();
                word[..rest.len()].copy_from_slice(rest);
            }
        }
        u64::from_be_bytes(word) << (self.pos % 8)
    }

    pub(super) fn skip(&mut self, n: u64) -> Result<()> {
        if n > self.bits_left() {
            return Err(CodecError::Truncated);
        }
        self.pos += n as usize;
        Ok(())
    }

    /// Reads `n` (<= 64) bits, most significant first.
    pub(super) fn read(&mut self, n: u32) -> Result<u64> {
        if n > 32 {
            return Ok(self.read(n - 32)? << 32 | self.read(32)?);
        }
        let v = self.peek().checked_shr(64 - n).unwrap_or(0);
        self.skip(u64::from(n))?;
        Ok(v)
    }

    /// Rejects trailing bytes and non-zero padding, so damage cannot hide there.
    pub(super) fn finish(&self) -> Result<()> {
        if self.buf.len() != self.pos.div_ceil(8) {
            return Err(CodecError::TrailingBytes);
        }
        let spare = (8 - self.pos % 8) % 8;
        match self.buf.last() {
            Some(&b) if b & ((1 << spare) - 1) != 0 => Err(CodecError::Corrupt("non-zero padding")),
            _ => Ok(()),
        }
    }
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

pub(crate) fn get_varint(buf: &mut &[u8]) -> Result<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = buf.split_first().ok_or(CodecError::Truncated)?;
        *buf = rest;
        // The tenth byte holds only bit 63; more would silently drop bits.
        if shift == 63 && b > 1 {
            return Err(CodecError::Overflow);
        }
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
    fn bits_read_back_in_order() {
        let fields = [(1, 1), (0x5a, 7), (u64::MAX, 64), (0, 0), (0x1_2345_6789, 33), (3, 2)];
        let (mut w, mut tail) = (BitWriter::default(), BitWriter::default());
        for &(v, n) in &fields[..3] {
            w.write(v, n);
        }
        for &(v, n) in &fields[3..] {
            tail.write(v, n);
        }
        w.append(&tail);
        assert_eq!(w.bit_len(), 107);
        let mut bytes = w.finish();
        assert_eq!(bytes.len(), 14);
        let mut rd = BitReader::new(&bytes);
        for &(v, n) in &fields {
            assert_eq!(rd.read(n), Ok(v & u64::MAX.checked_shr(64 - n).unwrap_or(0)));
        }
        assert_eq!(rd.finish(), Ok(()));
        assert_eq!(rd.read(6), Err(CodecError::Truncated));
        *bytes.last_mut().unwrap() |= 1;
        let mut rd = BitReader::new(&bytes);
        for &(_, n) in &fields {
            rd.read(n).unwrap();
        }
        assert!(matches!(rd.finish(), Err(CodecError::Corrupt(_))));
    }

    #[test]
    fn varints_round_trip_and_reject_overflow() {
        for v in [0, 1, 127, 128, 300, u64::MAX] {
            let mut out = vec![];
            put_varint(&mut out, v);
            let mut buf: &[u8] = &out;
            assert_eq!(get_varint(&mut buf), Ok(v));
            assert!(buf.is_empty());
        }
        for v in [0, 1, -1, i64::MIN, i64::MAX] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
        assert_eq!([0, -1, 1, -2].map(zigzag), [0, 1, 2, 3]);
        let mut max = vec![];
        put_varint(&mut max, u64::MAX);
        assert_eq!(max.len(), 10);
        *max.last_mut().unwrap() = 2;
        assert_eq!(get_varint(&mut &max[..]), Err(CodecError::Overflow));
        assert_eq!(get_varint(&mut &[0x80][..]), Err(CodecError::Truncated));
    }
}
