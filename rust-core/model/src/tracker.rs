//! The tracker: what one reporter instance knows about the metrics of its process.
//!
//! Slots are numbered by the Java shim; a slot's identity arrives once, at
//! registration, and afterwards only its value crosses, once per report round.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::memory::PoolWindow;
use crate::metrics::{self, Component, Interner, MetricError, MetricIdentity, RawMetric, Scope};
use crate::profile::{SamplingTarget, VertexLoad};
use crate::text::quoted;
use crate::window::{SampleRing, Samples};

/// Slot numbers are dense indexes chosen by the shim; anything larger is a bug there.
pub const MAX_SLOTS: usize = 16 * 1024 * 1024;

#[derive(Debug)]
struct TrackedMetric {
    identity: MetricIdentity,
    /// The round from which the slot's column belongs to this metric.
    since_round: u64,
}

#[derive(Debug, Default)]
struct VertexView {
    name: Arc<str>,
    /// Tracked metrics per subtask index, to know when a subtask is gone.
    subtasks: BTreeMap<u32, usize>,
}

#[derive(Debug, Default)]
struct JobView {
    name: Arc<str>,
    metrics: usize,
    vertices: BTreeMap<Arc<str>, VertexView>,
}

/// What one subtask is doing now, as a TaskManager publishes it ([`metrics::TASK_LOADS_METRIC`]):
/// the values Flink's REST API would aggregate for the vertex, read here instead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskLoad {
    pub job_id: String,
    pub vertex_id: String,
    pub subtask: u32,
    /// `busyTimeMsPerSecond`; `None` when not a number.
    pub busy_ms: Option<f64>,
    /// `backPressuredTimeMsPerSecond`; `None` when not a number.
    pub backpressure_ms: Option<f64>,
    /// `checkpointStartDelayNanos` of the last checkpoint; `None` when not a number.
    #[serde(default)]
    pub start_delay_ns: Option<f64>,
}

/// Every subtask of a TaskManager, with when its values were read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskLoads {
    pub at_ms: i64,
    pub tasks: Vec<TaskLoad>,
}

/// Per-instance metric state.
#[derive(Debug)]
pub struct Tracker {
    ring: SampleRing,
    slots: Vec<Option<TrackedMetric>>,
    tracked: usize,
    per_component: [usize; 2],
    jobs: BTreeMap<Arc<str>, JobView>,
    strings: Interner,
    ignored: u64,
}

/// What a registration did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    /// A model reads it: the shim must send its value every round.
    Tracked,
    /// Nobody reads it: the shim can forget it.
    Ignored,
}

impl Tracker {
    pub fn new(window_size: usize) -> Self {
        Tracker {
            ring: SampleRing::new(window_size),
            slots: Vec::new(),
            tracked: 0,
            per_component: [0, 0],
            jobs: BTreeMap::new(),
            strings: Interner::default(),
            ignored: 0,
        }
    }

    /// Registers the metric Flink just added under `slot`.
    pub fn register(
        &mut self,
        slot: usize,
        raw: RawMetric<'_>,
    ) -> Result<Registration, MetricError> {
        if slot >= MAX_SLOTS {
            return Err(MetricError(format!(
                "slot {slot} is out of range (max {MAX_SLOTS})"
            )));
        }
        let identity = MetricIdentity::parse(raw, &mut self.strings)?;
        if !metrics::is_tracked(&identity) {
            self.ignored += 1;
            return Ok(Registration::Ignored);
        }
        // A reused slot replaces what was there (the shim should have unregistered it).
        self.unregister(slot);
        if slot >= self.slots.len() {
            self.slots.resize_with(slot + 1, || None);
            self.ring.ensure_width(slot + 1);
        }
        self.per_component[component_index(identity.component)] += 1;
        if let (Some(job_id), Some(job_name)) = (&identity.job_id, &identity.job_name) {
            let job = self.jobs.entry(job_id.clone()).or_default();
            job.name = job_name.clone();
            job.metrics += 1;
            if let (Some(vertex_id), Some(subtask)) = (&identity.vertex_id, identity.subtask_index)
            {
                let vertex = job.vertices.entry(vertex_id.clone()).or_default();
                vertex.name = identity
                    .vertex_name
                    .clone()
                    .unwrap_or_else(|| vertex_id.clone());
                *vertex.subtasks.entry(subtask).or_default() += 1;
            }
        }
        self.slots[slot] = Some(TrackedMetric {
            identity,
            since_round: self.ring.rounds(),
        });
        self.tracked += 1;
        Ok(Registration::Tracked)
    }

    /// Forgets the metric in `slot`; unknown slots are ignored.
    pub fn unregister(&mut self, slot: usize) {
        let Some(metric) = self.slots.get_mut(slot).and_then(Option::take) else {
            return;
        };
        self.tracked -= 1;
        let id = metric.identity;
        self.per_component[component_index(id.component)] -= 1;
        let Some(job_id) = &id.job_id else { return };
        let Some(job) = self.jobs.get_mut(job_id) else {
            return;
        };
        job.metrics -= 1;
        if let (Some(vertex_id), Some(subtask)) = (&id.vertex_id, id.subtask_index) {
            if let Some(vertex) = job.vertices.get_mut(vertex_id) {
                if let Some(count) = vertex.subtasks.get_mut(&subtask) {
                    *count -= 1;
                    if *count == 0 {
                        vertex.subtasks.remove(&subtask);
                    }
                }
                if vertex.subtasks.is_empty() {
                    job.vertices.remove(vertex_id);
                }
            }
        }
        if job.metrics == 0 {
            self.jobs.remove(job_id);
            drop(id);
            // The job is gone: release its names so a long-lived process stays small.
            self.strings.sweep();
        }
    }

    /// Records one report round: `values[slot]` is the slot's value (NaN: none).
    pub fn record_round(&mut self, epoch_millis: i64, values: &[f64]) {
        self.ring.record(epoch_millis, values);
    }

    /// The row for the next round, for callers that fill it in place (one copy from Java);
    /// the round counts once [`Self::commit_round`] is called.
    pub fn next_round(&mut self, count: usize) -> &mut [f64] {
        self.ring.next_row(count)
    }

    pub fn commit_round(&mut self, epoch_millis: i64) {
        self.ring.commit_round(epoch_millis);
    }

    pub fn tracked(&self) -> usize {
        self.tracked
    }

    pub fn rounds(&self) -> u64 {
        self.ring.rounds()
    }

    /// Which Flink process this is, judged from what Flink registered in it.
    pub fn role(&self) -> Role {
        match self.per_component {
            [0, 0] => Role::Unknown,
            [_, 0] => Role::JobManager,
            [0, _] => Role::TaskManager,
            _ => Role::MiniCluster,
        }
    }

    /// The identity and window of a slot, for models and tests.
    pub fn metric(&self, slot: usize) -> Option<(&MetricIdentity, Samples<'_>)> {
        let m = self.slots.get(slot)?.as_ref()?;
        Some((&m.identity, self.ring.samples(slot, m.since_round)))
    }

    /// Tracked metrics, in slot order.
    pub fn metrics(&self) -> impl Iterator<Item = (&MetricIdentity, Samples<'_>)> {
        self.slots.iter().enumerate().filter_map(|(slot, m)| {
            m.as_ref()
                .map(|m| (&m.identity, self.ring.samples(slot, m.since_round)))
        })
    }

    /// Each vertex's hottest subtask here: its busy share over the last rounds (at least
    /// three), what decides which task threads are worth sampling.
    pub fn vertex_loads(&self) -> Vec<VertexLoad> {
        const RECENT_ROUNDS: usize = 6;
        let mut loads: Vec<VertexLoad> = Vec::new();
        for (id, window) in self.metrics() {
            let (Scope::Task, "busyTimeMsPerSecond", Some(job_id), Some(vertex_id)) =
                (id.scope, id.path.as_ref(), &id.job_id, &id.vertex_id)
            else {
                continue;
            };
            let recent: Vec<f64> = window
                .values()
                .rev()
                .filter(|v| v.is_finite())
                .take(RECENT_ROUNDS)
                .collect();
            if recent.len() < 3 {
                continue;
            }
            let busy = recent.iter().sum::<f64>() / recent.len() as f64 / 1000.0;
            match loads
                .iter_mut()
                .find(|l| l.target.job_id == *job_id && l.target.vertex_id == *vertex_id)
            {
                Some(l) => l.busy = l.busy.max(busy),
                None => loads.push(VertexLoad {
                    target: SamplingTarget {
                        job_id: job_id.clone(),
                        vertex_id: vertex_id.clone(),
                        vertex_name: id.vertex_name.clone().unwrap_or_else(|| vertex_id.clone()),
                    },
                    busy,
                }),
            }
        }
        loads
    }

    /// Every subtask's latest busy and back-pressured time and checkpoint start delay: what
    /// the coordinator would ask the REST API for, vertex by vertex. None when the process runs no subtask metrics yet.
    pub fn task_loads(&self) -> Option<TaskLoads> {
        let mut tasks: BTreeMap<(&str, &str, u32), TaskLoad> = BTreeMap::new();
        let mut at_ms = i64::MIN;
        for (id, samples) in self.metrics() {
            let (Scope::Task, Some(job_id), Some(vertex_id), Some(subtask)) =
                (id.scope, &id.job_id, &id.vertex_id, id.subtask_index)
            else {
                continue;
            };
            let field: fn(&mut TaskLoad) -> &mut Option<f64> = match id.path.as_ref() {
                "busyTimeMsPerSecond" => |t| &mut t.busy_ms,
                "backPressuredTimeMsPerSecond" => |t| &mut t.backpressure_ms,
                "checkpointStartDelayNanos" => |t| &mut t.start_delay_ns,
                _ => continue,
            };
            let Some((at, value)) = samples.iter().next_back() else {
                continue;
            };
            at_ms = at_ms.max(at);
            let task = tasks
                .entry((job_id, vertex_id, subtask))
                .or_insert_with(|| TaskLoad {
                    job_id: job_id.to_string(),
                    vertex_id: vertex_id.to_string(),
                    subtask,
                    busy_ms: None,
                    backpressure_ms: None,
                    start_delay_ns: None,
                });
            *field(task) = value.is_finite().then_some(value);
        }
        (!tasks.is_empty()).then(|| TaskLoads {
            at_ms,
            tasks: tasks.into_values().collect(),
        })
    }

    /// This TaskManager's memory pools over the window (peaks, live heap, GC time), from the
    /// TaskManager's process metrics. None when there are none (a JobManager).
    pub fn pool_window(&self) -> Option<PoolWindow> {
        let mut w = PoolWindow::default();
        let mut gc_time: Vec<Samples<'_>> = Vec::new();
        let (mut first, mut last) = (i64::MAX, i64::MIN);
        let mut any = false;
        for (id, samples) in self.metrics() {
            if id.scope != Scope::Process || id.component != Component::TaskManager {
                continue;
            }
            let peak = samples.values().filter(|v| v.is_finite()).reduce(f64::max);
            let latest = samples.values().rev().find(|v| v.is_finite());
            let slot = match id.path.as_ref() {
                "Status.JVM.Memory.Heap.Used" => &mut w.heap_used_peak,
                "Status.JVM.Memory.Heap.Max" => {
                    w.heap_max = latest;
                    continue;
                }
                metrics::HEAP_AFTER_GC_METRIC => &mut w.heap_after_gc_peak,
                "Status.JVM.Memory.Metaspace.Used" => &mut w.metaspace_used_peak,
                "Status.JVM.Memory.Metaspace.Max" => {
                    w.metaspace_max = latest.filter(|m| *m > 0.0);
                    continue;
                }
                "Status.JVM.Memory.Direct.MemoryUsed" => &mut w.direct_used_peak,
                "Status.Flink.Memory.Managed.Used" => &mut w.managed_used_peak,
                "Status.Flink.Memory.Managed.Total" => {
                    w.managed_total = latest;
                    continue;
                }
                "Status.Shuffle.Netty.UsedMemory" => &mut w.network_used_peak,
                "Status.Shuffle.Netty.TotalMemory" => {
                    w.network_total = latest;
                    continue;
                }
                // Per collector; `All` (Flink 1.19+) repeats their sum.
                p if p.starts_with("Status.JVM.GarbageCollector.")
                    && p.ends_with(".Time")
                    && p != "Status.JVM.GarbageCollector.All.Time" =>
                {
                    gc_time.push(samples);
                    continue;
                }
                _ => continue,
            };
            *slot = peak;
            if let (Some((t0, _)), Some((t1, _))) =
                (samples.iter().next(), samples.iter().next_back())
            {
                first = first.min(t0);
                last = last.max(t1);
                w.samples = w.samples.max(samples.len() as u32);
                any = true;
            }
        }
        if !any {
            return None;
        }
        w.window_seconds = (last - first).max(0) as f64 / 1000.0;
        w.full = w.samples as usize >= self.ring.capacity();
        // GC time: growth of the collectors' cumulative times over the window.
        let mut gc_ms = 0.0;
        let mut span = 0.0f64;
        for samples in &gc_time {
            let finite: Vec<(i64, f64)> = samples.iter().filter(|(_, v)| v.is_finite()).collect();
            if let (Some(a), Some(b)) = (finite.first(), finite.last()) {
                if b.0 > a.0 {
                    gc_ms += (b.1 - a.1).max(0.0);
                    span = span.max((b.0 - a.0) as f64 / 1000.0);
                }
            }
        }
        if span > 0.0 {
            w.gc_ms_per_s = Some(gc_ms / span);
        }
        Some(w)
    }

    /// A snapshot of what is tracked, for the periodic STATUS line.
    pub fn summary(&self) -> Summary {
        let mut jobs: Vec<JobSummary> = self
            .jobs
            .iter()
            .map(|(id, job)| JobSummary {
                id: id.to_string(),
                name: job.name.to_string(),
                vertices: job
                    .vertices
                    .iter()
                    .map(|(vid, v)| VertexSummary {
                        id: vid.to_string(),
                        name: v.name.to_string(),
                        subtasks: v.subtasks.keys().copied().collect(),
                        busy_ms_per_s: None,
                        pending_records: None,
                    })
                    .collect(),
            })
            .collect();
        // Latest busy time (hottest subtask) and source backlog (sum) per vertex.
        for (id, window) in self.metrics() {
            let (Some(job_id), Some(vertex_id), Some(value)) =
                (&id.job_id, &id.vertex_id, window.last())
            else {
                continue;
            };
            if !value.is_finite() {
                continue;
            }
            let Some(vertex) = jobs
                .iter_mut()
                .find(|j| j.id == job_id.as_ref())
                .and_then(|j| j.vertices.iter_mut().find(|v| v.id == vertex_id.as_ref()))
            else {
                continue;
            };
            match (id.scope, id.path.as_ref()) {
                (Scope::Task, "busyTimeMsPerSecond") => {
                    vertex.busy_ms_per_s =
                        Some(vertex.busy_ms_per_s.map_or(value, |b: f64| b.max(value)))
                }
                (Scope::Operator, "pendingRecords") => {
                    vertex.pending_records = Some(vertex.pending_records.unwrap_or(0.0) + value)
                }
                _ => {}
            }
        }
        jobs.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        Summary {
            role: self.role(),
            tracked: self.tracked,
            ignored: self.ignored,
            rounds: self.rounds(),
            jobs,
        }
    }
}

fn component_index(c: Component) -> usize {
    match c {
        Component::JobManager => 0,
        Component::TaskManager => 1,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Unknown,
    JobManager,
    TaskManager,
    /// JobManager and TaskManager metrics in one registry (a MiniCluster).
    MiniCluster,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Unknown => "unknown",
            Role::JobManager => "jobmanager",
            Role::TaskManager => "taskmanager",
            Role::MiniCluster => "jobmanager+taskmanager",
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub role: Role,
    pub tracked: usize,
    pub ignored: u64,
    pub rounds: u64,
    pub jobs: Vec<JobSummary>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JobSummary {
    pub id: String,
    pub name: String,
    pub vertices: Vec<VertexSummary>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VertexSummary {
    pub id: String,
    pub name: String,
    /// Subtask indexes running in this process.
    pub subtasks: Vec<u32>,
    pub busy_ms_per_s: Option<f64>,
    pub pending_records: Option<f64>,
}

/// `0-3,7` for `[0, 1, 2, 3, 7]`: subtask lists stay short on wide vertices.
pub fn compact_ranges(sorted: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            let _ = write!(out, "{start}");
        } else {
            let _ = write!(out, "{start}-{end}");
        }
        i += 1;
    }
    out
}

impl fmt::Display for Summary {
    /// `role=taskmanager tracked=57 ignored=310 rounds=12 jobs=1 | job "name" (id): vertex "Work" (id) subtasks=[0-1] busy=998ms/s; ...`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "role={} tracked={} ignored={} rounds={} jobs={}",
            self.role,
            self.tracked,
            self.ignored,
            self.rounds,
            self.jobs.len()
        )?;
        for job in &self.jobs {
            write!(f, " | job {} ({}):", quoted(&job.name), job.id)?;
            for (i, v) in job.vertices.iter().enumerate() {
                let sep = if i == 0 { " " } else { "; " };
                write!(
                    f,
                    "{sep}vertex {} ({}) subtasks=[{}]",
                    quoted(&v.name),
                    v.id,
                    compact_ranges(&v.subtasks)
                )?;
                if let Some(busy) = v.busy_ms_per_s {
                    write!(f, " busy={busy:.0}ms/s")?;
                }
                if let Some(pending) = v.pending_records {
                    write!(f, " pending={pending:.0}")?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::MetricKind;

    fn task_vars(
        job: &'static str,
        vertex: &'static str,
        name: &'static str,
        subtask: &'static str,
    ) -> Vec<(&'static str, &'static str)> {
        vec![
            ("<host>", "h"),
            ("<tm_id>", "tm-1"),
            ("<job_id>", job),
            ("<job_name>", "queue-job"),
            ("<task_id>", vertex),
            ("<task_name>", name),
            ("<subtask_index>", subtask),
        ]
    }

    fn register(
        t: &mut Tracker,
        slot: usize,
        vars: &[(&str, &str)],
        scope: &str,
        name: &str,
    ) -> Registration {
        t.register(
            slot,
            RawMetric {
                variables: vars,
                logical_scope: Some(scope),
                name,
                kind: MetricKind::Gauge,
            },
        )
        .unwrap()
    }

    #[test]
    fn tracks_vertices_and_subtasks_and_forgets_them() {
        let mut t = Tracker::new(4);
        assert_eq!(t.role(), Role::Unknown);
        let w0 = task_vars("j1", "v-work", "Work", "0");
        let w1 = task_vars("j1", "v-work", "Work", "1");
        let s0 = task_vars("j1", "v-src", "Source: Queue Source", "0");
        assert_eq!(
            register(
                &mut t,
                0,
                &w0,
                "taskmanager.job.task",
                "busyTimeMsPerSecond"
            ),
            Registration::Tracked
        );
        assert_eq!(
            register(
                &mut t,
                1,
                &w1,
                "taskmanager.job.task",
                "busyTimeMsPerSecond"
            ),
            Registration::Tracked
        );
        assert_eq!(
            register(
                &mut t,
                2,
                &s0,
                "taskmanager.job.task",
                "busyTimeMsPerSecond"
            ),
            Registration::Tracked
        );
        assert_eq!(
            register(&mut t, 3, &w0, "taskmanager.job.task.operator.mine", "x"),
            Registration::Ignored
        );
        assert_eq!(t.role(), Role::TaskManager);
        assert_eq!(t.tracked(), 3);

        t.record_round(1_000, &[1000.0, 400.0, 12.0]);
        let summary = t.summary();
        assert_eq!(summary.jobs.len(), 1);
        let vertices = &summary.jobs[0].vertices;
        let work = vertices.iter().find(|v| v.name == "Work").unwrap();
        assert_eq!(work.subtasks, vec![0, 1]);
        assert_eq!(work.busy_ms_per_s, Some(1000.0));
        let line = summary.to_string();
        assert!(
            line.contains("vertex \"Work\" (v-work) subtasks=[0-1] busy=1000ms/s"),
            "{line}"
        );

        t.unregister(1);
        assert_eq!(
            t.summary().jobs[0]
                .vertices
                .iter()
                .find(|v| v.name == "Work")
                .unwrap()
                .subtasks,
            vec![0]
        );
        t.unregister(0);
        t.unregister(2);
        t.unregister(2); // twice is harmless
        assert!(t.summary().jobs.is_empty());
        assert_eq!(t.tracked(), 0);
        assert!(
            t.strings.len() < 4,
            "job strings released, left: {}",
            t.strings.len()
        );
    }

    #[test]
    fn task_loads_are_each_subtasks_latest_busy_and_backpressure() {
        let mut t = Tracker::new(4);
        assert_eq!(t.task_loads(), None);
        let w0 = task_vars("j1", "v-work", "Work", "0");
        let w1 = task_vars("j1", "v-work", "Work", "1");
        let scope = "taskmanager.job.task";
        register(&mut t, 0, &w0, scope, "busyTimeMsPerSecond");
        register(&mut t, 1, &w0, scope, "backPressuredTimeMsPerSecond");
        register(&mut t, 2, &w1, scope, "busyTimeMsPerSecond");
        register(&mut t, 3, &w1, scope, "idleTimeMsPerSecond");
        register(&mut t, 4, &w1, scope, "checkpointStartDelayNanos");
        t.record_round(1_000, &[900.0, 50.0, 300.0, 700.0, 1e6]);
        t.record_round(3_000, &[800.0, 100.0, f64::NAN, 600.0, 2e6]);
        let loads = t.task_loads().unwrap();
        assert_eq!(loads.at_ms, 3_000);
        let load = |subtask, busy, bp, delay| TaskLoad {
            job_id: "j1".into(),
            vertex_id: "v-work".into(),
            subtask,
            busy_ms: busy,
            backpressure_ms: bp,
            start_delay_ns: delay,
        };
        assert_eq!(
            loads.tasks,
            vec![
                load(0, Some(800.0), Some(100.0), None),
                // Not a number now is not the number before.
                load(1, None, None, Some(2e6)),
            ]
        );
        // What the coordinator reads back is what was published (NaN is not JSON: null).
        let json = serde_json::to_string(&loads).unwrap();
        assert_eq!(serde_json::from_str::<TaskLoads>(&json).unwrap(), loads);
    }

    #[test]
    fn vertex_loads_are_the_hottest_subtask_over_recent_rounds() {
        let mut t = Tracker::new(30);
        let w0 = task_vars("j1", "v-work", "Work", "0");
        let w1 = task_vars("j1", "v-work", "Work", "1");
        let s0 = task_vars("j1", "v-src", "Source: Queue Source", "0");
        for (slot, vars) in [&w0, &w1, &s0].into_iter().enumerate() {
            register(
                &mut t,
                slot,
                vars,
                "taskmanager.job.task",
                "busyTimeMsPerSecond",
            );
        }
        t.record_round(0, &[900.0, 100.0, 50.0]);
        t.record_round(1, &[900.0, 100.0, 50.0]);
        assert!(t.vertex_loads().is_empty(), "two rounds say too little");
        // An old idle stretch does not dilute the recent rounds; a NaN is skipped.
        for round in 2..12 {
            t.record_round(
                round,
                &[if round < 6 { 0.0 } else { 800.0 }, f64::NAN, 50.0],
            );
        }
        let loads = t.vertex_loads();
        let work = loads
            .iter()
            .find(|l| l.target.vertex_id.as_ref() == "v-work")
            .unwrap();
        assert!((work.busy - 0.8).abs() < 1e-9, "{}", work.busy);
        assert_eq!(work.target.thread_prefix(), "Work (");
        let source = loads
            .iter()
            .find(|l| l.target.vertex_id.as_ref() == "v-src")
            .unwrap();
        assert!((source.busy - 0.05).abs() < 1e-9);
    }

    #[test]
    fn windows_stay_bounded_and_aligned() {
        let mut t = Tracker::new(3);
        let tm = [("<tm_id>", "tm")];
        register(&mut t, 5, &tm, "taskmanager.Status.JVM.Memory.Heap", "Used");
        for round in 0..10 {
            t.record_round(
                round,
                &[
                    f64::NAN,
                    f64::NAN,
                    f64::NAN,
                    f64::NAN,
                    f64::NAN,
                    round as f64,
                ],
            );
        }
        let (id, window) = t.metric(5).unwrap();
        assert_eq!(id.rest_name(), "Status.JVM.Memory.Heap.Used");
        assert_eq!(window.values().collect::<Vec<_>>(), vec![7.0, 8.0, 9.0]);
        // A short values array (the shim had fewer slots) counts as missing values.
        t.record_round(10, &[]);
        assert!(t.metric(5).unwrap().1.last().unwrap().is_nan());
    }

    #[test]
    fn a_reused_slot_starts_an_empty_window() {
        let mut t = Tracker::new(8);
        let tm = [("<tm_id>", "tm")];
        register(&mut t, 0, &tm, "taskmanager.Status.JVM.CPU", "Time");
        t.record_round(0, &[0.5]);
        t.unregister(0);
        register(
            &mut t,
            0,
            &tm,
            "taskmanager.Status.JVM.Memory.Heap",
            "Committed",
        );
        assert!(t.metric(0).unwrap().1.is_empty());
        t.record_round(1, &[42.0]);
        assert_eq!(
            t.metric(0).unwrap().1.values().collect::<Vec<_>>(),
            vec![42.0]
        );
    }

    #[test]
    fn rounds_filled_in_place_count_once_committed() {
        let mut t = Tracker::new(4);
        register(
            &mut t,
            1,
            &[("<tm_id>", "tm")],
            "taskmanager.Status.JVM.CPU",
            "Time",
        );
        t.next_round(2).copy_from_slice(&[9.0, 0.25]);
        assert_eq!(t.rounds(), 0);
        t.commit_round(5);
        assert_eq!(
            t.metric(1).unwrap().1.iter().collect::<Vec<_>>(),
            vec![(5, 0.25)]
        );
    }

    #[test]
    fn source_backlog_is_summed_over_subtasks() {
        let mut t = Tracker::new(2);
        for (slot, subtask) in ["0", "1"].iter().enumerate() {
            let mut vars = task_vars("j", "v-src", "Source: Queue Source", subtask);
            vars.push(("<operator_name>", "Source: Queue Source"));
            vars.push(("<operator_id>", "op"));
            register(
                &mut t,
                slot,
                &vars,
                "taskmanager.job.task.operator",
                "pendingRecords",
            );
        }
        t.record_round(0, &[100.0, 23.0]);
        assert_eq!(t.summary().jobs[0].vertices[0].pending_records, Some(123.0));
    }

    #[test]
    fn both_components_mean_a_minicluster() {
        let mut t = Tracker::new(2);
        register(
            &mut t,
            0,
            &[("<tm_id>", "tm")],
            "taskmanager.Status.JVM.CPU",
            "Time",
        );
        register(
            &mut t,
            1,
            &[("<host>", "h")],
            "jobmanager",
            "taskSlotsTotal",
        );
        assert_eq!(t.role(), Role::MiniCluster);
    }

    #[test]
    fn slot_out_of_range_is_refused() {
        let mut t = Tracker::new(2);
        let err = t
            .register(
                MAX_SLOTS,
                RawMetric {
                    variables: &[],
                    logical_scope: Some("jobmanager"),
                    name: "taskSlotsTotal",
                    kind: MetricKind::Gauge,
                },
            )
            .unwrap_err();
        assert!(err.0.contains("out of range"));
    }

    #[test]
    fn the_pool_window_has_peaks_live_heap_and_gc_time() {
        let mut t = Tracker::new(4);
        let tm = [("<tm_id>", "tm")];
        let gc = "taskmanager.Status.JVM.GarbageCollector.G1_Young_Generation";
        register(&mut t, 0, &tm, "taskmanager.Status.JVM.Memory.Heap", "Used");
        register(&mut t, 1, &tm, "taskmanager.Status.JVM.Memory.Heap", "Max");
        register(
            &mut t,
            2,
            &tm,
            "taskmanager.Status.JVM.Memory.Heap",
            "AutotuneAfterGc",
        );
        register(&mut t, 3, &tm, gc, "Time");
        register(
            &mut t,
            4,
            &tm,
            "taskmanager.Status.Flink.Memory.Managed",
            "Used",
        );
        assert_eq!(
            register(
                &mut t,
                5,
                &tm,
                "taskmanager.Status.JVM.Memory.Heap",
                "AutotunePools"
            ),
            Registration::Ignored,
            "the published window is not read back"
        );
        // 5 rounds, 10 s apart; the first falls out of the 4-sample window.
        for (i, (used, after, gc_ms)) in [
            (900.0, 50.0, 0.0),
            (300.0, 60.0, 100.0),
            (500.0, 80.0, 150.0),
            (200.0, 70.0, 200.0),
            (400.0, 70.0, 400.0),
        ]
        .into_iter()
        .enumerate()
        {
            t.record_round(i as i64 * 10_000, &[used, 1000.0, after, gc_ms, 0.0]);
        }
        let w = t.pool_window().unwrap();
        assert_eq!(w.heap_used_peak, Some(500.0));
        assert_eq!(w.heap_max, Some(1000.0));
        assert_eq!(w.heap_after_gc_peak, Some(80.0));
        assert_eq!(w.managed_used_peak, Some(0.0));
        assert_eq!(w.window_seconds, 30.0);
        assert_eq!(w.samples, 4);
        assert!(w.full);
        assert_eq!(w.gc_ms_per_s, Some(10.0), "300 ms over 30 s");
        // No TaskManager metrics: no window.
        assert_eq!(Tracker::new(2).pool_window(), None);
    }

    #[test]
    fn ranges_are_compact() {
        assert_eq!(compact_ranges(&[0, 1, 2, 3, 7, 9, 10]), "0-3,7,9-10");
        assert_eq!(compact_ranges(&[]), "");
    }
}
