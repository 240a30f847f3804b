//! Diagnosis: failures, log lines and checkpoint trouble mapped to the configuration that
//! fixes them, each with a stable code.
//!
//! - [`signatures`]: the catalogue of known failures. It is data (`diagnosis/catalogue.toml`,
//!   compiled in), and users add or replace entries with a file of their own.
//! - [`logtext`]: turns log text or a REST stack trace into records with their `Caused by`
//!   chain, incrementally and with bounded memory.
//! - [`matcher`]: one record in, the deepest actionable cause out.
//! - [`suggest`]: the config change of a finding, with the value computed from what the
//!   cluster runs with and what was measured, spelled for the Flink version that reads it.
//! - [`findings`]: repeats become one finding with a count; what is due to be said.
//! - [`checkpoints`]: the checkpoint advisor, from checkpoint statistics.

pub mod checkpoints;
pub mod findings;
pub mod logtext;
pub mod matcher;
pub mod signatures;
pub mod suggest;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use findings::{Diagnoser, Finding};
pub use signatures::{Catalogue, CatalogueError, Signature};
pub use suggest::{Context, Process};

/// How bad a finding is. Ordered: `Critical` is the greatest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
    Critical,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        })
    }
}

/// A Flink release, `major.minor[.patch]`; suffixes such as `-SNAPSHOT` are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FlinkVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl FlinkVersion {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        FlinkVersion {
            major,
            minor,
            patch,
        }
    }
}

impl FromStr for FlinkVersion {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let core = text.trim().split(['-', ' ']).next().unwrap_or("");
        let mut parts = core.split('.').map(|p| p.parse::<u32>());
        let bad = || format!("'{text}' is not a Flink version (expected e.g. 1.20 or 2.3.0)");
        let major = parts.next().and_then(Result::ok).ok_or_else(bad)?;
        let minor = parts.next().and_then(Result::ok).ok_or_else(bad)?;
        let patch = match parts.next() {
            None => 0,
            Some(p) => p.map_err(|_| bad())?,
        };
        Ok(FlinkVersion {
            major,
            minor,
            patch,
        })
    }
}

impl fmt::Display for FlinkVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl Serialize for FlinkVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The Flink release a log was written by, from the startup banner every Flink process logs
/// (`Starting TaskManager (Version: 1.20.3, Scala: 2.12, Rev:...)`).
pub fn version_in(message: &str) -> Option<FlinkVersion> {
    let at = message.find("(Version: ")? + "(Version: ".len();
    let rest = &message[at..];
    let end = rest.find([',', ')', ' ']).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// The Flink release a stack trace ran on when its log has no banner (a pasted excerpt): the
/// `flink-dist` jar its frames name (`~[flink-dist-1.18.1.jar:1.18.1]`, `flink-dist_2.12-1.13.6.jar`),
/// else, for a trace through Akka, 1.17 (the last release on Akka: keys are spelled as it reads
/// them, `akka.ask.timeout` rather than `pekko.ask.timeout`).
pub fn version_of_trace(record: &logtext::Record) -> Option<FlinkVersion> {
    let frames = || record.chain.iter().flat_map(|t| t.frames.iter());
    let of_jar = |frame: &String| -> Option<FlinkVersion> {
        let jar = &frame[frame.find("flink-dist")? + "flink-dist".len()..];
        let jar = jar
            .strip_prefix("_2.12")
            .or(jar.strip_prefix("_2.11"))
            .unwrap_or(jar);
        let version = jar.strip_prefix('-')?;
        version[..version.find(".jar")?].parse().ok()
    };
    frames().find_map(of_jar).or_else(|| {
        let akka = |text: &str| text.starts_with("akka.") || text.contains("akka.tcp://");
        let through_akka = frames().any(|f| akka(f))
            || record
                .chain
                .iter()
                .any(|t| akka(&t.class) || akka(&t.message));
        through_akka.then_some(FlinkVersion::new(1, 17, 0))
    })
}

/// Whose log a line of a pasted excerpt is from, when neither its file nor a banner says: the
/// class that logged it, or the start scripts' first lines (`Starting Job Manager` of the
/// container image, `Starting standalonesession daemon`).
pub fn process_of_line(record: &logtext::Record) -> Option<Process> {
    if let Some(p) = record.logger.as_deref().and_then(Process::of_logger) {
        return Some(p);
    }
    const STARTS: &[(&str, Process)] = &[
        ("Starting Job Manager", Process::JobManager),
        ("Starting standalonesession", Process::JobManager),
        ("Starting Task Manager", Process::TaskManager),
        ("Starting taskexecutor", Process::TaskManager),
    ];
    STARTS
        .iter()
        .find(|(start, _)| record.message.contains(start))
        .map(|(_, p)| *p)
}

/// The kind of process a log was written by, from its startup banner (`Starting TaskManager
/// (Version: ...)`, `Starting StandaloneSessionClusterEntrypoint (Version: ...)`,
/// `Starting Command Line Client (Version: ...)`).
pub fn process_in(message: &str) -> Option<Process> {
    let name = message.trim_start().strip_prefix("Starting ")?;
    let name = &name[..name.find(" (Version: ")?];
    Some(if name.ends_with("ClusterEntrypoint") {
        Process::JobManager
    } else if name.contains("TaskManager") || name.contains("TaskExecutor") {
        Process::TaskManager
    } else {
        Process::Client
    })
}

/// A configuration entry Flink logs when it starts (`Loading configuration property: k, v`);
/// hidden values (`******`) are left out.
pub fn config_in(message: &str) -> Option<(String, String)> {
    // Flink logs the file's keys and, in a TaskManager, the memory sizes it derived
    // ("dynamic" properties: every taskmanager.memory.* pool in bytes). A process started by
    // Flink's scripts also lists its memory sizes among its program arguments, one per line
    // (`    jobmanager.memory.heap.size=469762048b`): the sizes this very process runs with.
    let m = message.trim_start();
    if let Some((key, value)) = m.split_once('=') {
        let derived = (key.starts_with("jobmanager.memory.")
            || key.starts_with("taskmanager.memory."))
            && !key.contains(' ')
            && value
                .strip_suffix('b')
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if derived {
            return Some((key.to_string(), value.to_string()));
        }
    }
    let rest = m
        .strip_prefix("Loading configuration property: ")
        .or_else(|| m.strip_prefix("Loading dynamic configuration property: "))?;
    let (key, value) = rest.split_once(", ")?;
    let value = value.trim();
    (!value.is_empty() && !value.starts_with("****"))
        .then(|| (key.trim().to_string(), value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pasted excerpt has no banner and no file name: its frames and its lines tell.
    #[test]
    fn a_pasted_trace_tells_its_release_and_its_log() {
        let record = |text: &str| logtext::records(text).into_iter().next().unwrap();
        let version = |text: &str| version_of_trace(&record(text));
        assert_eq!(
            version(
                "java.io.IOException: x\n\tat a.B.c(B.java:1) ~[flink-dist-1.18.1.jar:1.18.1]\n"
            ),
            Some(FlinkVersion::new(1, 18, 1))
        );
        assert_eq!(
            version("java.io.IOException: x\n\tat a.B.c(B.java:1) ~[flink-dist_2.12-1.13.6.jar:1.13.6]\n"),
            Some(FlinkVersion::new(1, 13, 6))
        );
        assert_eq!(
            version("akka.pattern.AskTimeoutException: Ask timed out on [Actor[akka.tcp://flink@h:6123/user/rpc/jobmanager_2]] after [10000 ms].\n"),
            Some(FlinkVersion::new(1, 17, 0)),
            "Akka: 1.17 or older"
        );
        assert_eq!(
            version("java.io.IOException: x\n\tat a.B.c(B.java:1)\n"),
            None
        );

        let process = |text: &str| process_of_line(&record(text));
        assert_eq!(
            process("2023-10-07 10:02:52.975 INFO org.apache.flink.runtime.executiongraph.ExecutionGraph - Source: s (1/1) switched from RUNNING to FAILED."),
            Some(Process::JobManager)
        );
        assert_eq!(
            process("2023-10-07 10:02:52,975 WARN  Task [] - Source: s (1/1) switched from RUNNING to FAILED."),
            Some(Process::TaskManager),
            "a logger shortened to its class"
        );
        assert_eq!(process("Starting Job Manager"), Some(Process::JobManager));
        assert_eq!(
            process("Checkpoint 5 of job j expired before completing."),
            None
        );
    }

    #[test]
    fn versions_parse_and_order() {
        let v: FlinkVersion = "1.20.3".parse().unwrap();
        assert_eq!(v, FlinkVersion::new(1, 20, 3));
        assert_eq!(
            "2.3".parse::<FlinkVersion>().unwrap(),
            FlinkVersion::new(2, 3, 0)
        );
        assert_eq!(
            "1.19-SNAPSHOT".parse::<FlinkVersion>().unwrap(),
            FlinkVersion::new(1, 19, 0)
        );
        assert!(FlinkVersion::new(1, 9, 0) < FlinkVersion::new(1, 18, 0));
        assert!(FlinkVersion::new(1, 20, 3) < FlinkVersion::new(2, 0, 0));
        assert!("two".parse::<FlinkVersion>().is_err());
        assert!("1".parse::<FlinkVersion>().is_err());
    }

    #[test]
    fn the_version_comes_from_the_startup_banner() {
        let banner = " Starting TaskManager (Version: 1.20.3, Scala: 2.12, Rev:a7b2f6e, Date:2025-10-01T10:00:00+02:00)";
        assert_eq!(version_in(banner), Some(FlinkVersion::new(1, 20, 3)));
        assert_eq!(version_in("Completed checkpoint 5"), None);
        assert_eq!(
            config_in("Loading configuration property: taskmanager.memory.process.size, 1728m"),
            Some(("taskmanager.memory.process.size".into(), "1728m".into()))
        );
        assert_eq!(
            config_in("Loading configuration property: s3.secret-key, ******"),
            None
        );
        assert_eq!(
            config_in("Loading dynamic configuration property: taskmanager.memory.task.heap.size, 26843542b"),
            Some(("taskmanager.memory.task.heap.size".into(), "26843542b".into()))
        );
        assert_eq!(
            config_in("    jobmanager.memory.heap.size=469762048b"),
            Some(("jobmanager.memory.heap.size".into(), "469762048b".into()))
        );
        assert_eq!(config_in("    -Dlog.file=/tmp/x=1b"), None);
    }

    #[test]
    fn the_process_comes_from_the_startup_banner() {
        let banner =
            |name: &str| format!(" Starting {name} (Version: 2.3.0, Scala: 2.12, Rev:b6e0c2a)");
        assert_eq!(
            process_in(&banner("StandaloneSessionClusterEntrypoint")),
            Some(Process::JobManager)
        );
        assert_eq!(
            process_in(&banner("KubernetesApplicationClusterEntrypoint")),
            Some(Process::JobManager)
        );
        assert_eq!(
            process_in(&banner("TaskManager")),
            Some(Process::TaskManager)
        );
        assert_eq!(
            process_in(&banner("Command Line Client")),
            Some(Process::Client)
        );
        assert_eq!(process_in("Starting checkpoint scheduler"), None);
    }
}
