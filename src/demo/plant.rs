//! The simulated plant of `forewarn demo`: one pump whose bearing overheats and recovers
//! on a fixed schedule, exposed as Modbus registers.
//!
//! Timeline of each 90 s cycle: healthy at ~60 °C for 20 s; the bearing then heats up to
//! ~92 °C over 20 s (crossing the 80 °C alarm limit near 35 s), stays hot for 20 s, and
//! cools back to ~60 °C (crossing the 75 °C clear level near 68 s). Vibration rises and
//! falls with it. Noise is small and deterministic-free but bounded, so the demo alerts
//! exactly once per cycle.

use std::time::Duration;

use crate::config::{DataType, RegisterKind, WordOrder};
use crate::source::modbus::decode::encode;

use super::modbus_server::RegisterBank;

/// Holding register of the bearing temperature (f32, ABCD).
pub const BEARING_TEMP_ADDR: u16 = 0;
/// Input register of the vibration (u16, hundredths of mm/s).
pub const VIBRATION_ADDR: u16 = 10;
pub const CYCLE_S: f64 = 90.0;

/// (bearing temperature °C, vibration mm/s) at `t` seconds into the demo, without noise.
pub fn profile(t: f64) -> (f64, f64) {
    let c = t % CYCLE_S;
    let heat = if c < 20.0 {
        0.0
    } else if c < 40.0 {
        (c - 20.0) / 20.0
    } else if c < 60.0 {
        1.0
    } else if c < 80.0 {
        1.0 - (c - 60.0) / 20.0
    } else {
        0.0
    };
    (60.0 + 32.0 * heat, 1.2 + 3.3 * heat)
}

/// What the PLC reports at `t`: the profile with the sensors' noise, at the registers'
/// resolution.
pub fn reading(t: f64) -> (f64, f64) {
    let (temp, vib) = profile(t);
    let temp = (temp + 0.3 * (fastrand::f64() - 0.5)) as f32 as f64;
    let vib = ((vib + 0.1 * (fastrand::f64() - 0.5)).max(0.0) * 100.0).round() / 100.0;
    (temp, vib)
}

/// `n` healthy readings `step_ms` apart, as `(ts_ms, [temperature, vibration])`: the
/// history the demo's model is trained on, as the gateway would have stored it before the
/// bearing started to fail.
pub fn healthy_history(n: usize, step_ms: i64) -> Vec<(i64, Vec<f64>)> {
    (0..n)
        .map(|i| {
            let (temp, vib) = reading(0.0);
            (i as i64 * step_ms, vec![temp, vib])
        })
        .collect()
}

/// Updates the bank's registers every `step` until the task is dropped.
pub async fn simulate(bank: RegisterBank, step: Duration) {
    let start = tokio::time::Instant::now();
    let mut ticker = tokio::time::interval(step);
    loop {
        ticker.tick().await;
        let (temp, vib) = reading(start.elapsed().as_secs_f64());
        bank.set(
            RegisterKind::Holding,
            BEARING_TEMP_ADDR,
            &encode(temp, DataType::F32, WordOrder::ABCD),
        );
        bank.set(
            RegisterKind::Input,
            VIBRATION_ADDR,
            &encode(vib * 100.0, DataType::U16, WordOrder::ABCD),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::profile;

    #[test]
    fn crosses_the_limits_once_per_cycle() {
        let temps: Vec<f64> = (0..900).map(|i| profile(i as f64 / 10.0).0).collect();
        let up = temps.windows(2).filter(|w| w[0] <= 80.0 && w[1] > 80.0).count();
        let down = temps.windows(2).filter(|w| w[0] >= 75.0 && w[1] < 75.0).count();
        assert_eq!((up, down), (1, 1));
        assert!(temps[..200].iter().all(|t| *t < 61.0));
    }
}
