//! RFC 3339 timestamps as container daemons write them (`2024-05-01T12:00:00.123456789Z`,
//! offsets allowed), turned into Unix milliseconds without a date-time dependency. The one
//! parser of the project: Podman's and Docker's logs and health results go through it.

use mesh_protocol::UnixMillis;

/// Splits a log line written with `timestamps=true` into its time and its text. A line
/// without a parsable timestamp is returned whole.
pub fn split_timestamp(raw: &str) -> (Option<UnixMillis>, &str) {
    match raw.split_once(' ') {
        Some((stamp, text)) => match parse_rfc3339_millis(stamp) {
            Some(at) => (Some(at), text),
            None => (None, raw),
        },
        None => match parse_rfc3339_millis(raw) {
            // A timestamp followed by an empty line.
            Some(at) => (Some(at), ""),
            None => (None, raw),
        },
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` to milliseconds since the Unix epoch.
pub fn parse_rfc3339_millis(s: &str) -> Option<UnixMillis> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i64> { s.get(from..to)?.parse::<i64>().ok() };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &s[19..];
    let mut millis = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let padded = format!("{:0<3}", &frac[..digits.min(3)]);
        millis = padded.parse().ok()?;
        rest = &frac[digits..];
    }
    let offset_secs = match rest {
        "Z" | "z" => 0,
        tz if tz.len() == 6 && (tz.starts_with('+') || tz.starts_with('-')) && &tz[3..4] == ":" => {
            let h: i64 = tz[1..3].parse().ok()?;
            let m: i64 = tz[4..6].parse().ok()?;
            let sign = if tz.starts_with('-') { -1 } else { 1 };
            sign * (h * 3600 + m * 60)
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    let total = secs.checked_mul(1000)?.checked_add(millis)?;
    u64::try_from(total).ok()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_daemon_timestamps() {
        assert_eq!(parse_rfc3339_millis("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_millis("2000-03-01T00:00:01.5Z"),
            Some(951_868_801_500)
        );
        assert_eq!(
            parse_rfc3339_millis("2024-02-29T12:34:56.123456789Z"),
            Some(1_709_210_096_123)
        );
        assert_eq!(
            parse_rfc3339_millis("2024-02-29T13:34:56.123+01:00"),
            Some(1_709_210_096_123)
        );
        assert_eq!(
            parse_rfc3339_millis("0001-01-01T00:00:00Z"),
            None,
            "before the epoch"
        );
        assert_eq!(parse_rfc3339_millis("not a time"), None);
    }

    #[test]
    fn splits_log_lines() {
        assert_eq!(
            split_timestamp("2024-02-29T12:34:56.123Z hello world"),
            (Some(1_709_210_096_123), "hello world")
        );
        assert_eq!(split_timestamp("plain line"), (None, "plain line"));
        assert_eq!(split_timestamp("1970-01-01T00:00:00Z"), (Some(0), ""));
    }
}
