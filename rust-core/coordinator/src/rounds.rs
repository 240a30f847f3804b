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
use autotune_model::options::{self, Mode, JOB_PREFIX};
use autotune_model::scaling::Code;
use autotune_model::slots::SlotAsk;
use autotune_model::text::quoted;

use crate::announce::Announcer;
use crate::brokers::{BrokerReader, KafkaTarget};
use crate::clock::{elapsed, Clock, SystemClock};
use crate::figures::{self, Figures, JobFigures};
use crate::flamegraphs::{Bottleneck, FlameGraphs};
use crate::index_page::{self, ClusterSlots, ListedJob};
use crate::job_diagnosis::{self, JobsDiagnosis, TickInputs};
use crate::memory_step::{self, JobMemory, PlanRequest, PlanScope};
use crate::outputs::{self, JobFiles};
use crate::poller::{ClosedWindow, CollectError, Polled, WindowReader};
use crate::pools::{JobGraph, MemoryView, WindowCache};
use crate::process_diagnosis::ProcessDiagnostics;
use crate::recording::{Recording, Sample};
use crate::rest::{FlinkRest, JobDetails, JobOverview};
use crate::scaling_step::{self, apply_if_asked, decide_on_window, ApplyTo, Decided, JobScaling};
use crate::settings::{JobSettings, LoopSettings, KAFKA_TIMEOUT};
use crate::shape::JobShape;
use crate::sink::Sink;
use crate::slot_plan::SlotPlan;
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

/// How long after its submission a job's configuration may still be served empty.
const CONFIGURATION_SERVED_AFTER_MS: i64 = 30_000;

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
    /// The windows being read, one per running job: each poll adds to all of them.
    reading: HashMap<String, WindowReader>,
    /// When a job's next window (or, not running, its next memory plan) is due: a decision
    /// interval after its last one.
    due_ms: HashMap<String, i64>,
    /// Jobs seen with tasks not running yet (deploying, restoring state): when all were first
    /// seen running, which is where their stabilization starts (`None`: not yet).
    starting: HashMap<String, Option<i64>>,
    /// Every live job's graph as last seen: a session cluster's memory plan sizes the network
    /// for all of them.
    graphs: HashMap<String, JobShape>,
    /// Live jobs at the last poll: more than one, and the TaskManagers' memory is planned for
    /// the cluster, not per job.
    live_jobs: usize,
    cluster_memory: JobMemory,
    /// The live jobs the cluster's page was last written with.
    index_jobs: Vec<String>,
    /// Each job's own settings (read once from its global job parameters); a job not here
    /// has the cluster's.
    job_settings: HashMap<String, JobSettings>,
    /// The cluster's shortage of task slots last said (needed, total); `None`: none.
    slots_said: Option<(u32, u32)>,
    /// Task slots shared among the jobs that rescale in place.
    slot_plan: SlotPlan,
    /// Jobs decided in this poll, to apply once all are: (job id, its details then).
    to_apply: Vec<(String, JobDetails)>,
    /// When the current poll began: what the jobs' next windows are timed from.
    poll_began_ms: i64,
    /// A reader of each set of Kafka brokers the jobs name (`kafka.bootstrap-servers`).
    brokers: HashMap<KafkaTarget, BrokerReader>,
    /// What the decisions found, for a host that serves them as metrics.
    figures: Arc<Figures>,
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
            reading: HashMap::new(),
            due_ms: HashMap::new(),
            starting: HashMap::new(),
            graphs: HashMap::new(),
            live_jobs: 0,
            cluster_memory: JobMemory::default(),
            index_jobs: Vec::new(),
            job_settings: HashMap::new(),
            slots_said: None,
            slot_plan: SlotPlan::default(),
            to_apply: Vec::new(),
            poll_began_ms: 0,
            brokers: HashMap::new(),
            figures: Arc::default(),
        }
    }

    /// What the decisions found, per job and vertex, as the loop goes: a host that has metric
    /// groups (the plugin) serves them as metrics.
    pub fn figures(&self) -> Arc<Figures> {
        self.figures.clone()
    }

    /// Polls until `stop`, one every poll interval, each job's window closing on its own
    /// schedule; then the last words.
    pub fn run(&mut self, stop: &StopFlag) {
        self.say_started();
        loop {
            let began = self.clock.now_ms();
            let outcome = panic::catch_unwind(AssertUnwindSafe(|| self.poll(stop)));
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
                self.settings.poll,
                &self.announcer,
            );
            // Polls start a poll interval apart (the time a poll takes is not added to every
            // window's length and every job's cadence), and never back to back.
            let pause = self
                .settings
                .poll
                .saturating_sub(elapsed(self.clock.as_ref(), began))
                .max(self.settings.poll / 5);
            if !self.clock.sleep(pause, stop) {
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
            s.options.mode,
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

    /// A decision on every live job now, whatever their schedule: polls every job until each
    /// window closes (`analyze`, and tests that go round by round). Returns the last thing
    /// each job's polls did.
    pub fn round(&mut self, stop: &StopFlag) -> Result<Vec<JobRound>, RoundError> {
        self.due_ms.clear();
        let mut rounds: Vec<JobRound> = Vec::new();
        loop {
            for polled in self.poll(stop)? {
                rounds.retain(|r| r.job_id != polled.job_id);
                rounds.push(polled);
            }
            let closing = self
                .reading
                .values()
                .map(|w| w.until_closing(self.clock.as_ref()))
                .min();
            let Some(closing) = closing else {
                return Ok(rounds);
            };
            if !self.clock.sleep(self.settings.poll.min(closing), stop) {
                return Ok(rounds);
            }
        }
    }

    /// One poll: diagnosis of every job, then every live job's window one sample on, and a
    /// decision for each window that closes (memory alone for a job that is not running).
    /// Returns what happened to the jobs whose window closed or could not be read.
    pub fn poll(&mut self, stop: &StopFlag) -> Result<Vec<JobRound>, RoundError> {
        self.poll_began_ms = self.clock.now_ms();
        let listed = self.rest.jobs()?;
        self.diagnose(Some(&listed), stop);
        let live: Vec<JobOverview> = listed
            .into_iter()
            .filter(|j| LIVE_STATES.contains(&j.state.as_str()))
            .filter(|j| {
                self.settings
                    .only_job
                    .as_ref()
                    .is_none_or(|only| *only == j.jid)
            })
            .collect();
        self.forget_jobs_except(&live);
        // The TaskManagers' windows are read at every poll: one that dies of an out-of-memory
        // error mid-window leaves its last measurements behind.
        if let Err(e) = self.windows.poll(&self.rest, self.clock.now_ms()) {
            log::debug!("AUTOTUNE COORDINATOR TaskManager windows not read: {e}");
        }
        let mut rounds = Vec::new();
        let mut failed = None;
        for job in &live {
            if stop.is_stopped() {
                break;
            }
            // At every poll, whatever the job's schedule: a failing rescale is rolled back soon.
            self.watch_rescale(&job.jid);
            if self
                .due_ms
                .get(&job.jid)
                .is_some_and(|&due| self.clock.now_ms() < due)
            {
                continue;
            }
            match self.poll_job(job) {
                Ok(Some(round)) => rounds.push(round),
                Ok(None) => {}
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        self.say_broker_news();
        // What was decided before a failure is applied all the same.
        self.apply_decided(&rounds);
        if let Some(e) = failed {
            return Err(e);
        }
        self.after_decisions(&live, &rounds);
        self.publish_figures(&live, &rounds);
        Ok(rounds)
    }

    /// The figures of this poll's decisions, and every live job's own.
    fn publish_figures(&mut self, live: &[JobOverview], rounds: &[JobRound]) {
        for decided in rounds.iter().filter_map(|r| r.decided.as_ref()) {
            self.figures.publish(figures::of_decision(decided));
        }
        for job in live {
            let memory = match self.live_jobs {
                0 | 1 => self.memory.get(&job.jid).and_then(|m| m.plan.as_ref()),
                _ => self.cluster_memory.plan.as_ref(),
            };
            let findings = self
                .diagnosis
                .as_ref()
                .map(|d| d.findings_by_severity(&job.jid))
                .unwrap_or_default();
            self.figures.publish(figures::of_job(JobFigures {
                job_id: &job.jid,
                rescales: self.scaling.get(&job.jid).map_or((0, 0), |s| s.rescales()),
                memory,
                findings,
            }));
        }
    }

    /// What the Kafka brokers' readers saw this poll: a new kind of trouble (AT131), once,
    /// and brokers that answer again. Readers no live job names any more are let go.
    fn say_broker_news(&mut self) {
        let wanted: HashSet<KafkaTarget> = self
            .job_settings
            .values()
            .filter_map(|s| s.kafka.clone())
            .chain(KafkaTarget::of(&self.settings.options))
            .collect();
        self.brokers.retain(|target, _| wanted.contains(target));
        for reader in self.brokers.values() {
            let brokers = quoted(&reader.target.bootstrap);
            for news in reader.take_news() {
                match news {
                    Err(e) => self.announcer.warn(&format!(
                        "AUTOTUNE {} brokers={brokers} | {e}; Kafka backlogs fall back to the readers' pendingRecords, the brokers are asked again in {} s",
                        Code::KafkaUnreadable,
                        crate::brokers::RETRY_AFTER.as_secs()
                    )),
                    Ok(()) => self.announcer.info(&format!(
                        "AUTOTUNE COORDINATOR brokers={brokers} answer again: Kafka backlogs come from their end offsets"
                    )),
                }
            }
        }
    }

    /// The poll's decisions applied, where a job asks for it, after all of them were made:
    /// jobs that rescale in place share the free task slots by one plan (AT129).
    fn apply_decided(&mut self, rounds: &[JobRound]) {
        let decided = std::mem::take(&mut self.to_apply);
        let in_apply = |c: &Coordinator, id: &str| c.settings_of(id).mode == Mode::Apply;
        if !decided.iter().any(|(id, _)| in_apply(self, id)) {
            return;
        }
        let now_ms = self.clock.now_ms();
        // A job in a quiet window applies nothing now: it claims no free slot from the others.
        let quiet = |c: &Coordinator, id: &str| {
            c.settings_of(id).quiet_windows.holding_at(now_ms).is_some()
        };
        let claims: Vec<SlotAsk> = self
            .scaling
            .iter()
            .filter(|(id, _)| in_apply(self, id) && !quiet(self, id))
            .filter_map(|(_, s)| s.slot_claim())
            .collect();
        // One job alone takes what is free; AT124 said what it lacks.
        let shares = match (claims.len(), self.rest.overview()) {
            (2.., Ok(o)) => self
                .slot_plan
                .shares(claims, o.slots_available, &self.announcer),
            _ => HashMap::new(),
        };
        for (job_id, details) in decided {
            let Some(d) = rounds
                .iter()
                .find(|r| r.job_id == job_id)
                .and_then(|r| r.decided.as_ref())
            else {
                continue;
            };
            let settings = self.settings_of(&job_id);
            let share = shares.get(&job_id).copied();
            let cluster_room = self.cluster_room(&job_id);
            let scaling = self.scaling.entry(job_id).or_default();
            let to = ApplyTo {
                rest: &self.rest,
                details: &details,
                share,
                cluster_room,
                now_ms: self.clock.now_ms(),
            };
            apply_if_asked(scaling, &settings, to, d, &self.announcer);
        }
    }

    /// The task slots `cluster-max-slots` leaves a job: the quota less what the other live
    /// jobs hold. `None`: no quota.
    fn cluster_room(&self, job_id: &str) -> Option<u32> {
        let quota = self.settings.options.cluster_max_slots?;
        let others: u32 = self
            .graphs
            .iter()
            .filter(|(id, _)| id.as_str() != job_id)
            .map(|(_, shape)| shape.slots_held())
            .sum();
        Some(quota.saturating_sub(others))
    }

    /// The cluster's view, when a job was decided on or the live jobs changed: its slots
    /// against what the jobs need, and its page.
    fn after_decisions(&mut self, live: &[JobOverview], rounds: &[JobRound]) {
        let ids: Vec<String> = live.iter().map(|j| j.jid.clone()).collect();
        if ids == self.index_jobs && rounds.iter().all(|r| r.decided.is_none()) {
            return;
        }
        self.index_jobs = ids;
        let slots = self.rest.overview().ok().map(|o| ClusterSlots {
            total: o.slots_total,
            available: o.slots_available,
        });
        if let Some(slots) = slots {
            self.say_cluster_slots(live.len(), slots);
        }
        self.write_index(live, slots);
    }

    /// The task slots each job needs, one slot sharing group each: at its recommended
    /// parallelism once decided; a job not decided on (stabilizing, opted out) keeps what it
    /// holds. What the cluster's line (AT128) and its page both count.
    fn slots_needed(&self) -> HashMap<&str, u32> {
        self.graphs
            .iter()
            .map(|(id, shape)| {
                let recommended = self.scaling.get(id).and_then(|s| s.parallelism.as_ref());
                let needed = match recommended {
                    Some(r) => r.iter().max().copied().unwrap_or(0),
                    None => shape.slots_held(),
                };
                (id.as_str(), needed)
            })
            .collect()
    }

    /// In a session cluster, the task slots all jobs need at their recommended parallelism
    /// (one slot sharing group each), against the cluster's: short, one line (AT128) and the
    /// cluster's config file, said again only when the figures change.
    fn say_cluster_slots(&mut self, jobs: usize, slots: ClusterSlots) {
        if jobs < 2 {
            return;
        }
        let needed: u32 = self.slots_needed().values().sum();
        let short = (needed > slots.total).then_some((needed, slots.total));
        if short == self.slots_said {
            return;
        }
        self.slots_said = short;
        let Some((needed, total)) = short else {
            return;
        };
        let per_taskmanager = self.rest.slots_per_taskmanager().ok().flatten();
        let advice = match per_taskmanager {
            Some(per) if per > 0 => {
                let now = total.div_ceil(per);
                let wanted = needed.div_ceil(per);
                format!(
                    "run {wanted} TaskManagers of {per} slots ({} more)",
                    wanted.saturating_sub(now)
                )
            }
            _ => format!("add {} task slots", needed - total),
        };
        let line = format!(
            "AUTOTUNE {} cluster jobs={jobs} slots-needed={needed} slots={total} | the jobs' recommended parallelism needs {needed} task slots in all, the cluster has {total}: {advice}",
            Code::ClusterSlotsShort
        );
        self.announcer.info(&line);
        let slots = format!(
            "the jobs' recommended parallelism needs {needed}, the cluster has {total}: {advice}"
        );
        let written = self
            .files
            .recommend_cluster_slots(jobs, self.clock.now_ms(), slots);
        self.files
            .settle(written, self.clock.now_ms(), &self.announcer);
    }

    /// The cluster's page (`<output dir>/index.html`).
    fn write_index(&mut self, live: &[JobOverview], slots: Option<ClusterSlots>) {
        let Some(dir) = self.settings.output_dir.clone() else {
            return;
        };
        let needed = self.slots_needed();
        let jobs: Vec<ListedJob<'_>> = live
            .iter()
            .map(|j| ListedJob {
                id: &j.jid,
                name: &j.name,
                state: &j.state,
                slots_held: self.graphs.get(&j.jid).map(JobShape::slots_held),
                slots_needed: needed.get(j.jid.as_str()).copied(),
            })
            .collect();
        let written = index_page::write(&dir, &jobs, slots, self.clock.now_ms()).map(|_| ());
        self.files
            .settle(written, self.clock.now_ms(), &self.announcer);
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
        self.reading.retain(|id, _| ids.contains(id.as_str()));
        self.due_ms.retain(|id, _| ids.contains(id.as_str()));
        self.starting.retain(|id, _| ids.contains(id.as_str()));
        self.graphs.retain(|id, _| ids.contains(id.as_str()));
        self.job_settings.retain(|id, _| ids.contains(id.as_str()));
        self.figures.retain_jobs(|id| ids.contains(id));
        self.live_jobs = live.len();
    }

    /// One poll of one live job: its window one sample on, and the decision when the window
    /// closes. A job not running (restarting, failing) gets a memory plan instead.
    fn poll_job(&mut self, job: &JobOverview) -> Result<Option<JobRound>, RoundError> {
        let mut report = JobRound::new(&job.jid, &job.name);
        if self.read_job_settings(job).mode == Mode::Off {
            // Not tuned, but its tasks share the TaskManagers: its graph counts for memory.
            self.due_ms.insert(job.jid.clone(), self.next_due());
            if let Ok(details) = self.rest.job(&job.jid) {
                let shape = JobShape::from_details(&details);
                self.graphs.insert(job.jid.clone(), shape);
            }
            return Ok(None);
        }
        if job.state == "RUNNING" {
            match self.window_of(job)? {
                WindowRead::Open => return Ok(None),
                WindowRead::Gone => return Ok(None),
                WindowRead::Closed(recording, details) => {
                    self.due_ms.insert(job.jid.clone(), self.next_due());
                    return self.decide_live(report, *recording, &details).map(Some);
                }
                WindowRead::NotYet(why) => report.no_decision = Some(why),
            }
        } else {
            self.due_ms.insert(job.jid.clone(), self.next_due());
        }
        self.plan_memory_without_window(&job.jid, &mut report)?;
        Ok(Some(report))
    }

    /// A rescale applied to the job, watched until a window at its new shape is decided on:
    /// seen through once it runs again (AT132), rolled back if it made the job worse (AT135).
    /// A few more requests per poll while one is in flight.
    fn watch_rescale(&mut self, job_id: &str) {
        let settings = self.settings_of(job_id);
        let Some(scaling) = self
            .scaling
            .get_mut(job_id)
            .filter(|s| s.rescale_in_flight())
        else {
            return;
        };
        if let Ok(details) = self.rest.job(job_id) {
            let watched = scaling_step::Watched {
                rest: &self.rest,
                details: &details,
                settings: &settings,
                now_ms: self.clock.now_ms(),
            };
            scaling_step::watch_rescale(scaling, watched, &mut self.files, &self.announcer);
        }
    }

    /// The job's own settings, read from its global job parameters the first time it is
    /// polled; what it sets and any value it could not take said once. Unreadable (the REST
    /// API busy, the job initializing): the cluster's for now, read again next time.
    fn read_job_settings(&mut self, job: &JobOverview) -> JobSettings {
        if let Some(settings) = self.job_settings.get(&job.jid) {
            return settings.clone();
        }
        let parameters = match self.rest.job_parameters(&job.jid) {
            // A job's first seconds are served an empty configuration (the REST handlers cache a
            // placeholder while it starts): not its own yet.
            Ok(Some(parameters))
                if !parameters.is_empty()
                    || self.clock.now_ms() - job.start_time >= CONFIGURATION_SERVED_AFTER_MS =>
            {
                parameters
            }
            Ok(_) | Err(_) => return self.settings.cluster_job_settings(),
        };
        let pairs = parameters.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        let (settings, problems) = self.settings.job_settings(pairs);
        let job_ref = format!("job={} ({})", quoted(&job.name), job.jid);
        for problem in problems {
            self.announcer.warn(&format!(
                "AUTOTUNE CONFIG {job_ref} {problem}; the cluster's value is used"
            ));
        }
        let own = own_settings(&parameters);
        if !own.is_empty() {
            let effect = match settings.mode {
                Mode::Off => "; no decision for this job",
                _ => "",
            };
            self.announcer.info(&format!(
                "AUTOTUNE CONFIG {job_ref} sets its own: {}{effect}",
                own.join(" ")
            ));
        }
        self.job_settings.insert(job.jid.clone(), settings.clone());
        settings
    }

    /// The settings a job was given: its own, else the cluster's (a replayed recording's).
    fn settings_of(&self, job_id: &str) -> JobSettings {
        self.job_settings
            .get(job_id)
            .cloned()
            .unwrap_or_else(|| self.settings.cluster_job_settings())
    }

    /// A decision interval from the start of this poll, so the poll that far on reads it.
    fn next_due(&self) -> i64 {
        self.poll_began_ms + self.settings.interval.as_millis() as i64
    }

    /// The decision on a window read live: the scaling history read back first, then the
    /// decision, the bottleneck's flame graph and, when asked, the plan applied.
    fn decide_live(
        &mut self,
        mut report: JobRound,
        recording: Recording,
        details: &JobDetails,
    ) -> Result<JobRound, RoundError> {
        let job_id = &report.job_id;
        // Live rounds only: a replay decides from its recording alone.
        if !self.scaling.contains_key(job_id) {
            let kept = JobScaling::read_back(&self.files, job_id, &self.announcer);
            self.scaling.insert(job_id.clone(), kept);
        }
        let decided = self.decide_window(&recording)?;
        if let Some(d) = &decided.decided {
            match self.flame_graph_of_bottleneck(d) {
                Ok(true) => self.write_report(job_id),
                Ok(false) => {}
                Err(e) => self
                    .files
                    .settle(Err(e), self.clock.now_ms(), &self.announcer),
            }
            self.to_apply.push((job_id.clone(), details.clone()));
        }
        report.decided = decided.decided;
        report.memory = decided.memory;
        report.recording = Some(recording);
        Ok(report)
    }

    /// Memory is planned for a job that keeps restarting too, but not in its first moments.
    fn plan_memory_without_window(
        &mut self,
        job_id: &str,
        report: &mut JobRound,
    ) -> Result<(), RoundError> {
        let details = match self.rest.job(job_id) {
            Ok(d) => d,
            Err(e) if e.is_not_found() => return Ok(()), // gone since the listing
            Err(e) => return Err(e.into()),
        };
        if !details.plan_served() {
            return Ok(()); // no edges yet: neither a graph nor a plan
        }
        let shape = JobShape::from_details(&details);
        self.graphs.insert(shape.job_id.clone(), shape.clone());
        if details.start_time <= 0 || self.stabilizing(details.start_time) {
            return Ok(());
        }
        let config = self.rest.jobmanager_config()?;
        let view = self.windows.view(config);
        report.memory = self.memory_step(
            &shape,
            &view,
            self.clock.now_ms(),
            self.settings.decision_window,
        )?;
        Ok(())
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

    /// When the job's tasks were deployed, or, where some were seen not running (a vertex
    /// restoring its state reads as busy and counts nothing for as long as that takes), when
    /// all were first seen running. `None` while some are not.
    fn running_since(&mut self, details: &JobDetails) -> Option<i64> {
        let deployed = details
            .vertices
            .iter()
            .map(|v| v.start_time)
            .max()
            .unwrap_or(0);
        if details.vertices.iter().any(|v| v.starting()) {
            self.starting.insert(details.jid.clone(), None);
            return None;
        }
        let now = self.clock.now_ms();
        match self.starting.get_mut(&details.jid) {
            Some(seen) => Some((*seen.get_or_insert(now)).max(deployed)),
            None => Some(deployed),
        }
    }

    fn stabilizing(&self, since_ms: i64) -> bool {
        self.clock.now_ms() - since_ms < self.settings.stabilization.as_millis() as i64
    }

    /// The job's window one poll on: opened once the job is past its stabilization after a
    /// (re)deployment, recorded when it closes, given up when the job does not hold still.
    fn window_of(&mut self, job: &JobOverview) -> Result<WindowRead, RoundError> {
        let job_id = &job.jid;
        if !self.reading.contains_key(job_id) {
            let details = match self.rest.job(job_id) {
                Ok(d) => d,
                Err(e) if e.is_not_found() => return Ok(WindowRead::Gone),
                Err(e) => return Err(e.into()),
            };
            // Metrics right after a (re)deployment describe warm-up, not the job.
            let Some(deployed) = self.running_since(&details) else {
                self.due_ms.insert(job_id.clone(), self.clock.now_ms());
                return Ok(WindowRead::NotYet(
                    "its tasks are not all running yet (deploying, or restoring their state)"
                        .into(),
                ));
            };
            if deployed <= 0 || self.stabilizing(deployed) {
                log::debug!("AUTOTUNE COORDINATOR job {job_id} is still stabilizing");
                // Looked at again once it has stabilized (a deployment not yet stamped: soon).
                let next = match deployed {
                    d if d > 0 => d + self.settings.stabilization.as_millis() as i64,
                    _ => self.clock.now_ms(),
                };
                self.due_ms.insert(job_id.clone(), next);
                return Ok(WindowRead::NotYet("the job is still stabilizing".into()));
            }
            self.starting.remove(job_id);
            let reader = WindowReader::new(
                job_id,
                self.settings.decision_window,
                self.settings.poll,
                MAX_RESTARTS_PER_WINDOW,
            );
            self.reading.insert(job_id.clone(), reader);
        }
        let brokers = self.settings_of(job_id).kafka.map(|target| {
            &*self
                .brokers
                .entry(target.clone())
                .or_insert_with(|| BrokerReader::start(target, KAFKA_TIMEOUT))
        });
        let reader = self.reading.get_mut(job_id).expect("opened above");
        match reader.poll(&self.rest, &self.windows, brokers, self.clock.as_ref()) {
            Ok(Polled::Open) => Ok(WindowRead::Open),
            Ok(Polled::Closed(window)) => {
                self.reading.remove(job_id);
                let ClosedWindow {
                    shape,
                    samples,
                    details,
                } = *window;
                let recording = self.recording_of(shape, samples);
                Ok(WindowRead::Closed(Box::new(recording), Box::new(details)))
            }
            // Stopped, failed or rescaled mid-window, or its values stale: no decision on a window
            // that does not hold.
            Err(
                e @ (CollectError::JobNotRunning { .. }
                | CollectError::Unstable { .. }
                | CollectError::Frozen { .. }),
            ) => {
                self.reading.remove(job_id);
                self.due_ms.insert(job_id.clone(), self.next_due());
                self.announcer.info(&format!(
                    "AUTOTUNE COORDINATOR no decision for job \"{}\" ({job_id}): {e}",
                    job.name
                ));
                Ok(WindowRead::NotYet(e.to_string()))
            }
            // The window stays open: the next poll goes on with it.
            Err(CollectError::Rest(e)) => Err(e.into()),
        }
    }

    /// A closed window as `replay` reads it, written to `<job id>/recording.jsonl` when asked.
    fn recording_of(&mut self, shape: JobShape, samples: Vec<Sample>) -> Recording {
        let held = shape.slots_held();
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
        recording
    }

    /// The TaskManagers' memory as this poll read it (once for every job it decides: read
    /// again per decision, a session cluster's reads grew with jobs x TaskManagers), for a
    /// window's recording.
    fn memory_view(&mut self) -> Option<MemoryView> {
        match self.rest.jobmanager_config() {
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
        let settings = self.settings_of(&shape.job_id);
        let scaling = self.scaling.entry(shape.job_id.clone()).or_default();
        let decided = decide_on_window(
            scaling,
            &settings,
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

    /// The memory plan for `shape`'s TaskManagers: the job's own where it runs alone, the
    /// cluster's (every live job's graph, said once for all) in a session cluster.
    fn memory_step(
        &mut self,
        shape: &JobShape,
        view: &MemoryView,
        at_ms: i64,
        window: Duration,
    ) -> Result<Option<MemoryPlan>, String> {
        self.graphs.insert(shape.job_id.clone(), shape.clone());
        let recommended = |id: &str| self.scaling.get(id).and_then(|s| s.parallelism.as_deref());
        if self.live_jobs < 2 {
            let jobs = [JobGraph {
                shape,
                recommended: recommended(&shape.job_id),
            }];
            let request = PlanRequest {
                scope: PlanScope::Job {
                    id: &shape.job_id,
                    name: &shape.job_name,
                },
                jobs: &jobs,
                view,
                at_ms,
                window,
            };
            let memory = self.memory.entry(shape.job_id.clone()).or_default();
            return memory_step::step(
                memory,
                &self.settings,
                request,
                &mut self.files,
                &self.announcer,
            );
        }
        if self.graphs.len() < self.live_jobs {
            // Planned once every job's graph is known: a plan without one would be said again.
            return Ok(None);
        }
        let jobs: Vec<JobGraph<'_>> = self
            .graphs
            .iter()
            .map(|(id, shape)| JobGraph {
                shape,
                recommended: recommended(id),
            })
            .collect();
        let request = PlanRequest {
            scope: PlanScope::Cluster {
                jobs: self.live_jobs,
            },
            jobs: &jobs,
            view,
            at_ms,
            window,
        };
        let planned = memory_step::step(
            &mut self.cluster_memory,
            &self.settings,
            request,
            &mut self.files,
            &self.announcer,
        )?;
        // Each job's diagnosis reads the plan its TaskManagers have.
        for id in self.graphs.keys() {
            self.memory.entry(id.clone()).or_default().plan = self.cluster_memory.plan.clone();
        }
        Ok(planned)
    }
}

/// `key=value` of every `autotune.*` parameter a job sets, as it set them; a credential as
/// `<set>`.
fn own_settings(parameters: &[(String, String)]) -> Vec<String> {
    parameters
        .iter()
        .filter_map(|(k, v)| {
            let name = k.strip_prefix(JOB_PREFIX)?;
            let secret = options::spec(name).is_some_and(|s| s.is_secret(name));
            Some(format!(
                "{name}={}",
                if secret { "<set>" } else { v.trim() }
            ))
        })
        .collect()
}

/// What a poll did to a running job's window.
enum WindowRead {
    Open,
    Closed(Box<Recording>, Box<JobDetails>),
    /// No decision this time, and why (stabilizing, stopped or restarted mid-window).
    NotYet(String),
    /// Gone since the listing.
    Gone,
}
