//! Trouble a round runs into (the REST API timing out, answering 500 or garbage, a disk that
//! refuses a file) is said once per kind, not once per round: an API that flaps for an hour
//! would otherwise fill the JobManager's log with the same warning, and a new kind of trouble
//! would drown in it. A kind is said again only after [`REPEAT`], with how often it came
//! meanwhile; the loop's recovery is said once after trouble was said.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use autotune_model::duration;

use crate::announce::Announcer;
use crate::rest::RestError;

/// A kind of trouble already said is counted, not said again, for this long.
pub const REPEAT: Duration = Duration::from_secs(600);

/// Why a round gave up: the message said, and the kind it is counted under.
#[derive(Debug, Clone)]
pub struct RoundError {
    kind: String,
    message: String,
}

impl RoundError {
    /// Trouble that is not the REST API's: its message is its kind.
    pub fn other(message: impl Into<String>) -> Self {
        let message = message.into();
        RoundError {
            kind: message.clone(),
            message,
        }
    }

    pub fn kind(&self) -> &str {
        &self.kind
    }
}

impl fmt::Display for RoundError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RoundError {}

impl From<RestError> for RoundError {
    fn from(e: RestError) -> Self {
        RoundError {
            kind: e.kind(),
            message: e.to_string(),
        }
    }
}

impl From<String> for RoundError {
    fn from(message: String) -> Self {
        RoundError::other(message)
    }
}

impl From<RoundError> for String {
    fn from(e: RoundError) -> Self {
        e.message
    }
}

#[derive(Debug)]
pub struct Troubles {
    said: HashMap<String, Said>,
    /// Trouble was said and the loop has not worked since.
    unresolved: bool,
    /// A round has worked once.
    worked: bool,
    /// Trouble before the first round that works, until then, is the host starting up.
    quiet_until_ms: i64,
}

#[derive(Debug)]
struct Said {
    at_ms: i64,
    since: u32,
}

impl Troubles {
    pub fn new(startup_grace: Duration, now_ms: i64) -> Self {
        Troubles {
            said: HashMap::new(),
            unresolved: false,
            worked: false,
            quiet_until_ms: now_ms.saturating_add(startup_grace.as_millis() as i64),
        }
    }

    /// Says what a round's outcome changes: a kind of trouble not said lately, or that the
    /// loop works again.
    pub fn after_round(
        &mut self,
        trouble: Option<&RoundError>,
        now_ms: i64,
        retry: Duration,
        announcer: &Announcer,
    ) {
        let Some(trouble) = trouble else {
            self.worked = true;
            if std::mem::take(&mut self.unresolved) {
                announcer.info("AUTOTUNE COORDINATOR working again");
            }
            return;
        };
        if !self.worked && now_ms < self.quiet_until_ms {
            log::debug!("AUTOTUNE COORDINATOR not working yet: {trouble}");
            return;
        }
        let repeat_ms = REPEAT.as_millis() as i64;
        if let Some(said) = self.said.get_mut(trouble.kind()) {
            if now_ms - said.at_ms < repeat_ms {
                said.since += 1;
                return;
            }
        }
        let meanwhile = match self.said.remove(trouble.kind()) {
            Some(said) if said.since > 0 => format!(
                " ({} more times since it was said {} ago)",
                said.since,
                duration::format(Duration::from_millis((now_ms - said.at_ms).max(0) as u64))
            ),
            _ => String::new(),
        };
        announcer.warn(&format!(
            "AUTOTUNE COORDINATOR {trouble}; trying again every {}{meanwhile}",
            duration::format(retry)
        ));
        // Kinds not seen for a while are forgotten: messages can hold paths, so kinds are
        // not a closed set.
        self.said.retain(|_, s| now_ms - s.at_ms < repeat_ms);
        self.said.insert(
            trouble.kind().to_string(),
            Said {
                at_ms: now_ms,
                since: 0,
            },
        );
        self.unresolved = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::MemorySink;

    fn timeout() -> RoundError {
        RestError::Unreachable {
            url: "http://127.0.0.1:1/jobs/overview".into(),
            cause: "timed out",
            reason: "timed out reading response".into(),
        }
        .into()
    }

    fn status_500(path: &str) -> RoundError {
        RestError::Status {
            url: format!("http://127.0.0.1:1{path}"),
            status: 500,
            message: "Internal server error.".into(),
        }
        .into()
    }

    #[test]
    fn a_flapping_api_says_each_kind_once_and_its_end_once_per_saying() {
        let sink = MemorySink::new();
        let announcer = Announcer::new(sink.clone(), None);
        let mut troubles = Troubles::new(Duration::ZERO, 0);
        let every = Duration::from_secs(5);
        // An hour of rounds: timeouts and 500s on various endpoints, with rounds that work
        // in between.
        for round in 0..720i64 {
            let outcome = match round % 4 {
                0 => Some(timeout()),
                1 => None,
                2 => Some(status_500(&format!("/jobs/{round}"))),
                _ => None,
            };
            troubles.after_round(outcome.as_ref(), round * 5_000, every, &announcer);
        }
        let lines = sink.lines();
        let timeouts: Vec<&String> = lines.iter().filter(|l| l.contains("timed out")).collect();
        let errors: Vec<&String> = lines
            .iter()
            .filter(|l| l.contains("answered 500"))
            .collect();
        // Said at 0, 10, 20, ... 50 minutes: once per REPEAT, with the count.
        assert_eq!(timeouts.len(), 6, "{lines:#?}");
        assert_eq!(errors.len(), 6);
        assert!(
            timeouts[1].ends_with("(29 more times since it was said 10min ago)"),
            "{}",
            timeouts[1]
        );
        let recovered = lines
            .iter()
            .filter(|l| l.ends_with("working again"))
            .count();
        assert_eq!(recovered, 12, "once after each saying");
        assert!(
            lines.len() <= 24 + 1,
            "{} lines for 720 rounds",
            lines.len()
        );
    }

    #[test]
    fn a_host_starting_before_the_api_is_not_trouble_until_its_grace_ends() {
        let sink = MemorySink::new();
        let announcer = Announcer::new(sink.clone(), None);
        let every = Duration::from_secs(5);
        let grace = Duration::from_secs(120);
        let mut starting = Troubles::new(grace, 0);
        starting.after_round(Some(&timeout()), 5_000, every, &announcer);
        starting.after_round(None, 10_000, every, &announcer);
        assert!(sink.lines().is_empty(), "{:?}", sink.lines());
        // Once it has worked, trouble is trouble at once.
        starting.after_round(Some(&timeout()), 15_000, every, &announcer);
        assert_eq!(sink.take().len(), 1);
        // An API that never comes up is said when the grace ends.
        let mut never = Troubles::new(grace, 0);
        for at in (0..=120_000).step_by(5_000) {
            never.after_round(Some(&timeout()), at, every, &announcer);
        }
        assert_eq!(sink.take().len(), 1);
    }

    #[test]
    fn a_new_kind_is_said_at_once_and_old_kinds_are_forgotten() {
        let sink = MemorySink::new();
        let announcer = Announcer::new(sink.clone(), None);
        let mut troubles = Troubles::new(Duration::ZERO, 0);
        let every = Duration::from_secs(5);
        for i in 0..1000i64 {
            let disk = RoundError::other(format!("cannot record under /tmp/{i}: disk full"));
            troubles.after_round(Some(&disk), i * 60_000, every, &announcer);
        }
        assert_eq!(sink.lines().len(), 1000, "every new message is a new kind");
        assert!(
            troubles.said.len() <= 11,
            "{} kinds kept",
            troubles.said.len()
        );
    }
}
