//! The coordinator: inside the JobManager, a thread of its own that watches every running
//! job through the REST API on loopback, runs the scaling model and logs its decisions.
//! Flink's metric thread never waits on it; every REST call has a timeout; a failure is
//! logged once and retried; closing the reporter stops and joins it.

use std::collections::{HashMap, HashSet};
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use autotune_coordinator::collect::{collect, CollectError, JobShape, Recording};
use autotune_coordinator::memory::WindowCache;
use autotune_coordinator::outputs::{self, Recommendation};
use autotune_coordinator::rest::{FlinkRest, JobDetails};
use autotune_coordinator::webhook::Webhook;
use autotune_model::diagnosis::Catalogue;
use autotune_model::duration;
use autotune_model::memory::{MemoryPlan, MemorySettings, PoolWindow};
use autotune_model::options::{Mode, Options};
use autotune_model::scaling::{
    decide, Code, JobDecision, JobSnapshot, ScalingConfig, ScalingHistory,
};

use crate::diagnostics::ProcessDiagnostics;
use crate::jobdiagnosis::{self, JobsDiagnosis};

/// REST calls from inside the JobManager give up quickly: closing waits for at most one.
const REST_TIMEOUT: Duration = Duration::from_secs(3);

pub struct Settings {
    pub rest_url: String,
    pub output_dir: Option<PathBuf>,
    pub window: Duration,
    pub poll: Duration,
    pub interval: Duration,
    pub stabilization: Duration,
    pub mode: Mode,
    pub record: bool,
    pub scaling: ScalingConfig,
    pub memory_margin: f64,
    pub heap_headroom: f64,
    /// The diagnosis catalogue; `None`: diagnosis is off.
    pub catalogue: Option<Arc<Catalogue>>,
    /// The JobManager's own log, followed by the coordinator.
    pub process_diagnostics: Option<ProcessDiagnostics>,
    pub webhook: Option<Webhook>,
    pub diagnosis_repeat: Duration,
}

impl Settings {
    pub fn new(options: &Options, rest_url: String, output_dir: Option<PathBuf>) -> Self {
        Settings {
            rest_url,
            output_dir,
            window: options.decision_window,
            poll: options.poll_interval,
            interval: options.decision_interval,
            stabilization: options.stabilization,
            mode: options.mode,
            record: options.record,
            scaling: ScalingConfig {
                target_utilization: options.target_utilization,
                catch_up: options.catch_up,
                vertex_limits: options.vertex_limits.clone(),
                ..ScalingConfig::default()
            },
            memory_margin: options.memory_margin,
            heap_headroom: options.heap_headroom,
            catalogue: None,
            process_diagnostics: None,
            webhook: None,
            diagnosis_repeat: options.diagnosis_repeat,
        }
    }
}

/// A stop flag a thread can sleep on: stopping wakes it at once.
pub(crate) struct Shared {
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl Shared {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Shared {
            stopped: Mutex::new(false),
            wake: Condvar::new(),
        })
    }

    pub(crate) fn stop(&self) {
        *self.stopped.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.wake.notify_all();
    }

    /// Waits up to `pause`; false once stopping was asked for.
    pub(crate) fn sleep(&self, pause: Duration) -> bool {
        let guard = self.stopped.lock().unwrap_or_else(|p| p.into_inner());
        let (guard, _) = self
            .wake
            .wait_timeout_while(guard, pause, |stopped| !*stopped)
            .unwrap_or_else(|p| p.into_inner());
        !*guard
    }

    pub(crate) fn is_stopped(&self) -> bool {
        *self.stopped.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub struct Coordinator {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Coordinator {
    pub fn start(settings: Settings) -> std::io::Result<Self> {
        let shared = Shared::new();
        let for_thread = shared.clone();
        let thread = std::thread::Builder::new()
            .name("flink-autotune-coordinator".into())
            .spawn(move || run(settings, &for_thread))?;
        Ok(Coordinator {
            shared,
            thread: Some(thread),
        })
    }

    /// Stops the thread and waits for it (at most one REST timeout).
    pub fn stop(mut self) {
        self.shared.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(mut settings: Settings, shared: &Shared) {
    log::info!(
        "AUTOTUNE COORDINATOR started rest={} decision-window={} decision-interval={} poll-interval={} stabilization={} output-dir={}",
        settings.rest_url,
        duration::format(settings.window),
        duration::format(settings.interval),
        duration::format(settings.poll),
        duration::format(settings.stabilization),
        settings.output_dir.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "<none>".into())
    );
    let rest = FlinkRest::new(&settings.rest_url, REST_TIMEOUT);
    let mut state = State {
        diagnosis: settings.catalogue.take().map(|catalogue| {
            JobsDiagnosis::new(
                catalogue,
                settings.process_diagnostics.take(),
                settings.webhook.take(),
                settings.diagnosis_repeat.as_millis() as u64,
            )
        }),
        ..State::default()
    };
    if let Some(d) = state.diagnosis.as_mut() {
        d.memory = MemorySettings {
            margin: settings.memory_margin,
            heap_headroom: settings.heap_headroom,
            ..MemorySettings::default()
        };
    }
    let settings = &settings;
    let mut last_problem: Option<String> = None;
    loop {
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
            round(settings, &rest, &mut state, shared)
        }));
        let problem = match outcome {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(_) => Some("a decision round panicked (see the native panic above)".to_string()),
        };
        match (&problem, &last_problem) {
            (Some(p), Some(last)) if p == last => {}
            (Some(p), _) => log::warn!(
                "AUTOTUNE COORDINATOR {p}; trying again every {}",
                duration::format(settings.interval)
            ),
            (None, Some(_)) => log::info!("AUTOTUNE COORDINATOR working again"),
            (None, None) => {}
        }
        last_problem = problem;
        if !shared.sleep(settings.interval) {
            break;
        }
    }
    // What the JobManager's log said last and what the webhook still holds (no REST: stopping
    // must stay quick).
    if let Some(d) = state.diagnosis.as_mut() {
        jobdiagnosis::last_words(d, now_ms());
    }
    log::info!("AUTOTUNE COORDINATOR stopped");
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// What the coordinator remembers across rounds, per job id.
#[derive(Default)]
struct State {
    histories: HashMap<String, ScalingHistory>,
    /// Jobs whose plan cannot be applied in place (said once).
    cannot_apply: HashSet<String>,
    /// The last decision per job, as its gist: the same decision again is not repeated.
    last_decision: HashMap<String, String>,
    /// The last recommended parallelism per job (vertex order of its shape).
    last_parallelism: HashMap<String, Vec<u32>>,
    /// The last memory plan logged per job: a plan close to it is not repeated.
    last_memory: HashMap<String, MemoryPlan>,
    /// What each job's config file holds.
    recommendations: HashMap<String, Recommendation>,
    /// Jobs told that no TaskManager measures its memory (said once).
    memory_unmeasured: HashSet<String>,
    /// What each TaskManager published last, refreshed at every poll.
    windows: WindowCache,
    /// Every job's exceptions and checkpoints, and the JobManager's log; `None`: off.
    diagnosis: Option<JobsDiagnosis>,
}

impl State {
    fn retain_jobs(&mut self, live: &HashSet<String>) {
        self.histories.retain(|id, _| live.contains(id));
        self.last_decision.retain(|id, _| live.contains(id));
        self.last_parallelism.retain(|id, _| live.contains(id));
        self.last_memory.retain(|id, _| live.contains(id));
        self.recommendations.retain(|id, _| live.contains(id));
        // Said-once sets too: a JobManager that runs job after job for months stays small.
        self.cannot_apply.retain(|id| live.contains(id));
        self.memory_unmeasured.retain(|id| live.contains(id));
    }
}

/// Job states in which the job holds TaskManager resources: memory is planned for them,
/// including a job that keeps failing and restarting (an out-of-memory loop, say).
const LIVE_STATES: &[&str] = &[
    "RUNNING",
    "RESTARTING",
    "FAILING",
    "CREATED",
    "INITIALIZING",
];

/// One decision for every live job: parallelism for running jobs past their
/// stabilization time, memory for all of them.
fn round(
    settings: &Settings,
    rest: &FlinkRest,
    state: &mut State,
    shared: &Shared,
) -> Result<(), String> {
    let all = rest.jobs().map_err(|e| e.to_string())?;
    if let Some(diagnosis) = state.diagnosis.as_mut() {
        jobdiagnosis::tick(
            diagnosis,
            rest,
            &state.windows,
            Some(&all),
            settings.output_dir.as_deref(),
            &mut state.recommendations,
            &state.last_memory,
            now_ms(),
            &|| shared.is_stopped(),
        );
    }
    let live: Vec<_> = all
        .into_iter()
        .filter(|j| LIVE_STATES.contains(&j.state.as_str()))
        .collect();
    state.retain_jobs(&live.iter().map(|j| j.jid.clone()).collect());
    for job in live {
        if shared.is_stopped() {
            return Ok(());
        }
        let details = match rest.job(&job.jid) {
            Ok(d) => d,
            Err(e) if e.is_not_found() => continue, // gone since the listing
            Err(e) => return Err(e.to_string()),
        };
        let shape = JobShape::from_details(&details);
        if job.state == "RUNNING" {
            match scale(settings, rest, state, shared, &job.name, &details)? {
                Scaled::Stopped => return Ok(()),
                Scaled::Decided(p) => {
                    state.last_parallelism.insert(job.jid.clone(), p);
                }
                Scaled::NoDecision => {}
            }
        }
        // Memory is planned for a job that keeps restarting too, but not in its first moments.
        let age = now_ms() - details.start_time;
        if details.start_time > 0 && age >= settings.stabilization.as_millis() as i64 {
            plan_memory(settings, rest, state, &shape)?;
        }
    }
    Ok(())
}

enum Scaled {
    Decided(Vec<u32>),
    NoDecision,
    Stopped,
}

/// The scaling half: a window of the job, a decision, its lines and files, and applying it.
fn scale(
    settings: &Settings,
    rest: &FlinkRest,
    state: &mut State,
    shared: &Shared,
    job_name: &str,
    details: &JobDetails,
) -> Result<Scaled, String> {
    let job_id = &details.jid;
    // Metrics right after a (re)deployment describe warm-up, not the job.
    let deployed = details
        .vertices
        .iter()
        .map(|v| v.start_time)
        .max()
        .unwrap_or(0);
    if deployed <= 0 || now_ms() - deployed < settings.stabilization.as_millis() as i64 {
        log::debug!("AUTOTUNE COORDINATOR job {job_id} is still stabilizing");
        return Ok(Scaled::NoDecision);
    }
    // The TaskManagers' windows are read at every poll too: one that dies of an
    // out-of-memory error mid-window leaves its last measurements behind.
    let windows = &mut state.windows;
    // Failures are diagnosed while a window is read too, not only between decisions.
    let diagnosis = &mut state.diagnosis;
    let recommendations = &mut state.recommendations;
    let plans = &state.last_memory;
    let (shape, samples) = match collect(
        rest,
        job_id,
        settings.window,
        settings.poll,
        2,
        &mut |pause| {
            if let Err(e) = windows.poll(rest, now_ms()) {
                log::debug!("AUTOTUNE COORDINATOR TaskManager windows not read: {e}");
            }
            if let Some(d) = diagnosis.as_mut() {
                jobdiagnosis::tick(
                    d,
                    rest,
                    windows,
                    None,
                    settings.output_dir.as_deref(),
                    recommendations,
                    plans,
                    now_ms(),
                    &|| shared.is_stopped(),
                );
            }
            shared.sleep(pause)
        },
    ) {
        Ok(window) => window,
        Err(CollectError::Stopped) => return Ok(Scaled::Stopped),
        // Stopped, failed or rescaled mid-window: no decision on a window that does not hold.
        Err(e @ (CollectError::JobNotRunning { .. } | CollectError::Unstable { .. })) => {
            log::info!("AUTOTUNE COORDINATOR no decision for job \"{job_name}\" ({job_id}): {e}");
            return Ok(Scaled::NoDecision);
        }
        Err(e) => return Err(e.to_string()),
    };
    let held: u32 = shape.vertices.iter().map(|v| v.2).max().unwrap_or(0);
    let recording = Recording {
        format: Recording::FORMAT,
        rest: settings.rest_url.clone(),
        available_slots: rest.overview().ok().map(|o| o.slots_available + held),
        slots_per_taskmanager: rest.slots_per_taskmanager().ok().flatten(),
        shape,
        samples,
    };
    let snapshot = recording.snapshot();
    let at_ms = now_ms();
    let history = state.histories.entry(job_id.clone()).or_default();
    let decision =
        decide(&snapshot, &settings.scaling, history, at_ms).map_err(|e| e.to_string())?;
    let parallelism: Vec<u32> = decision.vertices.iter().map(|v| v.recommended).collect();
    // A job that stays as it is would otherwise fill the log with the same lines every round.
    let gist = decision.gist();
    if state.last_decision.get(job_id) == Some(&gist) {
        log::debug!(
            "AUTOTUNE COORDINATOR job {job_id} unchanged: {}",
            decision.parallelism_overrides()
        );
        return Ok(Scaled::Decided(parallelism));
    }
    state.last_decision.insert(job_id.clone(), gist);
    if let (Some(d), Some(b)) = (state.diagnosis.as_mut(), decision.bottleneck) {
        d.bottlenecks
            .insert(job_id.clone(), decision.vertices[b].name.clone());
    }
    for line in decision.log_lines(&snapshot) {
        log::info!("{line}");
    }
    if let Some(dir) = &settings.output_dir {
        let recommendation = state.recommendations.entry(job_id.clone()).or_default();
        recommendation.job_id = job_id.clone();
        recommendation.job_name = snapshot.job_name.clone();
        recommendation.parallelism_overrides = Some(decision.parallelism_overrides());
        outputs::write_recommendation(dir, recommendation, at_ms)
            .and_then(|_| outputs::append_history(dir, &snapshot, &decision, at_ms))
            .map_err(|e| cannot_write(dir, e))?;
    }
    if let (true, Some(dir)) = (settings.record, &settings.output_dir) {
        outputs::append_recording(dir, &recording)
            .map_err(|e| format!("cannot record under {}: {e}", dir.display()))?;
    }
    if settings.mode == Mode::Apply && decision.changes().next().is_some() {
        apply(rest, details, &snapshot, &decision, &mut state.cannot_apply);
    }
    Ok(Scaled::Decided(parallelism))
}

fn cannot_write(dir: &std::path::Path, e: std::io::Error) -> String {
    format!(
        "cannot write under {}: {e} (set metrics.reporter.autotune.output-dir)",
        dir.display()
    )
}

/// The memory half: the TaskManagers' windows and the job graph at its current and
/// recommended parallelism, into one plan, logged and written when it changes.
fn plan_memory(
    settings: &Settings,
    rest: &FlinkRest,
    state: &mut State,
    shape: &JobShape,
) -> Result<(), String> {
    let job_id = &shape.job_id;
    let job_ref = format!("job=\"{}\" ({})", shape.job_name, job_id);
    state
        .windows
        .poll(rest, now_ms())
        .map_err(|e| e.to_string())?;
    let view = state
        .windows
        .view(rest.jobmanager_config().map_err(|e| e.to_string())?);
    if view.windows.is_empty() {
        if view.without_plugin > 0 && state.memory_unmeasured.insert(job_id.clone()) {
            log::warn!(
                "AUTOTUNE {} {job_ref} | no TaskManager publishes {}: put the plugin in every TaskManager's plugins/autotune/ and enable it there too; memory is not planned until then",
                Code::MemoryNotMeasured,
                autotune_model::catalogue::POOL_WINDOW_METRIC
            );
        }
        return Ok(());
    }
    // Plan on windows as long as the decision window (or as long as they get): peaks of a
    // few seconds after a start say little.
    let long_enough = |w: &PoolWindow| {
        w.samples >= MIN_MEMORY_SAMPLES
            && (w.full || w.window_seconds >= 0.9 * settings.window.as_secs_f64())
    };
    if !view.windows.iter().any(long_enough) {
        return Ok(());
    }
    let memory_settings = view.settings(settings.memory_margin, settings.heap_headroom);
    let recommended = state.last_parallelism.get(job_id).map(Vec::as_slice);
    let plan = match view.plan(shape, recommended, &memory_settings) {
        Ok(plan) => plan,
        Err(e) => {
            log::debug!("AUTOTUNE COORDINATOR no memory plan for {job_ref}: {e}");
            return Ok(());
        }
    };
    if state
        .last_memory
        .get(job_id)
        .is_some_and(|last| plan.close_to(last))
    {
        return Ok(());
    }
    for line in plan.log_lines(&job_ref) {
        log::info!("{line}");
    }
    let at_ms = now_ms();
    if let Some(dir) = &settings.output_dir {
        let recommendation = state.recommendations.entry(job_id.clone()).or_default();
        recommendation.job_id = job_id.clone();
        recommendation.job_name = shape.job_name.clone();
        recommendation.memory = plan.config_keys();
        outputs::write_recommendation(dir, recommendation, at_ms)
            .and_then(|_| {
                outputs::append_memory_history(dir, job_id, &shape.job_name, &plan, at_ms)
            })
            .map_err(|e| cannot_write(dir, e))?;
    }
    state.last_memory.insert(job_id.clone(), plan);
    Ok(())
}

/// Windows shorter than this many TaskManager report rounds are not planned on.
const MIN_MEMORY_SAMPLES: u32 = 3;

/// Rescales the job in place through the adaptive scheduler's resource requirements.
fn apply(
    rest: &FlinkRest,
    details: &JobDetails,
    job: &JobSnapshot,
    decision: &JobDecision,
    cannot_apply: &mut HashSet<String>,
) {
    let job_ref = format!("job=\"{}\" ({})", job.job_name, job.job_id);
    let why_not = match details.scheduler_type.as_deref() {
        Some(scheduler) if !scheduler.eq_ignore_ascii_case("adaptive") => Some(format!(
            "the job runs with the {scheduler} scheduler; rescaling in place needs jobmanager.scheduler: adaptive (Flink 1.18+)"
        )),
        _ => {
            let plan: Vec<(String, u32)> = decision.vertices.iter().map(|v| (v.id.clone(), v.recommended)).collect();
            match rest.set_parallelism(&job.job_id, &plan) {
                Ok(()) => {
                    log::info!(
                        "AUTOTUNE {} {job_ref} | asked the adaptive scheduler for pipeline.jobvertex-parallelism-overrides={}",
                        Code::Applied,
                        decision.parallelism_overrides()
                    );
                    None
                }
                Err(e) => Some(format!(
                    "the JobManager refused the new resource requirements ({e}); rescaling in place needs jobmanager.scheduler: adaptive (Flink 1.18+)"
                )),
            }
        }
    };
    if let Some(reason) = why_not {
        if cannot_apply.insert(job.job_id.clone()) {
            log::warn!(
                "AUTOTUNE {} {job_ref} | {reason}; the plan stays a recommendation",
                Code::ApplyUnavailable
            );
        }
    }
}
