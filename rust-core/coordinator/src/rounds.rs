//! The coordinator's loop: rounds of collect → decide → plan memory → diagnose → say and
//! write → apply, for every live job, over the JobManager's REST API. One piece of code for
//! every host: the plugin runs [`Coordinator::run`] on a thread inside the JobManager,
//! `flink-autotune watch` runs it as a process, `analyze` is one [`Coordinator::round`], and
//! `replay` feeds recordings to [`Coordinator::decide_window`]. A host only schedules it and
//! says where its lines ([`Sink`]) and files go.
//!
//! Nothing here blocks a Flink thread: every REST call has a timeout, a failed round's kind
//! of trouble is said once and the round retried, a panic in a round is caught, and stopping
//! wakes every wait.

use std::collections::{HashMap, HashSet};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use autotune_model::duration;
use autotune_model::memory::MemoryPlan;

use crate::announce::Announcer;
use crate::clock::{Clock, SystemClock};
use crate::flamegraphs::{Bottleneck, FlameGraphs};
use crate::job_diagnosis::{self, JobsDiagnosis, TickInputs};
use crate::memory_step::{self, JobMemory, PlanRequest};
use crate::outputs::{self, JobFiles};
use crate::poller::{collect, CollectError};
use crate::pools::{MemoryView, WindowCache};
use crate::process_diagnosis::ProcessDiagnostics;
use crate::recording::Recording;
use crate::rest::{FlinkRest, JobDetails, JobOverview};
use crate::scaling_step::{self, apply_if_asked, decide_on_window, Decided, JobScaling};
use crate::settings::LoopSettings;
use crate::shape::JobShape;
use crate::sink::Sink;
use crate::stop::StopFlag;
pub use crate::trouble::RoundError;
use crate::trouble::Troubles;

/// Job states in which the job holds TaskManager resources: memory is planned for them,
/// including a job that keeps failing and restarting (an out-of-memory loop, say).
const LIVE_STATES: &[&str] = &[
    "RUNNING",
    "RESTARTING",
    "FAILING",
    "CREATED",
    "INITIALIZING",
];

/// A window in which the job restarts or rescales more often than this is given up.
pub const MAX_RESTARTS_PER_WINDOW: u32 = 2;

/// What a round did for one job: what hosts print (`analyze --json`) and record.
#[derive(Debug, Clone)]
pub struct JobRound {
    pub job_id: String,
    pub job_name: String,
    /// The window decided on, as recorded.
    pub recording: Option<Recording>,
    pub decided: Option<Decided>,
    /// Why there was no scaling decision (stabilizing, not running, restarted mid-window).
    pub no_decision: Option<String>,
    /// A memory plan made this round (a plan close to the last one is not made again).
    pub memory: Option<MemoryPlan>,
}

impl JobRound {
    fn new(job_id: &str, job_name: &str) -> Self {
        JobRound {
            job_id: job_id.to_string(),
            job_name: job_name.to_string(),
            recording: None,
            decided: None,
            no_decision: None,
            memory: None,
        }
    }
}

pub struct Coordinator {
    settings: LoopSettings,
    rest: FlinkRest,
    announcer: Announcer,
    files: JobFiles,
    /// What each TaskManager published last, refreshed at every poll.
    windows: WindowCache,
    /// Every job's exceptions and checkpoints, and the JobManager's log; `None`: off.
    diagnosis: Option<JobsDiagnosis>,
    scaling: HashMap<String, JobScaling>,
    memory: HashMap<String, JobMemory>,
    flamegraphs: FlameGraphs,
    /// Trouble said, so each kind is said once (`trouble.rs`).
    troubles: Troubles,
    /// Every time the loop reads and every wait it makes.
    clock: Arc<dyn Clock>,
}

impl Coordinator {
    pub fn new(settings: LoopSettings, sink: Arc<dyn Sink>) -> Self {
        Self::with_clock(settings, sink, Arc::new(SystemClock))
    }

    /// A coordinator on another clock (tests step time with a `ManualClock`).
    pub fn with_clock(settings: LoopSettings, sink: Arc<dyn Sink>, clock: Arc<dyn Clock>) -> Self {
        let announcer = Announcer::new(sink, settings.webhook());
        let diagnosis = settings.catalogue.clone().map(|catalogue| {
            let process = settings.process_log.clone().map(|log| {
                ProcessDiagnostics::new(
                    log,
                    catalogue.clone(),
                    "jobmanager",
                    settings.flink_version,
                    settings.diagnosis_repeat,
                    None,
                )
            });
            let mut diagnosis = JobsDiagnosis::new(
                catalogue,
                process,
                settings.diagnosis_repeat,
                settings.diagnosis_every,
                settings.memory.clone(),
            );
            diagnosis.only_job = settings.only_job.clone();
            diagnosis
        });
        Coordinator {
            rest: FlinkRest::new(&settings.rest_url, settings.rest_timeout),
            files: JobFiles::new(settings.output_dir.clone()),
            windows: WindowCache::new(settings.decision_window),
            announcer,
            diagnosis,
            scaling: HashMap::new(),
            memory: HashMap::new(),
            flamegraphs: FlameGraphs::default(),
            troubles: Troubles::new(settings.startup_grace, clock.now_ms()),
            settings,
            clock,
        }
    }

    /// Rounds until `stop`, one every decision interval; then the last words.
    pub fn run(&mut self, stop: &StopFlag) {
        self.say_started();
        loop {
            let outcome = panic::catch_unwind(AssertUnwindSafe(|| self.round(stop)));
            let trouble = match outcome {
                Ok(Ok(_)) => None,
                Ok(Err(e)) => Some(e),
                Err(_) => Some(RoundError::other(
                    "a decision round panicked (see the native panic above)",
                )),
            };
            self.troubles.after_round(
                trouble.as_ref(),
                self.clock.now_ms(),
                self.settings.interval,
                &self.announcer,
            );
            if !self.clock.sleep(self.settings.interval, stop) {
                break;
            }
        }
        self.finish();
    }

    fn say_started(&self) {
        let s = &self.settings;
        self.announcer.info(&format!(
            "AUTOTUNE COORDINATOR started rest={} decision-window={} decision-interval={} poll-interval={} stabilization={} mode={} output-dir={}",
            s.rest_url,
            duration::format(s.decision_window),
            duration::format(s.interval),
            duration::format(s.poll),
            duration::format(s.stabilization),
            s.mode,
            s.output_dir
                .as_ref()
                .map_or_else(|| "<none>".into(), |p| p.display().to_string())
        ));
    }

    /// What the JobManager's log said last and what the webhook still holds (no REST:
    /// stopping must stay quick).
    pub fn finish(&mut self) {
        if let Some(d) = self.diagnosis.as_mut() {
            job_diagnosis::last_words(d, self.clock.now_ms(), &mut self.announcer);
        }
        self.announcer.info("AUTOTUNE COORDINATOR stopped");
    }

    /// One round: diagnosis of every job, then a decision for every live job (parallelism
    /// for running jobs past their stabilization, memory for all of them).
    pub fn round(&mut self, stop: &StopFlag) -> Result<Vec<JobRound>, RoundError> {
        let listed = self.rest.jobs()?;
        self.diagnose(Some(&listed), stop);
        let live: Vec<JobOverview> = listed
            .into_iter()
            .filter(|j| LIVE_STATES.contains(&j.state.as_str()))
            .filter(|j| {
                self.settings
                    .only_job
                    .as_ref()
                    .map_or(true, |only| *only == j.jid)
            })
            .collect();
        self.forget_jobs_except(&live);
        let mut reports = Vec::new();
        for job in &live {
            if stop.is_stopped() {
                break;
            }
            if let Some(report) = self.round_for_job(job, stop)? {
                reports.push(report);
            }
        }
        Ok(reports)
    }

    fn diagnose(&mut self, jobs: Option<&[JobOverview]>, stop: &StopFlag) {
        if let Some(d) = self.diagnosis.as_mut() {
            let inputs = TickInputs {
                rest: &self.rest,
                windows: &self.windows,
                jobs,
                plans: &self.memory,
                now_ms: self.clock.now_ms(),
                stop,
            };
            job_diagnosis::tick(d, inputs, &mut self.files, &mut self.announcer);
        }
    }

    /// Said-once state and histories of jobs that are gone are dropped: a JobManager that
    /// runs job after job for months stays small.
    fn forget_jobs_except(&mut self, live: &[JobOverview]) {
        let ids: HashSet<&str> = live.iter().map(|j| j.jid.as_str()).collect();
        scaling_step::retain(&mut self.scaling, |id| ids.contains(id));
        self.memory.retain(|id, _| ids.contains(id.as_str()));
        if let Err(e) = self.files.retain(|id| ids.contains(id)) {
            self.files
                .settle(Err(e), self.clock.now_ms(), &self.announcer);
        }
        self.flamegraphs.retain(|id| ids.contains(id));
    }

    fn round_for_job(
        &mut self,
        job: &JobOverview,
        stop: &StopFlag,
    ) -> Result<Option<JobRound>, RoundError> {
        let details = match self.rest.job(&job.jid) {
            Ok(d) => d,
            Err(e) if e.is_not_found() => return Ok(None), // gone since the listing
            Err(e) => return Err(e.into()),
        };
        let mut report = JobRound::new(&job.jid, &job.name);
        if job.state == "RUNNING" {
            match self.window_of(&details, stop)? {
                WindowRead::Collected(recording) => {
                    // Live rounds only: a replay decides from its recording alone.
                    if !self.scaling.contains_key(&job.jid) {
                        let kept = JobScaling::read_back(&self.files, &job.jid, &self.announcer);
                        self.scaling.insert(job.jid.clone(), kept);
                    }
                    let decided = self.decide_window(&recording)?;
                    if let Some(d) = &decided.decided {
                        match self.flame_graph_of_bottleneck(d) {
                            Ok(true) => self.write_report(&job.jid),
                            Ok(false) => {}
                            Err(e) => {
                                self.files
                                    .settle(Err(e), self.clock.now_ms(), &self.announcer)
                            }
                        }
                        let scaling = self.scaling.entry(job.jid.clone()).or_default();
                        apply_if_asked(
                            scaling,
                            &self.settings,
                            &self.rest,
                            &details,
                            d,
                            &self.announcer,
                        );
                    }
                    report.decided = decided.decided;
                    report.memory = decided.memory;
                    report.recording = Some(*recording);
                    return Ok(Some(report));
                }
                WindowRead::NotYet(why) => report.no_decision = Some(why),
                WindowRead::Stopped => return Ok(Some(report)),
            }
        }
        // Memory is planned for a job that keeps restarting too, but not in its first moments.
        if details.plan_served() && details.start_time > 0 && !self.stabilizing(details.start_time)
        {
            let shape = JobShape::from_details(&details);
            self.windows.poll(&self.rest, self.clock.now_ms())?;
            let config = self.rest.jobmanager_config()?;
            let view = self.windows.view(config);
            report.memory = self.memory_step(
                &shape,
                &view,
                self.clock.now_ms(),
                self.settings.decision_window,
            )?;
        }
        Ok(Some(report))
    }

    /// The bottleneck's flame graph, from what the TaskManagers sampled (live rounds only:
    /// a replayed window has no TaskManagers to read). Returns whether one was written.
    fn flame_graph_of_bottleneck(&mut self, d: &Decided) -> std::io::Result<bool> {
        let Some(vertex) = d.decision.bottleneck.map(|b| &d.decision.vertices[b]) else {
            return Ok(false);
        };
        let bottleneck = Bottleneck {
            job_id: &d.snapshot.job_id,
            job_name: &d.snapshot.job_name,
            vertex_id: &vertex.id,
            vertex_name: &vertex.name,
        };
        self.flamegraphs.after_decision(
            &self.rest,
            self.settings.output_dir.as_deref(),
            &bottleneck,
            &self.announcer,
        )
    }

    /// Renders the job's page again from its files (`<job id>/report.html`).
    fn write_report(&mut self, job_id: &str) {
        let Some(dir) = &self.settings.output_dir else {
            return;
        };
        let written = outputs::job_dir(dir, job_id)
            .and_then(|job_dir| crate::page::write(&job_dir))
            .map(|_| ());
        self.files
            .settle(written, self.clock.now_ms(), &self.announcer);
    }

    fn stabilizing(&self, since_ms: i64) -> bool {
        self.clock.now_ms() - since_ms < self.settings.stabilization.as_millis() as i64
    }

    /// A window of the job, unless it is still stabilizing after a (re)deployment or does
    /// not hold still for one.
    fn window_of(
        &mut self,
        details: &JobDetails,
        stop: &StopFlag,
    ) -> Result<WindowRead, RoundError> {
        let job_id = &details.jid;
        // Metrics right after a (re)deployment describe warm-up, not the job.
        let deployed = details
            .vertices
            .iter()
            .map(|v| v.start_time)
            .max()
            .unwrap_or(0);
        if deployed <= 0 || self.stabilizing(deployed) {
            log::debug!("AUTOTUNE COORDINATOR job {job_id} is still stabilizing");
            return Ok(WindowRead::NotYet("the job is still stabilizing".into()));
        }
        let collected = {
            let Coordinator {
                settings,
                rest,
                windows,
                diagnosis,
                memory,
                files,
                announcer,
                clock,
                ..
            } = self;
            let clock = clock.as_ref();
            collect(
                rest,
                job_id,
                settings.decision_window,
                settings.poll,
                MAX_RESTARTS_PER_WINDOW,
                clock,
                &mut |pause| {
                    // The TaskManagers' windows are read at every poll: one that dies of an
                    // out-of-memory error mid-window leaves its last measurements behind.
                    if let Err(e) = windows.poll(rest, clock.now_ms()) {
                        log::debug!("AUTOTUNE COORDINATOR TaskManager windows not read: {e}");
                    }
                    // Failures are diagnosed while a window is read too.
                    if let Some(d) = diagnosis.as_mut() {
                        let inputs = TickInputs {
                            rest,
                            windows,
                            jobs: None,
                            plans: memory,
                            now_ms: clock.now_ms(),
                            stop,
                        };
                        job_diagnosis::tick(d, inputs, files, announcer);
                    }
                    clock.sleep(pause, stop)
                },
            )
        };
        let (shape, samples) = match collected {
            Ok(window) => window,
            Err(CollectError::Stopped) => return Ok(WindowRead::Stopped),
            // Stopped, failed or rescaled mid-window: no decision on a window that does not hold.
            Err(e @ (CollectError::JobNotRunning { .. } | CollectError::Unstable { .. })) => {
                self.announcer.info(&format!(
                    "AUTOTUNE COORDINATOR no decision for job \"{}\" ({job_id}): {e}",
                    details.name
                ));
                return Ok(WindowRead::NotYet(e.to_string()));
            }
            Err(CollectError::Rest(e)) => return Err(e.into()),
        };
        let held = shape
            .vertices
            .iter()
            .map(|v| v.parallelism)
            .max()
            .unwrap_or(0);
        let recording = Recording {
            format: Recording::FORMAT,
            rest: self.settings.rest_url.clone(),
            available_slots: scaling_step::available_slots(&self.rest, held),
            slots_per_taskmanager: self.rest.slots_per_taskmanager().ok().flatten(),
            memory: self.memory_view(),
            decision_window_ms: Some(self.settings.decision_window.as_millis() as u64),
            shape,
            samples,
        };
        if let (true, Some(dir)) = (self.settings.record, &self.settings.output_dir) {
            // A disk that cannot take the recording does not cost the window its decision.
            let recorded = outputs::append_recording(dir, &recording).map(|_| ());
            self.files
                .settle(recorded, self.clock.now_ms(), &self.announcer);
        }
        Ok(WindowRead::Collected(Box::new(recording)))
    }

    /// The TaskManagers' memory now, for a window's recording.
    fn memory_view(&mut self) -> Option<MemoryView> {
        let polled = self
            .windows
            .poll(&self.rest, self.clock.now_ms())
            .and_then(|_| self.rest.jobmanager_config());
        match polled {
            Ok(config) => Some(self.windows.view(config)),
            Err(e) => {
                log::debug!("AUTOTUNE COORDINATOR TaskManager memory not read: {e}");
                None
            }
        }
    }

    /// The decision on one window, and the memory plan it carries: what a live round does
    /// after collecting, and what `replay` does with each recorded window.
    pub fn decide_window(&mut self, recording: &Recording) -> Result<JobRound, String> {
        let shape = &recording.shape;
        let mut report = JobRound::new(&shape.job_id, &shape.job_name);
        let scaling = self.scaling.entry(shape.job_id.clone()).or_default();
        let decided = decide_on_window(
            scaling,
            &self.settings,
            recording,
            &mut self.files,
            &self.announcer,
        )?;
        if let (true, Some(d), Some(b)) = (
            decided.fresh,
            self.diagnosis.as_mut(),
            decided.decision.bottleneck,
        ) {
            d.bottlenecks.insert(
                shape.job_id.clone(),
                decided.decision.vertices[b].name.clone(),
            );
        }
        report.decided = Some(decided);
        if let Some(view) = &recording.memory {
            let window = recording
                .decision_window_ms
                .map_or(self.settings.decision_window, Duration::from_millis);
            report.memory = self.memory_step(shape, view, recording.end_ms(), window)?;
        }
        self.write_report(&shape.job_id);
        Ok(report)
    }

    fn memory_step(
        &mut self,
        shape: &JobShape,
        view: &MemoryView,
        at_ms: i64,
        window: Duration,
    ) -> Result<Option<MemoryPlan>, String> {
        let recommended = self
            .scaling
            .get(&shape.job_id)
            .and_then(|s| s.parallelism.as_deref());
        let memory = self.memory.entry(shape.job_id.clone()).or_default();
        let request = PlanRequest {
            shape,
            recommended,
            view,
            at_ms,
            window,
        };
        memory_step::step(
            memory,
            &self.settings,
            request,
            &mut self.files,
            &self.announcer,
        )
    }
}

enum WindowRead {
    Collected(Box<Recording>),
    NotYet(String),
    Stopped,
}
