//! Names that several layers must spell the same way: the config checks reserve them, the
//! detectors raise alarms under them.

/// The rule name of the `no-data` alarm of an asset whose sensors fall silent.
pub const NO_DATA_RULE: &str = "no-data";

/// The default rule name of an asset model's alarm.
pub const MODEL_RULE: &str = "model";
