//! Widening `f32` readings to the `f64` every sample holds, the same way for every source.
//!
//! An `f32` written as `123.456` (by a PLC's register or a Sparkplug `Float` metric) is
//! the binary value nearest to it, 123.45600128173828 when widened bit for bit. What the
//! writer meant is the shortest decimal that reads back as the same `f32`, so that is
//! what is stored: Modbus and MQTT inputs agree, and a value typed as `123.456` is queried
//! as 123.456.

/// Widens an f32 through its shortest decimal form (non-finite values widen as they are).
pub fn widen_f32(v: f32) -> f64 {
    if !v.is_finite() {
        return f64::from(v);
    }
    // Rust's `Display` of an f32 is its shortest round-tripping decimal.
    v.to_string().parse().unwrap_or(f64::from(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortest_decimal_is_kept() {
        assert_eq!(widen_f32(123.456), 123.456);
        assert_eq!(widen_f32(0.1), 0.1);
        assert_eq!(widen_f32(-2.5), -2.5);
        assert_eq!(widen_f32(f32::MAX), 3.402_823_5e38);
        assert_eq!(widen_f32(1e-45), 1e-45);
        assert!(widen_f32(f32::NAN).is_nan());
        assert_eq!(widen_f32(f32::NEG_INFINITY), f64::NEG_INFINITY);
        // Bit for bit, the same f32 again.
        for v in [123.456f32, 1.0e-7, 16_777_217.0, 3.3] {
            assert_eq!(widen_f32(v) as f32, v);
        }
    }
}
