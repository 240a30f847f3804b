//! The config change a finding suggests, as concrete as what is known allows.
//!
//! A setting's value is an expression of alternatives separated by ` | `; the first one
//! that can be computed wins:
//! - `plan`: the memory model's live recommendation for the key;
//! - `x<factor>`: the factor times the key's current value (the cluster's configuration,
//!   else the catalogue's `default`), in the key's own unit;
//! - a template with `{name}` or `{name*factor}`: captures of the matched message;
//! - anything else: a literal.
//!
//! The key comes out in the spelling the running Flink version reads, and settings a version
//! does not read are left out.

use std::collections::BTreeMap;

use serde::Serialize;

use super::signatures::{Rename, Setting};
use super::FlinkVersion;
use crate::{duration, memory};

/// The kind of Flink process a failure happened in: its memory keys differ.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Process {
    #[default]
    TaskManager,
    JobManager,
    /// `flink run`, the SQL client, an application's `main`: what fails there is the
    /// submission (planning, the job graph), not a running task.
    Client,
}

impl Process {
    /// `jobmanager`, `taskmanager` or `client`, as Flink's processes are named.
    pub fn from_name(name: &str) -> Process {
        match name {
            "jobmanager" => Process::JobManager,
            "client" => Process::Client,
            _ => Process::TaskManager,
        }
    }

    /// The name Flink gives the process.
    pub fn name(self) -> &'static str {
        match self {
            Process::TaskManager => "taskmanager",
            Process::JobManager => "jobmanager",
            Process::Client => "client",
        }
    }

    /// The process a log file belongs to, from the name Flink's scripts give it
    /// (`flink-<user>-<service>-<n>-<host>.log`; YARN's `jobmanager.log`/`taskmanager.log`).
    pub fn of_log_file(name: &str) -> Option<Process> {
        const JOBMANAGER: &[&str] = &[
            "-standalonesession-",
            "-standalonejob-",
            "-kubernetes-session-",
            "-kubernetes-application-",
            "jobmanager.log",
        ];
        const TASKMANAGER: &[&str] = &[
            "-taskexecutor-",
            "-kubernetes-taskmanager-",
            "taskmanager.log",
        ];
        let processes: Markers = &[
            (Process::JobManager, JOBMANAGER),
            (Process::TaskManager, TASKMANAGER),
            (Process::Client, &["-client-"]),
        ];
        marked(processes, |m| name.contains(m))
    }

    /// The process a stack trace ran in, from Flink's own frames in it: coordinators, the
    /// JobMaster, the scheduler and the REST handlers run in the JobManager; tasks in a
    /// TaskManager. The innermost Flink frame decides (the one nearest to where it was thrown).
    pub fn of_frames<'a>(frames: impl IntoIterator<Item = &'a str>) -> Option<Process> {
        const JOBMANAGER: &[&str] = &[
            "org.apache.flink.runtime.source.coordinator.",
            "org.apache.flink.runtime.operators.coordination.",
            "org.apache.flink.runtime.jobmaster.",
            "org.apache.flink.runtime.scheduler.",
            "org.apache.flink.runtime.dispatcher.",
            "org.apache.flink.runtime.resourcemanager.",
            "org.apache.flink.runtime.rest.handler.",
            // The web submission's handlers: a jar's main runs in the JobManager.
            "org.apache.flink.runtime.webmonitor.",
            "org.apache.flink.runtime.checkpoint.CheckpointCoordinator",
            "org.apache.flink.runtime.checkpoint.CheckpointFailureManager",
            "org.apache.flink.runtime.checkpoint.StateAssignmentOperation",
            "org.apache.flink.runtime.checkpoint.Checkpoints.",
            "org.apache.flink.runtime.executiongraph.",
            "org.apache.flink.runtime.entrypoint.",
        ];
        const TASKMANAGER: &[&str] = &[
            "org.apache.flink.runtime.taskmanager.Task.",
            "org.apache.flink.streaming.runtime.tasks.",
            "org.apache.flink.runtime.taskexecutor.",
            "org.apache.flink.runtime.io.network.",
        ];
        // The table planner and the CLI plan and submit the job: in the client, unless a
        // JobManager's frames run them (a jar run from the web UI, application mode).
        const CLIENT: &[&str] = &[
            "org.apache.flink.table.factories.",
            "org.apache.flink.table.planner.",
            "org.apache.flink.table.client.",
            "org.apache.flink.client.",
        ];
        let processes: Markers = &[
            (Process::JobManager, JOBMANAGER),
            (Process::TaskManager, TASKMANAGER),
        ];
        let frames: Vec<&str> = frames.into_iter().collect();
        let in_frames = |markers: Markers| {
            frames
                .iter()
                .find_map(|frame| marked(markers, |m| frame.starts_with(m)))
        };
        in_frames(processes).or_else(|| in_frames(&[(Process::Client, CLIENT)]))
    }

    /// Whose log a line is from, by the class that logged it (a pasted excerpt has no file
    /// name): the execution graph, the JobMaster, the checkpoint coordinator and the resource
    /// manager log in the JobManager; tasks in a TaskManager; the CLI in the client. Logger
    /// names may be shortened to the class (`%c{1}`), so the class decides.
    pub fn of_logger(logger: &str) -> Option<Process> {
        const JOBMANAGER: &[&str] = &[
            "ExecutionGraph",
            "JobMaster",
            "CheckpointCoordinator",
            "CheckpointFailureManager",
            "StandaloneDispatcher",
            "DefaultScheduler",
            "AdaptiveScheduler",
            "StandaloneResourceManager",
            "ActiveResourceManager",
            "ResourceManagerServiceImpl",
            "YarnResourceManagerDriver",
            "KubernetesResourceManagerDriver",
            "SourceCoordinator",
            "DefaultExecutionGraphBuilder",
            "StandaloneSessionClusterEntrypoint",
            "ClusterEntrypoint",
        ];
        const TASKMANAGER: &[&str] = &[
            "Task",
            "TaskExecutor",
            "TaskManagerRunner",
            "StreamTask",
            "SourceStreamTask",
            "SubtaskCheckpointCoordinatorImpl",
            "AsyncCheckpointRunnable",
            "SourceReaderBase",
            "KafkaSourceReader",
        ];
        const CLIENT: &[&str] = &["CliFrontend", "RestClusterClient", "SqlClient"];
        let class = logger.rsplit('.').next().unwrap_or(logger);
        let processes: Markers = &[
            (Process::JobManager, JOBMANAGER),
            (Process::TaskManager, TASKMANAGER),
            (Process::Client, CLIENT),
        ];
        marked(processes, |m| class == m)
    }

    /// The process a message names as the one that failed: Flink rewrites a JobManager's OOM
    /// into a text about the "Flink Master" and a TaskManager's into one about the "task
    /// executor", each memory configuration error names its process, and the resource manager
    /// says which worker (TaskManager) ended.
    pub fn named_in(text: &str) -> Option<Process> {
        const JOBMANAGER: &[&str] = &[
            "The Flink Master has to be shutdown",
            "JobManager memory configuration failed",
            // JobManagerFlinkMemoryUtils' reasons (a TaskManager's name its task heap).
            "configured JVM Heap Memory",
            "configured Off-heap Memory",
            "jobmanager.memory.",
            // The JobManager's own thread pools.
            "'jobmanager-io-thread",
            "'jobmanager-future-thread",
            // The checkpoint coordinator's verdicts, and the restore's assignment of state.
            "expired before completing",
            "Cannot map checkpoint/savepoint state for operator",
        ];
        const TASKMANAGER: &[&str] = &[
            "The task executor has to be shutdown",
            "TaskManager memory configuration failed",
            // The resource manager's word for a TaskManager whose container or pod ended.
            "is terminated. Diagnostics:",
            "TaskManager pod ",
        ];
        // A TaskManager's own words first: its texts may name a JobManager key in passing.
        let processes: Markers = &[
            (Process::TaskManager, TASKMANAGER),
            (Process::JobManager, JOBMANAGER),
        ];
        marked(processes, |m| text.contains(m))
    }
}

/// Words that mark a process, in the order they are tried.
type Markers<'m> = &'m [(Process, &'m [&'m str])];

/// The first process one of whose words `found` accepts.
fn marked(markers: Markers<'_>, found: impl Fn(&str) -> bool) -> Option<Process> {
    markers
        .iter()
        .find(|(_, words)| words.iter().any(|w| found(w)))
        .map(|(process, _)| *process)
}

/// A TaskManager memory key's counterpart in a JobManager (which has no task/framework
/// split, no managed memory and no network pool), with the JobManager's own default where
/// Flink has a fixed one (its heap is derived from the process size).
const JOBMANAGER_KEYS: &[(&str, &str, Option<&str>)] = &[
    (
        "taskmanager.memory.task.heap.size",
        "jobmanager.memory.heap.size",
        None,
    ),
    (
        "taskmanager.memory.task.off-heap.size",
        "jobmanager.memory.off-heap.size",
        Some("128m"),
    ),
    (
        "taskmanager.memory.framework.off-heap.size",
        "jobmanager.memory.off-heap.size",
        Some("128m"),
    ),
    (
        "taskmanager.memory.jvm-metaspace.size",
        "jobmanager.memory.jvm-metaspace.size",
        Some("256m"),
    ),
    (
        "taskmanager.memory.process.size",
        "jobmanager.memory.process.size",
        None,
    ),
    (
        "taskmanager.memory.flink.size",
        "jobmanager.memory.flink.size",
        None,
    ),
    (
        "taskmanager.memory.jvm-overhead.fraction",
        "jobmanager.memory.jvm-overhead.fraction",
        Some("0.1"),
    ),
    (
        "taskmanager.memory.jvm-overhead.min",
        "jobmanager.memory.jvm-overhead.min",
        Some("192m"),
    ),
    (
        "taskmanager.memory.jvm-overhead.max",
        "jobmanager.memory.jvm-overhead.max",
        Some("1g"),
    ),
];

/// What is known about the cluster a finding comes from.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The process the failure happened in: keys are spelled for it.
    pub process: Process,
    /// `process` is a default, not known from the log's name or its banner: the loggers of
    /// its lines may tell (a pasted excerpt).
    pub process_unknown: bool,
    /// The Flink release, when known (REST `/config`, or the log's startup banner).
    pub version: Option<FlinkVersion>,
    /// The configuration the cluster runs with (flat keys).
    pub config: BTreeMap<String, String>,
    /// Values the models recommend from live measurements (e.g. the memory plan's keys).
    pub plan: BTreeMap<String, String>,
}

impl Context {
    /// The context of a log read from a file: its process from the file's name, else left for
    /// its lines to tell (a pasted excerpt).
    pub fn of_log_file(name: &str) -> Context {
        let process = Process::of_log_file(name);
        Context {
            process: process.unwrap_or_default(),
            process_unknown: process.is_none(),
            ..Context::default()
        }
    }
}

/// One config change: the key to change and, when it can be computed, the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Suggestion {
    pub key: String,
    /// `None` when nothing known gives a value (neither the cluster's value nor a measurement):
    /// the key is still the one to raise.
    pub value: Option<String>,
    /// The value it replaces, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    /// Where the value comes from: `measured`, `current x1.5`, `message`, `default x2`, `fixed`,
    /// or `unknown` (no value).
    pub basis: String,
}

/// The key as `version` reads it; `None` when that version does not read it at all.
pub fn spelled(
    setting: &Setting,
    renames: &[Rename],
    version: Option<FlinkVersion>,
) -> Option<String> {
    if let Some(v) = version {
        if setting.since.is_some_and(|s| v < s) || setting.until.is_some_and(|u| v >= u) {
            return None;
        }
        if let Some(r) = renames.iter().find(|r| r.key == setting.key && v < r.since) {
            return Some(r.old.clone());
        }
    }
    Some(setting.key.clone())
}

fn current_value(setting: &Setting, renames: &[Rename], ctx: &Context) -> Option<String> {
    ctx.config.get(&setting.key).cloned().or_else(|| {
        renames
            .iter()
            .filter(|r| r.key == setting.key)
            .find_map(|r| ctx.config.get(&r.old).cloned())
    })
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Unit {
    Count,
    /// A share of something (`*.fraction`), written with two decimals.
    Ratio,
    Bytes,
    Time,
}

/// How a key's values are written: sizes for memory keys, durations for time keys, else counts.
fn unit_of(key: &str, text: &str) -> Option<Unit> {
    let t = text.trim();
    if key.ends_with("fraction") {
        return t.parse::<f64>().ok().map(|_| Unit::Ratio);
    }
    // Sizes are `taskmanager.memory.*` pools and `*.size`/`framesize` keys; counts that merely
    // live under a memory prefix (buffers-per-channel) stay counts.
    let sizey = key.starts_with("taskmanager.memory.")
        || key.starts_with("jobmanager.memory.")
        || key.ends_with(".size")
        || key.ends_with("framesize");
    if t.chars().all(|c| c.is_ascii_digit()) && !t.is_empty() {
        return Some(if sizey { Unit::Bytes } else { Unit::Count });
    }
    if sizey && memory::parse_size(t).is_some() {
        return Some(Unit::Bytes);
    }
    duration::parse(t).ok().map(|_| Unit::Time)
}

/// `factor` times `text`, written in the same unit.
fn scaled(key: &str, text: &str, factor: f64) -> Option<String> {
    let t = text.trim();
    match unit_of(key, t)? {
        Unit::Count => {
            let n: f64 = t.parse().ok()?;
            Some(format!("{}", (n * factor).ceil() as u64))
        }
        Unit::Ratio => {
            let r: f64 = t.parse().ok()?;
            // Flink rejects a fraction of 1 or more.
            Some(format!("{:.2}", (r * factor).min(0.9)))
        }
        Unit::Bytes => {
            let b = memory::parse_size(t)? as f64 * factor;
            // Whole mebibytes read better and are what people set; below one, kibibytes.
            Some(if b >= 1024.0 * 1024.0 {
                format!("{}m", (b / (1024.0 * 1024.0)).ceil() as u64)
            } else {
                format!("{}k", (b / 1024.0).ceil() as u64)
            })
        }
        Unit::Time => {
            let d = duration::parse(t).ok()?;
            let ms = (d.as_millis() as f64 * factor).ceil() as u64;
            Some(duration::format(std::time::Duration::from_millis(ms)))
        }
    }
}

/// Fills `{name}` and `{name*factor}` from the captures; `None` if one is missing.
fn template(text: &str, captures: &BTreeMap<String, String>) -> Option<String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}')? + open;
        let inner = &rest[open + 1..close];
        let (name, factor) = match inner.split_once('*') {
            Some((n, f)) => (n.trim(), Some(f.trim().parse::<f64>().ok()?)),
            None => (inner.trim(), None),
        };
        let value = captures.get(name)?;
        match factor {
            None => out.push_str(value),
            Some(f) => {
                let n: f64 = value.replace(',', "").parse().ok()?;
                out.push_str(&format!("{}", (n * f).ceil() as u64));
            }
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// The change for one setting, or `None` when this version does not read the key.
pub fn suggest(
    setting: &Setting,
    renames: &[Rename],
    ctx: &Context,
    captures: &BTreeMap<String, String>,
) -> Option<Suggestion> {
    if ctx.process == Process::JobManager && setting.key.starts_with("taskmanager.memory.") {
        return for_jobmanager(setting, renames, ctx, captures);
    }
    let key = spelled(setting, renames, ctx.version)?;
    let current = current_value(setting, renames, ctx);
    let first_computable = setting
        .value
        .split(" | ")
        .map(str::trim)
        .find_map(|alternative| {
            alternative_value(alternative, setting, current.as_deref(), ctx, captures)
        });
    // Nothing computable still names the key to raise, without a made-up value.
    let (value, basis) = match first_computable {
        Some((value, basis)) => (Some(value), basis),
        None => (None, "unknown".to_string()),
    };
    Some(Suggestion {
        key,
        value,
        current,
        basis,
    })
}

/// One alternative of a setting's value, computed, with its basis; `None` when what it needs
/// is not known here.
fn alternative_value(
    alternative: &str,
    setting: &Setting,
    current: Option<&str>,
    ctx: &Context,
    captures: &BTreeMap<String, String>,
) -> Option<(String, String)> {
    if alternative == "plan" {
        return ctx
            .plan
            .get(&setting.key)
            .map(|v| (v.clone(), "measured".to_string()));
    }
    if let Some(factor) = alternative
        .strip_prefix('x')
        .and_then(|f| f.parse::<f64>().ok())
    {
        return multiplied(setting, current, factor);
    }
    if alternative.contains('{') {
        return template(alternative, captures).map(|v| (v, "message".to_string()));
    }
    Some((alternative.to_string(), "fixed".to_string()))
}

/// `factor` times the current value or, when the cluster's is not known, the catalogue's
/// default. A current value that cannot be scaled gives nothing: the default is not what runs.
fn multiplied(setting: &Setting, current: Option<&str>, factor: f64) -> Option<(String, String)> {
    match (current, &setting.default) {
        (Some(c), _) => scaled(&setting.key, c, factor).map(|v| (v, format!("current x{factor}"))),
        (None, Some(d)) => {
            scaled(&setting.key, d, factor).map(|v| (v, format!("default x{factor}")))
        }
        (None, None) => None,
    }
}

impl Suggestion {
    /// `key=value (was current, basis)`, or the key alone when no value is known.
    pub fn describe(&self) -> String {
        match (&self.value, &self.current) {
            (Some(v), Some(c)) => format!("{}={v} (was {c}, {})", self.key, self.basis),
            (Some(v), None) => format!("{}={v} ({})", self.key, self.basis),
            (None, _) => format!(
                "{} (raise it: its current value is not known here)",
                self.key
            ),
        }
    }
}

/// A TaskManager memory setting for a failure in the JobManager: its JobManager key, with a
/// value from the JobManager's own configuration and defaults (the memory plan is the
/// TaskManagers'); left out when the JobManager has no such pool.
fn for_jobmanager(
    setting: &Setting,
    renames: &[Rename],
    ctx: &Context,
    captures: &BTreeMap<String, String>,
) -> Option<Suggestion> {
    let (_, key, default) = JOBMANAGER_KEYS.iter().find(|(tm, ..)| *tm == setting.key)?;
    let jobmanager = Setting {
        key: key.to_string(),
        value: setting
            .value
            .split(" | ")
            .map(str::trim)
            .filter(|a| *a != "plan")
            .collect::<Vec<_>>()
            .join(" | "),
        default: default.map(str::to_string),
        ..setting.clone()
    };
    let taskmanager_ctx = Context {
        process: Process::TaskManager,
        plan: BTreeMap::new(),
        ..ctx.clone()
    };
    suggest(&jobmanager, renames, &taskmanager_ctx, captures)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setting(key: &str, value: &str, default: &str) -> Setting {
        Setting {
            key: key.into(),
            value: value.into(),
            default: (!default.is_empty()).then(|| default.into()),
            since: None,
            until: None,
            when: None,
        }
    }

    fn renames() -> Vec<Rename> {
        vec![Rename {
            key: "pekko.ask.timeout".into(),
            old: "akka.ask.timeout".into(),
            since: FlinkVersion::new(1, 18, 0),
        }]
    }

    #[test]
    fn the_first_computable_alternative_wins() {
        let none = BTreeMap::new();
        let unknown = suggest(
            &setting("taskmanager.memory.task.heap.size", "plan | x1.5", ""),
            &[],
            &Context::default(),
            &none,
        )
        .unwrap();
        assert_eq!(
            (unknown.value, unknown.basis.as_str()),
            (None, "unknown"),
            "the key, without a made-up value"
        );
        let heap = setting("taskmanager.memory.task.heap.size", "plan | x1.5 | 1g", "");
        let mut ctx = Context::default();
        assert_eq!(
            suggest(&heap, &[], &ctx, &none).unwrap().value.as_deref(),
            Some("1g")
        );
        ctx.config
            .insert("taskmanager.memory.task.heap.size".into(), "256m".into());
        let s = suggest(&heap, &[], &ctx, &none).unwrap();
        assert_eq!(
            (
                s.value.as_deref().unwrap(),
                s.current.as_deref(),
                s.basis.as_str()
            ),
            ("384m", Some("256m"), "current x1.5")
        );
        ctx.plan
            .insert("taskmanager.memory.task.heap.size".into(), "512m".into());
        assert_eq!(suggest(&heap, &[], &ctx, &none).unwrap().basis, "measured");
    }

    #[test]
    fn values_keep_their_unit() {
        assert_eq!(scaled("heartbeat.timeout", "50000", 2.0).unwrap(), "100000");
        assert_eq!(scaled("pekko.ask.timeout", "10 s", 2.0).unwrap(), "20s");
        assert_eq!(
            scaled("execution.checkpointing.timeout", "10 min", 2.0).unwrap(),
            "20min"
        );
        assert_eq!(scaled("pekko.framesize", "10485760b", 2.0).unwrap(), "20m");
        assert_eq!(
            scaled("taskmanager.memory.network.max", "64m", 1.5).unwrap(),
            "96m"
        );
        assert_eq!(
            scaled("taskmanager.numberOfTaskSlots", "3", 2.0).unwrap(),
            "6"
        );
        assert_eq!(
            scaled("taskmanager.memory.network.fraction", "0.1", 2.0).unwrap(),
            "0.20"
        );
        assert_eq!(
            scaled("taskmanager.memory.managed.fraction", "0.7", 1.5).unwrap(),
            "0.90",
            "never 1 or more"
        );
        assert_eq!(
            scaled("taskmanager.network.memory.buffers-per-channel", "2", 2.0).unwrap(),
            "4",
            "a count"
        );
        assert_eq!(
            scaled("taskmanager.memory.segment-size", "32kb", 2.0).unwrap(),
            "64k"
        );
        assert_eq!(
            scaled("taskmanager.memory.network.max", "96k", 2.0).unwrap(),
            "192k"
        );
    }

    #[test]
    fn keys_are_spelled_for_the_running_release() {
        let ask = setting("pekko.ask.timeout", "x2", "10 s");
        let none = BTreeMap::new();
        let mut ctx = Context {
            version: Some(FlinkVersion::new(1, 17, 2)),
            ..Context::default()
        };
        ctx.config.insert("akka.ask.timeout".into(), "30 s".into());
        let s = suggest(&ask, &renames(), &ctx, &none).unwrap();
        assert_eq!(
            (s.key.as_str(), s.value.as_deref().unwrap()),
            ("akka.ask.timeout", "1min")
        );
        ctx.version = Some(FlinkVersion::new(2, 3, 0));
        assert_eq!(
            suggest(&ask, &renames(), &ctx, &none).unwrap().key,
            "pekko.ask.timeout"
        );
        let mut old_only = setting("taskmanager.network.memory.buffers-per-channel", "4", "2");
        old_only.until = Some(FlinkVersion::new(2, 0, 0));
        assert!(
            suggest(&old_only, &[], &ctx, &none).is_none(),
            "2.x no longer reads it"
        );
    }

    #[test]
    fn templates_use_the_message() {
        let frame = setting("pekko.framesize", "{size*2}b | x2", "10485760b");
        let mut caps = BTreeMap::new();
        caps.insert("size".to_string(), "12582912".to_string());
        let ctx = Context::default();
        let s = suggest(&frame, &[], &ctx, &caps).unwrap();
        assert_eq!(
            (s.value.as_deref().unwrap(), s.basis.as_str()),
            ("25165824b", "message")
        );
        let s = suggest(&frame, &[], &ctx, &BTreeMap::new()).unwrap();
        assert_eq!(
            (s.value.as_deref().unwrap(), s.basis.as_str()),
            ("20m", "default x2")
        );
    }
}
