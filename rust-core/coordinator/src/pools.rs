//! The TaskManagers' memory pools as the coordinator sees them: the layout Flink gave each
//! one, the pool window the plugin publishes in it, and, for a TaskManager without the
//! plugin, a window the coordinator builds itself from Flink's own metrics over REST. With
//! the cluster's network settings and the job graph, they become one `memory::plan`.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use autotune_model::memory::{
    self, network_bytes_per_taskmanager, parse_size, MemoryError, MemoryInputs, MemoryLayout,
    MemorySettings, NetworkSettings, OverheadSettings, PoolWindow,
};
use autotune_model::metrics::{POOL_WINDOW_METRIC, TASK_LOADS_METRIC};
use autotune_model::tracker::{TaskLoad, TaskLoads};

use crate::rest::{FlinkRest, MemoryConfiguration, RestError, TaskManager};
use crate::shape::JobShape;

/// A TaskManager that left keeps counting this long: one that died of an out-of-memory
/// error is the one whose last window matters most.
pub const DEPARTED_KEPT_MS: i64 = 10 * 60 * 1000;

/// The last thing each TaskManager published, kept across polls and rounds.
#[derive(Debug, Clone, Default)]
pub struct WindowCache {
    entries: HashMap<String, Seen>,
    /// TaskManagers listed at the last poll without the plugin's gauge.
    without_plugin: usize,
    listed: usize,
    last_poll_ms: i64,
    /// How far back a window built from REST reaches (the decision window).
    span: Duration,
    /// Every subtask the TaskManagers listed at the last poll said they run, with its load,
    /// by job and vertex id.
    task_loads: HashMap<(String, String), Vec<TaskLoad>>,
}

/// A vertex's load over its subtasks, as the REST API aggregates it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VertexBusy {
    pub busy_avg_ms: f64,
    pub busy_max_ms: f64,
    pub backpressure_avg_ms: f64,
}

#[derive(Debug, Clone)]
struct Seen {
    taskmanager: TaskManager,
    window: Option<PoolWindow>,
    at_ms: i64,
    /// Flink's own pool metrics, sampled at each poll when the plugin is not there.
    rest_samples: VecDeque<RestSample>,
}

/// Flink's TaskManager metrics a window is built from without the plugin. The live heap
/// (heap left after a collection) is only measured by the plugin, so it is not here.
const REST_POOL_METRICS: [&str; 8] = [
    "Status.JVM.Memory.Heap.Max",
    "Status.JVM.Memory.Metaspace.Used",
    "Status.JVM.Memory.Metaspace.Max",
    "Status.JVM.Memory.Direct.MemoryUsed",
    "Status.Flink.Memory.Managed.Used",
    "Status.Flink.Memory.Managed.Total",
    "Status.Shuffle.Netty.UsedMemory",
    "Status.Shuffle.Netty.TotalMemory",
];

/// A gauge the plugin published, read; `None` when empty (nothing yet) or unreadable.
fn read_published<T: serde::de::DeserializeOwned>(
    json: &str,
    what: &str,
    tm_id: &str,
) -> Option<T> {
    if json.is_empty() {
        return None;
    }
    serde_json::from_str(json)
        .map_err(|e| log::debug!("AUTOTUNE COORDINATOR unreadable {what} of {tm_id}: {e}"))
        .ok()
}

/// Samples kept per TaskManager at most, whatever the poll interval.
const MAX_REST_SAMPLES: usize = 1_000;

#[derive(Debug, Clone)]
struct RestSample {
    at_ms: i64,
    values: [Option<f64>; 8],
}

impl Seen {
    /// The window of Flink's own metrics, once two polls were made.
    fn rest_window(&self, span: Duration) -> Option<PoolWindow> {
        let (first, last) = (self.rest_samples.front()?, self.rest_samples.back()?);
        if self.rest_samples.len() < 2 {
            return None;
        }
        let peak = |i: usize| {
            self.rest_samples
                .iter()
                .filter_map(|s| s.values[i])
                .filter(|v| v.is_finite())
                .reduce(f64::max)
        };
        let latest = |i: usize| self.rest_samples.iter().rev().find_map(|s| s.values[i]);
        let window_seconds = (last.at_ms - first.at_ms) as f64 / 1000.0;
        Some(PoolWindow {
            window_seconds,
            samples: self.rest_samples.len() as u32,
            full: window_seconds >= 0.9 * span.as_secs_f64(),
            heap_max: latest(0),
            metaspace_used_peak: peak(1),
            metaspace_max: latest(2).filter(|m| *m > 0.0),
            direct_used_peak: peak(3),
            managed_used_peak: peak(4),
            managed_total: latest(5),
            network_used_peak: peak(6),
            network_total: latest(7),
            ..PoolWindow::default()
        })
    }
}

impl WindowCache {
    /// Windows built from REST reach `span` back (the decision window).
    pub fn new(span: Duration) -> Self {
        WindowCache {
            span,
            ..WindowCache::default()
        }
    }

    /// Reads every TaskManager's layout and published gauges (one request each); TaskManagers
    /// that left stay for [`DEPARTED_KEPT_MS`] with what they said last. A TaskManager without
    /// the plugin has Flink's own pool metrics sampled instead.
    pub fn poll(&mut self, rest: &FlinkRest, now_ms: i64) -> Result<(), RestError> {
        // What a failed read leaves is not this poll's: the vertices are then asked over REST.
        self.task_loads.clear();
        let taskmanagers = rest.taskmanagers()?;
        let mut without_plugin = 0;
        for tm in &taskmanagers {
            let mut published =
                match rest.taskmanager_texts(&tm.id, &[POOL_WINDOW_METRIC, TASK_LOADS_METRIC]) {
                    Ok(published) => published,
                    Err(e) if e.is_not_found() => continue, // left since the listing
                    Err(e) => return Err(e),
                };
            let plugin = published.contains_key(POOL_WINDOW_METRIC);
            without_plugin += usize::from(!plugin);
            let window = published
                .remove(POOL_WINDOW_METRIC)
                .and_then(|json| read_published::<PoolWindow>(&json, "pool window", &tm.id));
            if let Some(loads) = published
                .remove(TASK_LOADS_METRIC)
                .and_then(|json| read_published::<TaskLoads>(&json, "subtask loads", &tm.id))
            {
                for task in loads.tasks {
                    let vertex = (task.job_id.clone(), task.vertex_id.clone());
                    self.task_loads.entry(vertex).or_default().push(task);
                }
            }
            let rest_sample = match plugin {
                true => None,
                false => match rest.taskmanager_metrics(&tm.id, &REST_POOL_METRICS) {
                    Ok(values) => Some(RestSample {
                        at_ms: now_ms,
                        values: REST_POOL_METRICS.map(|name| values.get(name).copied()),
                    }),
                    Err(e) if e.is_not_found() => continue,
                    Err(e) => return Err(e),
                },
            };
            let entry = self.entries.entry(tm.id.clone()).or_insert_with(|| Seen {
                taskmanager: tm.clone(),
                window: None,
                at_ms: now_ms,
                rest_samples: VecDeque::new(),
            });
            entry.taskmanager = tm.clone();
            entry.at_ms = now_ms;
            if window.is_some() {
                entry.window = window;
                entry.rest_samples.clear();
            }
            if let Some(sample) = rest_sample {
                // Two windows back: the pause between decisions must not empty it.
                let oldest = now_ms - 2 * self.span.as_millis() as i64;
                entry.rest_samples.push_back(sample);
                while entry.rest_samples.len() > MAX_REST_SAMPLES
                    || entry.rest_samples.front().is_some_and(|s| s.at_ms < oldest)
                {
                    entry.rest_samples.pop_front();
                }
            }
        }
        self.entries
            .retain(|_, seen| now_ms - seen.at_ms <= DEPARTED_KEPT_MS);
        self.without_plugin = without_plugin;
        self.listed = taskmanagers.len();
        self.last_poll_ms = now_ms;
        Ok(())
    }

    /// TaskManagers whose last window shows the heap full or GC-bound: `(id, window, left)`,
    /// where `left` says it was not listed at the last poll.
    pub fn under_heap_pressure(
        &self,
        settings: &MemorySettings,
    ) -> Vec<(String, PoolWindow, bool)> {
        self.entries
            .iter()
            .filter_map(|(id, seen)| {
                let w = seen.window.as_ref()?;
                matches!(memory::heap_need(w, settings), Some((_, true)))
                    .then(|| (id.clone(), w.clone(), seen.at_ms < self.last_poll_ms))
            })
            .collect()
    }

    /// The vertex's load from what the TaskManagers published at the last poll; `None` unless
    /// they showed each of its subtasks with numbers: then the REST API is asked, as for a
    /// cluster without the plugin.
    pub fn vertex_busy(
        &self,
        job_id: &str,
        vertex_id: &str,
        parallelism: u32,
    ) -> Option<VertexBusy> {
        let tasks = self.every_subtask(job_id, vertex_id, parallelism)?;
        let busy: Vec<f64> = tasks.iter().map(|t| t.busy_ms).collect::<Option<_>>()?;
        let backpressure: Vec<f64> = tasks
            .iter()
            .map(|t| t.backpressure_ms)
            .collect::<Option<_>>()?;
        let n = parallelism as f64;
        Some(VertexBusy {
            busy_avg_ms: busy.iter().sum::<f64>() / n,
            busy_max_ms: busy.iter().copied().fold(f64::MIN, f64::max),
            backpressure_avg_ms: backpressure.iter().sum::<f64>() / n,
        })
    }

    /// The vertex's longest checkpoint barrier start delay (ns) its subtasks published, under
    /// the same rule.
    pub fn start_delay_max_ns(
        &self,
        job_id: &str,
        vertex_id: &str,
        parallelism: u32,
    ) -> Option<f64> {
        let tasks = self.every_subtask(job_id, vertex_id, parallelism)?;
        let delays: Vec<f64> = tasks
            .iter()
            .map(|t| t.start_delay_ns)
            .collect::<Option<_>>()?;
        delays.into_iter().reduce(f64::max)
    }

    /// The vertex's subtasks as published at the last poll, when each of its `parallelism`
    /// subtasks is there once (a TaskManager without the plugin, or one read before a
    /// rescale, leaves a hole or a stray).
    fn every_subtask(
        &self,
        job_id: &str,
        vertex_id: &str,
        parallelism: u32,
    ) -> Option<Vec<&TaskLoad>> {
        let key = (job_id.to_string(), vertex_id.to_string());
        let tasks: Vec<&TaskLoad> = self.task_loads.get(&key)?.iter().collect();
        let subtasks: std::collections::BTreeSet<u32> = tasks.iter().map(|t| t.subtask).collect();
        let every_subtask_once = parallelism > 0
            && tasks.len() == parallelism as usize
            && subtasks.len() == tasks.len()
            && subtasks.iter().all(|&s| s < parallelism);
        every_subtask_once.then_some(tasks)
    }

    /// Every TaskManager seen lately, those that left included (with the layout they had).
    pub fn taskmanagers(&self) -> impl Iterator<Item = &TaskManager> {
        self.entries.values().map(|s| &s.taskmanager)
    }

    /// What the model plans on: every TaskManager seen lately, with the memory settings of
    /// the cluster's configuration. The plugin's windows where it publishes them; where no
    /// TaskManager does, windows built from Flink's own metrics.
    pub fn view(&self, config: HashMap<String, String>) -> MemoryView {
        // In the TaskManagers' order, so the same cluster gives the same view.
        let mut seen: Vec<&Seen> = self.entries.values().collect();
        seen.sort_by(|a, b| a.taskmanager.id.cmp(&b.taskmanager.id));
        let published: Vec<PoolWindow> = seen.iter().filter_map(|s| s.window.clone()).collect();
        let from_rest = published.is_empty();
        let windows = if from_rest && self.without_plugin == self.listed {
            seen.iter()
                .filter_map(|s| s.rest_window(self.span))
                .collect()
        } else {
            published
        };
        let taskmanagers = seen.iter().map(|s| s.taskmanager.clone()).collect();
        MemoryView {
            taskmanagers,
            windows,
            measured_by_rest: from_rest
                && self.without_plugin > 0
                && self.without_plugin == self.listed,
            // Only what the memory model reads: the rest may hold credentials.
            config: config
                .into_iter()
                .filter(|(k, _)| {
                    k.starts_with("taskmanager.memory.") || k.starts_with("taskmanager.network.")
                })
                .collect(),
        }
    }
}

/// What the cluster's TaskManagers say about their memory: what a memory plan is made from
/// (and what a recording keeps of it, so `replay` plans the same).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryView {
    pub taskmanagers: Vec<TaskManager>,
    /// One window per TaskManager that has one.
    pub windows: Vec<PoolWindow>,
    /// No TaskManager runs the plugin: the windows come from Flink's own metrics, without
    /// the live heap.
    #[serde(default)]
    pub measured_by_rest: bool,
    /// The cluster's `taskmanager.memory.*` and `taskmanager.network.*` settings.
    pub config: std::collections::BTreeMap<String, String>,
}

impl MemoryView {
    /// The model's settings: the cluster's network and overhead options, the plugin's margins.
    pub fn settings(&self, margin: f64, heap_headroom: f64) -> MemorySettings {
        let defaults = MemorySettings::default();
        let size = |key: &str, default: u64| {
            self.config
                .get(key)
                .and_then(|v| parse_size(v))
                .unwrap_or(default)
        };
        let number = |key: &str, default: u32| {
            self.config
                .get(key)
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(default)
        };
        let net = defaults.network;
        let overhead = defaults.overhead;
        MemorySettings {
            margin,
            heap_headroom,
            network: NetworkSettings {
                buffers_per_channel: number(
                    "taskmanager.network.memory.buffers-per-channel",
                    net.buffers_per_channel,
                ),
                floating_buffers_per_gate: number(
                    "taskmanager.network.memory.floating-buffers-per-gate",
                    net.floating_buffers_per_gate,
                ),
                segment_size: size("taskmanager.memory.segment-size", net.segment_size),
            },
            overhead: OverheadSettings {
                min: size("taskmanager.memory.jvm-overhead.min", overhead.min),
                max: size("taskmanager.memory.jvm-overhead.max", overhead.max),
                fraction: self
                    .config
                    .get("taskmanager.memory.jvm-overhead.fraction")
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(overhead.fraction),
            },
        }
    }

    /// The layout of the largest TaskManager (they normally share one configuration).
    fn current(&self) -> Option<(MemoryLayout, u32)> {
        self.taskmanagers
            .iter()
            .filter_map(|tm| tm.memory.map(|m| (layout(&m), tm.slots)))
            .max_by_key(|(l, _)| l.process_total())
    }

    /// The memory model's inputs for the TaskManagers that run `jobs`: their layout and
    /// windows, and the network the jobs need now and at their recommended parallelism. A
    /// TaskManager's slots may all go to any one of the jobs, so it needs the network of the
    /// hungriest.
    pub fn inputs(
        &self,
        jobs: &[JobGraph<'_>],
        settings: &MemorySettings,
    ) -> Result<MemoryInputs<'_>, MemoryError> {
        let (current, slots) = self.current().ok_or_else(|| {
            MemoryError("the REST API shows no TaskManager memory configuration".into())
        })?;
        let network = |planned: bool| -> u64 {
            jobs.iter()
                .map(|job| {
                    let parallelism = if planned { job.planned() } else { job.now() };
                    network_bytes_per_taskmanager(
                        &parallelism,
                        &job.shape.edges,
                        &settings.network,
                        slots,
                    )
                })
                .max()
                .unwrap_or(0)
        };
        let rescaled = jobs
            .iter()
            .any(|job| job.recommended.is_some_and(|r| r != job.now()));
        let network_now = network(false);
        let network_recommended = rescaled.then(|| network(true));
        Ok(MemoryInputs {
            current,
            slots_per_taskmanager: slots,
            windows: &self.windows,
            network_now,
            network_recommended,
        })
    }
}

/// A job's graph as the memory model sees it: its shape and the parallelism the scaling model
/// recommends (per vertex, in the shape's order).
#[derive(Clone, Copy)]
pub struct JobGraph<'a> {
    pub shape: &'a JobShape,
    pub recommended: Option<&'a [u32]>,
}

impl JobGraph<'_> {
    fn now(&self) -> Vec<u32> {
        self.shape.vertices.iter().map(|v| v.parallelism).collect()
    }

    fn planned(&self) -> Vec<u32> {
        self.recommended.map_or_else(|| self.now(), <[u32]>::to_vec)
    }
}

pub fn layout(m: &MemoryConfiguration) -> MemoryLayout {
    MemoryLayout {
        framework_heap: m.framework_heap,
        task_heap: m.task_heap,
        framework_off_heap: m.framework_off_heap,
        task_off_heap: m.task_off_heap,
        network: m.network_memory,
        managed: m.managed_memory,
        metaspace: m.jvm_metaspace,
        overhead: m.jvm_overhead,
    }
}
