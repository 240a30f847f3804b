//! The scaling half of a round: a decision on one recorded window (its lines, its files),
//! and applying it in place through the adaptive scheduler.

use std::collections::HashMap;

use autotune_model::duration;
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
    /// The rescale applied last, until a window at its new shape is decided on: until then it
    /// may be rolled back.
    rescale: Option<RescaleInFlight>,
    /// A decision a quiet window held back (said once): applied once the window ends.
    held_by_quiet: bool,
}

/// A rescale asked of the adaptive scheduler and not yet proven.
#[derive(Debug, Clone)]
struct RescaleInFlight {
    requested_ms: i64,
    /// Each vertex's parallelism when it was asked for, in the shape's order: what worked.
    before: Vec<(String, String, u32)>,
    /// What was asked, by vertex id.
    asked: Vec<(String, u32)>,
    /// Its downtime was said: every subtask ran at the new shape.
    ran: bool,
}

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
    if job.rescale.as_ref().is_some_and(|r| r.ran) {
        // A window at the new shape was decided on: the rescale worked.
        job.rescale = None;
    }
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
    /// The task slots the cluster's quota leaves the job (`cluster-max-slots`, AT137).
    pub cluster_room: Option<u32>,
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
        cluster_room,
        now_ms,
    } = to;
    if settings.mode != Mode::Apply || decided.decision.changes().next().is_none() {
        return;
    }
    let step = step_to_apply(&decided.decision, settings.apply_max_step);
    let step = within_slots(step, share, &decided.decision, SlotCap::SlotPlan);
    let step = within_slots(step, cluster_room, &decided.decision, SlotCap::ClusterQuota);
    let moves = step
        .plan
        .iter()
        .zip(&decided.decision.vertices)
        .any(|((_, p), v)| *p != v.current);
    if !moves || !(decided.fresh || share.is_some() || job.held_by_quiet) {
        return;
    }
    let snapshot = &decided.snapshot;
    let job_ref = format!("job={} ({})", quoted(&snapshot.job_name), snapshot.job_id);
    if hold_for_quiet_window(job, settings, &step, &job_ref, now_ms, announcer) {
        return;
    }
    let why_not = match details.scheduler_type.as_deref() {
        Some(scheduler) if !scheduler.eq_ignore_ascii_case("adaptive") => Some(format!(
            "the job runs with the {scheduler} scheduler; rescaling in place needs jobmanager.scheduler: adaptive (Flink 1.18+)"
        )),
        _ => match rest.set_parallelism(&snapshot.job_id, &step.plan) {
            Ok(()) => {
                job.applied_slots = step.plan.iter().map(|(_, p)| *p).max();
                job.history.note_rescale_applied();
                job.rescale = Some(RescaleInFlight {
                    requested_ms: now_ms,
                    before: details
                        .vertices
                        .iter()
                        .map(|v| (v.id.clone(), v.name.clone(), v.parallelism))
                        .collect(),
                    asked: step.plan.clone(),
                    ran: false,
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

/// A quiet window holds the apply back (AT136, said once while it holds); the decision is
/// applied once the window is over. Returns whether it holds.
fn hold_for_quiet_window(
    job: &mut JobScaling,
    settings: &JobSettings,
    step: &AppliedStep,
    job_ref: &str,
    now_ms: i64,
    announcer: &Announcer,
) -> bool {
    let Some(window) = settings.quiet_windows.holding_at(now_ms) else {
        job.held_by_quiet = false;
        return false;
    };
    if !job.held_by_quiet {
        job.held_by_quiet = true;
        announcer.info(&format!(
            "AUTOTUNE {} {job_ref} window={} | pipeline.jobvertex-parallelism-overrides={} is not applied while the quiet window holds; it stays the recommendation and is applied at the first decision after the window",
            Code::QuietWindow,
            quoted(window),
            overrides(step.plan.iter().map(|(id, p)| (id.as_str(), *p)))
        ));
    }
    true
}

impl JobScaling {
    /// A rescale was applied and has not proven itself yet (a window at its new shape).
    pub fn rescale_in_flight(&self) -> bool {
        self.rescale.is_some()
    }

    /// Rescales applied in place, and how many were rolled back.
    pub fn rescales(&self) -> (u64, u64) {
        self.history.rescales()
    }
}

/// Where a job and the world are while its last rescale is watched.
pub struct Watched<'a> {
    pub rest: &'a FlinkRest,
    pub details: &'a JobDetails,
    pub settings: &'a JobSettings,
    pub now_ms: i64,
}

/// The rescale applied last, watched until a window at its new shape is decided on: seen
/// through once every subtask runs (AT132); rolled back (AT135) when the job fails over
/// `rollback.failovers` times meanwhile, or is not running at its new shape within
/// `rollback.timeout`. A rescale the scheduler never made (no slots came) is forgotten.
pub fn watch_rescale(
    job: &mut JobScaling,
    watched: Watched<'_>,
    files: &mut JobFiles,
    announcer: &Announcer,
) {
    let Some(rescale) = job.rescale.clone() else {
        return;
    };
    let Watched {
        rest,
        details,
        settings,
        now_ms,
    } = watched;
    if let Some(why) = why_roll_back(&rescale, rest, details, settings, now_ms) {
        roll_back(job, &rescale, &why, watched, files, announcer);
        return;
    }
    if rescale.ran || details.state != "RUNNING" {
        return;
    }
    let seen = see_rescale_through(job, rest, details, now_ms, files, announcer).is_some();
    let overdue = now_ms - rescale.requested_ms > settings.rollback.timeout.as_millis() as i64;
    if !seen && overdue {
        log::debug!(
            "AUTOTUNE COORDINATOR job {}: the rescale asked for at {} was not made (no slots came): forgotten",
            details.jid,
            rescale.requested_ms
        );
        job.rescale = None;
    }
}

/// Why the rescale must be rolled back, if it must.
fn why_roll_back(
    rescale: &RescaleInFlight,
    rest: &FlinkRest,
    details: &JobDetails,
    settings: &JobSettings,
    now_ms: i64,
) -> Option<String> {
    let rollback = &settings.rollback;
    if rollback.failovers > 0 {
        if let Ok(exceptions) = rest.exceptions(&details.jid) {
            let since: Vec<_> = exceptions
                .history
                .entries
                .iter()
                .filter(|e| e.timestamp >= rescale.requested_ms)
                .collect();
            if since.len() >= rollback.failovers as usize {
                let last = since
                    .iter()
                    .max_by_key(|e| e.timestamp)
                    .and_then(|e| e.stacktrace.lines().next())
                    .unwrap_or("");
                return Some(format!(
                    "the job failed over {} times since the rescale (the last: {})",
                    since.len(),
                    quoted(last.trim())
                ));
            }
        }
    }
    let overdue = now_ms - rescale.requested_ms > rollback.timeout.as_millis() as i64;
    (overdue && !rescale.ran && details.state != "RUNNING").then(|| {
        format!(
            "the job was not running at its new shape {} after the rescale (it is {})",
            duration::format(rollback.timeout),
            details.state
        )
    })
}

/// Asks the scheduler for the parallelism that worked, says so (AT135), and keeps the
/// rollback in the job's history: each vertex it narrows is held there for `rollback.hold`.
fn roll_back(
    job: &mut JobScaling,
    rescale: &RescaleInFlight,
    why: &str,
    watched: Watched<'_>,
    files: &mut JobFiles,
    announcer: &Announcer,
) {
    let Watched {
        rest,
        details,
        settings,
        now_ms,
    } = watched;
    job.rescale = None;
    job.last_gist = None;
    job.applied_slots = None;
    let plan: Vec<(String, u32)> = rescale
        .before
        .iter()
        .map(|(id, _, p)| (id.clone(), *p))
        .collect();
    // (id, name, back to, failed at) of each vertex the rescale had changed.
    let changed: Vec<(&str, &str, u32, u32)> = rescale
        .before
        .iter()
        .filter_map(|(id, name, before)| {
            let asked = rescale.asked.iter().find(|(a, _)| a == id)?.1;
            (asked != *before).then_some((id.as_str(), name.as_str(), *before, asked))
        })
        .collect();
    let job_ref = format!("job={} ({})", quoted(&details.name), details.jid);
    let said: Vec<String> = changed
        .iter()
        .map(|(_, name, back, failed)| format!("{} {failed}->{back}", quoted(name)))
        .collect();
    let hold = duration::format(settings.rollback.hold);
    match rest.set_parallelism(&details.jid, &plan) {
        Ok(()) => {
            let narrowed: Vec<(&str, u32, u32)> = changed
                .iter()
                .map(|(id, _, back, failed)| (*id, *back, *failed))
                .collect();
            job.history
                .note_rollback(&narrowed, now_ms, settings.rollback.hold);
            announcer.warn(&format!(
                "AUTOTUNE {} {job_ref} | {why}: rolled back to the parallelism that worked, pipeline.jobvertex-parallelism-overrides={} ({}); no vertex is scaled above it for {hold}",
                Code::RolledBack,
                overrides(plan.iter().map(|(id, p)| (id.as_str(), *p))),
                said.join(", ")
            ));
        }
        Err(e) => announcer.warn(&format!(
            "AUTOTUNE {} {job_ref} | {why}, but the JobManager refused the rollback to the parallelism that worked ({e}): set pipeline.jobvertex-parallelism-overrides={} yourself",
            Code::RolledBack,
            overrides(plan.iter().map(|(id, p)| (id.as_str(), *p)))
        )),
    }
    let line = serde_json::json!({
        "at_ms": now_ms, "job_id": details.jid, "job_name": details.name,
        "rollback": {
            "requested_ms": rescale.requested_ms, "why": why, "hold_s": settings.rollback.hold.as_secs(),
            "changes": changed.iter().map(|(_, name, back, failed)| serde_json::json!({"name": name, "from": failed, "to": back})).collect::<Vec<_>>(),
        },
    });
    let written = files
        .history(&details.jid, &line)
        .and(files.keep_scaling_history(&details.jid, &job.history));
    files.settle(written, now_ms, announcer);
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
    let rescale = job.rescale.as_ref().filter(|r| !r.ran)?;
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
    if let Some(r) = job.rescale.as_mut() {
        r.ran = true;
    }
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

/// What cuts a step to fewer task slots.
#[derive(Clone, Copy)]
enum SlotCap {
    /// The job's share when jobs compete for the free slots (AT129).
    SlotPlan,
    /// What `cluster-max-slots` leaves the job (AT137).
    ClusterQuota,
}

/// The step cut to `slots` (one slot sharing group: no vertex wider), never below what a
/// vertex has.
fn within_slots(
    mut step: AppliedStep,
    slots: Option<u32>,
    decision: &JobDecision,
    cap: SlotCap,
) -> AppliedStep {
    let Some(slots) = slots else {
        return step;
    };
    let by = match cap {
        SlotCap::SlotPlan => format!("the cluster's slot plan ({})", Code::ClusterSlotPlan),
        SlotCap::ClusterQuota => format!(
            "cluster-max-slots, which leaves the job {slots} task slots ({})",
            Code::SlotQuota
        ),
    };
    for ((_, p), v) in step.plan.iter_mut().zip(&decision.vertices) {
        let cut = slots.max(v.current.min(*p));
        if *p > cut {
            step.bounded.push(format!(
                "vertex {} ({}) {}->{cut} of {}->{} by {by}",
                quoted(&v.name),
                v.id,
                v.current,
                v.current,
                v.recommended,
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
