//! Durations and instants as operators type them: `30d`, `12h`, `15m`, `90s`, `500ms` (or a
//! sum such as `1h30m`), and for time filters either an RFC 3339 time or a duration meaning
//! "that long ago".
//!
//! Both are clap value parsers, so a bad value is a usage error naming the flag.

use chrono::{DateTime, Utc};

/// How the accepted forms are described in error messages.
const DURATION_FORMS: &str = "a number followed by d, h, m, s or ms, e.g. 30d, 12h, 15m, 90s, \
                              500ms (or a sum such as 1h30m)";

/// Parses `30d`, `12h`, `15m`, `90s`, `500ms`, or several such parts one after another.
pub(crate) fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let invalid =
        |why: String| format!("invalid duration `{text}`: {why}; expected {DURATION_FORMS}");
    if text.is_empty() {
        return Err(invalid("it is empty".to_owned()));
    }
    let mut total = std::time::Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(invalid(format!("`{rest}` does not start with a number")));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| invalid("the number is too large".to_owned()))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let millis_per_unit: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => return Err(invalid(format!("`{number}` has no unit"))),
            other => return Err(invalid(format!("unknown unit `{other}`"))),
        };
        let millis = number
            .checked_mul(millis_per_unit)
            .ok_or_else(|| invalid("it is too long".to_owned()))?;
        total = total
            .checked_add(std::time::Duration::from_millis(millis))
            .ok_or_else(|| invalid("it is too long".to_owned()))?;
    }
    Ok(total)
}

/// A duration as a chrono duration, for arithmetic on timestamps; at most about 292 million
/// years, far beyond what [`parse_duration`] is given in practice.
pub(crate) fn to_chrono(duration: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

/// An instant given as an RFC 3339 time (`2026-01-31T12:00:00Z`) or as a duration ago (`2h`:
/// two hours before now).
pub(crate) fn parse_instant(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    match parse_duration(text) {
        Ok(ago) => Ok(Utc::now()
            .checked_sub_signed(to_chrono(ago))
            .unwrap_or(DateTime::<Utc>::MIN_UTC)),
        Err(_) => Err(format!(
            "invalid time `{text}`: expected an RFC 3339 time such as 2026-01-31T12:00:00Z, or \
             how long ago as {DURATION_FORMS}"
        )),
    }
}

/// `1d 2h`, `3m 20s`, `450ms`: a lag or an age, to the two largest units.
pub(crate) fn format_duration(duration: chrono::Duration) -> String {
    let millis = duration.num_milliseconds().max(0);
    if millis < 1_000 {
        return format!("{millis}ms");
    }
    let seconds = millis / 1_000;
    let (days, hours, minutes, secs) = (
        seconds / 86_400,
        seconds % 86_400 / 3_600,
        seconds % 3_600 / 60,
        seconds % 60,
    );
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, _) => format!("{minutes}m {secs}s"),
        (0, _, _) => format!("{hours}h {minutes}m"),
        _ => format!("{days}d {hours}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn units() {
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(12 * 3_600)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(15 * 60)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5_400)));
    }

    #[test]
    fn errors_say_what_is_wrong() {
        for (text, says) in [
            ("", "empty"),
            ("30", "no unit"),
            ("3x", "unknown unit `x`"),
            ("d", "does not start with a number"),
            ("-5m", "does not start with a number"),
            ("99999999999999999999d", "too large"),
            ("999999999999999d", "too long"),
        ] {
            let err = parse_duration(text).err().unwrap_or_default();
            assert!(err.contains(says), "{text:?}: {err}");
            assert!(err.contains("e.g. 30d"), "{text:?}: {err}");
        }
    }

    #[test]
    fn instants() {
        let at = parse_instant("2026-01-31T12:00:00+01:00").ok();
        assert_eq!(
            at.map(|t| t.to_rfc3339()),
            Some("2026-01-31T11:00:00+00:00".into())
        );
        let ago = parse_instant("2h").ok().map(|t| Utc::now() - t);
        assert!(
            ago.is_some_and(|d| (d.num_minutes() - 120).abs() <= 1),
            "{ago:?}"
        );
        assert!(parse_instant("yesterday").is_err());
    }

    #[test]
    fn formatting() {
        let f = |ms| format_duration(chrono::Duration::milliseconds(ms));
        assert_eq!(f(450), "450ms");
        assert_eq!(f(12_000), "12s");
        assert_eq!(f(200_000), "3m 20s");
        assert_eq!(f(3_723_000), "1h 2m");
        assert_eq!(f(93_600_000), "1d 2h");
    }
}
