//! The scaling half of a round: a decision on one recorded window (its lines, its files),
//! and applying it in place through the adaptive scheduler.

use std::collections::HashMap;

use autotune_model::options::Mode;
use autotune_model::scaling::{decide, overrides, Code, JobDecision, JobSnapshot, ScalingHistory};
use autotune_model::slots::SlotAsk;
use autotune_model::text::quoted;

use crate::announce::Announcer;
use crate::outputs::JobFiles;
use crate::recording::Recording;
use crate::rest::{FlinkRest, JobDetails};
use crate::settings::JobSettings;

/// What the loop remembers about one job's scaling between rounds.
#[derive(Debug, Default)]
pub struct JobScaling {
    pub history: ScalingHistory,
    /// The last decision's gist: the same decision again is not said again.
    last_gist: Option<String>,
    /// The last recommended parallelism, per vertex in the shape's order.
    pub parallelism: Option<Vec<u32>>,
    /// Said that the plan cannot be applied in place (once).
    told_cannot_apply: bool,
    /// Said that the REST API gives no max parallelism for some vertex (once).
    told_max_parallelism_unknown: bool,
    /// Its claim on a session cluster's task slots, from its last decision.
    slot_ask: Option<SlotAsk>,
    /// Slots the step applied since that decision asked for: held already, though the
    /// decision does not know it yet.
    applied_slots: Option<u32>,
    /// Where each Kafka source's backlog came from last time it was said (AT130), by vertex id.
    backlog_said: HashMap<String, String>,
    /// The rescale applied last, until the job runs again at its new shape.
    rescale: Option<RescaleInFlight>,
}

/// A rescale asked of the adaptive scheduler and not yet seen through.
#[derive(Debug, Clone)]
struct RescaleInFlight {
    requested_ms: i64,
    /// Each vertex's parallelism when it was asked for, in the shape's order.
    before: Vec<(String, String, u32)>,
}

/// A rescale not seen through this long after its request is forgotten: the job did not run
/// again at a new shape (the scheduler found no slots, or it failed over).
const RESCALE_FORGOTTEN_AFTER_MS: i64 = 10 * 60 * 1000;

impl JobScaling {
    /// A job seen for the first time by this coordinator: what the scaling model remembered of
    /// it is read back from its folder when kept there (a JobManager restarted with HA, or
    /// the job resubmitted with the same id), so pending scale-downs keep their age and a
    /// scale-up is still judged. A history that cannot be read is said, and the job starts
    /// afresh.
    pub fn read_back(files: &JobFiles, job_id: &str, announcer: &Announcer) -> JobScaling {
        match files.scaling_history(job_id) {
            Ok(Some(history)) => {
                announcer.info(&format!(
                    "AUTOTUNE COORDINATOR job {job_id}: scaling history read back ({} vertices) from {}",
                    history.vertices(),
                    files.scaling_history_shown(job_id)
                ));
                JobScaling {
                    history,
                    ..JobScaling::default()
                }
            }
            Ok(None) => JobScaling::default(),
            Err(e) => {
                announcer.warn(&format!(
                    "AUTOTUNE COORDINATOR job {job_id}: scaling history in {} not read ({e}); the job starts afresh",
                    files.scaling_history_shown(job_id)
                ));
                JobScaling::default()
            }
        }
    }
}

impl JobScaling {
    /// Its claim on the cluster's slots now, a step applied since its decision counted held.
    pub fn slot_claim(&self) -> Option<SlotAsk> {
        let mut ask = self.slot_ask.clone()?;
        if let Some(applied) = self.applied_slots {
            ask.held = applied;
        }
        Some(ask)
    }
}

/// A decision on one window.
#[derive(Debug, Clone)]
pub struct Decided {
    pub snapshot: JobSnapshot,
    pub decision: JobDecision,
    /// False when it is the decision made last time: nothing was said or written.
    pub fresh: bool,
}

/// Decides on the window, says and writes the decision when it differs from the last one.
pub fn decide_on_window(
    job: &mut JobScaling,
    settings: &JobSettings,
    recording: &Recording,
    files: &mut JobFiles,
    announcer: &Announcer,
) -> Result<Decided, String> {
    let snapshot = recording.snapshot();
    let at_ms = recording.end_ms();
    say_unknown_max_parallelism(job, recording, announcer);
    say_backlog_source(job, settings, recording, &snapshot, announcer);
    let decision =
        decide(&snapshot, &settings.scaling, &mut job.history, at_ms).map_err(|e| e.to_string())?;
    job.parallelism = Some(decision.vertices.iter().map(|v| v.recommended).collect());
    job.slot_ask = Some(SlotAsk::of_decision(
        &snapshot.job_id,
        &snapshot.job_name,
        &decision,
    ));
    job.applied_slots = None;
    // A job that stays as it is would otherwise fill the log with the same lines every round.
    let gist = decision.gist();
    let fresh = job.last_gist.as_ref() != Some(&gist);
    if fresh {
        job.last_gist = Some(gist);
        for line in decision.log_lines(&snapshot) {
            announcer.info(&line);
        }
    } else {
        log::debug!(
            "AUTOTUNE COORDINATOR job {} unchanged: {}",
            snapshot.job_id,
            decision.parallelism_overrides()
        );
    }
    // A disk that refuses the files silences no decision and blocks no rescale.
    // Both are tried: the recommendation is kept in memory even when its file is not written.
    let decision_written = match fresh {
        true => write(files, &snapshot, &decision, at_ms),
        false => Ok(()),
    };
    let window_written = files.history(&snapshot.job_id, &window_line(&snapshot, &decision, at_ms));
    let history_kept = files.keep_scaling_history(&snapshot.job_id, &job.history);
    files.settle(
        decision_written.and(window_written).and(history_kept),
        at_ms,
        announcer,
    );
    Ok(Decided {
        snapshot,
        decision,
        fresh,
    })
}

/// Every window's figures, compact: what the job's report draws over time.
fn window_line(snapshot: &JobSnapshot, decision: &JobDecision, at_ms: i64) -> serde_json::Value {
    let vertices: Vec<serde_json::Value> = decision
        .vertices
        .iter()
        .map(|v| {
            let e = &v.evidence;
            serde_json::json!({
                "id": v.id, "name": v.name, "parallelism": v.current, "recommended": v.recommended,
                "true_rate": e.true_rate, "arrival_rate": e.arrival_rate, "catch_up_rate": e.catch_up_rate,
                "records_in_rate": e.records_in_rate, "busy_max": e.busy_max,
                "backpressure": e.backpressure, "pending_records": e.pending_records,
            })
        })
        .collect();
    let edges: Vec<[usize; 2]> = snapshot.edges.iter().map(|e| [e.from, e.to]).collect();
    serde_json::json!({
        "at_ms": at_ms, "job_id": snapshot.job_id, "job_name": snapshot.job_name,
        "window": { "vertices": vertices, "edges": edges, "bottleneck": decision.bottleneck },
    })
}

/// Vertices whose max parallelism the REST API does not give (older releases) are sized
/// without key groups: said once per job.
fn say_unknown_max_parallelism(job: &mut JobScaling, recording: &Recording, announcer: &Announcer) {
    if job.told_max_parallelism_unknown {
        return;
    }
    let unknown: Vec<String> = recording
        .shape
        .vertices
        .iter()
        .filter(|v| v.max_parallelism.is_none())
        .map(|v| format!("vertex {} ({})", quoted(&v.name), v.id))
        .collect();
    if unknown.is_empty() {
        return;
    }
    job.told_max_parallelism_unknown = true;
    announcer.info(&format!(
        "AUTOTUNE COORDINATOR job={} ({}): the REST API gives no max parallelism for {}: their key groups are not taken into account (set pipeline.max-parallelism to have them)",
        quoted(&recording.shape.job_name),
        recording.shape.job_id,
        unknown.join(", ")
    ));
}

/// Where each Kafka source's backlog and arrivals come from (AT130), said when it changes:
/// the brokers, or the reader's `pendingRecords` and why.
fn say_backlog_source(
    job: &mut JobScaling,
    settings: &JobSettings,
    recording: &Recording,
    snapshot: &JobSnapshot,
    announcer: &Announcer,
) {
    for (&v, names) in &recording.shape.source_metrics {
        let kafka_reader = !names.offsets.is_empty();
        if !kafka_reader && (settings.kafka.is_none() || names.pending.is_empty()) {
            continue; // not a Kafka reader: nothing to say of brokers
        }
        let vertex = &snapshot.vertices[v];
        let (gist, detail) = match (vertex.arrival_rate, &settings.kafka) {
            // A replayed window read from the brokers is theirs, whatever the replay is told.
            (Some(arrival), target) => {
                let unread = vertex.backlog_partial.map_or(0, |p| p.unread_partitions);
                let left_out = match unread {
                    0 => String::new(),
                    n => format!("; {n} partitions the reader has not read from yet are left out of the backlog until it does"),
                };
                (
                    "brokers".to_string(),
                    format!(
                        "from=brokers partitions={} backlog={:.0} arrival={arrival:.1}/s | the backlog is the end offsets at {} minus the reader's positions, arrivals the growth of the end offsets: neither depends on back-pressure{left_out}",
                        names.offsets.len(),
                        vertex.pending_records.unwrap_or(0.0),
                        target.as_ref().map_or("the brokers", |t| t.bootstrap.as_str())
                    ),
                )
            }
            (_, None) => (
                "unset".to_string(),
                "from=pendingRecords | kafka.bootstrap-servers is not set: the backlog is the reader's pendingRecords, a lower bound while the reader is back-pressured, and arrivals are read from its changes; set it to read the brokers".to_string(),
            ),
            (None, Some(_)) if names.partitions().is_none() => (
                "unnamed".to_string(),
                "from=pendingRecords | the source's metrics name no partition (KafkaSourceReader.topic.<topic>.partition.<n>.currentOffset), so the brokers cannot be asked for them".to_string(),
            ),
            (None, Some(target)) => (
                "unread".to_string(),
                format!(
                    "from=pendingRecords | the brokers at {} were not read in every poll of the window (AT131 says why): no decision rests on a window read half from them",
                    target.bootstrap
                ),
            ),
        };
        if job.backlog_said.get(&vertex.id) == Some(&gist) {
            continue;
        }
        job.backlog_said.insert(vertex.id.clone(), gist);
        announcer.info(&format!(
            "AUTOTUNE {} job={} ({}) vertex={} ({}) {detail}",
            Code::BacklogSource,
            quoted(&snapshot.job_name),
            snapshot.job_id,
            quoted(&vertex.name),
            vertex.id
        ));
    }
}

/// The job's config file gets the overrides; its history the decision, when it says
/// something (a change or a finding).
fn write(
    files: &mut JobFiles,
    snapshot: &JobSnapshot,
    decision: &JobDecision,
    at_ms: i64,
) -> std::io::Result<()> {
    files.recommend(&snapshot.job_id, &snapshot.job_name, at_ms, |r| {
        r.parallelism_overrides = Some(decision.parallelism_overrides())
    })?;
    let says_something = decision.changes().next().is_some()
        || !decision.findings.is_empty()
        || decision.vertices.iter().any(|v| !v.findings.is_empty());
    if !says_something {
        return Ok(());
    }
    files.history(
        &snapshot.job_id,
        &serde_json::json!({ "at_ms": at_ms, "job_id": snapshot.job_id, "job_name": snapshot.job_name, "decision": decision }),
    )
}

/// Where and when a decision is applied: the job's REST API, the job as the poll saw it, its
/// share of the cluster's slots and the time it is asked.
pub struct ApplyTo<'a> {
    pub rest: &'a FlinkRest,
    pub details: &'a JobDetails,
    /// The task slots the cluster's slot plan gives the job when jobs compete for them (AT129).
    pub share: Option<u32>,
    pub now_ms: i64,
}

/// In `mode: apply`, a fresh decision that changes something is sent to the adaptive
/// scheduler (AT103); a job that cannot take it is told once why not (AT104). The step stays
/// within the job's `share` of the slots, and a decision said before is sent again once its
/// share grows.
pub fn apply_if_asked(
    job: &mut JobScaling,
    settings: &JobSettings,
    to: ApplyTo<'_>,
    decided: &Decided,
    announcer: &Announcer,
) {
    let ApplyTo {
        rest,
        details,
        share,
        now_ms,
    } = to;
    if settings.mode != Mode::Apply || decided.decision.changes().next().is_none() {
        return;
    }
    let step = within_share(
        step_to_apply(&decided.decision, settings.apply_max_step),
        share,
        &decided.decision,
    );
    let moves = step
        .plan
        .iter()
        .zip(&decided.decision.vertices)
        .any(|((_, p), v)| *p != v.current);
    if !moves || !(decided.fresh || share.is_some()) {
        return;
    }
    let snapshot = &decided.snapshot;
    let job_ref = format!("job={} ({})", quoted(&snapshot.job_name), snapshot.job_id);
    let why_not = match details.scheduler_type.as_deref() {
        Some(scheduler) if !scheduler.eq_ignore_ascii_case("adaptive") => Some(format!(
            "the job runs with the {scheduler} scheduler; rescaling in place needs jobmanager.scheduler: adaptive (Flink 1.18+)"
        )),
        _ => match rest.set_parallelism(&snapshot.job_id, &step.plan) {
            Ok(()) => {
                job.applied_slots = step.plan.iter().map(|(_, p)| *p).max();
                job.rescale = Some(RescaleInFlight {
                    requested_ms: now_ms,
                    before: details
                        .vertices
                        .iter()
                        .map(|v| (v.id.clone(), v.name.clone(), v.parallelism))
                        .collect(),
                });
                say_applied(&step, snapshot, &job_ref, announcer);
                None
            }
            Err(e) => Some(format!(
                "the JobManager refused the new resource requirements ({e}); rescaling in place needs jobmanager.scheduler: adaptive (Flink 1.18+)"
            )),
        },
    };
    if let Some(reason) = why_not {
        if !job.told_cannot_apply {
            job.told_cannot_apply = true;
            announcer.warn(&format!(
                "AUTOTUNE {} {job_ref} | {reason}; the plan stays a recommendation",
                Code::ApplyUnavailable
            ));
        }
    }
}

impl JobScaling {
    /// A rescale was applied and the job has not been seen running at its new shape yet.
    pub fn rescale_in_flight(&self) -> bool {
        self.rescale.is_some()
    }
}

/// The rescale applied last, seen through: once the job runs again with every vertex
/// redeployed after the request and every subtask RUNNING, its downtime (the request until
/// the last subtask ran; where `/subtasktimes` cannot be read, until the last vertex was
/// deployed) is said (AT132), written to the job's decisions and kept in its history, where
/// the next decisions count it. Returns the downtime, seconds.
///
/// Flink 2.3's rescale history (`/jobs/<id>/rescales/history`) is not used: it is off unless
/// `web.adaptive-scheduler.rescale-history.size` is set, and it ends a rescale when the new
/// graph starts executing, before its tasks are deployed and their state restored.
pub fn see_rescale_through(
    job: &mut JobScaling,
    rest: &FlinkRest,
    details: &JobDetails,
    now_ms: i64,
    files: &mut JobFiles,
    announcer: &Announcer,
) -> Option<f64> {
    let rescale = job.rescale.as_ref()?;
    if now_ms - rescale.requested_ms > RESCALE_FORGOTTEN_AFTER_MS {
        log::debug!(
            "AUTOTUNE COORDINATOR job {}: the rescale asked for at {} was not seen through",
            details.jid,
            rescale.requested_ms
        );
        job.rescale = None;
        return None;
    }
    let redeployed = details
        .vertices
        .iter()
        .all(|v| v.start_time >= rescale.requested_ms);
    if details.state != "RUNNING" || details.vertices.is_empty() || !redeployed {
        return None;
    }
    let mut running_ms = details.vertices.iter().map(|v| v.start_time).max()?;
    for v in &details.vertices {
        match rest.vertex_running_since(&details.jid, &v.id) {
            Ok(Some(running)) => running_ms = running_ms.max(running),
            Ok(None) => return None, // a subtask still deploying or restoring: not yet
            Err(e) => log::debug!(
                "AUTOTUNE COORDINATOR subtask times of {} not read: {e}",
                v.id
            ),
        }
    }
    let downtime_s = (running_ms - rescale.requested_ms) as f64 / 1000.0;
    let estimate_s = job.history.note_rescale_downtime(downtime_s);
    // Each vertex that changed: (name, before, now).
    let changes: Vec<(&str, u32, u32)> = rescale
        .before
        .iter()
        .filter_map(|(id, name, before)| {
            let now = details.vertices.iter().find(|v| &v.id == id)?.parallelism;
            (now != *before).then_some((name.as_str(), *before, now))
        })
        .collect();
    let said: Vec<String> = changes
        .iter()
        .map(|(name, before, now)| format!("{} {before}->{now}", quoted(name)))
        .collect();
    let kept: Vec<serde_json::Value> = changes
        .iter()
        .map(|(name, before, now)| serde_json::json!({"name": name, "from": before, "to": now}))
        .collect();
    announcer.info(&format!(
        "AUTOTUNE {} job={} ({}) downtime={downtime_s:.1}s estimate={estimate_s:.1}s | {}: from the request to the adaptive scheduler until every subtask ran again; the next decisions count it (what arrives meanwhile joins the catch-up; a scale-up to catch up that would not drain sooner is not made)",
        Code::RescaleDowntime,
        quoted(&details.name),
        details.jid,
        if said.is_empty() { "parallelism unchanged".to_string() } else { said.join(", ") },
    ));
    let line = serde_json::json!({
        "at_ms": now_ms, "job_id": details.jid, "job_name": details.name,
        "rescale": {
            "requested_ms": rescale.requested_ms, "running_ms": running_ms,
            "downtime_s": downtime_s, "estimate_s": estimate_s, "changes": kept,
        },
    });
    let written = files
        .history(&details.jid, &line)
        .and(files.keep_scaling_history(&details.jid, &job.history));
    files.settle(written, now_ms, announcer);
    job.rescale = None;
    Some(downtime_s)
}

fn say_applied(step: &AppliedStep, snapshot: &JobSnapshot, job_ref: &str, announcer: &Announcer) {
    let bounded = if step.bounded.is_empty() {
        String::new()
    } else {
        format!("; a step of the plan: {}", step.bounded.join(", "))
    };
    let beyond = beyond_slots(&step.plan, snapshot.available_slots);
    announcer.info(&format!(
        "AUTOTUNE {} {job_ref} | asked the adaptive scheduler for pipeline.jobvertex-parallelism-overrides={}{bounded}{}",
        Code::Applied,
        overrides(step.plan.iter().map(|(id, p)| (id.as_str(), *p))),
        beyond.unwrap_or_default()
    ));
}

/// The step cut to the job's share of the cluster's slots (one slot sharing group: no vertex
/// wider than the share), never below what a vertex has.
fn within_share(mut step: AppliedStep, share: Option<u32>, decision: &JobDecision) -> AppliedStep {
    let Some(share) = share else {
        return step;
    };
    for ((_, p), v) in step.plan.iter_mut().zip(&decision.vertices) {
        let cut = share.max(v.current.min(*p));
        if *p > cut {
            step.bounded.push(format!(
                "vertex {} ({}) {}->{cut} of {}->{} by the cluster's slot plan ({})",
                quoted(&v.name),
                v.id,
                v.current,
                v.current,
                v.recommended,
                Code::ClusterSlotPlan
            ));
            *p = cut;
        }
    }
    step
}

/// What is sent to the scheduler: per vertex, the recommended parallelism, or a step
/// towards it.
#[derive(Debug, Clone, PartialEq)]
pub struct AppliedStep {
    pub plan: Vec<(String, u32)>,
    /// Why a vertex gets less than recommended, one phrase each.
    pub bounded: Vec<String>,
}

/// A scale-up grows a vertex at most `max_step` times: the next decision, made on what the
/// step bought, goes on, so a misread rate cannot take a job to its limit at once.
pub fn step_to_apply(decision: &JobDecision, max_step: f64) -> AppliedStep {
    let mut bounded = Vec::new();
    let plan = decision
        .vertices
        .iter()
        .map(|v| {
            let (current, recommended) = (v.current.max(1), v.recommended);
            let by_step = ((current as f64 * max_step).floor() as u32).max(current + 1);
            if recommended <= by_step {
                return (v.id.clone(), recommended);
            }
            bounded.push(format!(
                "vertex {} ({}) {current}->{by_step} of {current}->{recommended} by apply-max-step {max_step}",
                quoted(&v.name),
                v.id
            ));
            (v.id.clone(), by_step)
        })
        .collect();
    AppliedStep { plan, bounded }
}

/// More slots than the cluster has are asked for only after AT124 said so: on a cluster
/// that starts TaskManagers on demand (native Kubernetes, YARN) they come; elsewhere the
/// scheduler runs with what it has, and the next decision judges what that bought.
fn beyond_slots(plan: &[(String, u32)], available_slots: Option<u32>) -> Option<String> {
    let needed = plan.iter().map(|(_, p)| *p).max()?;
    let available = available_slots.filter(|s| needed > *s)?;
    Some(format!(
        "; it needs {needed} task slots where the cluster has {available} ({})",
        Code::SlotsShort
    ))
}

/// Slots the job may use: the free ones plus those it holds (one slot sharing group).
pub fn available_slots(rest: &FlinkRest, held: u32) -> Option<u32> {
    rest.overview().ok().map(|o| o.slots_available + held)
}

/// Forgets the jobs that are gone.
pub fn retain(jobs: &mut HashMap<String, JobScaling>, live: impl Fn(&str) -> bool) {
    jobs.retain(|id, _| live(id));
}
