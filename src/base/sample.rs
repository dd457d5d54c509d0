//! The one currency between stages: a [`Sample`] is a sensor's value at a time, with
//! its quality. Sensor names are mapped to compact [`SensorId`]s once, at start-up, by the
//! store's registry, so the hot paths move integers, not strings.

use std::fmt;

/// Compact, persistent id of a sensor name (see `store::registry`).
pub type SensorId = u32;

/// One reading. A failed read is a sample too (bad quality, value NaN): history shows
/// the gap and why, instead of a made-up value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub sensor: SensorId,
    /// Milliseconds since the Unix epoch, UTC: when the value was requested or measured.
    pub ts_ms: i64,
    pub value: f64,
    pub quality: Quality,
}

impl Sample {
    pub fn good(sensor: SensorId, ts_ms: i64, value: f64) -> Self {
        Sample {
            sensor,
            ts_ms,
            value,
            quality: Quality::Good,
        }
    }
    pub fn bad(sensor: SensorId, ts_ms: i64, quality: Quality) -> Self {
        Sample {
            sensor,
            ts_ms,
            value: f64::NAN,
            quality,
        }
    }
}

/// Why a sample can or cannot be trusted. Encoded in one byte on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Quality {
    Good,
    /// The device did not answer within its timeout.
    Timeout,
    /// No connection to the device, or the transport failed.
    Disconnected,
    /// The device answered with a Modbus exception (the code).
    Exception(u8),
    /// The raw value could not be decoded (e.g. a non-finite float).
    Invalid,
}

impl Quality {
    pub fn is_good(self) -> bool {
        self == Quality::Good
    }

    pub fn to_byte(self) -> u8 {
        match self {
            Quality::Good => 0,
            Quality::Timeout => 1,
            Quality::Disconnected => 2,
            Quality::Invalid => 3,
            // Exception codes are 1..=0x7f on the wire; the high bit tags them here.
            Quality::Exception(code) => 0x80 | (code & 0x7f),
        }
    }

    pub fn from_byte(b: u8) -> Quality {
        match b {
            0 => Quality::Good,
            1 => Quality::Timeout,
            2 => Quality::Disconnected,
            b if b & 0x80 != 0 => Quality::Exception(b & 0x7f),
            _ => Quality::Invalid,
        }
    }
}

impl fmt::Display for Quality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Quality::Good => f.write_str("good"),
            Quality::Timeout => f.write_str("timeout"),
            Quality::Disconnected => f.write_str("disconnected"),
            Quality::Invalid => f.write_str("invalid"),
            Quality::Exception(code) => write!(f, "exception {code:02} ({})", exception_name(*code)),
        }
    }
}

/// Names of the Modbus exception codes, as manuals print them.
pub fn exception_name(code: u8) -> &'static str {
    match code {
        1 => "illegal function",
        2 => "illegal data address",
        3 => "illegal data value",
        4 => "server device failure",
        5 => "acknowledge",
        6 => "server device busy",
        8 => "memory parity error",
        10 => "gateway path unavailable",
        11 => "gateway target device failed to respond",
        _ => "unknown exception",
    }
}

pub use crate::base::time::{format_rfc3339_ms as rfc3339_ms, now_ms};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quality_byte_round_trip() {
        for q in [
            Quality::Good,
            Quality::Timeout,
            Quality::Disconnected,
            Quality::Invalid,
            Quality::Exception(2),
            Quality::Exception(11),
        ] {
            assert_eq!(Quality::from_byte(q.to_byte()), q);
        }
        assert_eq!(Quality::Exception(2).to_string(), "exception 02 (illegal data address)");
    }
}
