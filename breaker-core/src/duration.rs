//! Duration strings (`"250ms"`, `"30s"`, `"1m30s"`): one parser for the attribute's arguments,
//! checked at expansion time, and for config files (feature `serde`), so both accept exactly the
//! same spellings.

use std::time::Duration;

/// Units from largest to smallest: a string must use them in this order, each at most once, so
/// `"1m30s"` is accepted and the ambiguous `"30s1m"` or `"1s1s"` are not.
const UNITS: [(&str, u64); 4] = [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)];

/// What a valid duration looks like, for error messages.
pub const DURATION_FORMAT: &str =
    "expected a number followed by a unit (h, m, s, ms), e.g. \"250ms\", \"30s\", \"5m\", \"1m30s\"";

/// Parses `"1h"`, `"5m"`, `"30s"`, `"250ms"` and descending combinations such as `"1m30s"`, the
/// spellings `#[circuit_breaker]` and config files accept. Returns `None` for anything else,
/// including overflow; [`DURATION_FORMAT`] says what is expected.
///
/// ```
/// # use breaker_core as breaker;
/// use std::time::Duration;
/// use breaker::parse_duration;
///
/// assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
/// assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
/// assert_eq!(parse_duration("30s1m"), None, "units descend, each at most once");
/// ```
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut rest = text;
    let mut millis: u64 = 0;
    // Index into UNITS of the next unit allowed; enforces descending order and no repeats.
    let mut next_unit = 0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let value: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let offset = UNITS[next_unit..].iter().position(|(u, _)| *u == unit)?;
        let (_, scale) = UNITS[next_unit + offset];
        next_unit += offset + 1;
        millis = millis.checked_add(value.checked_mul(scale)?)?;
    }
    Some(Duration::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Option<Duration> {
        parse_duration(text)
    }

    #[test]
    fn accepts_single_units() {
        assert_eq!(parse("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse("0s"), Some(Duration::ZERO));
    }

    #[test]
    fn accepts_descending_combinations() {
        assert_eq!(parse("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse("1h1m1s1ms"), Some(Duration::from_millis(3_661_001)));
        assert_eq!(parse("2s500ms"), Some(Duration::from_millis(2_500)));
    }

    #[test]
    fn rejects_everything_else() {
        for bad in [
            "",
            "s",
            "30",
            "30x",
            "1.5s",
            " 30s",
            "30s ",
            "30 s",
            "-5s",
            "30s1m",
            "1s1s",
            "1m1h",
            "ms",
            "5S",
            "99999999999999999999s",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn overflow_is_rejected_not_wrapped() {
        assert_eq!(parse("18446744073709551615h"), None);
        assert_eq!(parse("18446744073709552s"), None);
    }
}
