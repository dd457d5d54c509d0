//! Poll plans: the registers of a device compiled once into as few requests as the
//! device allows. Registers of the same table are merged while the gap between them is
//! at most `max_gap` words and the request stays within `max_registers` words.

use crate::config::{DataType, RegisterKind, WordOrder};
use crate::sample::SensorId;

/// One value inside a request's response.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub sensor: SensorId,
    pub name: String,
    /// Word offset from the request's first address.
    pub offset: u16,
    pub data_type: DataType,
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
}

/// A register to plan: its table, address and how it decodes.
#[derive(Debug, Clone)]
pub struct PlanInput {
    pub kind: RegisterKind,
    pub address: u16,
    pub field: Field,
}

pub fn build(mut inputs: Vec<PlanInput>, max_gap: u16, max_registers: u16) -> Vec<ReadRequest> {
    inputs.sort_by_key(|i| (i.kind, i.address));
    let mut out: Vec<ReadRequest> = Vec::new();
    for input in inputs {
        let words = input.field.data_type.words();
        let end = u32::from(input.address) + u32::from(words);
        let fits = out.last().is_some_and(|r| {
            let r_end = u32::from(r.start) + u32::from(r.count);
            r.kind == input.kind
                && u32::from(input.address) <= r_end + u32::from(max_gap)
                && end.max(r_end) - u32::from(r.start) <= u32::from(max_registers)
        });
        if fits {
            if let Some(r) = out.last_mut() {
                let r_end = u32::from(r.start) + u32::from(r.count);
                r.count = (end.max(r_end) - u32::from(r.start)) as u16;
                r.fields.push(Field {
                    offset: input.address - r.start,
                    ..input.field
                });
            }
        } else {
            out.push(ReadRequest {
                kind: input.kind,
                start: input.address,
                count: words,
                fields: vec![Field {
                    offset: 0,
                    ..input.field
                }],
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(kind: RegisterKind, address: u16, dt: DataType) -> PlanInput {
        PlanInput {
            kind,
            address,
            field: Field {
                sensor: address as u32,
                name: format!("s{address}"),
                offset: 0,
                data_type: dt,
                order: WordOrder::ABCD,
                scale: 1.0,
                add: 0.0,
            },
        }
    }

    #[test]
    fn merges_near_registers_of_one_table() {
        use RegisterKind::*;
        let plan = build(
            vec![
                input(Holding, 0, DataType::F32),
                input(Holding, 5, DataType::U16),
                input(Input, 10, DataType::U16),
                input(Holding, 100, DataType::U16),
            ],
            10,
            125,
        );
        assert_eq!(plan.len(), 3);
        assert_eq!((plan[0].kind, plan[0].start, plan[0].count), (Holding, 0, 6));
        assert_eq!(plan[0].fields[1].offset, 5);
        assert_eq!((plan[1].kind, plan[1].start, plan[1].count), (Holding, 100, 1));
        assert_eq!((plan[2].kind, plan[2].start, plan[2].count), (Input, 10, 1));
    }

    #[test]
    fn respects_max_registers() {
        let inputs = (0..200)
            .map(|a| input(RegisterKind::Holding, a, DataType::U16))
            .collect();
        let plan = build(inputs, 10, 125);
        assert_eq!(plan.iter().map(|r| r.count).collect::<Vec<_>>(), vec![125, 75]);
        assert!(plan.iter().all(|r| r.fields.iter().all(|f| f.offset < r.count)));
    }
}
