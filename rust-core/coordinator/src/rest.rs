//! A small client of Flink's REST API: only the endpoints the models need, every call with
//! a bounded timeout, every failure a readable error.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

#[derive(Debug)]
pub enum RestError {
    /// The REST endpoint did not answer (down, wrong address, timeout).
    Unreachable {
        url: String,
        /// What kind of silence: `timed out`, `connection dropped`, `connection failed`...
        cause: &'static str,
        reason: String,
    },
    /// It answered with an error status: 404 for a job that is gone, for example.
    Status {
        url: String,
        status: u16,
        message: String,
    },
    /// It answered something we cannot read.
    Unreadable { url: String, reason: String },
}

impl fmt::Display for RestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestError::Unreachable { url, reason, .. } => {
                write!(f, "Flink REST API not reachable at {url}: {reason}")
            }
            RestError::Status {
                url,
                status,
                message,
            } => write!(f, "Flink REST API answered {status} for {url}: {message}"),
            RestError::Unreadable { url, reason } => {
                write!(f, "unreadable answer from {url}: {reason}")
            }
        }
    }
}

impl std::error::Error for RestError {}

impl RestError {
    /// The kind of trouble, without the URL or the details: what an operator is told once.
    pub fn kind(&self) -> String {
        match self {
            RestError::Unreachable { cause, .. } => format!("not reachable ({cause})"),
            RestError::Status { status, .. } => format!("answered {status}"),
            RestError::Unreadable { .. } => "unreadable answer".to_string(),
        }
    }

    /// Whether the thing asked for does not exist (any more).
    pub fn is_not_found(&self) -> bool {
        matches!(self, RestError::Status { status: 404, .. })
            || matches!(self, RestError::Status { message, .. } if message.contains("NotFoundException") || message.contains("not found"))
    }
}

pub struct FlinkRest {
    base: String,
    agent: ureq::Agent,
}

#[derive(Debug, Clone, Deserialize)]
pub struct JobOverview {
    pub jid: String,
    pub name: String,
    pub state: String,
    /// When the job was submitted, epoch millis.
    #[serde(rename = "start-time", default)]
    pub start_time: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct JobDetails {
    pub jid: String,
    pub name: String,
    pub state: String,
    /// `Default` or `Adaptive` (Flink 1.19+); absent in older releases.
    #[serde(rename = "schedulerType", default)]
    pub scheduler_type: Option<String>,
    /// When the job was submitted, epoch millis (restarts do not change it).
    #[serde(rename = "start-time", default)]
    pub start_time: i64,
    pub vertices: Vec<JobVertex>,
    /// Absent or without nodes while a job is created or restarted (seen on 1.20 when a
    /// TaskManager died): the job has no shape yet, which is no fault of the answer.
    #[serde(default)]
    pub plan: Plan,
}

impl JobDetails {
    /// Whether the plan, where the edges between vertices come from, was served with the job.
    pub fn plan_served(&self) -> bool {
        self.vertices.is_empty() || !self.plan.nodes.is_empty()
    }
}

/// Flink's flame graph of a vertex: a tree of frames with their samples (children included).
#[derive(Debug, Clone, Deserialize)]
pub struct FlinkFlameGraph {
    #[serde(rename = "endTimestamp", default)]
    pub end_timestamp: i64,
    #[serde(default)]
    pub data: Option<FlameNode>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FlameNode {
    pub name: String,
    #[serde(default)]
    pub value: u64,
    #[serde(default)]
    pub children: Vec<FlameNode>,
}

impl FlameNode {
    /// Every stack of the tree with its own samples (a node's value less its children's),
    /// root first, without the tree's synthetic root.
    pub fn stacks(&self) -> Vec<(String, u64)> {
        fn walk(node: &FlameNode, path: &mut Vec<String>, out: &mut Vec<(String, u64)>) {
            path.push(node.name.clone());
            let children: u64 = node.children.iter().map(|c| c.value).sum();
            if node.value > children {
                out.push((path.join(";"), node.value - children));
            }
            for child in &node.children {
                walk(child, path, out);
            }
            path.pop();
        }
        let mut out = Vec::new();
        for child in &self.children {
            walk(child, &mut Vec::new(), &mut out);
        }
        out
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct JobVertex {
    pub id: String,
    pub name: String,
    pub parallelism: u32,
    #[serde(rename = "maxParallelism", default)]
    pub max_parallelism: Option<i64>,
    #[serde(default)]
    pub metrics: VertexCounters,
    /// When the vertex's tasks were (re)deployed, epoch millis.
    #[serde(rename = "start-time", default)]
    pub start_time: i64,
    /// Its tasks' state (`RUNNING`; `INITIALIZING` while they restore their state).
    #[serde(default)]
    pub status: Option<String>,
}

impl JobVertex {
    /// Some of its tasks are on their way to running: scheduled, deploying, or restoring their
    /// state (a finished vertex of a job that runs on is not starting; a release that serves no
    /// state neither).
    pub fn starting(&self) -> bool {
        matches!(
            self.status.as_deref(),
            Some("CREATED" | "SCHEDULED" | "DEPLOYING" | "INITIALIZING" | "RECONCILING")
        )
    }
}

/// `/jobs/<id>/vertices/<vertex>/subtasktimes`: when each subtask entered each state.
#[derive(Debug, Deserialize)]
struct SubtaskTimes {
    #[serde(default)]
    subtasks: Vec<SubtaskStateTimes>,
}

#[derive(Debug, Deserialize)]
struct SubtaskStateTimes {
    /// Epoch millis by execution state; 0 (or absent) for a state not reached.
    #[serde(default)]
    timestamps: HashMap<String, i64>,
}

/// Cumulative counters the job details carry per vertex.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct VertexCounters {
    #[serde(rename = "read-records", default)]
    pub read_records: f64,
    #[serde(rename = "write-records", default)]
    pub write_records: f64,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Plan {
    #[serde(default)]
    pub nodes: Vec<PlanNode>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PlanNode {
    pub id: String,
    #[serde(default)]
    pub inputs: Vec<PlanInput>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PlanInput {
    pub id: String,
    #[serde(default)]
    pub ship_strategy: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ClusterOverview {
    pub taskmanagers: u32,
    #[serde(rename = "slots-total")]
    pub slots_total: u32,
    #[serde(rename = "slots-available")]
    pub slots_available: u32,
    #[serde(rename = "flink-version", default)]
    pub flink_version: String,
}

/// One metric aggregated over a vertex's subtasks.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct Aggregated {
    #[serde(default = "nan", deserialize_with = "lenient_f64")]
    pub min: f64,
    #[serde(default = "nan", deserialize_with = "lenient_f64")]
    pub max: f64,
    #[serde(default = "nan", deserialize_with = "lenient_f64")]
    pub avg: f64,
    #[serde(default = "nan", deserialize_with = "lenient_f64")]
    pub sum: f64,
}

fn nan() -> f64 {
    f64::NAN
}

/// Flink writes non-finite values as strings (`"NaN"`, `"Infinity"`): they read as NaN,
/// and anything else unreadable as NaN, so one odd metric never fails a whole poll.
fn lenient_f64<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    Ok(match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::Number(n) => n.as_f64().map_or(f64::NAN, finite_or_nan),
        serde_json::Value::String(s) => measured(&s),
        _ => f64::NAN,
    })
}

/// A metric's value as served, NaN when it is no measurement: not a number, or infinite (a
/// backlog of "Infinity" would ask for infinite parallelism).
fn measured(text: &str) -> f64 {
    text.trim().parse::<f64>().map_or(f64::NAN, finite_or_nan)
}

fn finite_or_nan(v: f64) -> f64 {
    if v.is_finite() {
        v
    } else {
        f64::NAN
    }
}

#[derive(Deserialize)]
struct AggregatedEntry {
    id: String,
    #[serde(flatten)]
    value: Aggregated,
}

#[derive(Deserialize)]
struct MetricEntry {
    id: String,
    #[serde(default)]
    value: Option<String>,
}

#[derive(Deserialize)]
struct JobsOverview {
    jobs: Vec<JobOverview>,
}

#[derive(Deserialize)]
struct TaskManagers {
    taskmanagers: Vec<TaskManager>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskManager {
    pub id: String,
    #[serde(rename = "slotsNumber")]
    pub slots: u32,
    /// The size Flink gave each pool (Flink 1.12+).
    #[serde(rename = "memoryConfiguration", default)]
    pub memory: Option<MemoryConfiguration>,
}

/// `memoryConfiguration` of `/taskmanagers`, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryConfiguration {
    pub framework_heap: u64,
    pub task_heap: u64,
    pub framework_off_heap: u64,
    pub task_off_heap: u64,
    pub network_memory: u64,
    pub managed_memory: u64,
    pub jvm_metaspace: u64,
    pub jvm_overhead: u64,
}

/// `/jobs/<id>/exceptions`: the job's failures, newest first. Flink 1.x also serves
/// `root-exception`; every release since 1.13 serves `exceptionHistory`, which is what is read.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct JobExceptions {
    #[serde(rename = "exceptionHistory", default)]
    pub history: ExceptionHistory,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ExceptionHistory {
    #[serde(default)]
    pub entries: Vec<ExceptionEntry>,
    #[serde(default)]
    pub truncated: bool,
}

/// One failure: the stack trace as Java prints it, when, and where.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExceptionEntry {
    #[serde(default)]
    pub exception_name: String,
    #[serde(default)]
    pub stacktrace: String,
    #[serde(default)]
    pub timestamp: i64,
    #[serde(default)]
    pub task_name: Option<String>,
    /// Where it happened: `endpoint` since Flink 1.19 (which still serves `location` too).
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub location: Option<String>,
    #[serde(default)]
    pub task_manager_id: Option<String>,
    /// Failures that happened at the same time (other subtasks).
    #[serde(default)]
    pub concurrent_exceptions: Vec<ExceptionEntry>,
}

/// `/jobs/<id>/checkpoints` (the parts the checkpoint advisor reads). Sizes in bytes,
/// durations in ms.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CheckpointStats {
    #[serde(default)]
    pub counts: CheckpointCounts,
    #[serde(default)]
    pub history: Vec<CheckpointEntry>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct CheckpointCounts {
    #[serde(default)]
    pub completed: u64,
    #[serde(default)]
    pub failed: u64,
    #[serde(default)]
    pub in_progress: u64,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct CheckpointEntry {
    pub id: u64,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub is_savepoint: bool,
    #[serde(default)]
    pub trigger_timestamp: i64,
    #[serde(default)]
    pub end_to_end_duration: i64,
    /// The full state (since 1.15 `checkpointed_size` is what this checkpoint persisted,
    /// which is less for incremental checkpoints).
    #[serde(default)]
    pub state_size: u64,
    #[serde(default)]
    pub alignment_buffered: u64,
    #[serde(default)]
    pub failure_message: Option<String>,
    #[serde(default)]
    pub num_subtasks: u32,
    #[serde(default)]
    pub num_acknowledged_subtasks: u32,
}

/// `/jobs/<id>/checkpoints/config`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CheckpointConfig {
    #[serde(default)]
    pub mode: String,
    #[serde(default)]
    pub interval: i64,
    #[serde(default)]
    pub timeout: i64,
    #[serde(default)]
    pub state_backend: Option<String>,
    #[serde(default)]
    pub unaligned_checkpoints: bool,
    #[serde(default)]
    pub tolerable_failed_checkpoints: Option<i64>,
    #[serde(default)]
    pub state_changelog_enabled: Option<bool>,
}

#[derive(Deserialize)]
struct ConfigEntry {
    key: String,
    value: String,
}

/// An HTTP failure as a [`RestError`]. Flink's error bodies carry a Java stack trace; the
/// first line of the first error is the message.
fn failure(url: String, error: ureq::Error) -> RestError {
    match error {
        ureq::Error::Status(status, response) => {
            let body = response.into_string().unwrap_or_default();
            let message = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| {
                    v["errors"][0]
                        .as_str()
                        .map(|s| s.lines().next().unwrap_or("").to_string())
                })
                .unwrap_or(body);
            RestError::Status {
                url,
                status,
                message,
            }
        }
        ureq::Error::Transport(transport) => RestError::Unreachable {
            url,
            cause: why_unreachable(&transport),
            reason: transport.to_string(),
        },
    }
}

/// Why a host could not be reached, in a few words (no URL: a webhook's URL is a secret).
pub(crate) fn why_unreachable(transport: &ureq::Transport) -> &'static str {
    use std::io::ErrorKind as Io;
    match transport.kind() {
        ureq::ErrorKind::Dns => "unknown host",
        ureq::ErrorKind::ConnectionFailed => "connection failed",
        ureq::ErrorKind::Io => {
            let io = std::error::Error::source(transport)
                .and_then(|e| e.downcast_ref::<std::io::Error>())
                .map(|e| e.kind());
            match io {
                Some(Io::TimedOut | Io::WouldBlock) => "timed out",
                Some(
                    Io::ConnectionReset
                    | Io::ConnectionAborted
                    | Io::BrokenPipe
                    | Io::UnexpectedEof,
                ) => "connection dropped",
                _ => "i/o error",
            }
        }
        _ => "transport error",
    }
}

impl FlinkRest {
    /// `base` like `http://127.0.0.1:8081`; every request gives up after `timeout`.
    pub fn new(base: &str, timeout: Duration) -> Self {
        let agent = ureq::AgentBuilder::new().timeout(timeout).build();
        FlinkRest {
            base: base.trim_end_matches('/').to_string(),
            agent,
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, RestError> {
        let url = format!("{}{}", self.base, path);
        match self.agent.get(&url).call() {
            Ok(response) => response.into_json().map_err(|e| RestError::Unreadable {
                url,
                reason: e.to_string(),
            }),
            Err(e) => Err(failure(url, e)),
        }
    }

    /// Asks the adaptive scheduler to run each vertex with at most the given parallelism
    /// (FLIP-291 resource requirements, Flink 1.18+ with `jobmanager.scheduler: adaptive`).
    pub fn set_parallelism(
        &self,
        job_id: &str,
        parallelism: &[(String, u32)],
    ) -> Result<(), RestError> {
        let body: serde_json::Map<String, serde_json::Value> = parallelism
            .iter()
            .map(|(vertex, p)| {
                (
                    vertex.clone(),
                    serde_json::json!({ "parallelism": { "lowerBound": 1, "upperBound": p } }),
                )
            })
            .collect();
        let url = format!("{}/jobs/{job_id}/resource-requirements", self.base);
        let request = self
            .agent
            .put(&url)
            .send_json(serde_json::Value::Object(body));
        request.map(|_| ()).map_err(|e| failure(url, e))
    }

    /// Flink's own flame graph of a vertex (`rest.flamegraph.enabled: true`); `kind` is
    /// `full`, `on_cpu` or `off_cpu`. The first request starts sampling: the graph comes with
    /// a later one.
    pub fn flame_graph(
        &self,
        job_id: &str,
        vertex_id: &str,
        kind: &str,
    ) -> Result<FlinkFlameGraph, RestError> {
        self.get(&format!(
            "/jobs/{job_id}/vertices/{vertex_id}/flamegraph?type={}",
            kind.to_ascii_uppercase()
        ))
    }

    pub fn overview(&self) -> Result<ClusterOverview, RestError> {
        self.get("/overview")
    }

    /// Slots per TaskManager, when all TaskManagers agree.
    pub fn slots_per_taskmanager(&self) -> Result<Option<u32>, RestError> {
        let tms: TaskManagers = self.get("/taskmanagers")?;
        let first = tms.taskmanagers.first().map(|t| t.slots);
        Ok(first.filter(|s| tms.taskmanagers.iter().all(|t| t.slots == *s)))
    }

    pub fn taskmanagers(&self) -> Result<Vec<TaskManager>, RestError> {
        Ok(self.get::<TaskManagers>("/taskmanagers")?.taskmanagers)
    }

    /// One metric of one TaskManager, as the text Flink serves; None when it has no such metric.
    pub fn taskmanager_metric(&self, tm_id: &str, name: &str) -> Result<Option<String>, RestError> {
        Ok(self.taskmanager_texts(tm_id, &[name])?.remove(name))
    }

    /// Metrics of one TaskManager in one request, as the text Flink serves; names it does not
    /// have are left out.
    pub fn taskmanager_texts(
        &self,
        tm_id: &str,
        names: &[&str],
    ) -> Result<HashMap<String, String>, RestError> {
        let entries: Vec<MetricEntry> = self.get(&format!(
            "/taskmanagers/{tm_id}/metrics?get={}",
            names.join(",")
        ))?;
        Ok(entries
            .into_iter()
            .filter_map(|e| Some((e.id, e.value?)))
            .collect())
    }

    /// Numeric metrics of one TaskManager; names it does not have are left out.
    pub fn taskmanager_metrics(
        &self,
        tm_id: &str,
        names: &[&str],
    ) -> Result<HashMap<String, f64>, RestError> {
        self.numeric_metrics(&format!(
            "/taskmanagers/{tm_id}/metrics?get={}",
            names.join(",")
        ))
    }

    /// A metrics endpoint's values that are numbers, by name.
    fn numeric_metrics(&self, path: &str) -> Result<HashMap<String, f64>, RestError> {
        let entries: Vec<MetricEntry> = self.get(path)?;
        Ok(entries
            .into_iter()
            .filter_map(|e| Some((e.id, finite_or_nan(e.value?.trim().parse().ok()?))))
            .collect())
    }

    /// The cluster's configuration as the JobManager read it (`key -> value`).
    pub fn jobmanager_config(&self) -> Result<HashMap<String, String>, RestError> {
        let entries: Vec<ConfigEntry> = self.get("/jobmanager/config")?;
        Ok(entries.into_iter().map(|e| (e.key, e.value)).collect())
    }

    /// The job's failures, newest first (at most Flink's `web.exception-history-size`).
    pub fn exceptions(&self, job_id: &str) -> Result<JobExceptions, RestError> {
        self.get(&format!("/jobs/{job_id}/exceptions?maxExceptions=32"))
    }

    /// A finished job's failure as Java prints it (the whole chain, wrapper first), if it failed.
    pub fn job_failure(&self, job_id: &str) -> Result<Option<String>, RestError> {
        let v: serde_json::Value = self.get(&format!("/jobs/{job_id}/execution-result"))?;
        Ok(v["job-execution-result"]["failure-cause"]["stack-trace"]
            .as_str()
            .map(str::to_string))
    }

    pub fn checkpoints(&self, job_id: &str) -> Result<CheckpointStats, RestError> {
        self.get(&format!("/jobs/{job_id}/checkpoints"))
    }

    /// Checkpointing settings; `None` when the job does not checkpoint.
    pub fn checkpoint_config(&self, job_id: &str) -> Result<Option<CheckpointConfig>, RestError> {
        match self.get(&format!("/jobs/{job_id}/checkpoints/config")) {
            Ok(c) => Ok(Some(c)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The Flink release of the cluster (`/config`'s `flink-version`).
    pub fn flink_version(&self) -> Result<String, RestError> {
        let v: serde_json::Value = self.get("/config")?;
        Ok(v["flink-version"].as_str().unwrap_or("").to_string())
    }

    pub fn jobs(&self) -> Result<Vec<JobOverview>, RestError> {
        Ok(self.get::<JobsOverview>("/jobs/overview")?.jobs)
    }

    /// The job's global job parameters (`/jobs/<id>/config`, `execution-config.user-config`):
    /// the only job-supplied settings any release from 1.17 to 2.3 serves over REST.
    /// `None` while the job has no execution config yet (initializing).
    pub fn job_parameters(&self, job_id: &str) -> Result<Option<Vec<(String, String)>>, RestError> {
        let config: serde_json::Value = self.get(&format!("/jobs/{job_id}/config"))?;
        let Some(execution) = config.get("execution-config") else {
            return Ok(None);
        };
        let parameters = execution["user-config"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| {
                let value = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                (k.clone(), value)
            })
            .collect();
        Ok(Some(parameters))
    }

    pub fn job(&self, job_id: &str) -> Result<JobDetails, RestError> {
        self.get(&format!("/jobs/{job_id}"))
    }

    /// When the vertex's last subtask went RUNNING (`/subtasktimes`, epoch millis); `None`
    /// while one of them is not running yet.
    pub fn vertex_running_since(
        &self,
        job_id: &str,
        vertex_id: &str,
    ) -> Result<Option<i64>, RestError> {
        let times: SubtaskTimes =
            self.get(&format!("/jobs/{job_id}/vertices/{vertex_id}/subtasktimes"))?;
        let running: Vec<i64> = times
            .subtasks
            .iter()
            .map(|s| s.timestamps.get("RUNNING").copied().unwrap_or(0))
            .collect();
        Ok((!running.is_empty() && running.iter().all(|t| *t > 0))
            .then(|| running.into_iter().max().unwrap_or(0)))
    }

    /// Metrics aggregated over the subtasks of a vertex.
    pub fn subtask_metrics(
        &self,
        job_id: &str,
        vertex_id: &str,
        names: &[&str],
    ) -> Result<HashMap<String, Aggregated>, RestError> {
        let entries: Vec<AggregatedEntry> = self.get(&format!(
            "/jobs/{job_id}/vertices/{vertex_id}/subtasks/metrics?get={}",
            names.join(",")
        ))?;
        Ok(entries.into_iter().map(|e| (e.id, e.value)).collect())
    }

    /// The names of every metric a vertex has (`0.Source__Kafka.pendingRecords`, ...).
    pub fn vertex_metric_names(
        &self,
        job_id: &str,
        vertex_id: &str,
    ) -> Result<Vec<String>, RestError> {
        let entries: Vec<MetricEntry> =
            self.get(&format!("/jobs/{job_id}/vertices/{vertex_id}/metrics"))?;
        Ok(entries.into_iter().map(|e| e.id).collect())
    }

    /// Values of named vertex metrics; non-numeric values are left out.
    pub fn vertex_metrics(
        &self,
        job_id: &str,
        vertex_id: &str,
        names: &[String],
    ) -> Result<HashMap<String, f64>, RestError> {
        let mut values = HashMap::new();
        for chunk in url_sized_chunks(names) {
            values.extend(self.numeric_metrics(&format!(
                "/jobs/{job_id}/vertices/{vertex_id}/metrics?get={}",
                chunk.join(",")
            ))?);
        }
        Ok(values)
    }
}

/// Flink's REST server refuses a request line over 4,096 bytes: a hundred subtasks' or
/// partitions' metric names are asked for in several requests.
const MAX_NAMES_PER_REQUEST: usize = 3_000;

fn url_sized_chunks(names: &[String]) -> Vec<&[String]> {
    let mut chunks = Vec::new();
    let (mut start, mut length) = (0, 0);
    for (i, name) in names.iter().enumerate() {
        if i > start && length + name.len() + 1 > MAX_NAMES_PER_REQUEST {
            chunks.push(&names[start..i]);
            (start, length) = (i, 0);
        }
        length += name.len() + 1;
    }
    if start < names.len() {
        chunks.push(&names[start..]);
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_name_lists_are_asked_for_in_requests_flink_accepts() {
        let names: Vec<String> = (0..200)
            .map(|p| format!("{}.Source__Kafka_Source.KafkaSourceReader.topic.events.partition.{p}.currentOffset", p % 100))
            .collect();
        let chunks = url_sized_chunks(&names);
        assert!(chunks.len() > 1);
        assert!(chunks
            .iter()
            .all(|c| c.join(",").len() <= MAX_NAMES_PER_REQUEST));
        assert_eq!(chunks.concat(), names);
        assert!(url_sized_chunks(&[]).is_empty());
    }

    #[test]
    fn taskmanager_memory_configuration_as_flink_writes_it() {
        let json = r#"{"taskmanagers":[{"id":"127.0.0.1:40123-a1b2c3","path":"pekko.tcp://flink@127.0.0.1:40123/user/rpc/taskmanager_0","dataPort":39971,"jmxPort":-1,"timeSinceLastHeartbeat":1700000000000,"slotsNumber":2,"freeSlots":1,
            "totalResource":{"cpuCores":2.0,"taskHeapMemory":383,"taskOffHeapMemory":0,"managedMemory":512,"networkMemory":128,"extendedResources":{}},
            "hardware":{"cpuCores":2,"physicalMemory":25000000000,"freeMemory":536870912,"managedMemory":536870920},
            "memoryConfiguration":{"frameworkHeap":134217728,"taskHeap":402653174,"frameworkOffHeap":134217728,"taskOffHeap":0,"networkMemory":134217730,"managedMemory":536870920,"jvmMetaspace":268435456,"jvmOverhead":201326592,"totalFlinkMemory":1342177280,"totalProcessMemory":1811939328}}]}"#;
        let tms: TaskManagers = serde_json::from_str(json).unwrap();
        let m = tms.taskmanagers[0].memory.unwrap();
        assert_eq!(
            (tms.taskmanagers[0].slots, m.task_heap, m.jvm_overhead),
            (2, 402_653_174, 201_326_592)
        );
    }

    #[test]
    fn non_finite_aggregates_as_flink_writes_them() {
        let json = r#"[{"id":"busyTimeMsPerSecond","min":"NaN","max":"NaN","avg":"NaN","sum":"NaN","skew":0.0},
                      {"id":"backPressuredTimeMsPerSecond","min":0.0,"max":12.5,"avg":"Infinity","sum":null}]"#;
        let entries: Vec<AggregatedEntry> = serde_json::from_str(json).unwrap();
        assert!(entries[0].value.avg.is_nan() && entries[0].value.max.is_nan());
        assert_eq!(entries[1].value.max, 12.5);
        assert!(entries[1].value.avg.is_nan(), "infinite is no measurement");
        assert!(entries[1].value.sum.is_nan());
    }

    #[test]
    fn a_job_between_restarts_has_no_plan_yet_and_that_is_no_garbage() {
        let json = r#"{"jid":"e7ee","name":"autotune-failover","state":"RESTARTING","start-time":1,
            "vertices":[{"id":"v1","name":"Work","parallelism":1}],
            "plan":{"jid":"e7ee","name":"autotune-failover","type":"STREAMING"}}"#;
        let details: JobDetails = serde_json::from_str(json).unwrap();
        assert!(details.plan.nodes.is_empty() && !details.plan_served());
    }

    /// A loopback server that takes one connection and does `with` to it.
    fn serving_once(with: fn(std::net::TcpStream)) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            if let Ok((stream, _)) = listener.accept() {
                with(stream)
            }
        });
        url
    }

    fn kind_of(url: &str, body_answer: bool) -> String {
        let rest = FlinkRest::new(url, Duration::from_millis(300));
        let err = if body_answer {
            rest.overview().unwrap_err()
        } else {
            rest.jobs().unwrap_err()
        };
        err.kind()
    }

    #[test]
    fn each_silence_and_each_garbage_has_its_kind() {
        use std::io::{Read, Write};
        let hang = serving_once(|s| {
            std::thread::sleep(Duration::from_secs(2));
            drop(s)
        });
        assert_eq!(kind_of(&hang, false), "not reachable (timed out)");
        let drop = serving_once(|mut s| {
            let _ = s.read(&mut [0u8; 1024]);
        });
        assert_eq!(kind_of(&drop, false), "not reachable (connection dropped)");
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", l.local_addr().unwrap())
        };
        assert_eq!(kind_of(&closed, false), "not reachable (connection failed)");
        let truncated = serving_once(|mut s| {
            let _ = s.read(&mut [0u8; 1024]);
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n{\"taskmanagers\": 1, \"slots-t");
        });
        assert_eq!(kind_of(&truncated, true), "unreadable answer");
        let error = serving_once(|mut s| {
            let _ = s.read(&mut [0u8; 1024]);
            let _ =
                s.write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 2\r\n\r\n{}");
        });
        assert_eq!(kind_of(&error, false), "answered 500");
    }
}
