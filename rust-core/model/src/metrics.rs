//! The tracked metrics: what a Flink metric *is*, from what Flink tells a reporter.
//!
//! Flink hands a reporter the metric's name, its group's scope variables
//! (`<job_id>`, `<task_name>`, `<subtask_index>`, ...) and its logical scope
//! (`taskmanager.job.task.operator`, `taskmanager.Status.JVM.Memory`, ...). From those we
//! build a structured [`MetricIdentity`], rebuild the dotted name the REST API uses for
//! the same metric, and decide whether any model needs it ([`is_tracked`]).

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

/// The Flink process a metric lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Component {
    JobManager,
    TaskManager,
}

impl Component {
    pub fn as_str(self) -> &'static str {
        match self {
            Component::JobManager => "jobmanager",
            Component::TaskManager => "taskmanager",
        }
    }
}

/// The Flink metric group a metric hangs off (its REST "level").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// The process itself: `Status.JVM.*`, `numRegisteredTaskManagers`, ...
    Process,
    /// A job in this process: `numRestarts`, `lastCheckpointDuration`, ...
    Job,
    /// One subtask of a job vertex: `busyTimeMsPerSecond`, ...
    Task,
    /// One operator of a subtask's chain: `pendingRecords`, `numRecordsOut`, ...
    Operator,
}

/// How Flink exposes the metric; decides how the Java side reads it into a `double`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricKind {
    Counter,
    Meter,
    Gauge,
}

impl MetricKind {
    /// The numbering shared with the Java shim (`AutotuneNative.KIND_*`).
    pub fn from_code(code: i32) -> Option<Self> {
        match code {
            1 => Some(MetricKind::Counter),
            2 => Some(MetricKind::Meter),
            3 => Some(MetricKind::Gauge),
            _ => None,
        }
    }
}

/// A structured metric identity. Text fields are interned, so thousands of metrics of
/// one vertex share one copy of its id and name.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricIdentity {
    pub component: Component,
    pub scope: Scope,
    pub kind: MetricKind,
    pub host: Option<Arc<str>>,
    pub taskmanager_id: Option<Arc<str>>,
    pub job_id: Option<Arc<str>>,
    pub job_name: Option<Arc<str>>,
    pub vertex_id: Option<Arc<str>>,
    pub vertex_name: Option<Arc<str>>,
    pub subtask_index: Option<u32>,
    pub attempt: Option<u32>,
    pub operator_id: Option<Arc<str>>,
    pub operator_name: Option<Arc<str>>,
    /// The name below the scope's group: `Status.JVM.Memory.Heap.Used`,
    /// `busyTimeMsPerSecond`, `KafkaSourceReader.topic.partition.currentOffset`.
    pub path: Arc<str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricError(pub String);

impl fmt::Display for MetricError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MetricError {}

/// What Flink tells a reporter about a metric, as plain text.
#[derive(Debug, Clone, Copy)]
pub struct RawMetric<'a> {
    /// Scope variables as Flink names them, with angle brackets: `("<job_id>", "4f0e...")`.
    pub variables: &'a [(&'a str, &'a str)],
    /// `LogicalScopeProvider.getLogicalScope(filter, '.')`, when the group provides one.
    pub logical_scope: Option<&'a str>,
    pub name: &'a str,
    pub kind: MetricKind,
}

impl MetricIdentity {
    /// Builds the identity of a metric from what Flink registered.
    pub fn parse(raw: RawMetric<'_>, strings: &mut Interner) -> Result<Self, MetricError> {
        if raw.name.is_empty() {
            return Err(MetricError("metric without a name".into()));
        }
        let var = |key: &str| {
            raw.variables
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| *v)
        };
        let mut scope_parts: Vec<&str> = raw
            .logical_scope
            .map(|s| s.split('.').filter(|p| !p.is_empty()).collect())
            .unwrap_or_default();

        let component = match scope_parts.first().copied() {
            Some("taskmanager") => Component::TaskManager,
            Some("jobmanager") => Component::JobManager,
            _ if var("<tm_id>").is_some() => Component::TaskManager,
            _ => Component::JobManager,
        };
        let mut rest: &[&str] = match scope_parts.first().copied() {
            Some("taskmanager") | Some("jobmanager") => &scope_parts[1..],
            _ => {
                // No logical scope: all we know below the component is the variables.
                scope_parts.clear();
                &[]
            }
        };

        let has_job = var("<job_id>").is_some();
        let has_task = var("<task_id>").is_some() || var("<task_name>").is_some();
        let has_operator = var("<operator_id>").is_some() || var("<operator_name>").is_some();
        // Peel the fixed group names off the logical scope; what is left are user or
        // generic sub-groups, which belong to the metric's path.
        let mut peel = |group: &str| {
            if rest.first() == Some(&group) {
                rest = &rest[1..];
            }
        };
        let mut scope = Scope::Process;
        if has_job {
            peel("job");
            scope = Scope::Job;
        }
        if has_task {
            peel("task");
            scope = Scope::Task;
        }
        if has_operator {
            peel("operator");
            scope = Scope::Operator;
        }

        let path = if rest.is_empty() {
            strings.intern(raw.name)
        } else {
            strings.intern(&format!("{}.{}", rest.join("."), raw.name))
        };
        let mut text = |key: &str| var(key).map(|v| strings.intern(v));
        let number = |key: &str| -> Result<Option<u32>, MetricError> {
            var(key)
                .map(|v| {
                    v.parse::<u32>().map_err(|_| {
                        MetricError(format!("scope variable {key} is '{v}', not a number"))
                    })
                })
                .transpose()
        };
        Ok(MetricIdentity {
            component,
            scope,
            kind: raw.kind,
            host: text("<host>"),
            taskmanager_id: text("<tm_id>"),
            job_id: text("<job_id>"),
            job_name: text("<job_name>"),
            vertex_id: text("<task_id>"),
            vertex_name: text("<task_name>"),
            operator_id: text("<operator_id>"),
            operator_name: text("<operator_name>"),
            subtask_index: number("<subtask_index>")?,
            attempt: number("<task_attempt_num>")?,
            path,
        })
    }

    /// The name under which Flink's REST API lists this metric for its owner
    /// (`/taskmanagers/<id>/metrics`, `/jobs/<id>/metrics`, `/jobs/<id>/vertices/<id>/metrics`).
    pub fn rest_name(&self) -> String {
        match (self.scope, self.subtask_index) {
            (Scope::Task, Some(subtask)) => format!("{subtask}.{}", self.path),
            (Scope::Operator, Some(subtask)) => format!(
                "{subtask}.{}.{}",
                rest_component(self.operator_name.as_deref().unwrap_or("")),
                self.path
            ),
            _ => self.path.to_string(),
        }
    }

    /// The last element of the path: the metric's own name.
    pub fn name(&self) -> &str {
        self.path.rsplit('.').next().unwrap_or(&self.path)
    }
}

/// Flink's metric query service replaces these characters in operator names before the
/// REST API shows them (`Source: Queue Source` becomes `Source__Queue_Source`).
pub fn rest_component(name: &str) -> String {
    name.chars()
        .map(|c| {
            if matches!(c, ' ' | ',' | '.' | ':') {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// Task metrics the models read (per subtask of a vertex).
pub const TASK_METRICS: &[&str] = &[
    "busyTimeMsPerSecond",
    "backPressuredTimeMsPerSecond",
    "softBackPressuredTimeMsPerSecond",
    "hardBackPressuredTimeMsPerSecond",
    "idleTimeMsPerSecond",
    "numRecordsIn",
    "numRecordsOut",
    "numRecordsInPerSecond",
    "numRecordsOutPerSecond",
    "numBytesInPerSecond",
    "numBytesOutPerSecond",
    "buffers.inPoolUsage",
    "buffers.outPoolUsage",
    "buffers.inputFloatingBuffersUsage",
    "buffers.inputExclusiveBuffersUsage",
    "Shuffle.Netty.Input.Buffers.inPoolUsage",
    "Shuffle.Netty.Output.Buffers.outPoolUsage",
    "checkpointStartDelayNanos",
    "checkpointAlignmentTime",
];

/// Operator metrics the models read: source backlog and per-operator rates.
pub const OPERATOR_METRICS: &[&str] = &[
    "pendingRecords",
    "pendingBytes",
    "numRecordsIn",
    "numRecordsOut",
    "numRecordsInPerSecond",
    "numRecordsOutPerSecond",
    "numRecordsInErrors",
    "sourceIdleTime",
    "currentFetchEventTimeLag",
    "currentEmitEventTimeLag",
];

/// Job metrics published by the JobManager: restarts and checkpoints.
pub const JOB_METRICS: &[&str] = &[
    "numRestarts",
    "fullRestarts",
    "uptime",
    "downtime",
    "restartingTime",
    "runningTime",
    "lastCheckpointDuration",
    "lastCheckpointSize",
    "lastCheckpointFullSize",
    "lastCheckpointRestoreTimestamp",
    "numberOfCompletedCheckpoints",
    "numberOfFailedCheckpoints",
    "numberOfInProgressCheckpoints",
];

/// Process metrics the memory and CPU models read, by prefix. `Status.JVM.CPU.Load` is left
/// out on purpose: the JVM computes it from cgroup files on every read (0.2-0.5 ms each, on
/// Flink's metric thread), and `Status.JVM.CPU.Time` carries the same information for ~1 us.
pub const PROCESS_PREFIXES: &[&str] = &[
    "Status.JVM.Memory.Heap.",
    "Status.JVM.Memory.NonHeap.",
    "Status.JVM.Memory.Metaspace.",
    "Status.JVM.Memory.Direct.",
    "Status.JVM.GarbageCollector.",
    "Status.JVM.CPU.Time",
    "Status.Shuffle.Netty.",
    "Status.Flink.Memory.Managed.",
];

/// Heap used right after the last collection (bytes): a gauge the plugin adds to every
/// TaskManager, because Flink measures heap use only at random points of the GC cycle.
pub const HEAP_AFTER_GC_METRIC: &str = "Status.JVM.Memory.Heap.AutotuneAfterGc";

/// The TaskManager's pool window (JSON of `memory::PoolWindow`), a gauge the plugin adds to
/// every TaskManager for the coordinator to read over REST.
pub const POOL_WINDOW_METRIC: &str = "Status.JVM.Memory.Heap.AutotunePools";

/// What each subtask this TaskManager runs is doing (JSON of `tracker::TaskLoads`), a gauge
/// beside the pool window: the coordinator reads every vertex's busy and back-pressured time
/// with one request per TaskManager instead of one per vertex.
pub const TASK_LOADS_METRIC: &str = "Status.JVM.Memory.Heap.AutotuneTasks";

/// The flame-graph samples a TaskManager took of its saturated vertices (JSON of
/// `[profile::Profile]`), a gauge beside the pool window.
pub const PROFILES_METRIC: &str = "Status.JVM.Memory.Heap.AutotuneProfiles";

/// The gauges the plugin publishes in every TaskManager for the coordinator.
pub const PUBLISHED_METRICS: &[&str] = &[POOL_WINDOW_METRIC, TASK_LOADS_METRIC, PROFILES_METRIC];

/// JobManager process metrics about the cluster's capacity.
pub const JOBMANAGER_METRICS: &[&str] = &[
    "numRegisteredTaskManagers",
    "numRunningJobs",
    "taskSlotsAvailable",
    "taskSlotsTotal",
];

/// Whether any model reads this metric. Untracked metrics never cross the JNI boundary
/// again after registration, so a cluster full of user metrics costs nothing per report.
pub fn is_tracked(id: &MetricIdentity) -> bool {
    let path: &str = &id.path;
    match id.scope {
        // The plugin's own published window: read by the coordinator, not by this process.
        Scope::Process if PUBLISHED_METRICS.contains(&path) => false,
        Scope::Process => {
            PROCESS_PREFIXES
                .iter()
                .any(|prefix| path.starts_with(prefix))
                || (id.component == Component::JobManager && JOBMANAGER_METRICS.contains(&path))
        }
        Scope::Job => id.component == Component::JobManager && JOB_METRICS.contains(&path),
        Scope::Task => TASK_METRICS.contains(&path),
        Scope::Operator => OPERATOR_METRICS.contains(&path),
    }
}

/// Interns the strings of metric identities. Entries that no identity uses any more are
/// dropped by [`Interner::sweep`], so a long-lived TaskManager running job after job
/// keeps only the names of what it runs now.
#[derive(Debug, Default)]
pub struct Interner {
    strings: HashSet<Arc<str>>,
}

impl Interner {
    pub fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(existing) = self.strings.get(s) {
            return existing.clone();
        }
        let shared: Arc<str> = Arc::from(s);
        self.strings.insert(shared.clone());
        shared
    }

    /// Drops strings only the interner still holds.
    pub fn sweep(&mut self) {
        self.strings.retain(|s| Arc::strong_count(s) > 1);
    }

    pub fn len(&self) -> usize {
        self.strings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.strings.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(vars: &[(&str, &str)], scope: Option<&str>, name: &str) -> MetricIdentity {
        let raw = RawMetric {
            variables: vars,
            logical_scope: scope,
            name,
            kind: MetricKind::Gauge,
        };
        MetricIdentity::parse(raw, &mut Interner::default()).unwrap()
    }

    const TM: &[(&str, &str)] = &[
        ("<host>", "127.0.0.1"),
        ("<tm_id>", "127.0.0.1:40123-a1b2c3"),
    ];

    fn task_vars() -> Vec<(&'static str, &'static str)> {
        let mut v = TM.to_vec();
        v.extend_from_slice(&[
            ("<job_id>", "4f0e5c2d9a8b7c6d5e4f3a2b1c0d9e8f"),
            ("<job_name>", "autotune-queue-job"),
            ("<task_id>", "cbc357ccb763df2852fee8c4fc7d55f2"),
            ("<task_name>", "Work -> Sink"),
            ("<task_attempt_id>", "0123"),
            ("<task_attempt_num>", "2"),
            ("<subtask_index>", "3"),
        ]);
        v
    }

    #[test]
    fn taskmanager_status_metrics_keep_their_rest_name() {
        let id = parse(TM, Some("taskmanager.Status.JVM.Memory.Heap"), "Used");
        assert_eq!(id.component, Component::TaskManager);
        assert_eq!(id.scope, Scope::Process);
        assert_eq!(id.rest_name(), "Status.JVM.Memory.Heap.Used");
        assert_eq!(id.name(), "Used");
        assert_eq!(id.taskmanager_id.as_deref(), Some("127.0.0.1:40123-a1b2c3"));
        assert!(is_tracked(&id));

        let netty = parse(
            TM,
            Some("taskmanager.Status.Shuffle.Netty"),
            "UsedMemorySegments",
        );
        assert_eq!(netty.rest_name(), "Status.Shuffle.Netty.UsedMemorySegments");
        assert!(is_tracked(&netty));

        // Costly to read and redundant with CPU.Time: not tracked.
        let load = parse(TM, Some("taskmanager.Status.JVM.CPU"), "Load");
        assert!(!is_tracked(&load));
        assert!(is_tracked(&parse(
            TM,
            Some("taskmanager.Status.JVM.CPU"),
            "Time"
        )));
    }

    #[test]
    fn task_metrics_carry_job_vertex_and_subtask() {
        let vars = task_vars();
        let id = parse(&vars, Some("taskmanager.job.task"), "busyTimeMsPerSecond");
        assert_eq!(id.scope, Scope::Task);
        assert_eq!(id.job_name.as_deref(), Some("autotune-queue-job"));
        assert_eq!(id.vertex_name.as_deref(), Some("Work -> Sink"));
        assert_eq!(
            id.vertex_id.as_deref(),
            Some("cbc357ccb763df2852fee8c4fc7d55f2")
        );
        assert_eq!(id.subtask_index, Some(3));
        assert_eq!(id.attempt, Some(2));
        assert_eq!(id.rest_name(), "3.busyTimeMsPerSecond");
        assert!(is_tracked(&id));

        let buffers = parse(&vars, Some("taskmanager.job.task.buffers"), "inPoolUsage");
        assert_eq!(buffers.rest_name(), "3.buffers.inPoolUsage");
        assert!(is_tracked(&buffers));
    }

    #[test]
    fn operator_metrics_use_the_sanitised_operator_name_like_rest() {
        let mut vars = task_vars();
        vars.push(("<operator_id>", "bc764cd8ddf7a0cff126f51c16239658"));
        vars.push(("<operator_name>", "Source: Queue Source"));
        let id = parse(
            &vars,
            Some("taskmanager.job.task.operator"),
            "pendingRecords",
        );
        assert_eq!(id.scope, Scope::Operator);
        assert_eq!(id.rest_name(), "3.Source__Queue_Source.pendingRecords");
        assert!(is_tracked(&id));

        // User sub-groups stay in the path and are not mistaken for tracked metrics.
        let kafka = parse(
            &vars,
            Some("taskmanager.job.task.operator.KafkaSourceReader.topic"),
            "pendingRecords",
        );
        assert_eq!(
            kafka.path.as_ref(),
            "KafkaSourceReader.topic.pendingRecords"
        );
        assert!(!is_tracked(&kafka));
    }

    #[test]
    fn jobmanager_metrics_are_recognised() {
        let jm = parse(
            &[("<host>", "127.0.0.1")],
            Some("jobmanager"),
            "taskSlotsTotal",
        );
        assert_eq!(jm.component, Component::JobManager);
        assert_eq!(jm.scope, Scope::Process);
        assert!(is_tracked(&jm));

        let job = parse(
            &[
                ("<host>", "127.0.0.1"),
                ("<job_id>", "abc"),
                ("<job_name>", "j"),
            ],
            Some("jobmanager.job"),
            "numRestarts",
        );
        assert_eq!(job.scope, Scope::Job);
        assert_eq!(job.rest_name(), "numRestarts");
        assert!(is_tracked(&job));
    }

    #[test]
    fn without_a_logical_scope_the_variables_decide() {
        let vars = task_vars();
        let id = parse(&vars, None, "idleTimeMsPerSecond");
        assert_eq!(
            (id.component, id.scope),
            (Component::TaskManager, Scope::Task)
        );
        assert_eq!(id.rest_name(), "3.idleTimeMsPerSecond");
    }

    #[test]
    fn user_metrics_are_not_tracked() {
        let vars = task_vars();
        let id = parse(
            &vars,
            Some("taskmanager.job.task.operator.myGroup"),
            "myCounter",
        );
        assert!(!is_tracked(&id));
    }

    #[test]
    fn bad_subtask_index_is_a_clear_error() {
        let raw = RawMetric {
            variables: &[
                ("<tm_id>", "x"),
                ("<task_id>", "v"),
                ("<subtask_index>", "three"),
            ],
            logical_scope: Some("taskmanager.job.task"),
            name: "busyTimeMsPerSecond",
            kind: MetricKind::Gauge,
        };
        let err = MetricIdentity::parse(raw, &mut Interner::default()).unwrap_err();
        assert!(err.0.contains("<subtask_index>"), "{err}");
    }

    #[test]
    fn interner_shares_and_sweeps() {
        let mut strings = Interner::default();
        let a = strings.intern("Work");
        let b = strings.intern("Work");
        assert!(Arc::ptr_eq(&a, &b));
        drop(strings.intern("gone"));
        strings.sweep();
        assert_eq!(strings.len(), 1);
    }
}
