//! Per-vertex scaling: which vertex is the bottleneck and what parallelism every vertex
//! needs, in one step (the DS2 / FLIP-271 family).
//!
//! For every vertex the model estimates its *true processing rate* (the records per second
//! it could handle at 100% busy), the *target rate* it must sustain (what the sources
//! receive, plus the catch-up of their backlog, carried through the DAG with the measured
//! output ratios), and from both the parallelism that runs it at the target utilization.
//! Key groups and source partitions are honoured by sizing for the *effective* parallelism
//! (the hottest subtask's share), which never blocks a needed scale-up. Every output carries
//! its evidence. The function is pure: metrics, configuration and the previous decisions go
//! in; decisions and the updated history come out.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::codes::{Code, Finding};
use crate::duration;
use crate::text::quoted;

/// How records travel along an edge (the REST plan's `ship_strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShipStrategy {
    Forward,
    /// `keyBy`: records go to the subtask owning their key group.
    Hash,
    Rebalance,
    Rescale,
    Broadcast,
    Other,
}

impl ShipStrategy {
    /// Reads the REST API's spelling (`HASH`, `FORWARD`, `REBALANCE`, ...).
    pub fn from_rest(text: &str) -> Self {
        match text.trim().to_ascii_uppercase().as_str() {
            "FORWARD" => ShipStrategy::Forward,
            "HASH" => ShipStrategy::Hash,
            "REBALANCE" => ShipStrategy::Rebalance,
            "RESCALE" => ShipStrategy::Rescale,
            "BROADCAST" => ShipStrategy::Broadcast,
            _ => ShipStrategy::Other,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Edge {
    /// Index of the upstream vertex in [`JobSnapshot::vertices`].
    pub from: usize,
    pub to: usize,
    pub ship: ShipStrategy,
}

/// What the window says about one vertex. Rates are totals over all subtasks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VertexSnapshot {
    pub id: String,
    pub name: String,
    pub parallelism: u32,
    /// Key groups (the vertex's max parallelism); `None` when Flink does not say.
    pub max_parallelism: Option<u32>,
    /// Partitions (or splits) of a source, where known.
    pub source_partitions: Option<u32>,
    pub is_source: bool,
    /// Records per second entering the vertex; for a source, read from the external system.
    pub records_in_rate: f64,
    pub records_out_rate: f64,
    /// Average busy ratio over subtasks (0..1); NaN when Flink has none (legacy sources).
    pub busy: f64,
    /// Busy ratio of the hottest subtask.
    pub busy_max: f64,
    /// Average back-pressured ratio over subtasks (0..1).
    pub backpressure: f64,
    /// Source backlog (`pendingRecords` summed over subtasks), if the source reports one.
    pub pending_records: Option<f64>,
    /// How fast the backlog grew over the window, records per second (negative: draining).
    pub backlog_growth: Option<f64>,
    /// What the backlog metric left out during the window, if anything: then the backlog is
    /// a lower bound and its growth says nothing about arrivals.
    pub backlog_partial: Option<PartialBacklog>,
    /// Records per second arriving at the source, measured outside it (the growth of the
    /// Kafka brokers' end offsets): right whatever holds the reader back. `None`: arrivals
    /// come from the backlog metric.
    pub arrival_rate: Option<f64>,
}

/// A source's backlog metric that does not cover the whole source. Kafka's reader sums the
/// lag of the partitions it has read from, each as of its last read: right after a start it
/// leaves the others out and climbs as they join, and under back-pressure (it drains one
/// partition's fetch at a time) the lag of the partitions waiting their turn is stale.
/// Measured: 1% to 14% of the real backlog for minutes (docs/PERFORMANCE.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PartialBacklog {
    /// Partitions (splits) not read from yet.
    pub unread_partitions: u32,
    /// Partitions not read from during the window: their lag is as old as their last read.
    pub stale_partitions: u32,
    /// Subtasks that report no backlog at all yet.
    pub silent_subtasks: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobSnapshot {
    pub job_id: String,
    pub job_name: String,
    pub vertices: Vec<VertexSnapshot>,
    pub edges: Vec<Edge>,
    /// Task slots of the cluster (free plus used by this job), where known.
    pub available_slots: Option<u32>,
    pub slots_per_taskmanager: Option<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScalingConfig {
    /// Busy ratio each vertex should run at after scaling.
    pub target_utilization: f64,
    /// Vertices whose expected utilization stays within this band keep their parallelism,
    /// so small changes that do not matter are ignored.
    pub hold_band: (f64, f64),
    /// Time in which an existing backlog should be consumed on top of the arrivals.
    pub catch_up: Duration,
    /// A scale-down is applied only after it was recommended for this long, and then to the
    /// highest parallelism recommended meanwhile.
    pub scale_down_delay: Duration,
    /// A subtask at or above this busy ratio is saturated.
    pub saturation: f64,
    /// Hottest-to-average busy ratio from which a saturated vertex counts as skewed.
    pub skew_ratio: f64,
    /// A scale-up that delivered (or, by how the vertex was seen to scale, would deliver)
    /// less than this share of its expected (linear) gain does not pay. Flink's autoscaler
    /// uses 0.1; 0.3 also stops 11 times the slots for 2.6 times the rate.
    pub effectiveness_threshold: f64,
    /// After a scale-up that did not pay, how long the vertex is not scaled above the
    /// parallelism it kept (what stops it climbing again: a power law learned from two
    /// parallelisms cannot see a limit outside the vertex).
    pub ineffective_hold: Duration,
    /// Learn how each vertex really scales from the parallelisms it ran at (few scale
    /// linearly); off: assume linear scaling.
    pub learn_scaling: bool,
    pub min_parallelism: u32,
    /// Upper limit for every vertex (besides its key groups); per-vertex limits override.
    pub max_parallelism: u32,
    /// Per-vertex `(min, max)` limits by vertex id.
    pub vertex_limits: BTreeMap<String, (u32, u32)>,
    /// The task slots the job may take (one slot sharing group: its widest vertex).
    pub max_slots: Option<u32>,
    /// After a scale-up that lowered the vertex's rate, how long it is not scaled above the
    /// parallelism it is rolled back to (AT135).
    pub rollback_hold: Duration,
}

impl Default for ScalingConfig {
    fn default() -> Self {
        ScalingConfig {
            target_utilization: 0.7,
            hold_band: (0.4, 0.9),
            catch_up: Duration::from_secs(5 * 60),
            scale_down_delay: Duration::from_secs(10 * 60),
            saturation: 0.9,
            skew_ratio: 2.0,
            effectiveness_threshold: 0.3,
            ineffective_hold: Duration::from_secs(60 * 60),
            learn_scaling: true,
            min_parallelism: 1,
            max_parallelism: 10_000,
            vertex_limits: BTreeMap::new(),
            max_slots: None,
            rollback_hold: Duration::from_secs(60 * 60),
        }
    }
}

/// What the model remembers between decisions, per vertex id. Serializable: the coordinator
/// keeps it beside the job's files and reads it back when the job comes back to a new
/// JobManager with the same id.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScalingHistory {
    vertices: BTreeMap<String, VertexHistory>,
    /// How long the job's rescales take, seconds from the request until it runs again: each
    /// one measured moves it halfway there. `None`: none measured yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rescale_downtime_s: Option<f64>,
    /// Rescales applied in place since the job was first seen, and those rolled back (AT135).
    #[serde(default)]
    rescales_applied: u64,
    #[serde(default)]
    rescales_rolled_back: u64,
}

impl ScalingHistory {
    /// Vertices it remembers something of.
    pub fn vertices(&self) -> usize {
        self.vertices.len()
    }

    /// A rescale's downtime was measured: the estimate the next decision counts, returned.
    pub fn note_rescale_downtime(&mut self, seconds: f64) -> f64 {
        let seconds = seconds.max(0.0);
        let estimate = match self.rescale_downtime_s {
            Some(before) => (before + seconds) / 2.0,
            None => seconds,
        };
        self.rescale_downtime_s = Some(estimate);
        estimate
    }

    /// What a rescale of the job is expected to cost in time, once one was measured.
    pub fn rescale_downtime(&self) -> Option<f64> {
        self.rescale_downtime_s
    }

    pub fn note_rescale_applied(&mut self) {
        self.rescales_applied += 1;
    }

    /// Rescales applied in place, and how many of them were rolled back.
    pub fn rescales(&self) -> (u64, u64) {
        (self.rescales_applied, self.rescales_rolled_back)
    }

    /// An applied rescale made the job worse and was rolled back: every vertex it had widened,
    /// `(vertex id, rolled back to, failed at)`, is not scaled above where it went back to for
    /// `hold` (AT135), and the step is not judged as a scale-up that merely did not pay.
    pub fn note_rollback(&mut self, vertices: &[(&str, u32, u32)], now_ms: i64, hold: Duration) {
        self.rescales_rolled_back += 1;
        for &(id, back_to, failed_at) in vertices {
            let state = self.vertices.entry(id.to_string()).or_default();
            state.last_scale_up = None;
            state.pending_scale_downs.clear();
            if failed_at > back_to {
                state.ceiling = Some(Ceiling {
                    parallelism: back_to,
                    from: back_to,
                    reached: failed_at,
                    since_ms: now_ms,
                    hold_ms: Some(hold.as_millis() as u64),
                    rolled_back: true,
                });
            }
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct VertexHistory {
    /// The last scale-up recommended: parallelism from/to, processing rate before, expected after.
    last_scale_up: Option<ScaleUpRecord>,
    /// (effective parallelism, capacity) seen at recent parallelisms, newest last:
    /// how the vertex really scales, since few scale linearly.
    observations: Vec<(f64, f64)>,
    /// Scale-down recommendations not applied yet: (epoch millis, parallelism).
    pending_scale_downs: VecDeque<(i64, u32)>,
    /// After a scale-up that did not pay: the parallelism the vertex is not scaled above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ceiling: Option<Ceiling>,
}

/// What a scale-up that did not pay leaves behind.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Ceiling {
    parallelism: u32,
    /// The step that did not pay, as far as it went.
    from: u32,
    reached: u32,
    /// Epoch millis of the decision that judged it.
    since_ms: i64,
    /// How long it holds; `None`: `ineffective_hold`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hold_ms: Option<u64>,
    /// Left by a rollback (AT135): the job failed at `reached`.
    #[serde(default)]
    rolled_back: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct ScaleUpRecord {
    from: u32,
    to: u32,
    rate_before: f64,
    /// How the rate was expected to grow with parallelism when the step was decided: the
    /// step is judged at the parallelism it reached (the scheduler may give fewer slots).
    curve: Curve,
}

impl ScaleUpRecord {
    /// Records/s the step was expected to add by reaching parallelism `p`.
    fn expected_gain_at(&self, p: u32) -> f64 {
        self.rate_before * (self.curve.capacity_at(p) / self.curve.capacity_at(self.from) - 1.0)
    }
}

/// The numbers a decision rests on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Evidence {
    /// Records/s the vertex could process at 100% busy with its current parallelism.
    pub true_rate: f64,
    /// Records/s it must sustain: arrivals carried through the DAG.
    pub arrival_rate: f64,
    /// Records/s on top, to consume the sources' backlog within the catch-up time.
    pub catch_up_rate: f64,
    pub records_in_rate: f64,
    pub busy: f64,
    pub busy_max: f64,
    pub backpressure: f64,
    pub pending_records: Option<f64>,
    pub backlog_growth: Option<f64>,
    /// Busy ratio the vertex would have at the target rate with its current parallelism.
    pub expected_utilization: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VertexDecision {
    pub id: String,
    pub name: String,
    pub current: u32,
    pub recommended: u32,
    pub evidence: Evidence,
    pub findings: Vec<Finding>,
}

impl VertexDecision {
    /// The decision's code: scale up, scale down, or none when it keeps its parallelism.
    pub fn code(&self) -> Option<Code> {
        match self.recommended.cmp(&self.current) {
            std::cmp::Ordering::Greater => Some(Code::ScaleUp),
            std::cmp::Ordering::Less => Some(Code::ScaleDown),
            std::cmp::Ordering::Equal => None,
        }
    }

    pub fn has(&self, code: Code) -> bool {
        self.findings.iter().any(|f| f.code == code)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobDecision {
    pub vertices: Vec<VertexDecision>,
    /// Findings about the job as a whole (slots).
    pub findings: Vec<Finding>,
    /// Index of the vertex that limits the job now, if one does.
    pub bottleneck: Option<usize>,
    /// Task slots the recommended parallelism needs (one slot sharing group).
    pub slots_needed: u32,
}

impl JobDecision {
    /// One `AUTOTUNE` line per change and per finding, then the job's plan: what the plugin
    /// logs and `flink-autotune analyze` prints.
    pub fn log_lines(&self, job: &JobSnapshot) -> Vec<String> {
        let job_ref = format!("job={} ({})", quoted(&job.job_name), job.job_id);
        let mut lines = Vec::new();
        for d in &self.vertices {
            let vertex_ref = format!("{job_ref} vertex={} ({})", quoted(&d.name), d.id);
            if let Some(code) = d.code() {
                let e = &d.evidence;
                let mut line = format!(
                    "AUTOTUNE {code} {vertex_ref} parallelism={}->{} true-rate={:.1}/s target={:.1}/s (arrival={:.1}/s catch-up={:.1}/s) busy={} busy-max={} backpressure={} utilization-now={}",
                    d.current,
                    d.recommended,
                    e.true_rate,
                    e.arrival_rate + e.catch_up_rate,
                    e.arrival_rate,
                    e.catch_up_rate,
                    percent(e.busy),
                    percent(e.busy_max),
                    percent(e.backpressure),
                    percent(e.expected_utilization)
                );
                if let (Some(pending), Some(growth)) = (e.pending_records, e.backlog_growth) {
                    line.push_str(&format!(
                        " backlog={pending:.0} backlog-growth={growth:.1}/s"
                    ));
                }
                lines.push(line);
            }
            for f in &d.findings {
                lines.push(format!("AUTOTUNE {} {vertex_ref} | {}", f.code, f.message));
            }
        }
        for f in &self.findings {
            lines.push(format!("AUTOTUNE {} {job_ref} | {}", f.code, f.message));
        }
        lines.push(format!(
            "AUTOTUNE {} {job_ref} changes={} slots-needed={} pipeline.jobvertex-parallelism-overrides={}",
            Code::Plan,
            self.changes().count(),
            self.slots_needed,
            self.parallelism_overrides()
        ));
        lines
    }

    /// What makes this decision different from another: each vertex's change and the codes
    /// of all findings. Equal gists mean nothing new to log or do.
    pub fn gist(&self) -> String {
        let vertices = self.vertices.iter().map(|v| {
            let codes: Vec<&str> = v.findings.iter().map(|f| f.code.code()).collect();
            format!(
                "{}:{}->{}[{}]",
                v.id,
                v.current,
                v.recommended,
                codes.join(",")
            )
        });
        let job: Vec<&str> = self.findings.iter().map(|f| f.code.code()).collect();
        format!(
            "{};{}",
            vertices.collect::<Vec<_>>().join(" "),
            job.join(",")
        )
    }

    /// `pipeline.jobvertex-parallelism-overrides` for every vertex: `id:p,id:p`.
    pub fn parallelism_overrides(&self) -> String {
        overrides(self.vertices.iter().map(|v| (v.id.as_str(), v.recommended)))
    }

    pub fn changes(&self) -> impl Iterator<Item = &VertexDecision> {
        self.vertices.iter().filter(|v| v.recommended != v.current)
    }
}

/// `pipeline.jobvertex-parallelism-overrides` of a plan: `id:p,id:p`.
pub fn overrides<'a>(plan: impl Iterator<Item = (&'a str, u32)>) -> String {
    plan.map(|(id, p)| format!("{id}:{p}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalingError(pub String);

impl fmt::Display for ScalingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ScalingError {}

/// Busy or idle below this share of a second counts as "no measurement".
const MEASURABLE: f64 = 0.01;
/// Busy ratio from which a vertex's measured rate tells its capacity well enough to learn from.
const RELIABLE_BUSY: f64 = 0.02;
/// A source whose backlog is this much of what it reads is catching up: at its limit unless
/// something downstream holds it back (Flink's autoscaler: `observed-true-processing-rate.
/// lag-threshold`).
const CATCHING_UP_BACKLOG: Duration = Duration::from_secs(30);
/// Parallelisms remembered per vertex to learn how it scales.
const OBSERVATIONS: usize = 4;
/// Scaling exponents learned are kept in this range: no superlinear promises, and noise (a
/// rate learned at a few percent busy) cannot make a vertex look hopeless; a vertex that
/// scales worse is caught by the effectiveness check on what its last step bought.
const SCALING_EXPONENT: (f64, f64) = (0.5, 1.0);

/// Decides the parallelism of every vertex of a job, in named steps: the graph, every
/// vertex's true processing rate, the target rates carried through the DAG, one decision per
/// vertex (sizing, hold band, skew, ineffective scale-up, delayed scale-down), the bottleneck,
/// and the slots the plan needs.
pub fn decide(
    job: &JobSnapshot,
    config: &ScalingConfig,
    history: &mut ScalingHistory,
    now_ms: i64,
) -> Result<JobDecision, ScalingError> {
    let n = job.vertices.len();
    let order = topological_order(n, &job.edges)?;
    let inputs: Vec<Vec<&Edge>> = (0..n)
        .map(|v| job.edges.iter().filter(|e| e.to == v).collect())
        .collect();
    let true_rates = true_rates(job, &inputs, config);
    let stalled = stalled_flows(job, &order, &inputs);
    let downtime = history.rescale_downtime();
    let mut targets = target_rates(job, &order, &inputs, config);
    let (mut decisions, rolled_back): (Vec<VertexDecision>, Vec<bool>) = (0..n)
        .map(|v| {
            let vertex = &job.vertices[v];
            let state = history.vertices.entry(vertex.id.clone()).or_default();
            let findings = std::mem::take(&mut targets.findings[v]);
            let case = VertexCase {
                job,
                v,
                inputs: &inputs[v],
                true_rate: true_rates[v],
                arrival: targets.arrival[v],
                catch_up: targets.catch_up[v],
                stalled: stalled[v],
                downtime,
            };
            decide_vertex(case, findings, state, config, now_ms)
        })
        .unzip();
    if rolled_back.contains(&true) {
        history.rescales_rolled_back += 1;
    }
    let bottleneck = mark_bottleneck(&mut decisions, config);
    let slots_needed = decisions.iter().map(|d| d.recommended).max().unwrap_or(0);
    Ok(JobDecision {
        findings: slots_short(job, slots_needed).into_iter().collect(),
        vertices: decisions,
        bottleneck,
        slots_needed,
    })
}

/// Every vertex's true processing rate. A source is held back when a vertex downstream of it
/// is saturated or cannot take what it is sent, whatever the source's own back-pressure metric
/// says (FLIP-27 sources often wait on output as "idle"): its rate then measures the vertex
/// downstream, not itself.
fn true_rates(job: &JobSnapshot, inputs: &[Vec<&Edge>], config: &ScalingConfig) -> Vec<TrueRate> {
    job.vertices
        .iter()
        .enumerate()
        .map(|(v, vertex)| {
            // Only a source's rate depends on being held back: no search for other vertices.
            let held_back = vertex.is_source
                && downstream(v, &job.edges)
                    .into_iter()
                    .any(|d| limits_upstream(job, d, &inputs[d], config));
            true_processing_rate(vertex, held_back)
        })
        .collect()
}

/// A vertex that holds back what feeds it: saturated, or (read below saturation, as busy time
/// on a CPU shared with other work is) unable to process what its inputs send it now.
fn limits_upstream(job: &JobSnapshot, d: usize, inputs: &[&Edge], config: &ScalingConfig) -> bool {
    let vertex = &job.vertices[d];
    if vertex.busy_max >= config.saturation {
        return true;
    }
    let upstream_out = upstream_out(job, inputs);
    let sent: f64 = inputs
        .iter()
        .map(|e| {
            let upstream_in = finite_or(job.vertices[e.from].records_in_rate, 0.0);
            output_ratio(job, e, upstream_out) * upstream_in
        })
        .sum();
    let capacity = true_processing_rate(vertex, false).value;
    !vertex.is_source && capacity < sent
}

/// What every vertex must sustain: arrivals and catch-up of the sources' backlog, carried
/// through the DAG with the measured output ratios.
struct Targets {
    arrival: Vec<f64>,
    catch_up: Vec<f64>,
    /// Findings made on the way (a source without a backlog metric).
    findings: Vec<Vec<Finding>>,
}

fn target_rates(
    job: &JobSnapshot,
    order: &[usize],
    inputs: &[Vec<&Edge>],
    config: &ScalingConfig,
) -> Targets {
    let n = job.vertices.len();
    let mut t = Targets {
        arrival: vec![0.0; n],
        catch_up: vec![0.0; n],
        findings: vec![Vec::new(); n],
    };
    let catch_up_secs = config.catch_up.as_secs_f64();
    for &v in order {
        let vertex = &job.vertices[v];
        if vertex.is_source || inputs[v].is_empty() {
            let consumed = finite_or(vertex.records_in_rate, 0.0);
            // An infinite backlog is no measurement (a gauge gone wrong), not infinite demand.
            let Some(pending) = vertex.pending_records.filter(|p| p.is_finite()) else {
                t.arrival[v] = consumed;
                t.findings[v].push(no_backlog_metric(vertex, consumed));
                continue;
            };
            t.arrival[v] = match vertex.arrival_rate.filter(|a| a.is_finite()) {
                // Counted at the brokers: a partial backlog there is only partitions the
                // reader has not reached, said in the backlog line (AT130).
                Some(arrival) => arrival.max(0.0),
                None => {
                    if let Some(partial) = vertex.backlog_partial {
                        t.findings[v].push(backlog_partial(partial, pending, consumed));
                    }
                    (consumed + trusted_growth(vertex).unwrap_or(0.0)).max(0.0)
                }
            };
            t.catch_up[v] = if catch_up_secs > 0.0 {
                pending.max(0.0) / catch_up_secs
            } else {
                0.0
            };
        } else {
            let upstream_out = upstream_out(job, &inputs[v]);
            for edge in &inputs[v] {
                let ratio = output_ratio(job, edge, upstream_out);
                t.arrival[v] += t.arrival[edge.from] * ratio;
                t.catch_up[v] += t.catch_up[edge.from] * ratio;
            }
        }
    }
    t
}

fn no_backlog_metric(vertex: &VertexSnapshot, consumed: f64) -> Finding {
    let blocked = if vertex.backpressure >= 0.1 {
        format!(
            "; it is back-pressured {:.0}% of the time, so the real demand may be higher and shows once the bottleneck downstream is relieved",
            vertex.backpressure * 100.0
        )
    } else {
        String::new()
    };
    Finding {
        code: Code::NoBacklogMetric,
        message: format!(
            "source reports no pendingRecords: its arrival rate is taken as the {consumed:.1} records/s it consumed and no backlog catch-up is planned{blocked}"
        ),
    }
}

/// The backlog's growth, when the metric covered the whole source all window: growth of a
/// partial backlog is partitions joining the count, not arrivals.
fn trusted_growth(vertex: &VertexSnapshot) -> Option<f64> {
    vertex
        .backlog_growth
        .filter(|g| g.is_finite() && vertex.backlog_partial.is_none())
}

fn backlog_partial(partial: PartialBacklog, pending: f64, consumed: f64) -> Finding {
    let mut left_out = Vec::new();
    if partial.unread_partitions > 0 {
        left_out.push(format!(
            "{} partitions not read from yet",
            partial.unread_partitions
        ));
    }
    if partial.stale_partitions > 0 {
        left_out.push(format!(
            "{} partitions not read from during the window (their lag is as old as their last read)",
            partial.stale_partitions
        ));
    }
    if partial.silent_subtasks > 0 {
        left_out.push(format!(
            "{} subtasks that report none yet",
            partial.silent_subtasks
        ));
    }
    Finding {
        code: Code::BacklogPartial,
        message: format!(
            "pendingRecords leaves out {}: a Kafka reader counts a partition's lag as of its last read from it, so the backlog shown ({pending:.0}) is a lower bound and its changes are partitions joining or being read, not arrivals; arrivals are taken as the {consumed:.1} records/s consumed until the metric covers every partition",
            left_out.join(" and ")
        ),
    }
}

/// How a vertex's capacity grows with its parallelism.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Curve {
    granularity: Granularity,
    /// Records/s per unit of effective parallelism at 100% busy.
    per_unit: f64,
    effective_now: f64,
    /// How the rate grows with parallelism, learned (1: linear).
    exponent: f64,
}

impl Curve {
    /// Records/s the vertex would sustain at parallelism p, scaling as it was seen to.
    fn capacity_at(&self, p: u32) -> f64 {
        let effective = self.granularity.effective(p);
        self.per_unit * effective * (effective / self.effective_now).powf(self.exponent - 1.0)
    }
}

/// What one vertex's sizing rests on: how much it does now, must do, and how it scales.
#[derive(Clone, Copy)]
struct Sizing {
    current: u32,
    true_rate: f64,
    target: f64,
    curve: Curve,
    target_utilization: f64,
}

impl Sizing {
    /// The true rate is a number: the vertex processes records and its busy time says how fast.
    fn known(&self) -> bool {
        self.true_rate.is_finite() && self.true_rate > 0.0
    }

    fn capacity_at(&self, p: u32) -> f64 {
        self.curve.capacity_at(p)
    }

    /// Whether p runs the target at the target utilization; processing nothing (an infinite
    /// rate), the minimum will do.
    fn enough(&self, p: u32) -> bool {
        !self.known() || self.capacity_at(p) * self.target_utilization >= self.target
    }

    /// Busy ratio the vertex would have at the target rate with its current parallelism.
    fn expected_utilization(&self) -> f64 {
        if self.known() {
            self.target / (self.curve.per_unit * self.curve.effective_now)
        } else if self.true_rate.is_nan() {
            f64::NAN
        } else {
            0.0
        }
    }
}

/// One vertex's measurements and what it must sustain.
struct VertexCase<'a> {
    job: &'a JobSnapshot,
    v: usize,
    inputs: &'a [&'a Edge],
    true_rate: TrueRate,
    arrival: f64,
    catch_up: f64,
    /// The vertex is a stalled source or fed by one.
    stalled: bool,
    /// The job's rescale downtime as measured, seconds.
    downtime: Option<f64>,
}

/// The vertex's decision, and whether its last scale-up was rolled back for lowering its rate.
fn decide_vertex(
    case: VertexCase<'_>,
    mut findings: Vec<Finding>,
    state: &mut VertexHistory,
    config: &ScalingConfig,
    now_ms: i64,
) -> (VertexDecision, bool) {
    let VertexCase {
        job,
        v,
        inputs,
        true_rate,
        arrival,
        catch_up,
        stalled,
        downtime,
    } = case;
    let vertex = &job.vertices[v];
    let sizing = sizing(vertex, inputs, true_rate, arrival + catch_up, state, config);
    let current = sizing.current;
    let expected_utilization = sizing.expected_utilization();
    let mut recommended = smallest_sufficient(vertex, &sizing, config, &mut findings);
    recommended = hold_band(recommended, expected_utilization, current, config);
    recommended = hold_for_skew(recommended, job, v, inputs, config, &mut findings);
    let judged = judge_the_last_scale_up(&sizing, state, config, now_ms, &mut findings);
    let rolled_back = matches!(judged, Some(Judged::RolledBack(_)));
    let given_back = judged.map(Judged::parallelism);
    recommended = hold_under_ceiling(recommended, &sizing, state, config, now_ms, &mut findings);
    recommended = hold_if_scaling_does_not_pay(recommended, &sizing, config, &mut findings);
    let rescale = Rescale {
        vertex,
        sizing: &sizing,
        arrival,
        catch_up,
        downtime,
    };
    let (with_downtime, downtime_catch_up) =
        count_the_downtime(recommended, rescale, config, &mut findings);
    recommended = with_downtime;
    recommended = hold_while_stalled(recommended, vertex, stalled, state, &mut findings);
    recommended = delay_scale_down(recommended, current, state, config, now_ms, &mut findings);
    if let Some(as_much) = given_back.filter(|p| *p < recommended) {
        // The slots given back did nothing: no delay, no downtime weighed against them.
        state.pending_scale_downs.clear();
        recommended = as_much;
    }
    recommended = hold_within_quota(recommended, config, &mut findings);
    if recommended > current {
        state.last_scale_up = Some(ScaleUpRecord {
            from: current,
            to: recommended,
            rate_before: true_rate.value,
            curve: sizing.curve,
        });
    }
    let decision = VertexDecision {
        id: vertex.id.clone(),
        name: vertex.name.clone(),
        current,
        recommended,
        evidence: Evidence {
            true_rate: true_rate.value,
            arrival_rate: arrival,
            catch_up_rate: catch_up + downtime_catch_up,
            records_in_rate: vertex.records_in_rate,
            busy: vertex.busy,
            busy_max: vertex.busy_max,
            backpressure: vertex.backpressure,
            pending_records: vertex.pending_records,
            backlog_growth: vertex.backlog_growth,
            expected_utilization,
        },
        findings,
    };
    (decision, rolled_back)
}

/// A rescale being weighed: the vertex, how it scales, what it must do, and what a rescale of
/// its job costs.
#[derive(Clone, Copy)]
struct Rescale<'a> {
    vertex: &'a VertexSnapshot,
    sizing: &'a Sizing,
    arrival: f64,
    catch_up: f64,
    downtime: Option<f64>,
}

/// A rescale stops the job for its downtime (measured on its earlier rescales): what arrives
/// meanwhile joins the catch-up (returned, records/s), and a scale-up made only to catch up
/// (the vertex keeps up with arrivals as it is) that would not drain the backlog sooner, its
/// downtime and what piles up in it counted, is not made (AT133).
fn count_the_downtime(
    recommended: u32,
    rescale: Rescale<'_>,
    config: &ScalingConfig,
    findings: &mut Vec<Finding>,
) -> (u32, f64) {
    let Rescale {
        vertex,
        sizing,
        arrival,
        catch_up,
        downtime,
    } = rescale;
    let current = sizing.current;
    let catch_up_s = config.catch_up.as_secs_f64();
    let Some(downtime) = downtime.filter(|d| *d > 0.0 && catch_up_s > 0.0) else {
        return (recommended, 0.0);
    };
    if recommended == current || !sizing.known() {
        return (recommended, 0.0);
    }
    let piled_up = arrival * downtime / catch_up_s;
    let with_piled_up = Sizing {
        target: sizing.target + piled_up,
        ..*sizing
    };
    let granularity = sizing.curve.granularity;
    let upper = granularity.upper(limits(vertex, config).1);
    let needed = granularity.smallest(|p| with_piled_up.enough(p), upper);
    let wanted = if recommended > current {
        recommended.max(needed)
    } else if needed >= current {
        current // what piles up while it restarts would need what it has
    } else {
        recommended.max(needed)
    };
    if wanted <= current {
        return (wanted, if wanted == current { 0.0 } else { piled_up });
    }
    let (now, then) = (sizing.capacity_at(current), sizing.capacity_at(wanted));
    if now > arrival && catch_up > 0.0 && then > arrival {
        let backlog = catch_up * catch_up_s;
        let drain_now = backlog / (now - arrival);
        let drain_then = downtime + (backlog + arrival * downtime) / (then - arrival);
        if drain_then >= drain_now {
            findings.push(Finding {
                code: Code::RescaleNotWorth,
                message: format!(
                    "{current} -> {wanted} would drain the backlog of {backlog:.0} records in {drain_then:.0} s, its {downtime:.0} s rescale downtime counted; at {current} it drains in {drain_now:.0} s, and it keeps up with arrivals: not made"
                ),
            });
            return (current, 0.0);
        }
    }
    (wanted, piled_up)
}

/// A stalled source says nothing about the parallelism it or anything after it needs: both
/// keep what they have (no scale-down of a job whose input is stuck), and the source is named
/// (AT126).
fn hold_while_stalled(
    recommended: u32,
    vertex: &VertexSnapshot,
    stalled_flow: bool,
    state: &mut VertexHistory,
    findings: &mut Vec<Finding>,
) -> u32 {
    if stalled(vertex) {
        findings.push(Finding {
            code: Code::SourceStalled,
            message: format!(
                "reads nothing while {:.0} records wait: the source is stalled (its reader, its connection or the external system), not idle; parallelism is kept until it reads again",
                vertex.pending_records.unwrap_or(0.0)
            ),
        });
    }
    if !stalled_flow {
        return recommended;
    }
    state.pending_scale_downs.clear();
    recommended.max(vertex.parallelism.max(1))
}

/// Per vertex: whether it is a stalled source or fed, directly or not, by one.
fn stalled_flows(job: &JobSnapshot, order: &[usize], inputs: &[Vec<&Edge>]) -> Vec<bool> {
    let mut flows = vec![false; job.vertices.len()];
    for &v in order {
        flows[v] = stalled(&job.vertices[v]) || inputs[v].iter().any(|e| flows[e.from]);
    }
    flows
}

/// The vertex's sizing inputs; what it sustains now is remembered to learn how it scales,
/// from clear measurements only (a nearly idle vertex's rate says little about its capacity).
fn sizing(
    vertex: &VertexSnapshot,
    inputs: &[&Edge],
    true_rate: TrueRate,
    target: f64,
    state: &mut VertexHistory,
    config: &ScalingConfig,
) -> Sizing {
    let current = vertex.parallelism.max(1);
    let granularity = granularity(vertex, inputs);
    let effective_now = granularity.effective(current);
    // A rate observed at the hottest subtask's limit already is what the effective
    // parallelism does; a rate from busy time is what every subtask would do at 100%.
    let per_unit = if true_rate.hottest_limited {
        true_rate.value / effective_now
    } else {
        true_rate.value / current as f64
    };
    let known = true_rate.value.is_finite() && true_rate.value > 0.0;
    if known && vertex.busy.is_finite() && vertex.busy >= RELIABLE_BUSY {
        // What the vertex sustains at this parallelism, its hottest subtask's share included.
        state.observe(effective_now, per_unit * effective_now);
    }
    Sizing {
        current,
        true_rate: true_rate.value,
        target,
        curve: Curve {
            granularity,
            per_unit,
            effective_now,
            exponent: if config.learn_scaling {
                state.scaling_exponent()
            } else {
                1.0
            },
        },
        target_utilization: config.target_utilization,
    }
}

/// The smallest parallelism within the vertex's limits that runs its target at the target
/// utilization; when none does, the upper limit and an AT123 finding.
fn smallest_sufficient(
    vertex: &VertexSnapshot,
    sizing: &Sizing,
    config: &ScalingConfig,
    findings: &mut Vec<Finding>,
) -> u32 {
    let (min_p, max_p) = limits(vertex, config);
    let granularity = sizing.curve.granularity;
    let upper = granularity.upper(max_p);
    let recommended = if sizing.true_rate.is_nan() {
        sizing.current
    } else {
        granularity.smallest(|p| sizing.enough(p), upper)
    };
    if sizing.known() && !sizing.enough(upper) {
        findings.push(Finding {
            code: Code::ParallelismBound,
            message: format!(
                "needs {:.1} records/s at {:.0}% busy but cannot exceed parallelism {upper} ({}); there it would run at {:.0}% busy",
                sizing.target,
                config.target_utilization * 100.0,
                granularity.bound_reason(max_p),
                100.0 * sizing.target / sizing.capacity_at(upper)
            ),
        });
    }
    recommended.clamp(min_p.min(upper), upper)
}

/// Close enough to the target (the hottest subtask's share and the catch-up included): not
/// worth a restart. This band is also what keeps decisions from flapping.
fn hold_band(
    recommended: u32,
    expected_utilization: f64,
    current: u32,
    config: &ScalingConfig,
) -> u32 {
    let (low, high) = config.hold_band;
    if (low..=high).contains(&expected_utilization) {
        current
    } else {
        recommended
    }
}

/// A saturated hottest subtask next to idle ones: more subtasks would not help (AT120).
fn hold_for_skew(
    recommended: u32,
    job: &JobSnapshot,
    v: usize,
    inputs: &[&Edge],
    config: &ScalingConfig,
    findings: &mut Vec<Finding>,
) -> u32 {
    let vertex = &job.vertices[v];
    let current = vertex.parallelism.max(1);
    let skewed = vertex.busy_max >= config.saturation
        && vertex.busy > 0.0
        && vertex.busy_max >= config.skew_ratio * vertex.busy
        && current > 1;
    if !skewed {
        return recommended;
    }
    let keyed_by = inputs
        .iter()
        .find(|e| e.ship == ShipStrategy::Hash)
        .map(|e| format!("keys of the keyBy after \"{}\"", job.vertices[e.from].name));
    findings.push(Finding {
        code: Code::DataSkew,
        message: format!(
            "hottest subtask {:.0}% busy while the average is {:.0}% ({:.1}x): the {} are unevenly spread over subtasks; more subtasks would not relieve the hot one, spread the hot keys instead (salt them, or pre-aggregate before the keyBy)",
            vertex.busy_max * 100.0,
            vertex.busy * 100.0,
            vertex.busy_max / vertex.busy,
            keyed_by.unwrap_or_else(|| "records".to_string())
        ),
    });
    current
}

/// The last scale-up, once reached (the scheduler may have given fewer slots than asked), is
/// judged by the rate it bought. One that bought less than the effectiveness threshold of its
/// expected gain is limited by something outside the vertex: the slots that did not help are
/// given back, down to the smallest parallelism that, scaling as the step expected, does as
/// much as the vertex does now (AT134; AT121 when every slot helped a little), and the vertex
/// is not scaled above that for `ineffective_hold`. One that lowered the rate made things
/// worse: it is rolled back to where it came from (AT135) and held there for `rollback_hold`.
/// Returns what it gives back to.
fn judge_the_last_scale_up(
    sizing: &Sizing,
    state: &mut VertexHistory,
    config: &ScalingConfig,
    now_ms: i64,
    findings: &mut Vec<Finding>,
) -> Option<Judged> {
    let current = sizing.current;
    let last = state.last_scale_up?;
    let reached = last.from < current && current <= last.to;
    let expected_gain = last.expected_gain_at(current);
    let can_judge = reached && expected_gain.is_finite() && expected_gain > 0.0 && sizing.known();
    if !can_judge {
        return None;
    }
    state.last_scale_up = None;
    let gain = sizing.true_rate - last.rate_before;
    if gain >= config.effectiveness_threshold * expected_gain {
        return None;
    }
    if sizing.true_rate < last.rate_before * (1.0 - CLEARLY_LOWER) {
        return Some(roll_back_what_lowered_the_rate(
            sizing, state, last, config, now_ms, findings,
        ));
    }
    let as_much = (last.from..current)
        .find(|&p| last.curve.capacity_at(p) >= sizing.true_rate)
        .unwrap_or(current);
    state.ceiling = Some(Ceiling {
        parallelism: as_much,
        from: last.from,
        reached: current,
        since_ms: now_ms,
        hold_ms: None,
        rolled_back: false,
    });
    let asked = if current < last.to {
        format!(" (asked: {})", last.to)
    } else {
        String::new()
    };
    let judged = format!(
        "the scale-up from {} to {current}{asked} raised its processing rate by {gain:.1} records/s ({:.0}% of the {expected_gain:.1} expected): something outside the vertex (an external system, a lock, I/O, the machine's CPU) limits it",
        last.from,
        100.0 * gain.max(0.0) / expected_gain
    );
    let hold = duration::format(config.ineffective_hold);
    findings.push(if as_much < current {
        Finding {
            code: Code::GiveBack,
            message: format!(
                "{judged}; {as_much} would do the {:.1} records/s it does at {current}, so {} of its subtasks are given back, and it is not scaled above {as_much} for {hold}",
                sizing.true_rate,
                current - as_much
            ),
        }
    } else {
        Finding {
            code: Code::ExternalBottleneck,
            message: format!("{judged}; it is not scaled above {current} for {hold}"),
        }
    });
    Some(Judged::GivenBack(as_much))
}

/// A rate this much below what the vertex did before its scale-up is lower beyond the noise of
/// a window: the step made things worse.
const CLEARLY_LOWER: f64 = 0.1;

/// What judging the last scale-up gave back to.
#[derive(Debug, Clone, Copy)]
enum Judged {
    /// It bought too little: the slots that did not help.
    GivenBack(u32),
    /// It lowered the rate: all of it.
    RolledBack(u32),
}

impl Judged {
    fn parallelism(self) -> u32 {
        match self {
            Judged::GivenBack(p) | Judged::RolledBack(p) => p,
        }
    }
}

/// A scale-up after which the vertex does less than before (contention, a sink that slows with
/// more writers) is rolled back to where it came from, and not tried again for `rollback_hold`.
fn roll_back_what_lowered_the_rate(
    sizing: &Sizing,
    state: &mut VertexHistory,
    last: ScaleUpRecord,
    config: &ScalingConfig,
    now_ms: i64,
    findings: &mut Vec<Finding>,
) -> Judged {
    let current = sizing.current;
    state.ceiling = Some(Ceiling {
        parallelism: last.from,
        from: last.from,
        reached: current,
        since_ms: now_ms,
        hold_ms: Some(config.rollback_hold.as_millis() as u64),
        rolled_back: true,
    });
    findings.push(Finding {
        code: Code::RolledBack,
        message: format!(
            "the scale-up from {} to {current} lowered its processing rate from {:.1} to {:.1} records/s: rolled back to {}, and not scaled above it for {}",
            last.from,
            last.rate_before,
            sizing.true_rate,
            last.from,
            duration::format(config.rollback_hold)
        ),
    });
    Judged::RolledBack(last.from)
}

/// A vertex whose scale-up did not pay is not scaled above what it kept for
/// `ineffective_hold` (AT121): the power law learned from two parallelisms cannot see a limit
/// outside the vertex, and would climb again.
fn hold_under_ceiling(
    recommended: u32,
    sizing: &Sizing,
    state: &mut VertexHistory,
    config: &ScalingConfig,
    now_ms: i64,
    findings: &mut Vec<Finding>,
) -> u32 {
    let Some(ceiling) = state.ceiling else {
        return recommended;
    };
    let hold_ms = ceiling
        .hold_ms
        .unwrap_or(config.ineffective_hold.as_millis() as u64);
    let ends_ms = ceiling.since_ms + hold_ms as i64;
    if now_ms >= ends_ms {
        state.ceiling = None;
        return recommended;
    }
    let cap = ceiling.parallelism.max(sizing.current);
    if recommended <= cap {
        return recommended;
    }
    let left = duration::format_left(Duration::from_millis((ends_ms - now_ms) as u64));
    let judged_now = findings.iter().any(|f| {
        matches!(
            f.code,
            Code::GiveBack | Code::ExternalBottleneck | Code::RolledBack
        )
    });
    if judged_now {
        return cap;
    }
    if ceiling.rolled_back {
        findings.push(Finding {
            code: Code::RolledBack,
            message: format!(
                "{recommended} would suffice by its rate, but its rescale to {} was rolled back to {}: it is not scaled above {cap} for another {left}",
                ceiling.reached, ceiling.parallelism
            ),
        });
    } else {
        findings.push(Finding {
            code: Code::ExternalBottleneck,
            message: format!(
                "{recommended} would suffice by its rate, but the scale-up from {} to {} did not raise it as expected: it is not scaled above {cap} for another {}",
                ceiling.from, ceiling.reached, left
            ),
        });
    }
    cap
}

/// The job's slot quota caps every vertex (one slot sharing group: the widest vertex is what
/// the job holds), said where it cuts (AT137).
fn hold_within_quota(recommended: u32, config: &ScalingConfig, findings: &mut Vec<Finding>) -> u32 {
    let Some(quota) = config.max_slots.filter(|q| recommended > *q) else {
        return recommended;
    };
    findings.push(Finding {
        code: Code::SlotQuota,
        message: format!(
            "{recommended} would suffice by its rate, but the job may take at most {quota} task slots (max-slots): capped at {quota}"
        ),
    });
    quota
}

/// A scale-up that, by how the vertex was seen to scale, would buy less than the
/// effectiveness threshold of what its slots would buy scaling linearly is not made
/// (AT121): 55 times the slots for 5 times the rate is a problem to fix in the vertex.
fn hold_if_scaling_does_not_pay(
    recommended: u32,
    sizing: &Sizing,
    config: &ScalingConfig,
    findings: &mut Vec<Finding>,
) -> u32 {
    let current = sizing.current;
    if recommended <= current || !sizing.known() || sizing.curve.exponent >= 1.0 {
        return recommended;
    }
    let gain = sizing.capacity_at(recommended) / sizing.capacity_at(current) - 1.0;
    let linear_gain = recommended as f64 / current as f64 - 1.0;
    if gain >= config.effectiveness_threshold * linear_gain {
        return recommended;
    }
    findings.push(Finding {
        code: Code::ExternalBottleneck,
        message: format!(
            "{current} -> {recommended} would raise its rate {:.1} times for {:.1} times the slots: it was seen to scale as parallelism^{:.2}, so something outside the vertex (an external system, a lock, I/O, the machine's CPU) limits it; it is not scaled further",
            1.0 + gain,
            recommended as f64 / current as f64,
            sizing.curve.exponent
        ),
    });
    current
}

/// A scale-down waits for `scale_down_delay` (AT125) and then takes the highest parallelism
/// recommended meanwhile; any other recommendation forgets the pending ones.
fn delay_scale_down(
    recommended: u32,
    current: u32,
    state: &mut VertexHistory,
    config: &ScalingConfig,
    now_ms: i64,
    findings: &mut Vec<Finding>,
) -> u32 {
    if recommended >= current {
        state.pending_scale_downs.clear();
        return recommended;
    }
    let delay_ms = config.scale_down_delay.as_millis() as i64;
    state.pending_scale_downs.push_back((now_ms, recommended));
    let first = state
        .pending_scale_downs
        .front()
        .map_or(now_ms, |(t, _)| *t);
    if now_ms - first < delay_ms {
        findings.push(Finding {
            code: Code::ScaleDownDelayed,
            message: format!(
                "{current} -> {recommended} would suffice; scale-downs wait another {}s and then take the highest parallelism recommended meanwhile",
                (delay_ms - (now_ms - first)) / 1000
            ),
        });
        return current;
    }
    let window_start = now_ms - delay_ms;
    let highest = state
        .pending_scale_downs
        .iter()
        .filter(|(t, _)| *t >= window_start)
        .map(|(_, p)| *p)
        .max()
        .unwrap_or(recommended);
    state.pending_scale_downs.clear();
    highest
}

/// The bottleneck: the vertex that cannot keep up now (not one merely blocked by another),
/// named first among its findings (AT110).
fn mark_bottleneck(decisions: &mut [VertexDecision], config: &ScalingConfig) -> Option<usize> {
    let bottleneck = decisions
        .iter()
        .enumerate()
        .filter(|(_, d)| d.evidence.true_rate.is_finite())
        .filter(|(_, d)| {
            d.evidence.expected_utilization >= 1.0 || d.evidence.busy_max >= config.saturation
        })
        .filter(|(_, d)| d.evidence.backpressure < 0.5)
        .max_by(|a, b| {
            a.1.evidence
                .expected_utilization
                .total_cmp(&b.1.evidence.expected_utilization)
        })
        .map(|(i, _)| i)?;
    let d = &mut decisions[bottleneck];
    let message = format!(
        "limits the job: {:.0}% busy (hottest subtask {:.0}%), must sustain {:.1} records/s, can do {:.1} at parallelism {}",
        d.evidence.busy * 100.0,
        d.evidence.busy_max * 100.0,
        d.evidence.arrival_rate + d.evidence.catch_up_rate,
        d.evidence.true_rate,
        d.current
    );
    d.findings.insert(
        0,
        Finding {
            code: Code::Bottleneck,
            message,
        },
    );
    Some(bottleneck)
}

/// The plan needs more task slots than the cluster has (AT124).
fn slots_short(job: &JobSnapshot, slots_needed: u32) -> Option<Finding> {
    let available = job.available_slots?;
    if slots_needed <= available {
        return None;
    }
    let missing = slots_needed - available;
    let more_tms = job
        .slots_per_taskmanager
        .filter(|s| *s > 0)
        .map(|s| missing.div_ceil(s));
    Some(Finding {
        code: Code::SlotsShort,
        message: format!(
            "the recommended parallelism needs {slots_needed} task slots, the cluster has {available}: add {missing} slots{}",
            more_tms.map(|t| format!(" ({t} more TaskManagers)")).unwrap_or_default()
        ),
    })
}

/// What a vertex could process at 100% busy, and what that figure stands for.
#[derive(Debug, Clone, Copy)]
struct TrueRate {
    /// Records/s.
    value: f64,
    /// The rate was observed at the vertex's limit with its hottest subtask the one falling
    /// behind: it already is what the effective parallelism (the hottest subtask's share)
    /// allows, so that share must not be applied again.
    hottest_limited: bool,
}

impl TrueRate {
    fn all_subtasks(value: f64) -> Self {
        TrueRate {
            value,
            hottest_limited: false,
        }
    }
}

/// Records/s the vertex could process at 100% busy.
///
/// From busy time where Flink measures it. Sources get a correction, because a source's task
/// thread is not where all its work happens (Kafka readers fetch in their own threads, so
/// busy time understates them): a source catching up (its backlog grows, or is 30 s or more
/// of what it reads) and not held back by a saturated vertex downstream is at its limit, so
/// what it reads when not back-pressured is its capacity (hardly blocked, already limited by
/// its hottest subtask). Flink's autoscaler keeps the busy-time rate when it is within 15% of the
/// observed one; here the observed rate is always taken, since a busy-time average sized
/// over uneven partitions would count the hottest subtask's share twice. A source held back
/// could do at least its rate over the time it was not blocked.
///
/// NaN when nothing tells (no busy time, no back-pressure, no backlog), and for a source that
/// reads nothing while a backlog waits (stalled, see [`stalled`]).
fn true_processing_rate(v: &VertexSnapshot, held_back: bool) -> TrueRate {
    let rate = finite_or(v.records_in_rate, 0.0);
    if rate <= 0.0 {
        // Busy without records: the window saw no fresh counters; nothing can be said.
        let busy = v.busy.is_finite() && v.busy >= 0.1;
        let unknown = busy || stalled(v);
        return TrueRate::all_subtasks(if unknown { f64::NAN } else { f64::INFINITY });
    }
    let from_busy = if v.busy.is_finite() {
        rate / v.busy.max(MEASURABLE)
    } else {
        f64::NAN
    };
    if !v.is_source {
        return TrueRate::all_subtasks(from_busy);
    }
    let backpressure = finite_or(v.backpressure, 0.0);
    let observed = rate / (1.0 - backpressure).max(MEASURABLE);
    let falling_behind = trusted_growth(v).is_some_and(|g| g > 0.05 * rate);
    let standing_backlog = v
        .pending_records
        .is_some_and(|p| p >= CATCHING_UP_BACKLOG.as_secs_f64() * rate);
    if !held_back && (falling_behind || standing_backlog) {
        // Hardly blocked, the rate is what the hottest subtask allows; blocked, the rate over
        // the unblocked time is an average over subtasks, like busy time.
        return TrueRate {
            value: observed,
            hottest_limited: backpressure < 0.1,
        };
    }
    if backpressure >= 0.1 {
        return TrueRate::all_subtasks(if from_busy.is_nan() {
            observed
        } else {
            from_busy.max(observed)
        });
    }
    TrueRate::all_subtasks(from_busy)
}

/// A source that reads nothing while records wait for it: its reader, its connection or the
/// external system is stuck. Not idle: no parallelism follows from it.
fn stalled(v: &VertexSnapshot) -> bool {
    v.is_source
        && finite_or(v.records_in_rate, 0.0) <= 0.0
        && v.pending_records.is_some_and(|p| p > 0.0)
}

/// Records/s a vertex's inputs send, over all of them.
fn upstream_out(job: &JobSnapshot, inputs: &[&Edge]) -> f64 {
    inputs
        .iter()
        .map(|e| finite_or(job.vertices[e.from].records_out_rate, 0.0))
        .sum()
}

/// Share of the upstream vertex's input that arrives at the downstream vertex over this edge.
fn output_ratio(job: &JobSnapshot, edge: &Edge, upstream_out_total: f64) -> f64 {
    let up = &job.vertices[edge.from];
    let down = &job.vertices[edge.to];
    let up_in = finite_or(up.records_in_rate, 0.0);
    let up_out = finite_or(up.records_out_rate, 0.0);
    let down_in = finite_or(down.records_in_rate, 0.0);
    if up_in <= 0.0 {
        return 1.0; // nothing flows: no evidence, assume records pass through
    }
    let only_output = job.edges.iter().filter(|e| e.from == edge.from).count() == 1;
    if only_output && edge.ship != ShipStrategy::Broadcast && up_out > 0.0 {
        // All it sends goes over this edge. What the downstream took in is less while the
        // buffers between them fill (a bottleneck's first minute) and more while they
        // drain: not what it must take.
        return up_out / up_in;
    }
    // The downstream input comes from all its inputs, in proportion to what each sends.
    let share = if upstream_out_total > 0.0 {
        up_out / upstream_out_total
    } else {
        1.0
    };
    if down_in > 0.0 {
        down_in * share / up_in
    } else {
        up_out / up_in
    }
}

/// How a vertex's load spreads over its subtasks: key groups behind a keyBy, partitions of a
/// source, or evenly.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
enum Granularity {
    Even,
    /// `units` key groups or partitions dealt out to subtasks: the hottest subtask gets
    /// `ceil(units / p)` of them.
    Units {
        units: u32,
        partitions: bool,
    },
}

impl Granularity {
    /// The parallelism the vertex effectively has: total load over the hottest subtask's share.
    fn effective(self, p: u32) -> f64 {
        match self {
            Granularity::Even => p as f64,
            Granularity::Units { units, .. } => {
                let p = p.min(units).max(1);
                units as f64 / units.div_ceil(p) as f64
            }
        }
    }

    fn upper(self, limit: u32) -> u32 {
        match self {
            Granularity::Even => limit,
            Granularity::Units { units, .. } => limit.min(units),
        }
    }

    /// The smallest parallelism up to `upper` that is `enough` (monotone in p); if none is,
    /// the smallest that does as much as `upper` (200 partitions: 100 subtasks get 2 each,
    /// as 128 would).
    fn smallest(self, enough: impl Fn(u32) -> bool, upper: u32) -> u32 {
        if !enough(upper) {
            return self.smallest_as_wide_as(upper);
        }
        let (mut lo, mut hi) = (1u32, upper);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if enough(mid) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        lo
    }

    /// The smallest parallelism whose hottest subtask gets no more than at `p`.
    fn smallest_as_wide_as(self, p: u32) -> u32 {
        match self {
            Granularity::Even => p,
            Granularity::Units { units, .. } => {
                let hottest = units.div_ceil(p.min(units).max(1));
                units.div_ceil(hottest)
            }
        }
    }

    fn bound_reason(self, limit: u32) -> String {
        match self {
            Granularity::Units {
                units,
                partitions: true,
            } if units <= limit => {
                format!("the source has {units} partitions")
            }
            Granularity::Units {
                units,
                partitions: false,
            } if units <= limit => {
                format!("max parallelism (key groups) is {units}")
            }
            _ => format!("its parallelism limit is {limit}"),
        }
    }
}

impl VertexHistory {
    fn observe(&mut self, effective: f64, rate: f64) {
        self.observations
            .retain(|(e, _)| (e - effective).abs() > 1e-9);
        self.observations.push((effective, rate));
        if self.observations.len() > OBSERVATIONS {
            self.observations.remove(0);
        }
    }

    /// How the processing rate grows with parallelism, `rate ~ effective^exponent`, fitted by
    /// least squares in log space over the parallelisms seen; 1 (linear) until two are known.
    fn scaling_exponent(&self) -> f64 {
        if self.observations.len() < 2 {
            return 1.0;
        }
        let points: Vec<(f64, f64)> = self
            .observations
            .iter()
            .map(|(e, r)| (e.ln(), r.ln()))
            .collect();
        let n = points.len() as f64;
        let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
        let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
        let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
        let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
        if sxx <= 1e-12 {
            return 1.0;
        }
        (sxy / sxx).clamp(SCALING_EXPONENT.0, SCALING_EXPONENT.1)
    }
}

fn granularity(vertex: &VertexSnapshot, inputs: &[&Edge]) -> Granularity {
    if let (true, Some(partitions)) = (vertex.is_source, vertex.source_partitions) {
        return Granularity::Units {
            units: partitions.max(1),
            partitions: true,
        };
    }
    if let (true, Some(key_groups)) = (
        inputs.iter().any(|e| e.ship == ShipStrategy::Hash),
        vertex.max_parallelism,
    ) {
        return Granularity::Units {
            units: key_groups.max(1),
            partitions: false,
        };
    }
    Granularity::Even
}

fn limits(vertex: &VertexSnapshot, config: &ScalingConfig) -> (u32, u32) {
    let (min, max) = config
        .vertex_limits
        .get(&vertex.id)
        .copied()
        .unwrap_or((config.min_parallelism, config.max_parallelism));
    let max = max
        .min(vertex.max_parallelism.map_or(u32::MAX, |m| m.max(1)))
        .max(1);
    (min.max(1).min(max), max)
}

fn percent(ratio: f64) -> String {
    if ratio.is_finite() {
        format!("{:.0}%", ratio * 100.0)
    } else {
        "n/a".to_string()
    }
}

fn finite_or(x: f64, fallback: f64) -> f64 {
    if x.is_finite() {
        x
    } else {
        fallback
    }
}

/// Every vertex reachable from `v` along the edges, `v` itself excluded.
fn downstream(v: usize, edges: &[Edge]) -> Vec<usize> {
    let mut seen = vec![v];
    let mut stack = vec![v];
    while let Some(u) = stack.pop() {
        for e in edges.iter().filter(|e| e.from == u) {
            if !seen.contains(&e.to) {
                seen.push(e.to);
                stack.push(e.to);
            }
        }
    }
    seen.remove(0);
    seen
}

fn topological_order(n: usize, edges: &[Edge]) -> Result<Vec<usize>, ScalingError> {
    let mut indegree = vec![0usize; n];
    for e in edges {
        if e.from >= n || e.to >= n {
            return Err(ScalingError(format!(
                "edge {} -> {} names a vertex that is not in the plan",
                e.from, e.to
            )));
        }
        indegree[e.to] += 1;
    }
    let mut ready: VecDeque<usize> = (0..n).filter(|&v| indegree[v] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(v) = ready.pop_front() {
        order.push(v);
        for e in edges.iter().filter(|e| e.from == v) {
            indegree[e.to] -= 1;
            if indegree[e.to] == 0 {
                ready.push_back(e.to);
            }
        }
    }
    if order.len() != n {
        return Err(ScalingError(
            "the job graph has a cycle; iterations are not supported".into(),
        ));
    }
    Ok(order)
}
