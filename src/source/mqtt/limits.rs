//! What one MQTT input may create: sensor names of bounded length, and a bounded number
//! of sensors per input.
//!
//! Topics and payloads name sensors, so whoever can publish can create them. Each new
//! name is a registry entry kept forever and a series every query scans, so a stream of
//! ever-new or huge names would grow the store without bound. A reading whose sensor
//! would break a bound is refused (counted as `sensor_limit`); readings of sensors the
//! input already knows keep arriving.

use crate::base::names::MAX_SENSOR_NAME_BYTES;

/// Why a reading's sensor was not created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum SensorRefusal {
    #[error("sensor name of {len} bytes is longer than {MAX_SENSOR_NAME_BYTES}")]
    NameTooLong { len: usize },
    #[error("the input already created max_sensors = {max} sensors")]
    TooMany { max: usize },
}

/// Whether a sensor the input does not know yet may be created, with `known` sensors
/// created so far and `max` allowed.
pub(super) fn admit_new(name: &str, known: usize, max: usize) -> Result<(), SensorRefusal> {
    if name.len() > MAX_SENSOR_NAME_BYTES {
        return Err(SensorRefusal::NameTooLong { len: name.len() });
    }
    if known >= max {
        return Err(SensorRefusal::TooMany { max });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_and_sensors_past_the_limit_are_refused() {
        assert_eq!(admit_new("pump7.temp", 0, 10), Ok(()));
        assert_eq!(admit_new(&"x".repeat(MAX_SENSOR_NAME_BYTES), 9, 10), Ok(()));
        assert_eq!(
            admit_new(&"x".repeat(5002), 0, 10),
            Err(SensorRefusal::NameTooLong { len: 5002 })
        );
        assert_eq!(admit_new("pump7.temp", 10, 10), Err(SensorRefusal::TooMany { max: 10 }));
        let message = admit_new("a", 3, 3).unwrap_err().to_string();
        assert!(message.contains("max_sensors = 3"), "{message}");
    }
}
