//! The coordinator's diagnosis of every job: its exceptions (root cause and history) and its
//! checkpoints from the REST API, plus the JobManager's own log. Findings are said once per
//! job (then with their count at most every `diagnosis-repeat`), written to the job's
//! recommended config and history, and posted to the webhook.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use autotune_model::diagnosis::checkpoints::{self, CheckpointSample, CheckpointView};
use autotune_model::diagnosis::logtext::{records, Record};
use autotune_model::diagnosis::matcher::Origin;
use autotune_model::diagnosis::{
    Catalogue, Context, Diagnoser, Finding, FlinkVersion, Process, Severity,
};
use autotune_model::memory::{self, human, MemoryPlan, MemorySettings};
use autotune_model::text::quoted;

use crate::announce::Announcer;
use crate::memory_step::JobMemory;
use crate::outputs::JobFiles;
use crate::pools::WindowCache;
use crate::process_diagnosis::ProcessDiagnostics;
use crate::rest::{CheckpointConfig, ExceptionEntry, FlinkRest, JobExceptions, JobOverview};
use crate::stop::StopFlag;

const TERMINAL: &[&str] = &["FAILED", "CANCELED", "FINISHED", "SUSPENDED"];

struct JobDiagnosis {
    diagnoser: Diagnoser,
    /// Exceptions up to this timestamp were read.
    last_exception_ms: i64,
    /// Failed checkpoints up to this id were read.
    last_failed_checkpoint: u64,
    /// A finished job was read to its end: nothing more to ask.
    done: bool,
    /// Completed checkpoints at the last advice: advice counts once per new checkpoint.
    completed_checkpoints: u64,
    /// The job's checkpointing settings (`None` inside: it does not checkpoint), read once:
    /// they are fixed for the job's life.
    checkpointing: Option<Option<CheckpointConfig>>,
}

impl JobDiagnosis {
    fn new(catalogue: &Arc<Catalogue>) -> Self {
        JobDiagnosis {
            diagnoser: Diagnoser::new(catalogue.clone()),
            last_exception_ms: 0,
            last_failed_checkpoint: 0,
            checkpointing: None,
            done: false,
            completed_checkpoints: 0,
        }
    }
}

pub struct JobsDiagnosis {
    catalogue: Arc<Catalogue>,
    process: Option<ProcessDiagnostics>,
    jobs: HashMap<String, JobDiagnosis>,
    version: Option<FlinkVersion>,
    repeat: Duration,
    every_ms: i64,
    last_tick_ms: Option<i64>,
    /// The vertex the scaling model last named the bottleneck, per job.
    pub bottlenecks: HashMap<String, String>,
    /// How the memory model judges heap pressure (the same margins).
    pub memory: MemorySettings,
    /// Only this job is diagnosed (`watch --job`); `None`: every job.
    pub only_job: Option<String>,
}

impl JobsDiagnosis {
    /// How many of the job's findings there are of each severity (those it has).
    pub fn findings_by_severity(&self, job_id: &str) -> Vec<(Severity, usize)> {
        let mut counts: Vec<(Severity, usize)> = Vec::new();
        let findings = self.jobs.get(job_id).map(|j| j.diagnoser.findings());
        for f in findings.unwrap_or_default() {
            match counts.iter_mut().find(|(s, _)| *s == f.severity) {
                Some((_, n)) => *n += 1,
                None => counts.push((f.severity, 1)),
            }
        }
        counts
    }

    pub fn new(
        catalogue: Arc<Catalogue>,
        process: Option<ProcessDiagnostics>,
        repeat: Duration,
        every: Duration,
        memory: MemorySettings,
    ) -> Self {
        JobsDiagnosis {
            catalogue,
            process,
            jobs: HashMap::new(),
            version: None,
            repeat,
            every_ms: every.as_millis() as i64,
            last_tick_ms: None,
            bottlenecks: HashMap::new(),
            memory,
            only_job: None,
        }
    }

    /// Forgets what it knew of jobs no longer listed.
    fn retain_jobs(&mut self, listed: &HashSet<&str>) {
        self.jobs.retain(|id, _| listed.contains(id.as_str()));
        self.bottlenecks
            .retain(|id, _| listed.contains(id.as_str()));
    }
}

/// Codes of a TaskManager going away (its heartbeat, its connections).
const LOST_TASKMANAGER: &[&str] = &["AT330", "AT331", "AT332"];

/// Whether a job failure says a TaskManager went away (and took its own log's story with it).
fn lost_taskmanager(catalogue: &Catalogue, record: &Record) -> bool {
    record.chain.iter().any(|t| {
        let text = t.headline();
        text.contains("The TaskExecutor is shutting down")
            || catalogue
                .matching(&text)
                .iter()
                .any(|&i| LOST_TASKMANAGER.contains(&catalogue.signatures[i].code.as_str()))
    })
}

fn context(
    rest: &FlinkRest,
    windows: &WindowCache,
    job_id: &str,
    version: Option<FlinkVersion>,
    plan: Option<&MemoryPlan>,
) -> Context {
    let mut config: BTreeMap<String, String> = rest
        .jobmanager_config()
        .map(|c| c.into_iter().collect())
        .unwrap_or_default();
    let taskmanagers = rest.taskmanagers().unwrap_or_default();
    // What each pool really is, where the config leaves it to fractions; a TaskManager that
    // died of the failure being diagnosed is no longer listed, but its layout was seen.
    let layout = taskmanagers
        .iter()
        .find_map(|t| t.memory)
        .or_else(|| windows.taskmanagers().find_map(|t| t.memory));
    if let Some(m) = layout {
        let sizes = [
            ("taskmanager.memory.task.heap.size", m.task_heap),
            ("taskmanager.memory.task.off-heap.size", m.task_off_heap),
            ("taskmanager.memory.managed.size", m.managed_memory),
            ("taskmanager.memory.network.max", m.network_memory),
            ("taskmanager.memory.network.min", m.network_memory),
            ("taskmanager.memory.jvm-metaspace.size", m.jvm_metaspace),
            ("taskmanager.memory.jvm-overhead.max", m.jvm_overhead),
        ];
        for (key, bytes) in sizes {
            config
                .entry(key.to_string())
                .or_insert_with(|| autotune_model::memory::size(bytes));
        }
    }
    let mut plan: BTreeMap<String, String> = plan
        .map(|p| {
            p.config_keys()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect()
        })
        .unwrap_or_default();
    // Slots the job needs (one slot-sharing group: its widest vertex) spread over the
    // TaskManagers there are, when they have fewer.
    if let (Ok(details), false) = (rest.job(job_id), taskmanagers.is_empty()) {
        let needed = details
            .vertices
            .iter()
            .map(|v| v.parallelism)
            .max()
            .unwrap_or(0);
        let have: u32 = taskmanagers.iter().map(|t| t.slots).sum();
        if needed > have {
            let per_tm = needed.div_ceil(taskmanagers.len() as u32);
            plan.insert("taskmanager.numberOfTaskSlots".into(), per_tm.to_string());
        }
    }
    Context {
        // A job's exceptions are its tasks', unless their frames show the JobManager (a
        // source enumerator's failure); the JobManager's other failures are in its log.
        process: Process::TaskManager,
        version,
        config,
        plan,
        ..Context::default()
    }
}

/// What a diagnosis tick reads and writes besides its own state.
pub struct TickInputs<'a> {
    pub rest: &'a FlinkRest,
    pub windows: &'a WindowCache,
    /// The job listing when the caller has one fresh; `None`: read it.
    pub jobs: Option<&'a [JobOverview]>,
    /// The memory plan last made per job: its keys are the values findings suggest.
    pub plans: &'a HashMap<String, JobMemory>,
    pub now_ms: i64,
    pub stop: &'a StopFlag,
}

/// Looks at every job (and the JobManager's log) if it is time; says what is due.
pub fn tick(
    diag: &mut JobsDiagnosis,
    inputs: TickInputs<'_>,
    files: &mut JobFiles,
    announcer: &mut Announcer,
) {
    let now_ms = inputs.now_ms;
    if !diag.time_to_look(now_ms) {
        return;
    }
    if diag.version.is_none() {
        diag.version = inputs
            .rest
            .flink_version()
            .ok()
            .and_then(|v| v.parse().ok());
    }
    // Unreachable for a moment: keep what is known rather than forget every job.
    let Some(jobs) = jobs_to_look_at(diag, &inputs) else {
        return;
    };
    let ids: HashSet<&str> = jobs.iter().map(|j| j.jid.as_str()).collect();
    diag.retain_jobs(&ids);
    // The JobManager's log first: what it says of a job is the job's, said with it below.
    let process_due = read_process_log(diag, &jobs, now_ms, announcer);
    for job in &jobs {
        if inputs.stop.is_stopped() {
            return;
        }
        diagnose_job(diag, job, &inputs, files, announcer);
    }
    say_process_log(diag, process_due, announcer);
    announcer.flush(now_ms);
}

impl JobsDiagnosis {
    /// Whether a tick is due (every `diagnosis_every`); a due tick counts as taken.
    fn time_to_look(&mut self, now_ms: i64) -> bool {
        if self
            .last_tick_ms
            .is_some_and(|last| now_ms.saturating_sub(last) < self.every_ms)
        {
            return false;
        }
        self.last_tick_ms = Some(now_ms);
        true
    }
}

/// The jobs listed (the caller's fresh listing, else read now), less those `only_job` leaves
/// out; `None` when they cannot be read.
fn jobs_to_look_at(diag: &JobsDiagnosis, inputs: &TickInputs<'_>) -> Option<Vec<JobOverview>> {
    let listed = match inputs.jobs {
        Some(jobs) => jobs.to_vec(),
        None => inputs.rest.jobs().ok()?,
    };
    Some(
        listed
            .into_iter()
            .filter(|j| diag.only_job.as_ref().is_none_or(|only| *only == j.jid))
            .collect(),
    )
}

/// One job: its new exceptions, its checkpoints while it runs, its final failure once it
/// failed, and what is due of its findings.
fn diagnose_job(
    diag: &mut JobsDiagnosis,
    job: &JobOverview,
    inputs: &TickInputs<'_>,
    files: &mut JobFiles,
    announcer: &mut Announcer,
) {
    let JobsDiagnosis {
        catalogue,
        jobs,
        version,
        repeat,
        bottlenecks,
        memory,
        ..
    } = diag;
    let entry = jobs
        .entry(job.jid.clone())
        .or_insert_with(|| JobDiagnosis::new(catalogue));
    if entry.done {
        return;
    }
    let rest = inputs.rest;
    let plan = inputs.plans.get(&job.jid).and_then(|m| m.plan.as_ref());
    // The cluster's configuration is read once per job and tick, and only when needed.
    let mut made: Option<Context> = None;
    let mut ctx_for = |rest: &FlinkRest| -> Context {
        made.get_or_insert_with(|| context(rest, inputs.windows, &job.jid, *version, plan))
            .clone()
    };
    match rest.exceptions(&job.jid) {
        Ok(exceptions) => {
            let heap = HeapDeaths {
                catalogue,
                windows: inputs.windows,
                memory,
            };
            observe_exceptions(entry, &exceptions, &heap, &mut || ctx_for(rest));
        }
        Err(e) => log::debug!("AUTOTUNE DIAGNOSIS exceptions of {} not read: {e}", job.jid),
    }
    if job.state == "RUNNING" {
        checkpoints_of(
            rest,
            inputs.windows,
            &job.jid,
            entry,
            bottlenecks.get(&job.jid),
            &mut ctx_for,
        );
    }
    if job.state == "FAILED" {
        explain_final_failure(rest, &job.jid, entry, &mut ctx_for);
    }
    let terminal = TERMINAL.contains(&job.state.as_str());
    // The end of a job is said at once, with the final counts.
    let repeat = if terminal { Duration::ZERO } else { *repeat };
    say_due(entry, job, repeat, inputs.now_ms, files, announcer);
    entry.done = terminal;
}

/// What tells a TaskManager that died of a full heap from one that merely left.
struct HeapDeaths<'a> {
    catalogue: &'a Catalogue,
    windows: &'a WindowCache,
    memory: &'a MemorySettings,
}

/// The job's exceptions not read yet, oldest first, each observed (or concluded as a heap
/// death when a TaskManager left with a full heap).
fn observe_exceptions(
    entry: &mut JobDiagnosis,
    exceptions: &JobExceptions,
    heap: &HeapDeaths<'_>,
    ctx: &mut dyn FnMut() -> Context,
) {
    let mut fresh: Vec<_> = exceptions
        .history
        .entries
        .iter()
        .filter(|e| e.timestamp > entry.last_exception_ms)
        .collect();
    fresh.sort_by_key(|e| e.timestamp);
    for e in fresh {
        entry.last_exception_ms = entry.last_exception_ms.max(e.timestamp);
        let Some(mut record) = records(&e.stacktrace).into_iter().next() else {
            continue;
        };
        record.line = 0; // a REST trace, not a file: no line to point at
        let c = ctx();
        if let Some((evidence, context, c)) = heap_death(heap, &record, e, &c) {
            entry.diagnoser.conclude("AT300", evidence, context, &c);
            continue;
        }
        let source = exception_source(e);
        entry
            .diagnoser
            .observe(&record, Origin::JobFailure, Some(&source), &c);
    }
}

/// Where an exception came from, as the finding names it.
fn exception_source(e: &ExceptionEntry) -> String {
    let mut source = "REST exception".to_string();
    if let Some(task) = &e.task_name {
        source.push_str(&format!(" in {task}"));
    }
    if let Some(at) = e.endpoint.as_ref().or(e.location.as_ref()) {
        source.push_str(&format!(" on {at}"));
    }
    source
}

/// A TaskManager that left while its heap was full died of it: its trace left with it, its
/// last measurements did not. The finding's evidence, its context and the configuration
/// with the heap it had.
fn heap_death(
    heap: &HeapDeaths<'_>,
    record: &Record,
    e: &ExceptionEntry,
    c: &Context,
) -> Option<(String, Option<String>, Context)> {
    if !lost_taskmanager(heap.catalogue, record) {
        return None;
    }
    let full = heap.windows.under_heap_pressure(heap.memory);
    // The one the failure names, even while the ResourceManager still lists it (its own
    // heartbeat times out later than the job's); else one already gone. Not any full one:
    // the lost TaskManager may be another than the full one.
    let named = |id: &str| {
        e.task_manager_id.as_deref() == Some(id)
            || record.chain.iter().any(|t| t.headline().contains(id))
    };
    let (id, w, _) = full
        .iter()
        .find(|(id, _, _)| named(id))
        .or_else(|| full.iter().find(|(_, _, left)| *left))?;
    let evidence = format!(
        "TaskManager {id} left while its heap was full: live data {} of {} max, GC {} ms/s in its last window",
        w.heap_after_gc_peak.map_or("?".into(), human),
        w.heap_max.map_or("?".into(), human),
        w.gc_ms_per_s.map_or("?".into(), |g| format!("{g:.0}")),
    );
    let context = record
        .chain
        .last()
        .map(|t| format!("the job failed with {}", t.headline()));
    // The heap it had (it is no longer listed with its layout).
    let mut c = c.clone();
    if let Some(max) = w.heap_max {
        let task_heap = memory::task_heap_of(max as u64, &c.config);
        c.config
            .entry("taskmanager.memory.task.heap.size".into())
            .or_insert_with(|| memory::size(task_heap));
    }
    Some((evidence, context, c))
}

/// A failed job's final exception names the wrapper it ended in ("Recovery is suppressed
/// by ..."): context for the root cause the history already counted.
fn explain_final_failure(
    rest: &FlinkRest,
    job_id: &str,
    entry: &mut JobDiagnosis,
    ctx_for: &mut dyn FnMut(&FlinkRest) -> Context,
) {
    let Ok(Some(trace)) = rest.job_failure(job_id) else {
        return;
    };
    if let Some(mut record) = records(&trace).into_iter().next() {
        record.line = 0;
        let c = ctx_for(rest);
        entry.diagnoser.explain(
            &record,
            Origin::JobFailure,
            Some("the job's final failure"),
            &c,
        );
    }
}

/// The job's findings that are due: their lines, and the job's files.
fn say_due(
    entry: &mut JobDiagnosis,
    job: &JobOverview,
    repeat: Duration,
    now_ms: i64,
    files: &mut JobFiles,
    announcer: &mut Announcer,
) {
    if entry.diagnoser.first_overflow() {
        announcer.overflow(&format!("job={} ({})", quoted(&job.name), job.jid));
    }
    let due = entry.diagnoser.due(now_ms, repeat);
    if due.is_empty() {
        return;
    }
    let scope = format!("job={} ({})", quoted(&job.name), job.jid);
    for d in &due {
        announcer.finding(&scope, d);
    }
    write(files, job, &entry.diagnoser, &due, now_ms, announcer);
}

/// Reads what the JobManager's log gained: a record that names a job (its checkpoint
/// declined, with the cause) goes to that job's diagnosis, so its finding reaches the job's
/// files; returns the log's findings due.
fn read_process_log(
    diag: &mut JobsDiagnosis,
    jobs: &[JobOverview],
    now_ms: i64,
    announcer: &Announcer,
) -> Vec<Finding> {
    let JobsDiagnosis {
        catalogue,
        process,
        jobs: entries,
        ..
    } = diag;
    let Some(process) = process.as_mut() else {
        return Vec::new();
    };
    let ids: Vec<&str> = jobs.iter().map(|j| j.jid.as_str()).collect();
    let tick = process.tick(now_ms, announcer, &ids);
    let source = process.log_name();
    for (job, record) in &tick.of_jobs {
        let entry = entries
            .entry(job.clone())
            .or_insert_with(|| JobDiagnosis::new(catalogue));
        entry
            .diagnoser
            .observe(record, Origin::Log, source.as_deref(), process.context());
    }
    tick.due
}

/// The JobManager's own log: what a job's exceptions did not already say (the same failure
/// in the same process).
fn say_process_log(diag: &mut JobsDiagnosis, due: Vec<Finding>, announcer: &mut Announcer) {
    let Some(process) = diag.process.as_ref() else {
        return;
    };
    let said: HashSet<(String, Process)> = diag
        .jobs
        .values()
        .flat_map(|j| {
            j.diagnoser
                .findings()
                .iter()
                .map(|d| (d.code.clone(), d.process))
        })
        .collect();
    for d in due
        .iter()
        .filter(|d| !said.contains(&(d.code.clone(), d.process)))
    {
        announcer.finding(process.scope(), d);
    }
}

/// When the coordinator stops: the JobManager's log one last time, and the webhook's queue.
pub fn last_words(diag: &mut JobsDiagnosis, now_ms: i64, announcer: &mut Announcer) {
    if let Some(process) = diag.process.as_mut() {
        for d in process.flush(now_ms) {
            announcer.finding(process.scope(), &d);
        }
    }
    announcer.flush_now(now_ms);
}

fn checkpoints_of(
    rest: &FlinkRest,
    published: &WindowCache,
    job_id: &str,
    entry: &mut JobDiagnosis,
    bottleneck: Option<&String>,
    ctx_for: &mut dyn FnMut(&FlinkRest) -> Context,
) {
    if entry.checkpointing.is_none() {
        entry.checkpointing = rest.checkpoint_config(job_id).ok();
    }
    let Some(Some(config)) = entry.checkpointing.clone() else {
        return;
    };
    let Ok(stats) = rest.checkpoints(job_id) else {
        return;
    };
    let mut fresh: Vec<_> = stats
        .history
        .iter()
        .filter(|c| c.status == "FAILED" && c.id > entry.last_failed_checkpoint)
        .collect();
    fresh.sort_by_key(|c| c.id);
    for failed in fresh {
        entry.last_failed_checkpoint = entry.last_failed_checkpoint.max(failed.id);
        let reason = failed
            .failure_message
            .clone()
            .unwrap_or_else(|| "no reason given".into());
        let ctx = ctx_for(rest);
        let source = format!("checkpoint {}", failed.id);
        let known = records(&reason).into_iter().any(|mut r| {
            r.line = 0;
            entry
                .diagnoser
                .observe(&r, Origin::Log, Some(&source), &ctx)
                .is_some()
        });
        if !known {
            entry
                .diagnoser
                .advise(&checkpoints::unknown_failure(&reason), &ctx);
        }
    }
    // The same history again says nothing new.
    if stats.counts.completed == entry.completed_checkpoints {
        return;
    }
    entry.completed_checkpoints = stats.counts.completed;
    let history: Vec<CheckpointSample> = stats
        .history
        .iter()
        .map(|c| CheckpointSample {
            id: c.id,
            completed: c.status == "COMPLETED",
            savepoint: c.is_savepoint,
            duration_ms: c.end_to_end_duration,
            state_size: c.state_size,
        })
        .collect();
    let start_delay = start_delay(rest, published, job_id);
    let backend = config
        .state_backend
        .as_deref()
        .unwrap_or("")
        .to_ascii_lowercase();
    let view = CheckpointView {
        interval_ms: config.interval,
        timeout_ms: config.timeout,
        heap_backend: backend.contains("hashmap")
            || backend.contains("memory")
            || backend.contains("filesystem"),
        unaligned: config.unaligned_checkpoints,
        history: &history,
        start_delay,
        bottleneck: bottleneck.cloned(),
    };
    let advice = checkpoints::advise(&view);
    if !advice.is_empty() {
        let ctx = ctx_for(rest);
        for a in &advice {
            entry.diagnoser.advise(a, &ctx);
        }
    }
}

/// The largest barrier start delay of the job's vertices (ms), from Flink's
/// `checkpointStartDelayNanos` task metric: as the TaskManagers published it where it covers
/// the vertex, else over REST (one request per vertex).
fn start_delay(rest: &FlinkRest, published: &WindowCache, job_id: &str) -> Option<(String, f64)> {
    let details = rest.job(job_id).ok()?;
    details
        .vertices
        .iter()
        .filter_map(|v| {
            let max = match published.start_delay_max_ns(job_id, &v.id, v.parallelism) {
                Some(max) => max,
                None => {
                    rest.subtask_metrics(job_id, &v.id, &["checkpointStartDelayNanos"])
                        .ok()?
                        .get("checkpointStartDelayNanos")?
                        .max
                }
            };
            max.is_finite().then(|| (v.name.clone(), max / 1e6))
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

fn write(
    files: &mut JobFiles,
    job: &JobOverview,
    diagnoser: &Diagnoser,
    due: &[Finding],
    now_ms: i64,
    announcer: &Announcer,
) {
    if files.dir.is_none() {
        return;
    }
    let written = files
        .recommend(&job.jid, &job.name, now_ms, |r| {
            r.diagnosis = diagnoser.config_keys()
        })
        .and_then(|_| {
            due.iter().try_for_each(|d| {
                files.history(
                    &job.jid,
                    &serde_json::json!({ "at_ms": now_ms, "job_id": job.jid, "job_name": job.name, "finding": d }),
                )
            })
        });
    files.settle(written, now_ms, announcer);
}
