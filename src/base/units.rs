//! Human-friendly quantities in the config file: durations (`"500ms"`, `"30d"`) and byte
//! sizes (`"4GiB"`). They are strings in TOML because plant engineers write them that
//! way in Telegraf and Node-RED; a value that does not parse is rejected at load time with
//! the accepted forms in the message, never silently defaulted.
//!
//! Neither admits a space, not even between number and unit (`"4 GiB"`, `" 1s"`): one
//! spelling per value, and a stray space is more often a paste error than a style. A value
//! too large to hold is refused, never clamped to the largest one.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written as a number and a unit: `ms`, `s`, `m`, `h`, `d` or `w`
/// (for example `"250ms"`, `"1.5s"`, `"30d"`). Several parts may be joined: `"1h30m"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Dur(pub Duration);

impl Dur {
    pub const fn from_millis(ms: u64) -> Self {
        Dur(Duration::from_millis(ms))
    }
    pub const fn from_secs(s: u64) -> Self {
        Dur(Duration::from_secs(s))
    }
    pub fn as_duration(self) -> Duration {
        self.0
    }
}

/// Parses `"500ms"`, `"1s"`, `"1h30m"`, `"30d"`. No spaces anywhere, not even between
/// the number and its unit: `"1 s"` is refused like `" 1s"`, so a value reads the same in
/// every tool that copies it.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = |why: &str| {
        format!(
            "invalid duration {text:?}{why}: expected a number and a unit (ms, s, m, h, d, w) without spaces, e.g. \"500ms\", \"1s\", \"30d\""
        )
    };
    if text.is_empty() {
        return Err(bad(""));
    }
    if text.contains(char::is_whitespace) {
        return Err(bad(" (contains a space)"));
    }
    let mut total_ms = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| bad(""))?;
        if num_len == 0 {
            return Err(bad(""));
        }
        let number: f64 = rest[..num_len].parse().map_err(|_| bad(""))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ms" => 1.0,
            "s" => 1e3,
            "m" | "min" => 60e3,
            "h" => 3600e3,
            "d" => 86_400e3,
            "w" => 7.0 * 86_400e3,
            _ => return Err(bad("")),
        };
        rest = &rest[unit_len..];
        total_ms += number * factor;
    }
    // About 31,700 years: far past any retention, and exact in an f64 of milliseconds.
    if !total_ms.is_finite() || total_ms > 1e15 {
        return Err(bad(" (too large)"));
    }
    Ok(Duration::from_micros((total_ms * 1000.0).round() as u64))
}

impl std::str::FromStr for Dur {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        parse_duration(text).map(Dur)
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        let (n, unit) = [(86_400_000, "d"), (3_600_000, "h"), (60_000, "m"), (1000, "s")]
            .iter()
            .find(|(d, _)| ms >= *d && ms % d == 0)
            .map(|(d, u)| (ms / d, *u))
            .unwrap_or((ms, "ms"));
        write!(f, "{n}{unit}")
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s).map(Dur).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A size in bytes written as a number and a unit: `B`, `KB`/`KiB`, `MB`/`MiB`,
/// `GB`/`GiB`, `TB`/`TiB` (for example `"4GiB"`, `"512MB"`), without spaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct ByteSize(pub u64);

/// Parses `"4GiB"`, `"512MB"`, `"100"` (bytes). Like durations, no spaces anywhere.
/// Whole numbers are computed exactly; a value past `u64::MAX` bytes is refused, never
/// clamped.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let bad = |why: &str| {
        format!(
            "invalid size {text:?}{why}: expected a number and a unit (B, KB, KiB, MB, MiB, GB, GiB, TB, TiB) without spaces, e.g. \"4GiB\""
        )
    };
    if text.contains(char::is_whitespace) {
        return Err(bad(" (contains a space)"));
    }
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    if split == 0 {
        return Err(bad(""));
    }
    let factor: u64 = match &text[split..] {
        "" | "B" => 1,
        "KB" | "kB" => 1000,
        "KiB" => 1 << 10,
        "MB" => 1_000_000,
        "MiB" => 1 << 20,
        "GB" => 1_000_000_000,
        "GiB" => 1 << 30,
        "TB" => 1_000_000_000_000,
        "TiB" => 1 << 40,
        _ => return Err(bad("")),
    };
    let number = &text[..split];
    let too_large = || bad(" (more than 18446744073709551615 bytes)");
    if !number.contains('.') {
        let n: u64 = number.parse().map_err(|_| too_large())?;
        return n.checked_mul(factor).ok_or_else(too_large);
    }
    let n: f64 = number.parse().map_err(|_| bad(""))?;
    let bytes = (n * factor as f64).round();
    // 2^64 is the first f64 that does not fit; `as u64` would clamp it silently.
    if !bytes.is_finite() || bytes >= 18_446_744_073_709_551_616.0 {
        return Err(too_large());
    }
    Ok(bytes as u64)
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
        let mut v = self.0 as f64;
        let mut i = 0;
        while v >= 1024.0 && i + 1 < UNITS.len() {
            v /= 1024.0;
            i += 1;
        }
        if v.fract() == 0.0 {
            write!(f, "{v}{}", UNITS[i])
        } else {
            write!(f, "{v:.1}{}", UNITS[i])
        }
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_size(&s).map(ByteSize).map_err(serde::de::Error::custom)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1s").unwrap(), Duration::from_secs(1));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("30d").unwrap(), Duration::from_secs(30 * 86_400));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
    }

    #[test]
    fn durations_reject_garbage() {
        for bad in ["", "5", "5x", "ms", "1.2.3s", "-1s", "1 s"] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains("invalid duration"), "{bad}: {err}");
        }
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("4GiB").unwrap(), 4 << 30);
        assert_eq!(parse_size("512MB").unwrap(), 512_000_000);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert!(parse_size("4 gigs").is_err());
        assert!(parse_size("GiB").is_err());
    }

    #[test]
    fn spaces_are_refused_with_the_accepted_forms() {
        for bad in [" 1s", "1s ", "1 s", "1h 30m", "\t1s"] {
            let err = parse_duration(bad).unwrap_err();
            assert!(
                err.contains("contains a space") && err.contains("ms, s, m, h, d, w"),
                "{bad}: {err}"
            );
        }
        for bad in [" 4GiB", "4GiB ", "4 GiB"] {
            let err = parse_size(bad).unwrap_err();
            assert!(
                err.contains("contains a space") && err.contains("KiB, MB, MiB"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn overflowing_values_are_refused_not_clamped() {
        for bad in ["99999999999999999999d", "99999999999999999999ms", "1e400s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert!(parse_duration("99999999999999999999d")
            .unwrap_err()
            .contains("too large"));
        for bad in [
            "18446744073709551616B",
            "18446744073709551616",
            "16777216TiB",
            "99999999999999999999.5GB",
        ] {
            let err = parse_size(bad).unwrap_err();
            assert!(err.contains("more than 18446744073709551615 bytes"), "{bad}: {err}");
        }
        assert_eq!(parse_size("18446744073709551615B").unwrap(), u64::MAX);
        assert_eq!(parse_size("16777215TiB").unwrap(), 16_777_215 << 40);
        assert_eq!(parse_size("1.5KiB").unwrap(), 1536);
    }

    #[test]
    fn display_round_trips() {
        for s in ["500ms", "1s", "30d", "14d", "90m"] {
            assert_eq!(Dur(parse_duration(s).unwrap()).to_string(), s);
        }
        assert_eq!(ByteSize(4 << 30).to_string(), "4GiB");
    }
}
