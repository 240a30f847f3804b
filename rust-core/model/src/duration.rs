//! Durations written the way Flink writes them (`TimeUtils.parseDuration`):
//! `500 ms`, `10 s`, `10 SECONDS`, `1 min`, `2h`, or a bare number of milliseconds.
//! Flink's grammar is what users already type in their config, so we accept exactly
//! that rather than a general-purpose human-time syntax.

use std::time::Duration;

/// Parses a Flink-style duration. Errors name the offending text.
pub fn parse(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(split);
    if digits.is_empty() {
        return Err(format!(
            "'{text}' is not a duration: it must start with a number, e.g. '10 s'"
        ));
    }
    let amount: u64 = digits
        .parse()
        .map_err(|_| format!("'{text}' is not a duration: the number is too large"))?;
    let unit = unit.trim().to_ascii_lowercase();
    let nanos_per_unit: u64 = match unit.as_str() {
        "ns" | "nano" | "nanos" | "nanosecond" | "nanoseconds" => 1,
        "us" | "µs" | "micro" | "micros" | "microsecond" | "microseconds" => 1_000,
        "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => 1_000_000,
        "s" | "sec" | "secs" | "second" | "seconds" => 1_000_000_000,
        "m" | "min" | "mins" | "minute" | "minutes" => 60_000_000_000,
        "h" | "hour" | "hours" => 3_600_000_000_000,
        "d" | "day" | "days" => 86_400_000_000_000,
        other => {
            return Err(format!(
                "'{text}' has an unknown time unit '{other}' (use ms, s, min, h or d)"
            ))
        }
    };
    amount
        .checked_mul(nanos_per_unit)
        .map(Duration::from_nanos)
        .ok_or_else(|| format!("'{text}' is too long a duration"))
}

/// Formats a duration compactly for log lines (`250ms`, `10s`, `5min`).
pub fn format(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 60_000 == 0 && ms > 0 {
        format!("{}min", ms / 60_000)
    } else if ms % 1_000 == 0 && ms > 0 {
        format!("{}s", ms / 1_000)
    } else {
        format!("{ms}ms")
    }
}

/// A time left, as a person reads it: whole minutes from a minute on, else whole seconds,
/// rounded up.
pub fn format_left(d: Duration) -> String {
    let s = d.as_millis().div_ceil(1_000) as u64;
    match s {
        60.. => format(Duration::from_secs(s.div_ceil(60) * 60)),
        _ => format(Duration::from_secs(s.max(1))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_left_is_rounded_up_to_what_a_person_reads() {
        assert_eq!(format_left(Duration::from_millis(3_570_087)), "60min");
        assert_eq!(format_left(Duration::from_millis(60_000)), "1min");
        assert_eq!(format_left(Duration::from_millis(61_000)), "2min");
        assert_eq!(format_left(Duration::from_millis(1_200)), "2s");
        assert_eq!(format_left(Duration::ZERO), "1s");
    }

    #[test]
    fn accepts_flink_spellings() {
        assert_eq!(parse("10 s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse("10 SECONDS").unwrap(), Duration::from_secs(10));
        assert_eq!(parse("1min").unwrap(), Duration::from_secs(60));
        assert_eq!(parse("2 h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse("250").unwrap(), Duration::from_millis(250));
        assert_eq!(parse(" 3 d ").unwrap(), Duration::from_secs(3 * 86_400));
        assert_eq!(parse("15 us").unwrap(), Duration::from_micros(15));
    }

    #[test]
    fn rejects_garbage_with_a_reason() {
        assert!(parse("soon")
            .unwrap_err()
            .contains("must start with a number"));
        assert!(parse("10 fortnights")
            .unwrap_err()
            .contains("unknown time unit"));
        assert!(parse("99999999999999999999 s").is_err());
    }

    #[test]
    fn formats_compactly() {
        assert_eq!(format(Duration::from_secs(300)), "5min");
        assert_eq!(format(Duration::from_secs(10)), "10s");
        assert_eq!(format(Duration::from_millis(250)), "250ms");
    }
}
