//! Quiet windows: times in which nothing is applied in place (decisions go on). Each window is
//! a cron expression, read by the `cron` crate: a minute in which the expression fires is quiet
//! (`0 * 9-17 ? * MON-FRI` fires every minute from 9:00 to 17:59 on weekdays).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Local, TimeDelta, TimeZone, Timelike};
use cron::Schedule;

/// The quiet windows of a job or a cluster; none by default.
#[derive(Clone, Default)]
pub struct QuietWindows {
    windows: Vec<(String, Schedule)>,
}

impl QuietWindows {
    /// `;`-separated cron expressions with seconds: `sec min hour day-of-month month
    /// day-of-week [year]`. Quotes around the whole value are dropped (Flink 1.x's
    /// `flink-conf.yaml` keeps them). An expression that does not parse is the error, named.
    pub fn parse(value: &str) -> Result<Self, String> {
        let value = value.trim();
        let unquoted = ['"', '\'']
            .iter()
            .find_map(|q| value.strip_prefix(*q).and_then(|v| v.strip_suffix(*q)))
            .unwrap_or(value);
        let mut windows = Vec::new();
        for expression in unquoted.split(';').map(str::trim).filter(|e| !e.is_empty()) {
            let schedule = Schedule::from_str(expression)
                .map_err(|e| format!("'{expression}' is no cron expression ({e})"))?;
            windows.push((expression.to_string(), schedule));
        }
        Ok(QuietWindows { windows })
    }

    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// The window `at_ms` (epoch millis) falls in, in the process's local time zone.
    pub fn holding_at(&self, at_ms: i64) -> Option<&str> {
        let at = Local.timestamp_millis_opt(at_ms).single()?;
        self.holding(at)
    }

    /// The window a time falls in, in its own time zone: one that fires within its minute.
    pub fn holding<Z: TimeZone>(&self, at: DateTime<Z>) -> Option<&str> {
        let minute = at.with_second(0)?.with_nanosecond(0)?;
        let before = minute.clone() - TimeDelta::seconds(1);
        let next_minute = minute + TimeDelta::minutes(1);
        self.windows
            .iter()
            .find(|(_, schedule)| {
                schedule
                    .after(&before)
                    .next()
                    .is_some_and(|t| t < next_minute)
            })
            .map(|(expression, _)| expression.as_str())
    }
}

impl fmt::Display for QuietWindows {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let expressions: Vec<&str> = self.windows.iter().map(|(e, _)| e.as_str()).collect();
        f.write_str(&expressions.join("; "))
    }
}

impl fmt::Debug for QuietWindows {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "QuietWindows({self})")
    }
}

impl PartialEq for QuietWindows {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_time_the_expression_matches_is_quiet() {
        let quiet = QuietWindows::parse("'0 * 9-17 ? * MON-FRI; * 0-29 3 * * *'").unwrap();
        // Monday 2026-12-07.
        assert_eq!(
            quiet.holding(at("2026-12-07T09:00:00Z")),
            Some("0 * 9-17 ? * MON-FRI")
        );
        assert_eq!(
            quiet.holding(at("2026-12-07T17:59:31Z")),
            Some("0 * 9-17 ? * MON-FRI")
        );
        assert_eq!(quiet.holding(at("2026-12-07T18:00:00Z")), None);
        assert_eq!(quiet.holding(at("2026-12-06T12:00:00Z")), None, "a Sunday");
        assert_eq!(
            quiet.holding(at("2026-12-06T03:15:00Z")),
            Some("* 0-29 3 * * *")
        );
        assert_eq!(quiet.holding(at("2026-12-06T03:30:00Z")), None);
        // An expression that fires once an hour quiets that one minute.
        let hourly = QuietWindows::parse("30 15 * * * ?").unwrap();
        assert!(hourly.holding(at("2026-12-06T03:15:59Z")).is_some());
        assert!(hourly.holding(at("2026-12-06T03:16:00Z")).is_none());
    }

    #[test]
    fn a_bad_expression_is_named_and_none_is_empty() {
        let e = QuietWindows::parse("0 * 9-17 ? * MON-FRI; 25 o'clock").unwrap_err();
        assert!(e.contains("'25 o'clock' is no cron expression"), "{e}");
        assert!(QuietWindows::parse(" ; ").unwrap().is_empty());
        assert_eq!(QuietWindows::default().holding_at(0), None);
    }
}
