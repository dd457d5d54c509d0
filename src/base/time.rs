//! Timestamps as people and files write them. Everything inside forewarn is milliseconds
//! since the Unix epoch, UTC; this module turns text into that and back.
//!
//! Accepted input: RFC 3339 (`2026-11-30T03:45:52.123Z`, `…+01:00`), the same with a space
//! instead of `T` and no zone (`2020-03-09 10:14:33`, read as UTC, as SKAB and most PLC
//! exports write it), and epoch milliseconds (`1700000000123`).

/// 2000-01-01T00:00:00Z in milliseconds: the earliest time a sample may carry. Earlier
/// stamps are a clock that lost its battery, or seconds sent where milliseconds belong,
/// and refused like stamps from the future rather than stored in 1970.
pub const EARLIEST_MS: i64 = 946_684_800_000;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn digits(s: &[u8]) -> Option<i64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0i64, |acc, b| acc * 10 + i64::from(b - b'0')))
}

/// Parses a timestamp (see the module doc) into epoch milliseconds.
pub fn parse_time(text: &str) -> Option<i64> {
    let s = text.trim().as_bytes();
    if s.len() >= 19 && s[4] == b'-' && s[7] == b'-' && (s[10] == b'T' || s[10] == b' ' || s[10] == b't') {
        let (y, mo, d) = (digits(&s[0..4])?, digits(&s[5..7])?, digits(&s[8..10])?);
        if s[13] != b':' || s[16] != b':' {
            return None;
        }
        let (h, mi, se) = (digits(&s[11..13])?, digits(&s[14..16])?, digits(&s[17..19])?);
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
            return None;
        }
        let mut rest = &s[19..];
        let mut ms = 0;
        if let Some(frac) = rest.strip_prefix(b".") {
            let n = frac.iter().take_while(|b| b.is_ascii_digit()).count();
            if n == 0 {
                return None;
            }
            let mut scaled = 0;
            for (i, b) in frac[..n].iter().take(3).enumerate() {
                scaled += i64::from(b - b'0') * [100, 10, 1][i];
            }
            ms = scaled;
            rest = &frac[n..];
        }
        let offset_min = match rest {
            [] | [b'Z'] | [b'z'] => 0,
            [sign @ (b'+' | b'-'), hh1, hh2, b':', mm1, mm2] => {
                let v = digits(&[*hh1, *hh2])? * 60 + digits(&[*mm1, *mm2])?;
                if *sign == b'-' {
                    -v
                } else {
                    v
                }
            }
            _ => return None,
        };
        let days = days_from_civil(y, mo, d);
        return Some(((days * 24 + h) * 60 + mi - offset_min) * 60_000 + se * 1000 + ms);
    }
    // Epoch milliseconds (a leading '-' for dates before 1970).
    let (neg, body) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    if body.len() > 18 {
        return None;
    }
    digits(body).map(|v| if neg { -v } else { v })
}

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-30T03:45:52.123Z`.
pub fn format_rfc3339_ms(ts_ms: i64) -> String {
    let days = ts_ms.div_euclid(86_400_000);
    let in_day = ts_ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    let (h, mi, s, ms) = (
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000,
    );
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
}

/// Writes `YYYY-MM-DDTHH:MM:SS.mmmZ` into `buf` without allocating, for exports that
/// format millions of timestamps; `None` outside years 0..=9999.
pub fn rfc3339_ms_into(ts_ms: i64, buf: &mut [u8; 24]) -> Option<&[u8]> {
    let days = ts_ms.div_euclid(86_400_000);
    let in_day = ts_ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        return None;
    }
    let fields = [
        (0, y, 4),
        (5, m, 2),
        (8, d, 2),
        (11, in_day / 3_600_000, 2),
        (14, in_day / 60_000 % 60, 2),
        (17, in_day / 1000 % 60, 2),
        (20, in_day % 1000, 3),
    ];
    buf.copy_from_slice(b"0000-00-00T00:00:00.000Z");
    for (at, mut v, width) in fields {
        for i in (0..width).rev() {
            buf[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    }
    Some(&buf[..])
}

/// `YYYY-MM-DD` of a timestamp, UTC.
pub fn format_date(ts_ms: i64) -> String {
    let (y, m, d) = civil_from_days(ts_ms.div_euclid(86_400_000));
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_accepted_forms() {
        assert_eq!(parse_time("2023-11-14T22:13:20.123Z"), Some(1_700_000_000_123));
        assert_eq!(parse_time("2023-11-14 22:13:20"), Some(1_700_000_000_000));
        assert_eq!(parse_time("2023-11-14T23:13:20+01:00"), Some(1_700_000_000_000));
        assert_eq!(parse_time("2023-11-14T22:13:20.5Z"), Some(1_700_000_000_500));
        assert_eq!(parse_time("1700000000123"), Some(1_700_000_000_123));
        assert_eq!(parse_time("1969-12-31T23:59:59Z"), Some(-1000));
        for bad in [
            "",
            "yesterday",
            "2023-13-01 00:00:00",
            "2023-11-14T22:13",
            "2023-11-14T22:13:20+1",
            "12ab",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn formats_round_trip() {
        for t in [0, 1_700_000_000_123, -1000, 951_782_400_000 /* 2000-02-29 */] {
            assert_eq!(parse_time(&format_rfc3339_ms(t)), Some(t));
        }
        assert_eq!(format_rfc3339_ms(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(format_date(1_700_000_000_123), "2023-11-14");
        let mut buf = [0u8; 24];
        for t in [0, 1_700_000_000_123, -1000, 951_782_400_000] {
            assert_eq!(rfc3339_ms_into(t, &mut buf).unwrap(), format_rfc3339_ms(t).as_bytes());
        }
    }
}
