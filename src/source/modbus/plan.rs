//! Poll plans: the registers of a device compiled once into as few requests as the
//! device allows. Values of the same table are merged while the gap between them is at
//! most `max_gap` registers (or bits) and the request stays within `max_registers` words
//! (`max_bits` bits for coils and discrete inputs). A request that the device refuses
//! with exception 02 (illegal data address) is [`split`] in two at run time, so one hole
//! in a device's map costs a few requests, not the whole block.

use crate::base::sample::SensorId;
use crate::config::{DataType, RegisterKind, WordOrder};

/// One value inside a request's response.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub sensor: SensorId,
    pub name: String,
    /// Offset (registers or bits) from the request's first address.
    pub offset: u16,
    /// Registers (or bits) the value occupies.
    pub span: u16,
    pub data_type: DataType,
    /// Bit of the register, for [`DataType::Bit`].
    pub bit: u8,
    pub order: WordOrder,
    pub scale: f64,
    pub add: f64,
}

/// One Modbus read request per poll cycle.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadRequest {
    pub kind: RegisterKind,
    pub start: u16,
    pub count: u16,
    pub fields: Vec<Field>,
    /// The last exception code this request got, so a persistent one is logged once.
    pub last_exception: Option<u8>,
}

impl ReadRequest {
    fn single(kind: RegisterKind, address: u16, field: Field) -> ReadRequest {
        ReadRequest {
            kind,
            start: address,
            count: field.span,
            fields: vec![Field { offset: 0, ..field }],
            last_exception: None,
        }
    }

    /// Protocol address one past the last register (or bit) read.
    pub fn end(&self) -> u32 {
        u32::from(self.start) + u32::from(self.count)
    }
}

/// A value to plan: its table, protocol address and how it decodes.
#[derive(Debug, Clone)]
pub struct PlanInput {
    pub kind: RegisterKind,
    pub address: u16,
    pub field: Field,
}

/// How far a device lets requests grow.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_gap: u16,
    pub max_registers: u16,
    pub max_bits: u16,
}

impl Limits {
    fn max_count(&self, kind: RegisterKind) -> u32 {
        u32::from(if kind.is_bits() {
            self.max_bits
        } else {
            self.max_registers
        })
    }
}

/// Compiles values into requests, ordered by table and address.
pub fn build(mut inputs: Vec<PlanInput>, limits: Limits) -> Vec<ReadRequest> {
    inputs.sort_by_key(|i| (i.kind, i.address));
    let mut out: Vec<ReadRequest> = Vec::new();
    for input in inputs {
        let end = u32::from(input.address) + u32::from(input.field.span);
        let merged = match out.last_mut() {
            Some(r)
                if r.kind == input.kind
                    && u32::from(input.address) <= r.end() + u32::from(limits.max_gap)
                    && end.max(r.end()) - u32::from(r.start) <= limits.max_count(input.kind) =>
            {
                r.count = (end.max(r.end()) - u32::from(r.start)) as u16;
                r.fields.push(Field {
                    offset: input.address - r.start,
                    ..input.field.clone()
                });
                true
            }
            _ => false,
        };
        if !merged {
            out.push(ReadRequest::single(input.kind, input.address, input.field));
        }
    }
    out
}

/// Splits a request of two or more fields into two requests of half the fields each,
/// each covering only its own fields; `None` for a single field.
pub fn split(req: &ReadRequest) -> Option<(ReadRequest, ReadRequest)> {
    if req.fields.len() < 2 {
        return None;
    }
    let mut fields = req.fields.clone();
    fields.sort_by_key(|f| f.offset);
    let right = fields.split_off(fields.len() / 2);
    let part = |fields: Vec<Field>| {
        let first = fields.iter().map(|f| f.offset).min().unwrap_or(0);
        let last = fields.iter().map(|f| f.offset + f.span).max().unwrap_or(first);
        ReadRequest {
            kind: req.kind,
            start: req.start + first,
            count: last - first,
            fields: fields
                .into_iter()
                .map(|f| Field {
                    offset: f.offset - first,
                    ..f
                })
                .collect(),
            last_exception: None,
        }
    };
    Some((part(fields), part(right)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use RegisterKind::*;

    const LIMITS: Limits = Limits {
        max_gap: 10,
        max_registers: 125,
        max_bits: 2000,
    };

    fn input(kind: RegisterKind, address: u16, dt: DataType) -> PlanInput {
        PlanInput {
            kind,
            address,
            field: Field {
                sensor: address as u32,
                name: format!("s{address}"),
                offset: 0,
                span: dt.words(),
                data_type: dt,
                bit: 0,
                order: WordOrder::ABCD,
                scale: 1.0,
                add: 0.0,
            },
        }
    }

    fn shape(plan: &[ReadRequest]) -> Vec<(RegisterKind, u16, u16)> {
        plan.iter().map(|r| (r.kind, r.start, r.count)).collect()
    }

    #[test]
    fn merges_near_registers_of_one_table() {
        let plan = build(
            vec![
                input(Holding, 0, DataType::F32),
                input(Holding, 5, DataType::U16),
                input(Input, 10, DataType::U16),
                input(Holding, 100, DataType::U16),
            ],
            LIMITS,
        );
        assert_eq!(shape(&plan), vec![(Holding, 0, 6), (Holding, 100, 1), (Input, 10, 1)]);
        assert_eq!(plan[0].fields[1].offset, 5);
    }

    #[test]
    fn respects_max_registers() {
        let inputs = (0..200).map(|a| input(Holding, a, DataType::U16)).collect();
        let plan = build(inputs, LIMITS);
        assert_eq!(plan.iter().map(|r| r.count).collect::<Vec<_>>(), vec![125, 75]);
        assert!(plan.iter().all(|r| r.fields.iter().all(|f| f.offset < r.count)));
    }

    #[test]
    fn bits_merge_up_to_max_bits_and_never_with_registers() {
        let mut inputs: Vec<_> = (0..2500).step_by(5).map(|a| input(Coil, a, DataType::Bool)).collect();
        inputs.push(input(Discrete, 3, DataType::Bool));
        inputs.push(input(Holding, 3, DataType::U16));
        let plan = build(inputs, LIMITS);
        assert_eq!(
            shape(&plan),
            vec![(Coil, 0, 1996), (Coil, 2000, 496), (Discrete, 3, 1), (Holding, 3, 1)]
        );
    }

    #[test]
    fn two_hundred_scattered_registers_take_five_requests() {
        // Every third register, a gap of two: 200 values over 598 words.
        let inputs = (0..200).map(|i| input(Holding, i * 3, DataType::U16)).collect();
        let plan = build(inputs, LIMITS);
        assert_eq!(plan.len(), 5, "{:?}", shape(&plan));
        assert_eq!(plan.iter().map(|r| r.fields.len()).sum::<usize>(), 200);
    }

    #[test]
    fn gaps_wider_than_max_gap_start_a_new_request() {
        let plan = build(
            vec![
                input(Holding, 0, DataType::U16),
                input(Holding, 11, DataType::U16),
                input(Holding, 23, DataType::U16),
            ],
            LIMITS,
        );
        assert_eq!(shape(&plan), vec![(Holding, 0, 12), (Holding, 23, 1)]);
    }

    #[test]
    fn split_halves_fields_and_tightens_spans() {
        let plan = build(
            vec![
                input(Holding, 0, DataType::U16),
                input(Holding, 4, DataType::F32),
                input(Holding, 8, DataType::U16),
                input(Holding, 10, DataType::F64),
            ],
            LIMITS,
        );
        assert_eq!(shape(&plan), vec![(Holding, 0, 14)]);
        let (a, b) = split(&plan[0]).unwrap();
        assert_eq!((a.start, a.count, a.fields.len()), (0, 6, 2));
        assert_eq!((b.start, b.count, b.fields.len()), (8, 6, 2));
        assert_eq!(b.fields[1].offset, 2);
        let (c, _) = split(&a).unwrap();
        assert!(split(&c).is_none());
    }
}
