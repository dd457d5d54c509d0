//! What one response means: the registers or bits a request returned, turned into one
//! sample per field (value = raw · scale + offset), or into bad-quality markers when the
//! request failed. A field the response does not cover, or a value that is not a finite
//! number, is `invalid`, never a made-up value.
//!
//! Strings have no number: a string sensor's stored value is the CRC-32 of its text, so
//! history shows when the text changed (and rules cannot use it); the text itself is
//! logged when it changes and printed by `forewarn poll`.

use crate::base::sample::{Quality, Sample};
use crate::config::DataType;

use super::decode;
use super::plan::{Field, ReadRequest};

/// The payload of a successful read.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    Words(Vec<u16>),
    Bits(Vec<bool>),
}

impl Data {
    fn words(&self, f: &Field) -> Option<&[u16]> {
        match self {
            Data::Words(w) => w.get(usize::from(f.offset)..usize::from(f.offset) + usize::from(f.span)),
            Data::Bits(_) => None,
        }
    }
}

/// The value of a field, scaled, or why there is none.
pub fn field_value(f: &Field, data: &Data) -> Result<f64, Quality> {
    let raw = match (data, f.data_type) {
        (Data::Bits(bits), _) => bits
            .get(usize::from(f.offset))
            .map(|b| f64::from(u8::from(*b)))
            .ok_or(Quality::Invalid)?,
        (Data::Words(_), DataType::Bit) => {
            let w = data.words(f).ok_or(Quality::Invalid)?;
            f64::from((w[0] >> f.bit) & 1)
        }
        (Data::Words(_), DataType::String) => {
            let text = field_text(f, data).ok_or(Quality::Invalid)?;
            return Ok(f64::from(crc32fast::hash(text.as_bytes())));
        }
        (Data::Words(_), dt) => decode::decode(data.words(f).ok_or(Quality::Invalid)?, dt, f.order),
    };
    let value = raw * f.scale + f.add;
    if value.is_finite() {
        Ok(value)
    } else {
        Err(Quality::Invalid)
    }
}

/// The text of a string field.
pub fn field_text(f: &Field, data: &Data) -> Option<String> {
    (f.data_type == DataType::String)
        .then(|| data.words(f).map(|w| decode::decode_string(w, f.order)))
        .flatten()
}

/// The raw registers of a field in hex (`"0x42F6"`), or its bit (`"1"`).
pub fn field_raw(f: &Field, data: &Data) -> Vec<String> {
    match data {
        Data::Bits(bits) => bits
            .get(usize::from(f.offset))
            .map(|b| vec![u8::from(*b).to_string()])
            .unwrap_or_default(),
        Data::Words(_) => data
            .words(f)
            .map(|w| w.iter().map(|w| format!("0x{w:04X}")).collect())
            .unwrap_or_default(),
    }
}

/// Decodes the fields of one response into samples.
pub fn decode_fields(req: &ReadRequest, data: &Data, ts_ms: i64, out: &mut Vec<Sample>) {
    for f in &req.fields {
        out.push(match field_value(f, data) {
            Ok(v) => Sample::good(f.sensor, ts_ms, v),
            Err(q) => Sample::bad(f.sensor, ts_ms, q),
        });
    }
}

/// Bad-quality markers for every field of `reqs`.
pub fn mark_bad<'a>(
    reqs: impl IntoIterator<Item = &'a ReadRequest>,
    ts_ms: i64,
    quality: Quality,
    out: &mut Vec<Sample>,
) {
    for r in reqs {
        out.extend(r.fields.iter().map(|f| Sample::bad(f.sensor, ts_ms, quality)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::WordOrder;

    fn field(dt: DataType, offset: u16, span: u16, bit: u8) -> Field {
        Field {
            sensor: 1,
            name: "x".into(),
            offset,
            span,
            data_type: dt,
            bit,
            order: WordOrder::ABCD,
            scale: 0.5,
            add: 1.0,
        }
    }

    #[test]
    fn bits_registers_and_scaling() {
        let bits = Data::Bits(vec![false, true]);
        assert_eq!(field_value(&field(DataType::Bool, 1, 1, 0), &bits), Ok(1.5));
        let words = Data::Words(vec![0x0000, 0x8004]);
        assert_eq!(field_value(&field(DataType::Bit, 1, 1, 15), &words), Ok(1.5));
        assert_eq!(field_value(&field(DataType::Bit, 1, 1, 1), &words), Ok(1.0));
        assert_eq!(field_value(&field(DataType::U16, 0, 1, 0), &words), Ok(1.0));
        assert_eq!(
            field_raw(&field(DataType::U32, 0, 2, 0), &words),
            vec!["0x0000", "0x8004"]
        );
    }

    #[test]
    fn short_answers_and_nan_are_invalid() {
        let words = Data::Words(vec![0x7FC0, 0x0000]);
        assert_eq!(
            field_value(&field(DataType::F32, 0, 2, 0), &words),
            Err(Quality::Invalid)
        );
        assert_eq!(
            field_value(&field(DataType::U32, 1, 2, 0), &words),
            Err(Quality::Invalid)
        );
    }

    #[test]
    fn strings_store_a_fingerprint_of_their_text() {
        let f = field(DataType::String, 0, 2, 0);
        let data = Data::Words(vec![0x4142, 0x4344]);
        assert_eq!(field_text(&f, &data).as_deref(), Some("ABCD"));
        let fingerprint = f64::from(crc32fast::hash(b"ABCD"));
        assert_eq!(field_value(&f, &data), Ok(fingerprint));
    }
}
