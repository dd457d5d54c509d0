//! The `[[modbus]]` and `[[modbus.register]]` sections as typed structs: devices on
//! Modbus TCP or RTU, the four tables, every data type and byte order, and the helpers
//! that turn what the operator wrote (a 0- or 1-based address, a `rtu://` URL) into what
//! the protocol needs. Cross-checks live in `modbus_checks.rs`.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::Dur;

/// `[[modbus]]`: one Modbus device (a PLC, a meter, a gateway), on TCP or on a serial line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModbusDevice {
    /// Name of the device, unique; used in logs and metrics.
    pub device: String,
    /// `host:port` (Modbus TCP) or `rtu:///dev/ttyUSB0` (Modbus RTU on a serial port).
    pub address: String,
    /// Modbus unit id (slave id): 0–247 on TCP, 1–247 on RTU.
    #[serde(default = "defaults::unit")]
    pub unit: u8,
    /// Time between two polls of the registers that have no `interval` of their own.
    #[serde(default = "defaults::interval")]
    pub interval: Dur,
    /// Bound on each request, connect included. On TCP a device that does not answer in
    /// time is disconnected and reconnected with backoff; on RTU the unit backs off alone.
    #[serde(default = "defaults::timeout")]
    pub timeout: Dur,
    /// `0`: register addresses are protocol addresses (the first register is 0). `1`: they
    /// are numbered from 1, as many manuals print them (register 1 is protocol address 0).
    #[serde(default)]
    pub address_base: u8,
    /// Registers (or bits) of one table at most this many apart are read in one request.
    #[serde(default = "defaults::max_gap")]
    pub max_gap: u16,
    /// Words per register request, at most (125 is the protocol's limit).
    #[serde(default = "defaults::max_registers")]
    pub max_registers: u16,
    /// Bits per coil or discrete-input request, at most (2000 is the protocol's limit).
    #[serde(default = "defaults::max_bits")]
    pub max_bits: u16,
    /// TCP only: devices at the same `address` that all set this share one connection,
    /// one request at a time (for gateways and PLCs that accept a single client).
    #[serde(default)]
    pub shared_connection: bool,
    /// RTU only: line speed in baud. Default 19200.
    #[serde(default)]
    pub baud: Option<u32>,
    /// RTU only: `none`, `even` or `odd`. Default `even` (the Modbus serial-line default).
    #[serde(default)]
    pub parity: Option<Parity>,
    /// RTU only: data bits, 7 or 8. Default 8.
    #[serde(default)]
    pub data_bits: Option<u8>,
    /// RTU only: stop bits, 1 or 2. Default 1.
    #[serde(default)]
    pub stop_bits: Option<u8>,
    /// RTU only: silence kept on the line between a reply and the next request. Never less
    /// than 3.5 character times at the line speed. Default `5ms`.
    #[serde(default)]
    pub pause: Option<Dur>,
    /// The registers to read.
    #[serde(default)]
    pub register: Vec<Register>,
}

/// Where a device is reached.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `host:port`.
    Tcp(String),
    /// Path of the serial port.
    Rtu(String),
}

/// Line settings of a serial port, defaults applied.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SerialSettings {
    pub baud: u32,
    pub parity: Parity,
    pub data_bits: u8,
    pub stop_bits: u8,
    pub pause: std::time::Duration,
}

impl SerialSettings {
    /// Silence the protocol requires between frames: 3.5 characters of 11 bits, fixed at
    /// 1.75 ms above 19200 baud (Modbus over serial line, 2.5.1.1).
    pub fn frame_gap(&self) -> std::time::Duration {
        if self.baud > 19_200 {
            return std::time::Duration::from_micros(1750);
        }
        std::time::Duration::from_secs_f64(3.5 * 11.0 / f64::from(self.baud.max(1)))
    }

    /// The pause actually kept between requests.
    pub fn effective_pause(&self) -> std::time::Duration {
        self.pause.max(self.frame_gap())
    }
}

impl fmt::Display for SerialSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = match self.parity {
            Parity::None => 'N',
            Parity::Even => 'E',
            Parity::Odd => 'O',
        };
        write!(f, "{} {}{}{}", self.baud, self.data_bits, p, self.stop_bits)
    }
}

impl ModbusDevice {
    pub fn endpoint(&self) -> Endpoint {
        match self.address.strip_prefix("rtu://") {
            Some(path) => Endpoint::Rtu(path.to_string()),
            None => Endpoint::Tcp(self.address.clone()),
        }
    }

    pub fn serial(&self) -> SerialSettings {
        SerialSettings {
            baud: self.baud.unwrap_or(19_200),
            parity: self.parity.unwrap_or(Parity::Even),
            data_bits: self.data_bits.unwrap_or(8),
            stop_bits: self.stop_bits.unwrap_or(1),
            pause: self.pause.unwrap_or(Dur::from_millis(5)).as_duration(),
        }
    }

    /// Protocol address of a register of this device (validation keeps it in range).
    pub fn protocol_address(&self, r: &Register) -> u16 {
        r.address.saturating_sub(u32::from(self.address_base)) as u16
    }

    /// The poll interval of a register: its own, or the device's.
    pub fn interval_of(&self, r: &Register) -> Dur {
        r.interval.unwrap_or(self.interval)
    }
}

/// Serial parity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Parity {
    None,
    Even,
    Odd,
}

/// `[[modbus.register]]`: one value read from a device.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Register {
    /// Sensor name, unique across the config (e.g. `pump1.bearing_temp`).
    pub sensor: String,
    /// Table: `coil` (FC1), `discrete` (FC2), `holding` (FC3) or `input` (FC4).
    pub kind: RegisterKind,
    /// Address of the first register or bit, in the device's `address_base`.
    pub address: u32,
    /// How the registers encode the value.
    #[serde(rename = "type")]
    pub data_type: DataType,
    /// With `type = "bit"`: which bit of the register, 0 (least significant) to 15.
    #[serde(default)]
    pub bit: Option<u8>,
    /// With `type = "string"`: registers the text occupies (two characters each).
    #[serde(default)]
    pub length: Option<u16>,
    /// Byte order of values that span several registers (strings: `ABCD` or `BADC`).
    #[serde(default)]
    pub order: WordOrder,
    /// The stored value is `raw * scale + offset`.
    #[serde(default = "defaults::scale")]
    pub scale: f64,
    /// Added after scaling.
    #[serde(default)]
    pub offset: f64,
    /// Engineering unit, for people reading alerts and exports (e.g. `degC`).
    #[serde(default)]
    pub unit: Option<String>,
    /// Poll interval of this register, if it differs from the device's `interval`.
    /// Registers with the same interval form a group with its own poll plan.
    #[serde(default)]
    pub interval: Option<Dur>,
}

impl Register {
    /// Registers (or bits) the value occupies.
    pub fn span(&self) -> u16 {
        match self.data_type {
            DataType::String => self.length.unwrap_or(1),
            dt => dt.words(),
        }
    }
}

/// The four Modbus tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum RegisterKind {
    /// Read/write bits, function 1.
    Coil,
    /// Read-only bits, function 2.
    Discrete,
    /// Read/write 16-bit registers, function 3.
    Holding,
    /// Read-only 16-bit registers, function 4.
    Input,
}

impl RegisterKind {
    /// Tables of single bits rather than 16-bit words.
    pub fn is_bits(self) -> bool {
        matches!(self, RegisterKind::Coil | RegisterKind::Discrete)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RegisterKind::Coil => "coil",
            RegisterKind::Discrete => "discrete",
            RegisterKind::Holding => "holding",
            RegisterKind::Input => "input",
        }
    }
}

/// Encodings of a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataType {
    /// A coil or discrete input: 0 or 1.
    Bool,
    /// One bit (`bit = N`) of a holding or input register: 0 or 1.
    Bit,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F32,
    F64,
    /// Text of `length` registers, two characters each.
    String,
}

impl DataType {
    /// Registers (or bits) the value occupies; strings: one per `length`, see
    /// [`Register::span`].
    pub fn words(self) -> u16 {
        match self {
            DataType::Bool | DataType::Bit | DataType::U16 | DataType::I16 | DataType::String => 1,
            DataType::U32 | DataType::I32 | DataType::F32 => 2,
            DataType::U64 | DataType::I64 | DataType::F64 => 4,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DataType::Bool => "bool",
            DataType::Bit => "bit",
            DataType::U16 => "u16",
            DataType::I16 => "i16",
            DataType::U32 => "u32",
            DataType::I32 => "i32",
            DataType::U64 => "u64",
            DataType::I64 => "i64",
            DataType::F32 => "f32",
            DataType::F64 => "f64",
            DataType::String => "string",
        }
    }
}

/// Byte order of multi-register values: `ABCD` is big-endian (the Modbus convention),
/// `DCBA` fully little-endian, `BADC` bytes swapped within each register, `CDAB`
/// registers in reverse order (common on PLCs that store floats low word first). For
/// 64-bit values the same rules give `ABCDEFGH`, `HGFEDCBA`, `BADCFEHG`, `GHEFCDAB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum WordOrder {
    #[default]
    ABCD,
    DCBA,
    BADC,
    CDAB,
}

impl WordOrder {
    pub const ALL: [WordOrder; 4] = [WordOrder::ABCD, WordOrder::DCBA, WordOrder::BADC, WordOrder::CDAB];

    pub fn as_str(self) -> &'static str {
        match self {
            WordOrder::ABCD => "ABCD",
            WordOrder::DCBA => "DCBA",
            WordOrder::BADC => "BADC",
            WordOrder::CDAB => "CDAB",
        }
    }
}

pub(super) mod defaults {
    use super::Dur;

    pub fn unit() -> u8 {
        1
    }
    pub fn interval() -> Dur {
        Dur::from_secs(1)
    }
    pub fn timeout() -> Dur {
        Dur::from_secs(1)
    }
    pub fn max_gap() -> u16 {
        10
    }
    pub fn max_registers() -> u16 {
        125
    }
    pub fn max_bits() -> u16 {
        2000
    }
    pub fn scale() -> f64 {
        1.0
    }
}
