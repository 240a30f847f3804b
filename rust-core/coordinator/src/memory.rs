//! The memory half of a decision: the TaskManagers' layouts and the pool windows they
//! publish, the cluster's network settings, and the job graph, into one `memory::plan`.

use std::collections::HashMap;

use autotune_model::catalogue::POOL_WINDOW_METRIC;
use autotune_model::memory::{
    self, network_bytes_per_taskmanager, parse_size, MemoryError, MemoryInputs, MemoryLayout,
    MemoryPlan, MemorySettings, NetworkSettings, OverheadSettings, PoolWindow,
};

use crate::collect::JobShape;
use crate::rest::{FlinkRest, MemoryConfiguration, RestError, TaskManager};

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
}

#[derive(Debug, Clone)]
struct Seen {
    taskmanager: TaskManager,
    window: Option<PoolWindow>,
    at_ms: i64,
}

impl WindowCache {
    /// Reads every TaskManager's layout and published window; TaskManagers that left stay
    /// for [`DEPARTED_KEPT_MS`] with what they said last.
    pub fn poll(&mut self, rest: &FlinkRest, now_ms: i64) -> Result<(), RestError> {
        let taskmanagers = rest.taskmanagers()?;
        let mut without_plugin = 0;
        for tm in &taskmanagers {
            let window = match rest.taskmanager_metric(&tm.id, POOL_WINDOW_METRIC) {
                Ok(Some(json)) if !json.is_empty() => {
                    match serde_json::from_str::<PoolWindow>(&json) {
                        Ok(w) => Some(w),
                        Err(e) => {
                            log::debug!(
                                "AUTOTUNE COORDINATOR unreadable pool window of {}: {e}",
                                tm.id
                            );
                            None
                        }
                    }
                }
                Ok(Some(_)) => None, // no window yet
                Ok(None) => {
                    without_plugin += 1;
                    None
                }
                Err(e) if e.is_not_found() => continue, // left since the listing
                Err(e) => return Err(e),
            };
            let entry = self.entries.entry(tm.id.clone()).or_insert_with(|| Seen {
                taskmanager: tm.clone(),
                window: None,
                at_ms: now_ms,
            });
            entry.taskmanager = tm.clone();
            entry.at_ms = now_ms;
            if window.is_some() {
                entry.window = window;
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

    /// Every TaskManager seen lately, those that left included (with the layout they had).
    pub fn taskmanagers(&self) -> impl Iterator<Item = &TaskManager> {
        self.entries.values().map(|s| &s.taskmanager)
    }

    /// What the model plans on: every TaskManager seen lately, with the cluster's settings.
    pub fn view(&self, config: HashMap<String, String>) -> MemoryView {
        MemoryView {
            taskmanagers: self
                .entries
                .values()
                .map(|s| s.taskmanager.clone())
                .collect(),
            windows: self
                .entries
                .values()
                .filter_map(|s| s.window.clone())
                .collect(),
            without_plugin: if self.without_plugin == self.listed {
                self.without_plugin
            } else {
                0
            },
            config,
        }
    }
}

/// What the cluster's TaskManagers say about their memory.
#[derive(Debug, Clone, Default)]
pub struct MemoryView {
    pub taskmanagers: Vec<TaskManager>,
    /// Published windows, one per TaskManager that has one.
    pub windows: Vec<PoolWindow>,
    /// How many TaskManagers lack the plugin's gauge, when none has it.
    pub without_plugin: usize,
    pub config: HashMap<String, String>,
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

    /// The plan for `job`'s TaskManagers, with the network the job needs now and at
    /// `recommended` parallelism (per vertex, in the shape's order).
    pub fn plan(
        &self,
        job: &JobShape,
        recommended: Option<&[u32]>,
        settings: &MemorySettings,
    ) -> Result<MemoryPlan, MemoryError> {
        let (current, slots) = self.current().ok_or_else(|| {
            MemoryError("the REST API shows no TaskManager memory configuration".into())
        })?;
        let now: Vec<u32> = job.vertices.iter().map(|v| v.2).collect();
        let network_now = network_bytes_per_taskmanager(&now, &job.edges, &settings.network, slots);
        let network_recommended = recommended
            .filter(|r| *r != now.as_slice())
            .map(|r| network_bytes_per_taskmanager(r, &job.edges, &settings.network, slots));
        memory::plan(
            &MemoryInputs {
                current,
                slots_per_taskmanager: slots,
                windows: &self.windows,
                network_now,
                network_recommended,
            },
            settings,
        )
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
