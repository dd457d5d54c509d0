//! Names and figures that several layers must agree on: the config checks reserve the
//! names the detectors raise alarms under, and refuse a `min_free_disk` below the reserve
//! the store keeps.

/// The longest sensor name, in bytes. Names come from topics and payloads too, so an
/// abusive or broken publisher must not be able to store kilobytes per sensor in the
/// registry and every query answer.
pub const MAX_SENSOR_NAME_BYTES: usize = 200;

/// The rule name of the `no-data` alarm of an asset whose sensors fall silent.
pub const NO_DATA_RULE: &str = "no-data";

/// The default rule name of an asset model's alarm.
pub const MODEL_RULE: &str = "model";

/// Free bytes below which no writer touches the store's database: sled turns a failed
/// write into a permanent error, so it must never meet a full disk.
pub const WRITE_RESERVE: u64 = 4 << 20;

/// The asset of forwarded samples whose sensor is in no asset.
pub const UNASSIGNED_ASSET: &str = "_unassigned";
