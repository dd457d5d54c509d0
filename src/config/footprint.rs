//! The disk footprint a config promises: every sensor at its rate, kept for
//! `raw_retention`, at the bytes per sample this store measures. `forewarn check` refuses
//! a budget that cannot hold the promise, rather than letting retention break it later.

use super::Config;

/// Disk bytes per stored sample, sled's overhead included, as measured by
/// `benches/store_vs_influxdb.sh` on realistic (noisy, quantised) signals, rounded up.
pub const BYTES_PER_SAMPLE: f64 = 3.0;

/// Fixed overhead of an empty store (sled's segments, the WAL, the outbox).
pub const BASE_BYTES: f64 = 8.0 * 1024.0 * 1024.0;

/// Samples per day the configured sources produce.
pub fn samples_per_day(c: &Config) -> f64 {
    c.modbus
        .iter()
        .map(|d| d.register.len() as f64 * 86_400.0 / d.interval.0.as_secs_f64().max(1e-3))
        // `sum` of no f64 is -0.0, which prints as "-0 samples/day".
        .fold(0.0, |a, b| a + b)
}

/// Disk bytes per rollup bucket (four compressed series), rounded up.
pub const BYTES_PER_BUCKET: f64 = 8.0;

/// Projected bytes to keep `raw_retention` of every sensor, plus the rollup tiers.
pub fn projected_bytes(c: &Config) -> f64 {
    let days = c.storage.raw_retention.0.as_secs_f64() / 86_400.0;
    let sensors: f64 = c.modbus.iter().map(|d| d.register.len() as f64).sum();
    let rollups: f64 = c
        .storage
        .rollup
        .iter()
        .map(|t| sensors * t.keep.0.as_secs_f64() / t.every.0.as_secs_f64().max(1.0) * BYTES_PER_BUCKET)
        .sum();
    BASE_BYTES + samples_per_day(c) * days * BYTES_PER_SAMPLE + rollups
}

/// A problem message when `max_disk` cannot hold the promised retention.
pub fn check_budget(c: &Config) -> Option<String> {
    let need = projected_bytes(c);
    let have = c.storage.max_disk.0 as f64;
    (need > have).then(|| {
        let mib = |b: f64| b / 1048576.0;
        format!(
            "{:.0} MiB cannot hold raw_retention = {} of {:.0} samples/day (about {:.0} MiB at {BYTES_PER_SAMPLE} bytes/sample): short by {:.0} MiB; raise max_disk or lower raw_retention",
            mib(have),
            c.storage.raw_retention,
            samples_per_day(c),
            mib(need),
            mib(need - have)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::units::ByteSize;

    #[test]
    fn a_config_without_modbus_reports_zero_samples_not_minus_zero() {
        let mut c = Config::default();
        c.storage.max_disk = ByteSize(1 << 20);
        assert_eq!(samples_per_day(&c).to_string(), "0");
        let message = check_budget(&c).expect("8 MiB of overhead exceed 1 MiB");
        assert!(message.contains(" of 0 samples/day"), "{message}");
        assert!(!message.contains("-0"), "{message}");
    }
}
