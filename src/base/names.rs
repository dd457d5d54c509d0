//! Names that several layers must spell the same way: the config checks reserve them, the
//! detectors raise alarms under them.

/// The longest sensor name, in bytes. Names come from topics and payloads too, so an
/// abusive or broken publisher must not be able to store kilobytes per sensor in the
/// registry and every query answer.
pub const MAX_SENSOR_NAME_BYTES: usize = 200;

/// The rule name of the `no-data` alarm of an asset whose sensors fall silent.
pub const NO_DATA_RULE: &str = "no-data";

/// The default rule name of an asset model's alarm.
pub const MODEL_RULE: &str = "model";
