//! A Flink JobManager's REST API, faked on loopback for the loop's unit tests: jobs with
//! vertices whose counters grow at set rates, TaskManagers with or without the plugin's
//! pool window, exceptions, the adaptive scheduler's resource requirements, and trouble
//! (the API down, a job that vanishes or rescales mid-window) on request.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use autotune_coordinator::clock::{Clock, SystemClock};
use serde_json::{json, Value};
use tiny_http::{Method, Response, Server};

#[derive(Debug, Clone)]
pub struct FakeVertex {
    pub id: String,
    pub name: String,
    pub parallelism: u32,
    pub max_parallelism: i64,
    /// Records/s in and out (for a source: read from outside and emitted).
    pub rate_in: f64,
    pub rate_out: f64,
    pub busy_ms: f64,
    pub busy_max_ms: f64,
    pub backpressure_ms: f64,
    /// A source's backlog: `(now, growth per second)`.
    pub pending: Option<(f64, f64)>,
    pub start_time: i64,
    /// Its tasks' state as `/jobs/<id>` serves it (`INITIALIZING` while restoring state).
    pub status: &'static str,
}

impl FakeVertex {
    pub fn new(id: &str, name: &str, parallelism: u32) -> Self {
        FakeVertex {
            id: id.into(),
            name: name.into(),
            parallelism,
            max_parallelism: 128,
            rate_in: 0.0,
            rate_out: 0.0,
            busy_ms: 0.0,
            busy_max_ms: 0.0,
            backpressure_ms: 0.0,
            pending: None,
            start_time: 0,
            status: "RUNNING",
        }
    }

    fn operator(&self) -> String {
        self.name.replace([' ', ':'], "_")
    }
}

#[derive(Debug, Clone)]
pub struct FakeJob {
    pub id: String,
    pub name: String,
    pub state: String,
    pub scheduler: String,
    pub start_time: i64,
    pub vertices: Vec<FakeVertex>,
    /// `(from, to, ship strategy)` by vertex index.
    pub edges: Vec<(usize, usize, &'static str)>,
    pub exceptions: Vec<Value>,
    /// Reads of the job's details so far.
    pub details_read: usize,
    /// At these reads of the details, every vertex gains a subtask (a rescale).
    pub rescale_at: Vec<usize>,
    /// At this read of the details, the job is gone.
    pub vanish_at: Option<usize>,
    /// At these reads of the details, the job restarts at the same parallelism: its tasks are
    /// redeployed and its counters start again from zero.
    pub restart_at: Vec<usize>,
    /// When its counters last started from zero (seconds on the fake's clock).
    pub epoch_s: f64,
    /// Its global job parameters (`execution-config.user-config` of `/jobs/<id>/config`).
    pub parameters: Vec<(String, String)>,
    /// What it runs, when the fake rescales it as the adaptive scheduler would.
    pub load: Option<Load>,
    /// How long after new resource requirements its tasks run again (milliseconds).
    pub rescale_downtime_ms: i64,
}

/// A job's load: records/s arriving at its source (vertex 0), and the seconds of work each
/// record costs its Work (vertex 1).
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub arrival: f64,
    pub cost_s: f64,
}

impl FakeJob {
    /// A running job under the default scheduler, deployed at `start_time`, with no trouble set.
    pub fn running(
        id: String,
        name: &str,
        start_time: i64,
        vertices: Vec<FakeVertex>,
        edges: Vec<(usize, usize, &'static str)>,
    ) -> Self {
        FakeJob {
            id,
            name: name.into(),
            state: "RUNNING".into(),
            scheduler: "Default".into(),
            start_time,
            vertices,
            edges,
            exceptions: Vec::new(),
            details_read: 0,
            rescale_at: Vec::new(),
            vanish_at: None,
            restart_at: Vec::new(),
            epoch_s: 0.0,
            parameters: Vec::new(),
            load: None,
            rescale_downtime_ms: 0,
        }
    }

    /// Source and Work as they run under `load` at Work's parallelism, `backlog` waiting: Work
    /// does at most parallelism / cost records/s; beyond that the source is back-pressured and
    /// its backlog grows by the rest.
    pub fn run_at(&mut self, load: Load, backlog: f64) {
        let p = self.vertices[1].parallelism as f64;
        let through = load.arrival.min(p / load.cost_s);
        let source = &mut self.vertices[0];
        (source.rate_in, source.rate_out, source.busy_ms) = (through, through, 50.0);
        source.backpressure_ms = if load.arrival > through { 900.0 } else { 0.0 };
        source.pending = Some((backlog, load.arrival - through));
        let work = &mut self.vertices[1];
        (work.rate_in, work.rate_out) = (through, through);
        work.busy_ms = 1000.0 * through * load.cost_s / p;
        work.busy_max_ms = work.busy_ms;
        self.load = Some(load);
    }

    /// The task slots it holds (one slot sharing group: its widest vertex).
    pub fn slots(&self) -> u32 {
        self.vertices
            .iter()
            .map(|v| v.parallelism)
            .max()
            .unwrap_or(0)
    }

    /// The adaptive scheduler taking new resource requirements with `available` slots (its
    /// own included): each vertex at its upper bound, as far as the slots go; the tasks
    /// redeployed, the counters from zero, the backlog kept.
    fn rescale(&mut self, body: &Value, available: u32, t: f64, now_ms: i64) {
        let backlog = self.vertices[0]
            .pending
            .map_or(0.0, |(p, growth)| p + growth * (t - self.epoch_s));
        for v in &mut self.vertices {
            if let Some(upper) = body[&v.id]["parallelism"]["upperBound"].as_u64() {
                v.parallelism = (upper as u32).min(available).max(1);
            }
            v.start_time = now_ms + self.rescale_downtime_ms;
        }
        self.epoch_s = t;
        if let Some(load) = self.load {
            self.run_at(load, backlog);
        }
    }
}

#[derive(Debug, Clone)]
pub struct FakeTaskManager {
    pub id: String,
    pub slots: u32,
    pub free_slots: u32,
    /// The plugin's published pool window (JSON), when the plugin runs there.
    pub pool_window: Option<String>,
    /// Flink's own metrics, by name.
    pub metrics: HashMap<String, f64>,
}

#[derive(Debug, Default)]
pub struct Cluster {
    pub jobs: Vec<FakeJob>,
    pub taskmanagers: Vec<FakeTaskManager>,
    pub config: Vec<(String, String)>,
    /// Every request answers 503.
    pub down: bool,
    /// Vertices' subtask metrics answer 500 (the rest of the API works).
    pub metrics_failing: bool,
    /// The cluster's task slots, when the fake schedules: the overview's free slots are
    /// those its running jobs do not hold, and new resource requirements rescale a job.
    pub slots_total: Option<u32>,
    /// Resource requirements received: `(job id, body)`.
    pub requirements: Vec<(String, Value)>,
    pub requests: usize,
    /// Requests by kind: the path with ids as `*` and the metric names asked for dropped.
    pub requests_by_kind: HashMap<String, usize>,
}

impl Cluster {
    /// Slots its running jobs do not hold (with `slots_total`).
    fn free_slots(&self) -> u32 {
        let held: u32 = self
            .jobs
            .iter()
            .filter(|j| j.state == "RUNNING")
            .map(FakeJob::slots)
            .sum();
        self.slots_total.unwrap_or(0).saturating_sub(held)
    }
}

pub struct FakeFlink {
    pub url: String,
    cluster: Arc<Mutex<Cluster>>,
    server: Arc<Server>,
    thread: Option<JoinHandle<()>>,
}

pub fn epoch_ms() -> i64 {
    autotune_coordinator::epoch_ms()
}

/// The 1 GiB-heap layout a small TaskManager has, in bytes.
pub fn memory_configuration() -> Value {
    json!({
        "frameworkHeap": 134217728u64, "taskHeap": 402653184u64, "frameworkOffHeap": 134217728u64,
        "taskOffHeap": 0, "networkMemory": 134217728u64, "managedMemory": 536870912u64,
        "jvmMetaspace": 268435456u64, "jvmOverhead": 201326592u64
    })
}

impl FakeFlink {
    pub fn start(cluster: Cluster) -> Self {
        Self::start_with_clock(cluster, Arc::new(SystemClock))
    }

    /// A fake whose counters grow with `clock`: the loop's own clock in a test that steps time.
    pub fn start_with_clock(cluster: Cluster, clock: Arc<dyn Clock>) -> Self {
        let server = Arc::new(Server::http("127.0.0.1:0").expect("a loopback port"));
        let url = format!("http://{}", server.server_addr().to_ip().unwrap());
        let cluster = Arc::new(Mutex::new(cluster));
        let (for_thread, serving) = (cluster.clone(), server.clone());
        let born = clock.now_ms();
        let thread = std::thread::spawn(move || {
            for mut request in serving.incoming_requests() {
                let mut body = String::new();
                let _ = request.as_reader().read_to_string(&mut body);
                let (status, answer) = {
                    let mut c = for_thread.lock().unwrap_or_else(|p| p.into_inner());
                    c.requests += 1;
                    *c.requests_by_kind
                        .entry(kind_of(request.url()))
                        .or_default() += 1;
                    let now_ms = clock.now_ms();
                    let t = (now_ms - born) as f64 / 1000.0;
                    answer(&mut c, request.method(), request.url(), &body, (t, now_ms))
                };
                let response = Response::from_string(answer.to_string())
                    .with_status_code(status)
                    .with_header(
                        "Content-Type: application/json"
                            .parse::<tiny_http::Header>()
                            .unwrap(),
                    );
                let _ = request.respond(response);
            }
        });
        FakeFlink {
            url,
            cluster,
            server,
            thread: Some(thread),
        }
    }

    pub fn cluster(&self) -> MutexGuard<'_, Cluster> {
        self.cluster.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for FakeFlink {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What the plugin in TaskManager `tm_id` publishes of its subtasks: subtask `i` of every
/// running vertex runs on TaskManager `i mod n`. Their busy times average to the vertex's,
/// subtask 0 the busiest, as the REST API aggregates them.
fn task_loads(c: &Cluster, tm_id: &str, now_ms: i64) -> Value {
    let n = c.taskmanagers.len().max(1);
    let here = c
        .taskmanagers
        .iter()
        .position(|t| t.id == tm_id)
        .unwrap_or(0);
    let mut tasks = Vec::new();
    for job in c.jobs.iter().filter(|j| j.state == "RUNNING") {
        for v in &job.vertices {
            let p = v.parallelism.max(1);
            let max = if p == 1 {
                v.busy_ms
            } else {
                v.busy_max_ms.max(v.busy_ms)
            };
            let others = ((v.busy_ms * p as f64 - max) / (p - 1).max(1) as f64).max(0.0);
            for subtask in (0..p).filter(|i| *i as usize % n == here) {
                tasks.push(json!({
                    "job_id": job.id, "vertex_id": v.id, "subtask": subtask,
                    "busy_ms": if subtask == 0 { max } else { others },
                    "backpressure_ms": v.backpressure_ms,
                }));
            }
        }
    }
    json!({"at_ms": now_ms, "tasks": tasks})
}

/// `/jobs/<id>/vertices/<id>/subtasks/metrics?get=...` -> `/jobs/*/vertices/*/subtasks/metrics`.
fn kind_of(url: &str) -> String {
    let path = url.split('?').next().unwrap_or(url);
    path.split('/')
        .map(|part| if part.len() >= 20 { "*" } else { part })
        .collect::<Vec<_>>()
        .join("/")
}

fn not_found(what: &str) -> (u16, Value) {
    (
        404,
        json!({ "errors": [format!("org.apache.flink.runtime.rest.NotFoundException: {what} not found")] }),
    )
}

/// `now`: seconds since the fake started, and the epoch time, on its clock.
fn answer(
    c: &mut Cluster,
    method: &Method,
    url: &str,
    body: &str,
    now: (f64, i64),
) -> (u16, Value) {
    let (t, now_ms) = now;
    if c.down {
        return (
            503,
            json!({ "errors": ["Service temporarily unavailable"] }),
        );
    }
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let wanted: Vec<&str> = query
        .strip_prefix("get=")
        .map(|g| g.split(',').collect())
        .unwrap_or_default();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    if c.metrics_failing && parts.ends_with(&["subtasks", "metrics"]) {
        return (500, json!({ "errors": ["Internal server error."] }));
    }
    match parts.as_slice() {
        ["jobs", "overview"] => (
            200,
            json!({ "jobs": c.jobs.iter().map(|j| json!({"jid": j.id, "name": j.name, "state": j.state, "start-time": j.start_time})).collect::<Vec<_>>() }),
        ),
        ["overview"] => {
            let (total, free) = match c.slots_total {
                Some(total) => (total, c.free_slots()),
                None => (
                    c.taskmanagers.iter().map(|t| t.slots).sum(),
                    c.taskmanagers.iter().map(|t| t.free_slots).sum(),
                ),
            };
            (
                200,
                json!({"taskmanagers": c.taskmanagers.len(), "slots-total": total, "slots-available": free, "flink-version": "1.20.3"}),
            )
        }
        ["config"] => (200, json!({ "flink-version": "1.20.3" })),
        ["jobmanager", "config"] => (
            200,
            Value::Array(
                c.config
                    .iter()
                    .map(|(k, v)| json!({"key": k, "value": v}))
                    .collect(),
            ),
        ),
        ["taskmanagers"] => (
            200,
            json!({ "taskmanagers": c.taskmanagers.iter().map(|t| json!({
                "id": t.id, "slotsNumber": t.slots, "freeSlots": t.free_slots,
                "memoryConfiguration": memory_configuration(),
            })).collect::<Vec<_>>() }),
        ),
        ["taskmanagers", id, "metrics"] => {
            let Some(tm) = c.taskmanagers.iter().find(|t| t.id == *id) else {
                return not_found("TaskManager");
            };
            let mut values = Vec::new();
            for name in wanted {
                if name == autotune_model::metrics::POOL_WINDOW_METRIC {
                    if let Some(w) = &tm.pool_window {
                        values.push(json!({"id": name, "value": w}));
                    }
                } else if name == autotune_model::metrics::TASK_LOADS_METRIC {
                    // With the plugin (it publishes a pool window), its subtasks' loads.
                    if tm.pool_window.is_some() {
                        let loads = task_loads(c, id, now_ms);
                        values.push(json!({"id": name, "value": loads.to_string()}));
                    }
                } else if let Some(v) = tm.metrics.get(name) {
                    values.push(json!({"id": name, "value": v.to_string()}));
                }
            }
            (200, Value::Array(values))
        }
        ["jobs", id] if *method == Method::Get => job_details(c, id, t, now_ms),
        ["jobs", id, "resource-requirements"] if *method == Method::Put => {
            let Some(job) = c.jobs.iter().find(|j| j.id == *id) else {
                return not_found("Job");
            };
            if !job.scheduler.eq_ignore_ascii_case("adaptive") {
                return (
                    500,
                    json!({"errors": ["Operation is not supported by the scheduler"]}),
                );
            }
            let body: Value = serde_json::from_str(body).unwrap_or(Value::Null);
            if c.slots_total.is_some() {
                let free = c.free_slots();
                let job = c
                    .jobs
                    .iter_mut()
                    .find(|j| j.id == *id)
                    .expect("found above");
                let available = free + job.slots();
                job.rescale(&body, available, t, now_ms);
            }
            c.requirements.push((id.to_string(), body));
            (200, json!({}))
        }
        ["jobs", id, "exceptions"] => match c.jobs.iter().find(|j| j.id == *id) {
            Some(job) => (
                200,
                json!({"exceptionHistory": {"entries": job.exceptions, "truncated": false}}),
            ),
            None => not_found("Job"),
        },
        ["jobs", id, "config"] => match c.jobs.iter().find(|j| j.id == *id) {
            Some(job) => {
                let parameters: serde_json::Map<String, Value> = job
                    .parameters
                    .iter()
                    .map(|(k, v)| (k.clone(), json!(v)))
                    .collect();
                (
                    200,
                    json!({"jid": job.id, "name": job.name, "execution-config": {"user-config": parameters}}),
                )
            }
            None => not_found("Job"),
        },
        ["jobs", _, "checkpoints", "config"] => not_found("Checkpointing"),
        ["jobs", _, "checkpoints"] => (200, json!({})),
        ["jobs", _, "execution-result"] => (200, json!({})),
        ["jobs", id, "vertices", vid, "subtasktimes"] => {
            let Some(v) = vertex(c, id, vid) else {
                return not_found("Vertex");
            };
            // Each subtask runs half a second after its deployment: restoring its state.
            let subtasks: Vec<Value> = (0..v.parallelism)
                .map(|i| json!({"subtask": i, "timestamps": {
                    "DEPLOYING": v.start_time, "INITIALIZING": v.start_time + 100, "RUNNING": v.start_time + 500,
                    "FINISHED": 0}}))
                .collect();
            (
                200,
                json!({"id": v.id, "name": v.name, "now": now_ms, "subtasks": subtasks}),
            )
        }
        ["jobs", id, "vertices", vid, "subtasks", "metrics"] => {
            let Some(v) = vertex(c, id, vid) else {
                return not_found("Vertex");
            };
            let aggregate = |value: f64, max: f64| json!({"min": value, "max": max, "avg": value, "sum": value * v.parallelism as f64});
            let mut values = Vec::new();
            for name in wanted {
                let value = match name {
                    "busyTimeMsPerSecond" => aggregate(v.busy_ms, v.busy_max_ms.max(v.busy_ms)),
                    "backPressuredTimeMsPerSecond" => {
                        aggregate(v.backpressure_ms, v.backpressure_ms)
                    }
                    _ => continue,
                };
                let mut entry = value;
                entry["id"] = json!(name);
                values.push(entry);
            }
            (200, Value::Array(values))
        }
        ["jobs", id, "vertices", vid, "metrics"] => {
            let Some(v) = vertex(c, id, vid) else {
                return not_found("Vertex");
            };
            let t = t - c
                .jobs
                .iter()
                .find(|j| j.id == *id)
                .map_or(0.0, |j| j.epoch_s);
            let op = v.operator();
            let mut known: Vec<(String, f64)> = Vec::new();
            for s in 0..v.parallelism {
                let share = v.parallelism as f64;
                known.push((format!("{s}.{op}.numRecordsOut"), v.rate_out * t / share));
                if let Some((pending, growth)) = v.pending {
                    known.push((
                        format!("{s}.{op}.pendingRecords"),
                        (pending + growth * t) / share,
                    ));
                }
            }
            let listed: Vec<Value> = known
                .iter()
                .filter(|(name, _)| wanted.is_empty() || wanted.contains(&name.as_str()))
                .map(|(name, value)| {
                    if wanted.is_empty() {
                        json!({"id": name})
                    } else {
                        json!({"id": name, "value": value.to_string()})
                    }
                })
                .collect();
            (200, Value::Array(listed))
        }
        _ => not_found(path),
    }
}

fn vertex<'c>(c: &'c Cluster, job: &str, vertex: &str) -> Option<&'c FakeVertex> {
    c.jobs
        .iter()
        .find(|j| j.id == job)?
        .vertices
        .iter()
        .find(|v| v.id == vertex)
}

fn job_details(c: &mut Cluster, id: &str, t: f64, now_ms: i64) -> (u16, Value) {
    let Some(index) = c.jobs.iter().position(|j| j.id == id) else {
        return not_found("Job");
    };
    let job = &mut c.jobs[index];
    job.details_read += 1;
    if job.vanish_at == Some(job.details_read) {
        c.jobs.remove(index);
        return not_found("Job");
    }
    if job.rescale_at.contains(&job.details_read) {
        for v in &mut job.vertices {
            v.parallelism += 1;
            v.start_time = now_ms;
        }
    }
    if job.restart_at.contains(&job.details_read) {
        job.epoch_s = t;
        for v in &mut job.vertices {
            v.start_time = now_ms;
        }
    }
    let t = t - job.epoch_s;
    let vertices: Vec<Value> = job
        .vertices
        .iter()
        .map(|v| {
            json!({
                "id": v.id, "name": v.name, "parallelism": v.parallelism, "maxParallelism": v.max_parallelism,
                "start-time": v.start_time, "status": v.status,
                "metrics": {"read-records": v.rate_in * t, "write-records": v.rate_out * t},
            })
        })
        .collect();
    let nodes: Vec<Value> = job
        .vertices
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let inputs: Vec<Value> = job
                .edges
                .iter()
                .filter(|e| e.1 == i)
                .map(|e| json!({"id": job.vertices[e.0].id, "ship_strategy": e.2}))
                .collect();
            json!({"id": v.id, "inputs": inputs})
        })
        .collect();
    (
        200,
        json!({
            "jid": job.id, "name": job.name, "state": job.state, "schedulerType": job.scheduler,
            "start-time": job.start_time, "vertices": vertices, "plan": {"nodes": nodes},
        }),
    )
}
