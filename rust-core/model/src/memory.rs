//! The memory-pool model: what each TaskManager pool really needs, and the
//! `taskmanager.memory.*` keys that give it.
//!
//! Two halves, one function each, so the TaskManager and the coordinator never disagree:
//! - [`PoolWindow`] is what a TaskManager measured about its own pools over its window
//!   (peaks, the heap left after collections, GC time). The TaskManager publishes it as a
//!   metric; [`taskmanager_findings`] says from it alone whether a pool is too small.
//! - [`plan`] joins the windows of all TaskManagers with the layout Flink gave them and the
//!   network buffers the job graph needs ([`network_bytes_per_taskmanager`]) into one
//!   recommended [`MemoryLayout`] whose keys are consistent with each other.
//!
//! Every pool is sized from what was measured plus a margin, never below it:
//! - JVM heap: the live data (heap used after a collection, the highest over the window)
//!   plus room for new objects: `live x (1 + heap-headroom)`, at least `live + 256 MiB`;
//!   1.5x the current heap when live data fills it or GC takes more than 20% of the time.
//! - metaspace: the peak plus the margin (at least 32 MiB more).
//! - managed: 0 when nothing used it; kept when a consumer reserved nearly all of it
//!   (RocksDB takes what it is given); otherwise the peak plus the margin.
//! - network: the buffers the job graph needs at the current and at the recommended
//!   parallelism, whichever is more (see Flink's network memory tuning guide).
//! - off-heap: kept, raised when direct memory outside the network pool outgrows it.
//! - JVM overhead: Flink's own rule (a fraction of the process, within min and max).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::codes::{Code, Finding};
use crate::scaling::{Edge, ShipStrategy};

pub const MIB: u64 = 1024 * 1024;

/// The size Flink gave each pool of a TaskManager, in bytes (the REST API's
/// `memoryConfiguration`, or a layout this model recommends).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MemoryLayout {
    pub framework_heap: u64,
    pub task_heap: u64,
    pub framework_off_heap: u64,
    pub task_off_heap: u64,
    pub network: u64,
    pub managed: u64,
    pub metaspace: u64,
    pub overhead: u64,
}

impl MemoryLayout {
    /// -Xmx: framework plus task heap.
    pub fn jvm_heap(&self) -> u64 {
        self.framework_heap + self.task_heap
    }

    /// -XX:MaxDirectMemorySize: framework and task off-heap plus network.
    pub fn direct_limit(&self) -> u64 {
        self.framework_off_heap + self.task_off_heap + self.network
    }

    /// `taskmanager.memory.flink.size`.
    pub fn flink_total(&self) -> u64 {
        self.jvm_heap() + self.framework_off_heap + self.task_off_heap + self.network + self.managed
    }

    /// `taskmanager.memory.process.size`.
    pub fn process_total(&self) -> u64 {
        self.flink_total() + self.metaspace + self.overhead
    }

    /// Every key that fixes this layout, each pool set explicitly and the totals equal to
    /// their sums, so no fraction or default of the user's config can contradict them.
    pub fn config_keys(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "taskmanager.memory.process.size",
                size(self.process_total()),
            ),
            ("taskmanager.memory.flink.size", size(self.flink_total())),
            (
                "taskmanager.memory.framework.heap.size",
                size(self.framework_heap),
            ),
            ("taskmanager.memory.task.heap.size", size(self.task_heap)),
            (
                "taskmanager.memory.framework.off-heap.size",
                size(self.framework_off_heap),
            ),
            (
                "taskmanager.memory.task.off-heap.size",
                size(self.task_off_heap),
            ),
            ("taskmanager.memory.managed.size", size(self.managed)),
            ("taskmanager.memory.network.min", size(self.network)),
            ("taskmanager.memory.network.max", size(self.network)),
            (
                "taskmanager.memory.jvm-metaspace.size",
                size(self.metaspace),
            ),
            ("taskmanager.memory.jvm-overhead.min", size(self.overhead)),
            ("taskmanager.memory.jvm-overhead.max", size(self.overhead)),
        ]
    }
}

/// A size as Flink reads it: whole mebibytes as `384m`, anything else in bytes.
pub fn size(bytes: u64) -> String {
    if bytes % MIB == 0 {
        format!("{}m", bytes / MIB)
    } else {
        format!("{bytes}b")
    }
}

/// Reads a size as Flink writes it in its configuration: `32kb`, `1728m`, `1 gb`, `4096`
/// (bytes), `64 mebibytes`.
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim().to_ascii_lowercase();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor: u64 = match unit.trim() {
        "" | "b" | "bytes" => 1,
        "k" | "kb" | "kibibytes" => 1 << 10,
        "m" | "mb" | "mebibytes" => 1 << 20,
        "g" | "gb" | "gibibytes" => 1 << 30,
        "t" | "tb" | "tebibytes" => 1 << 40,
        _ => return None,
    };
    Some((number * factor as f64) as u64)
}

/// A size for people: `1.5g`, `384m`, `512k`.
pub fn human(bytes: f64) -> String {
    const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
    let m = MIB as f64;
    if !bytes.is_finite() {
        "?".into()
    } else if bytes == 0.0 {
        "0".into()
    } else if bytes >= GIB {
        format!("{:.2}g", bytes / GIB)
    } else if bytes >= m {
        format!("{:.0}m", bytes / m)
    } else {
        format!("{:.0}k", bytes / 1024.0)
    }
}

/// What one TaskManager measured about its pools over its window (bytes, ms/s). Published
/// by the TaskManager as the metric `Status.JVM.Memory.Heap.AutotunePools` (JSON).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PoolWindow {
    /// Seconds between the window's first and last sample.
    pub window_seconds: f64,
    pub samples: u32,
    /// The window holds as many samples as it can (`window-size`): it will not grow longer.
    #[serde(default)]
    pub full: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heap_max: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heap_used_peak: Option<f64>,
    /// The highest heap use left right after a collection: the live data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heap_after_gc_peak: Option<f64>,
    /// Milliseconds per second spent in GC, over the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gc_ms_per_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metaspace_used_peak: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metaspace_max: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct_used_peak: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_used_peak: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_total: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_used_peak: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_total: Option<f64>,
}

impl PoolWindow {
    /// The live heap: the highest use after a collection; without a collection in the
    /// window, the highest use (all of it may be live).
    pub fn live_heap(&self) -> Option<f64> {
        self.heap_after_gc_peak.or(self.heap_used_peak)
    }
}

/// Flink's network buffer settings (`taskmanager.network.memory.*`, `taskmanager.memory.segment-size`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct NetworkSettings {
    pub buffers_per_channel: u32,
    pub floating_buffers_per_gate: u32,
    pub segment_size: u64,
}

impl Default for NetworkSettings {
    fn default() -> Self {
        NetworkSettings {
            buffers_per_channel: 2,
            floating_buffers_per_gate: 8,
            segment_size: 32 * 1024,
        }
    }
}

/// Flink's JVM overhead rule (`taskmanager.memory.jvm-overhead.*`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct OverheadSettings {
    pub min: u64,
    pub max: u64,
    pub fraction: f64,
}

impl Default for OverheadSettings {
    fn default() -> Self {
        OverheadSettings {
            min: 192 * MIB,
            max: 1024 * MIB,
            fraction: 0.1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemorySettings {
    /// Added to measured peaks of metaspace, managed and off-heap memory.
    pub margin: f64,
    /// Room for new objects on top of the live heap, as a share of it.
    pub heap_headroom: f64,
    pub network: NetworkSettings,
    pub overhead: OverheadSettings,
}

impl Default for MemorySettings {
    fn default() -> Self {
        MemorySettings {
            margin: 0.2,
            heap_headroom: 1.0,
            network: NetworkSettings::default(),
            overhead: OverheadSettings::default(),
        }
    }
}

/// Live data above this share of the heap maximum is heap pressure.
const HEAP_FULL: f64 = 0.9;
/// GC time above this (ms per s) is heap pressure.
const GC_PRESSURE_MS_PER_S: f64 = 200.0;
/// The least room for new objects on top of the live heap.
const MIN_HEAP_HEADROOM: u64 = 256 * MIB;
/// The least headroom on top of the metaspace peak.
const MIN_METASPACE_HEADROOM: u64 = 32 * MIB;
/// Metaspace or direct use above this share of its limit is pressure.
const POOL_FULL: f64 = 0.9;
/// A consumer holding this share of managed memory reserved all of it (RocksDB).
const MANAGED_RESERVED: f64 = 0.9;
/// Flink's default `taskmanager.memory.framework.heap.size`.
pub const FRAMEWORK_HEAP_DEFAULT: u64 = 128 * MIB;

/// The task heap a TaskManager's JVM heap holds: the JVM heap minus the framework heap (as
/// `config` sets it, else Flink's default).
pub fn task_heap_of(jvm_heap: u64, config: &std::collections::BTreeMap<String, String>) -> u64 {
    let framework = config
        .get("taskmanager.memory.framework.heap.size")
        .and_then(|v| parse_size(v))
        .unwrap_or(FRAMEWORK_HEAP_DEFAULT);
    jvm_heap.saturating_sub(framework)
}

/// The smallest task heap this model recommends.
const MIN_TASK_HEAP: u64 = 64 * MIB;
/// Heap, metaspace and managed sizes are rounded up to this step, so that small wobbles
/// of the measurements do not change the recommendation.
const STEP: u64 = 16 * MIB;

fn round_up(bytes: f64, step: u64) -> u64 {
    // NaN and negatives round to nothing.
    if bytes.is_nan() || bytes <= 0.0 {
        return 0;
    }
    let b = bytes.ceil() as u64;
    b.div_ceil(step) * step
}

/// The size a measured peak needs with a relative margin (as Flink's autoscaler sizes it).
pub fn with_margin(peak: f64, margin: f64) -> u64 {
    (peak * (1.0 + margin)).max(0.0) as u64
}

/// The JVM heap (-Xmx) one TaskManager's window calls for, and whether that heap is under
/// pressure now. None without heap measurements.
pub fn heap_need(w: &PoolWindow, settings: &MemorySettings) -> Option<(u64, bool)> {
    let live = w.live_heap()?;
    let mut need = (live * (1.0 + settings.heap_headroom)).max(live + MIN_HEAP_HEADROOM as f64);
    let full = matches!((w.heap_after_gc_peak, w.heap_max), (Some(l), Some(max)) if max > 0.0 && l >= HEAP_FULL * max);
    let gc_bound = w.gc_ms_per_s.is_some_and(|g| g >= GC_PRESSURE_MS_PER_S);
    let pressure = full || gc_bound;
    if pressure {
        // The live data we saw is a lower bound when the heap was full: grow it by half at least.
        if let Some(max) = w.heap_max {
            need = need.max(max * 1.5);
        }
    }
    Some((round_up(need, STEP), pressure))
}

/// What a TaskManager can say about its own pools from its own window: the pools that are
/// too small, each with the number to set.
pub fn taskmanager_findings(w: &PoolWindow, settings: &MemorySettings) -> Vec<Finding> {
    let mut findings = Vec::new();
    if let Some((need, true)) = heap_need(w, settings) {
        findings.push(Finding {
            code: Code::HeapPressure,
            message: format!(
                "heap under pressure: live data {} of {} max, GC {} ms/s over {:.0} s; the JVM heap needs {} (framework + task heap: raise taskmanager.memory.task.heap.size by {})",
                opt_human(w.heap_after_gc_peak),
                opt_human(w.heap_max),
                w.gc_ms_per_s.map_or("?".into(), |g| format!("{g:.0}")),
                w.window_seconds,
                human(need as f64),
                human((need as f64 - w.heap_max.unwrap_or(0.0)).max(0.0)),
            ),
        });
    }
    if let (Some(used), Some(max)) = (w.metaspace_used_peak, w.metaspace_max) {
        if max > 0.0 && used >= POOL_FULL * max {
            findings.push(Finding {
                code: Code::MetaspacePressure,
                message: format!(
                    "metaspace {} of {} used; set taskmanager.memory.jvm-metaspace.size: {}",
                    human(used),
                    human(max),
                    size(metaspace_need(used, settings))
                ),
            });
        }
    }
    findings
}

fn metaspace_need(peak: f64, settings: &MemorySettings) -> u64 {
    let need = with_margin(peak, settings.margin).max(peak as u64 + MIN_METASPACE_HEADROOM);
    round_up(need as f64, STEP)
}

fn opt_human(v: Option<f64>) -> String {
    v.map_or("?".into(), human)
}

/// Network buffers one slot needs for one subtask of every vertex of the job (slot
/// sharing): for every edge, the input gate's exclusive buffers per channel plus its
/// floating buffers, and the output's buffers per subpartition plus floating buffers.
/// Point-wise edges (forward, rescale) connect a subtask to only a few on the other side.
pub fn network_segments_per_slot(
    parallelism: &[u32],
    edges: &[Edge],
    net: &NetworkSettings,
) -> u64 {
    edges
        .iter()
        .filter(|e| e.from < parallelism.len() && e.to < parallelism.len())
        .map(|e| {
            let (up, down) = (parallelism[e.from], parallelism[e.to]);
            gate_segments(down, up, e.ship, net) + gate_segments(up, down, e.ship, net)
        })
        .sum()
}

/// Buffers one subtask of a vertex with parallelism `this` needs for one gate (input or
/// output) to a vertex with parallelism `other`: a buffer set per channel plus floating
/// buffers. A point-wise edge has one channel, or a few when the two sides differ.
pub fn gate_segments(this: u32, other: u32, ship: ShipStrategy, net: &NetworkSettings) -> u64 {
    let this = this.max(1) as u64;
    let other = other.max(1) as u64;
    let channels = match ship {
        ShipStrategy::Forward if this == other => 1,
        ShipStrategy::Forward | ShipStrategy::Rescale => other.div_ceil(this),
        _ => other,
    };
    channels * net.buffers_per_channel as u64 + net.floating_buffers_per_gate as u64
}

/// Network memory one TaskManager with `slots` slots needs for the job at `parallelism`.
pub fn network_bytes_per_taskmanager(
    parallelism: &[u32],
    edges: &[Edge],
    net: &NetworkSettings,
    slots: u32,
) -> u64 {
    network_segments_per_slot(parallelism, edges, net) * slots.max(1) as u64 * net.segment_size
}

/// The JVM overhead Flink derives for a process of `flink + metaspace + overhead` bytes.
fn overhead_for(flink_and_metaspace: u64, o: &OverheadSettings) -> u64 {
    let f = o.fraction.clamp(0.0, 0.99);
    let derived = (flink_and_metaspace as f64 * f / (1.0 - f)).ceil() as u64;
    round_up(derived.clamp(o.min, o.max.max(o.min)) as f64, MIB)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pool {
    Heap,
    Managed,
    Network,
    Metaspace,
    OffHeap,
    Overhead,
}

impl fmt::Display for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Pool::Heap => "heap",
            Pool::Managed => "managed",
            Pool::Network => "network",
            Pool::Metaspace => "metaspace",
            Pool::OffHeap => "off-heap",
            Pool::Overhead => "jvm-overhead",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolPlan {
    pub pool: Pool,
    pub current: u64,
    pub recommended: u64,
    /// The measurements and rule behind the recommendation.
    pub evidence: String,
}

/// What the coordinator knows when it plans: the layout the TaskManagers run with, their
/// windows, and the job graph's network need now and at the recommended parallelism.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryInputs<'a> {
    pub current: MemoryLayout,
    pub slots_per_taskmanager: u32,
    pub windows: &'a [PoolWindow],
    pub network_now: u64,
    /// None when no other parallelism is recommended.
    pub network_recommended: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemoryPlan {
    pub current: MemoryLayout,
    pub recommended: MemoryLayout,
    pub pools: Vec<PoolPlan>,
    pub findings: Vec<Finding>,
    pub taskmanagers: usize,
    pub window_seconds: f64,
}

impl MemoryPlan {
    /// Process memory saved per TaskManager (negative: more is needed), as a share.
    pub fn saving(&self) -> f64 {
        let now = self.current.process_total() as f64;
        if now <= 0.0 {
            return 0.0;
        }
        1.0 - self.recommended.process_total() as f64 / now
    }

    /// The keys to write: all of them, so that they agree with each other.
    pub fn config_keys(&self) -> Vec<(&'static str, String)> {
        self.recommended.config_keys()
    }

    /// One line per pool and per finding, then the plan (AT200) with every key.
    pub fn log_lines(&self, job_ref: &str) -> Vec<String> {
        let mut lines = Vec::new();
        for f in &self.findings {
            lines.push(format!("AUTOTUNE {} {job_ref} | {}", f.code, f.message));
        }
        for p in &self.pools {
            lines.push(format!(
                "AUTOTUNE {} {job_ref} pool={} {}->{} | {}",
                Code::MemoryPool,
                p.pool,
                human(p.current as f64),
                human(p.recommended as f64),
                p.evidence
            ));
        }
        let keys: Vec<String> = self
            .config_keys()
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let saving = self.saving();
        let change = if saving >= 0.0 {
            format!("saves {:.0}%", saving * 100.0)
        } else {
            format!("needs {:.0}% more", -saving * 100.0)
        };
        lines.push(format!(
            "AUTOTUNE {} {job_ref} taskmanagers={} process={}->{} ({change} per TaskManager) window={:.0}s {}",
            Code::MemoryPlan,
            self.taskmanagers,
            human(self.current.process_total() as f64),
            human(self.recommended.process_total() as f64),
            self.window_seconds,
            keys.join(" ")
        ));
        lines
    }

    /// What makes this plan differ from another: the recommended layout and the codes.
    pub fn gist(&self) -> String {
        let codes: Vec<&str> = self.findings.iter().map(|f| f.code.code()).collect();
        format!("{:?};{}", self.recommended, codes.join(","))
    }

    /// Whether `other` recommends nearly the same (every pool within 10%, same findings):
    /// measurements wobble from window to window, the advice should not.
    pub fn close_to(&self, other: &MemoryPlan) -> bool {
        let near = |a: u64, b: u64| {
            let (a, b) = (a as f64, b as f64);
            (a - b).abs() <= 0.1 * a.max(b)
        };
        let (x, y) = (&self.recommended, &other.recommended);
        let codes = |p: &MemoryPlan| p.findings.iter().map(|f| f.code).collect::<Vec<_>>();
        near(x.task_heap, y.task_heap)
            && near(x.managed, y.managed)
            && x.network == y.network
            && near(x.metaspace, y.metaspace)
            && near(x.task_off_heap, y.task_off_heap)
            && codes(self) == codes(other)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryError(pub String);

impl fmt::Display for MemoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MemoryError {}

fn peak(windows: &[&PoolWindow], get: impl Fn(&PoolWindow) -> Option<f64>) -> Option<f64> {
    windows
        .iter()
        .filter_map(|w| get(w))
        .filter(|v| v.is_finite())
        .reduce(f64::max)
}

/// One coherent recommendation for the job's TaskManagers (they share one configuration):
/// every pool sized for the TaskManager that needs it most, one step per pool.
pub fn plan(
    inputs: &MemoryInputs<'_>,
    settings: &MemorySettings,
) -> Result<MemoryPlan, MemoryError> {
    let windows: Vec<&PoolWindow> = inputs.windows.iter().filter(|w| w.samples > 0).collect();
    if windows.is_empty() {
        return Err(MemoryError(
            "no TaskManager has published a measurement window yet".into(),
        ));
    }
    let window_seconds = windows
        .iter()
        .map(|w| w.window_seconds)
        .fold(f64::INFINITY, f64::min);
    let mut planner = Planner {
        windows: &windows,
        settings,
        cur: inputs.current,
        rec: inputs.current,
        pools: Vec::new(),
        findings: Vec::new(),
        window_seconds,
    };
    planner.heap();
    planner.metaspace();
    planner.managed();
    planner.network(inputs);
    planner.off_heap();
    planner.round_to_mebibytes();
    planner.overhead();
    let Planner {
        cur,
        rec,
        pools,
        mut findings,
        ..
    } = planner;
    findings.sort_by_key(|f| f.code);
    Ok(MemoryPlan {
        current: cur,
        recommended: rec,
        pools,
        findings,
        taskmanagers: windows.len(),
        window_seconds: if window_seconds.is_finite() {
            window_seconds
        } else {
            0.0
        },
    })
}

/// A plan being made: the layout now, the one recommended so far, and what was found.
struct Planner<'a> {
    windows: &'a [&'a PoolWindow],
    settings: &'a MemorySettings,
    cur: MemoryLayout,
    rec: MemoryLayout,
    pools: Vec<PoolPlan>,
    findings: Vec<Finding>,
    window_seconds: f64,
}

impl Planner<'_> {
    /// Heap: the TaskManager with the most live data decides; pressure anywhere is a finding.
    fn heap(&mut self) {
        let heap = self
            .windows
            .iter()
            .filter_map(|w| heap_need(w, self.settings).map(|n| (n, w)))
            .max_by_key(|((need, _), _)| *need);
        if let Some(((jvm_heap, pressure), w)) = heap {
            self.rec.task_heap = jvm_heap
                .saturating_sub(self.cur.framework_heap)
                .max(MIN_TASK_HEAP);
            let evidence = format!(
                "live {} (heap after GC, highest), peak used {}, GC {} ms/s; JVM heap = live x {:.1}, at least live + {}{}",
                opt_human(w.heap_after_gc_peak),
                opt_human(w.heap_used_peak),
                w.gc_ms_per_s.map_or("?".into(), |g| format!("{g:.0}")),
                1.0 + self.settings.heap_headroom,
                human(MIN_HEAP_HEADROOM as f64),
                if pressure { ", 1.5x the current heap under pressure" } else { "" }
            );
            self.pools.push(PoolPlan {
                pool: Pool::Heap,
                current: self.cur.jvm_heap(),
                recommended: self.rec.jvm_heap(),
                evidence,
            });
            if pressure {
                self.findings.push(Finding {
                    code: Code::HeapPressure,
                    message: format!(
                        "heap too small: live data {} of {} max, GC {} ms/s; set taskmanager.memory.task.heap.size: {}",
                        opt_human(w.heap_after_gc_peak),
                        opt_human(w.heap_max),
                        w.gc_ms_per_s.map_or("?".into(), |g| format!("{g:.0}")),
                        size(self.rec.task_heap)
                    ),
                });
            }
        }
    }

    fn metaspace(&mut self) {
        if let Some(used) = peak(self.windows, |w| w.metaspace_used_peak) {
            self.rec.metaspace = metaspace_need(used, self.settings);
            self.pools.push(PoolPlan {
                pool: Pool::Metaspace,
                current: self.cur.metaspace,
                recommended: self.rec.metaspace,
                evidence: format!(
                    "peak used {}; peak + {:.0}%, at least + {}",
                    human(used),
                    self.settings.margin * 100.0,
                    human(MIN_METASPACE_HEADROOM as f64)
                ),
            });
            if self.cur.metaspace > 0 && used >= POOL_FULL * self.cur.metaspace as f64 {
                self.findings.push(Finding {
                    code: Code::MetaspacePressure,
                    message: format!(
                        "metaspace {} of {} used; set taskmanager.memory.jvm-metaspace.size: {}",
                        human(used),
                        human(self.cur.metaspace as f64),
                        size(self.rec.metaspace)
                    ),
                });
            }
        }
    }

    /// Managed memory: what was used plus the margin; nothing when nothing used it; kept when
    /// a consumer reserves it all (RocksDB).
    fn managed(&mut self) {
        if let Some(used) = peak(self.windows, |w| w.managed_used_peak) {
            let reserved = self.windows.iter().any(|w| {
                matches!((w.managed_used_peak, w.managed_total), (Some(u), Some(t)) if t > 0.0 && u >= MANAGED_RESERVED * t)
            });
            let (recommended, why) = if used <= 0.0 {
                (
                    0,
                    "nothing used it (heap state backend, no batch operators)".to_string(),
                )
            } else if reserved {
                (
                    self.cur.managed,
                    format!(
                        "a consumer reserved {} of it (RocksDB takes what it is given): kept",
                        human(used)
                    ),
                )
            } else {
                (
                    round_up(with_margin(used, self.settings.margin) as f64, STEP),
                    format!(
                        "peak used {}; peak + {:.0}%",
                        human(used),
                        self.settings.margin * 100.0
                    ),
                )
            };
            self.rec.managed = recommended;
            if used <= 0.0 && self.cur.managed > 0 {
                self.findings.push(Finding {
                    code: Code::ManagedUnused,
                    message: format!(
                        "{} of managed memory per TaskManager, unused over {:.0} s; set taskmanager.memory.managed.size: 0m",
                        human(self.cur.managed as f64),
                        self.window_seconds
                    ),
                });
            }
            self.pools.push(PoolPlan {
                pool: Pool::Managed,
                current: self.cur.managed,
                recommended: self.rec.managed,
                evidence: why,
            });
        }
    }

    /// Network: what the graph needs, now and after the recommended rescale.
    fn network(&mut self, inputs: &MemoryInputs<'_>) {
        let measured = peak(self.windows, |w| w.network_used_peak).unwrap_or(0.0);
        let need = inputs
            .network_now
            .max(inputs.network_recommended.unwrap_or(0))
            .max(measured as u64);
        self.rec.network = round_up(need as f64, MIB);
        self.pools.push(PoolPlan {
            pool: Pool::Network,
            current: self.cur.network,
            recommended: self.rec.network,
            evidence: format!(
                "job graph needs {} at the current parallelism{} ({} slots per TaskManager, {} buffers per channel + {} floating per gate, {} segments), peak used {}",
                human(inputs.network_now as f64),
                inputs
                    .network_recommended
                    .map_or(String::new(), |n| format!(", {} at the recommended one", human(n as f64))),
                inputs.slots_per_taskmanager,
                self.settings.network.buffers_per_channel,
                self.settings.network.floating_buffers_per_gate,
                human(self.settings.network.segment_size as f64),
                human(measured)
            ),
        });
        if let Some(needed) = inputs.network_recommended {
            if needed > self.cur.network {
                self.findings.push(Finding {
                    code: Code::NetworkForParallelism,
                    message: format!(
                        "the recommended parallelism needs {} of network memory per TaskManager, it has {}: without taskmanager.memory.network.min/max: {} it fails with \"Insufficient number of network buffers\"",
                        human(needed as f64),
                        human(self.cur.network as f64),
                        size(self.rec.network)
                    ),
                });
            }
        }
    }

    /// Off-heap: direct memory outside the network pool must fit framework + task off-heap.
    fn off_heap(&mut self) {
        if let Some(direct) = peak(self.windows, |w| w.direct_used_peak) {
            let network_pool = peak(self.windows, |w| w.network_total).unwrap_or(0.0);
            let outside = (direct - network_pool).max(0.0);
            let off_heap = self.cur.framework_off_heap + self.cur.task_off_heap;
            let needed = with_margin(outside, self.settings.margin);
            if needed > off_heap {
                self.rec.task_off_heap =
                    round_up((needed - self.cur.framework_off_heap) as f64, STEP)
                        .max(self.cur.task_off_heap);
            }
            let limit = self.cur.direct_limit() as f64;
            if limit > 0.0 && direct >= POOL_FULL * limit {
                self.findings.push(Finding {
                    code: Code::DirectPressure,
                    message: format!(
                        "direct memory {} of its {} limit; set taskmanager.memory.task.off-heap.size: {}",
                        human(direct),
                        human(limit),
                        size(self.rec.task_off_heap.max(round_up(self.cur.task_off_heap as f64 + outside * self.settings.margin, STEP)))
                    ),
                });
            }
            self.pools.push(PoolPlan {
                pool: Pool::OffHeap,
                current: off_heap,
                recommended: self.rec.framework_off_heap + self.rec.task_off_heap,
                evidence: format!(
                    "direct peak {} of which the network pool {}; kept unless the rest + {:.0}% outgrows it",
                    human(direct),
                    human(network_pool),
                    self.settings.margin * 100.0
                ),
            });
        }
    }

    /// Kept pools come from Flink's fractions and need not be whole mebibytes; written keys are.
    fn round_to_mebibytes(&mut self) {
        for pool in [
            &mut self.rec.framework_heap,
            &mut self.rec.task_heap,
            &mut self.rec.framework_off_heap,
            &mut self.rec.task_off_heap,
            &mut self.rec.managed,
            &mut self.rec.metaspace,
        ] {
            *pool = round_up(*pool as f64, MIB);
        }
    }

    /// JVM overhead, with Flink's rule over the new total.
    fn overhead(&mut self) {
        self.rec.overhead = overhead_for(
            self.rec.flink_total() + self.rec.metaspace,
            &self.settings.overhead,
        );
        self.pools.push(PoolPlan {
            pool: Pool::Overhead,
            current: self.cur.overhead,
            recommended: self.rec.overhead,
            evidence: format!(
                "{:.0}% of the process, within {}..{}",
                self.settings.overhead.fraction * 100.0,
                human(self.settings.overhead.min as f64),
                human(self.settings.overhead.max as f64)
            ),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_written_as_flink_reads_them() {
        assert_eq!(size(384 * MIB), "384m");
        assert_eq!(size(1000), "1000b");
        assert_eq!(human(1.5 * 1024.0 * MIB as f64), "1.50g");
    }

    #[test]
    fn sizes_are_read_as_flink_writes_them() {
        assert_eq!(parse_size("32kb"), Some(32 * 1024));
        assert_eq!(parse_size("1728m"), Some(1728 * MIB));
        assert_eq!(parse_size(" 1 gb"), Some(1024 * MIB));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("64 mebibytes"), Some(64 * MIB));
        assert_eq!(parse_size("lots"), None);
    }

    #[test]
    fn overhead_follows_flinks_rule() {
        let o = OverheadSettings::default();
        // Small processes get the minimum, large ones the maximum, in between 10%.
        assert_eq!(overhead_for(600 * MIB, &o), 192 * MIB);
        assert_eq!(overhead_for(20 * 1024 * MIB, &o), 1024 * MIB);
        let mid = overhead_for(3600 * MIB, &o);
        assert_eq!(mid, 400 * MIB, "3600m / 0.9 * 0.1");
    }
}
