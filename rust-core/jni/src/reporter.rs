//! One reporter instance's native state and what it logs.

use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use autotune_coordinator::announce::Announcer;
use autotune_coordinator::epoch_ms;
use autotune_coordinator::figures::Figures;
use autotune_coordinator::process_diagnosis::{self, MeasuredHeap, ProcessDiagnostics};
use autotune_coordinator::rounds::Coordinator;
use autotune_coordinator::settings::{self, LoopSettings};
use autotune_coordinator::sink::{LogSink, Sink};
use autotune_coordinator::stop::Background;
use autotune_model::codes::Code;
use autotune_model::memory::{self, MemorySettings};
use autotune_model::metrics::{MetricError, RawMetric};
use autotune_model::options::Options;
use autotune_model::profile::{
    Profile, ProfileLimits, Sampled, SamplingSchedule, SamplingTarget, MAX_PROFILES_PER_TASKMANAGER,
};
use autotune_model::text::quoted;
use autotune_model::tracker::{Registration, Role, Tracker};

pub struct Reporter {
    options: Options,
    /// Flink's own `interval` option, shown in the START line.
    flink_interval: Option<String>,
    plugin_version: String,
    platform: String,
    tracker: Tracker,
    started: bool,
    last_status: Option<Instant>,
    /// What the JobManager's Flink configuration says (set by the shim in the JobManager).
    flink_rest_url: Option<String>,
    flink_output_dir: Option<PathBuf>,
    /// The coordinator's thread (a JobManager).
    coordinator: Option<Background>,
    /// The coordinator was considered (started, or said why not): once per reporter.
    coordinator_decided: bool,
    /// The pressure findings last logged about this TaskManager's pools (codes).
    pool_pressure: Vec<Code>,
    /// A TaskManager's (or a coordinator-less JobManager's) diagnosis of its own log.
    diagnosis: Option<Background>,
    diagnosis_decided: bool,
    /// This TaskManager's heap and what its live data needs, for the diagnosis's values.
    measured_heap: MeasuredHeap,
    /// When this TaskManager's saturated vertices were last sampled.
    sampling: SamplingSchedule,
    /// The latest profile of each vertex sampled here, newest last, and their gauge value.
    profiles: VecDeque<Profile>,
    profiles_json: Option<String>,
    /// Vertices whose task threads could not be found, said once each.
    told_unsampled: HashSet<(String, String)>,
    /// In a JobManager, what its coordinator's decisions found: served as the jobs' metrics.
    figures: Option<Arc<Figures>>,
}

impl Reporter {
    pub fn open<'a>(
        options: impl IntoIterator<Item = (&'a str, &'a str)> + Clone,
        plugin_version: String,
        platform: String,
    ) -> Self {
        // Flink's own `interval`, in the compact spelling of the other durations when it parses.
        let flink_interval = options
            .clone()
            .into_iter()
            .find(|(k, _)| *k == "interval")
            .map(|(_, v)| {
                autotune_model::duration::parse(v)
                    .map(autotune_model::duration::format)
                    .unwrap_or_else(|_| v.to_string())
            });
        let parsed = Options::parse(options);
        for problem in &parsed.problems {
            log::warn!("AUTOTUNE CONFIG {problem}");
        }
        Reporter {
            tracker: Tracker::new(parsed.options.window_size),
            options: parsed.options,
            flink_interval,
            plugin_version,
            platform,
            started: false,
            last_status: None,
            flink_rest_url: None,
            flink_output_dir: None,
            coordinator: None,
            coordinator_decided: false,
            pool_pressure: Vec::new(),
            diagnosis: None,
            diagnosis_decided: false,
            measured_heap: MeasuredHeap::default(),
            sampling: SamplingSchedule::default(),
            profiles: VecDeque::new(),
            profiles_json: None,
            told_unsampled: HashSet::new(),
            figures: None,
        }
    }

    /// The coordinator's figures when they changed since `version`: the version now, then
    /// `job id, group key, group value, name, value` per figure (the group empty for the
    /// job's own). `None`: unchanged, or no coordinator here.
    pub fn figures_since(&self, version: u64) -> Option<Vec<String>> {
        let (now, figures) = self.figures.as_ref()?.since(version)?;
        let mut flat = Vec::with_capacity(1 + figures.len() * 5);
        flat.push(now.to_string());
        for (key, value) in figures {
            let (group, member) = key.group.unwrap_or(("", String::new()));
            flat.extend([
                key.job_id,
                group.to_string(),
                member,
                key.name.to_string(),
                value.to_string(),
            ]);
        }
        Some(flat)
    }

    pub fn register(&mut self, slot: usize, raw: RawMetric<'_>) -> Result<bool, MetricError> {
        let registration = self.tracker.register(slot, raw)?;
        Ok(registration == Registration::Tracked)
    }

    pub fn unregister(&mut self, slot: usize) {
        self.tracker.unregister(slot);
    }

    /// Where the shim's values for the next round are copied: straight into the windows,
    /// so the hot path costs one copy and no allocation.
    pub fn next_round(&mut self, count: usize) -> &mut [f64] {
        self.tracker.next_round(count)
    }

    /// Counts the round filled through [`Self::next_round`] and logs the periodic lines.
    /// Returns the vertices whose task threads the shim should sample now.
    pub fn report(
        &mut self,
        count: usize,
        last_read_nanos: i64,
        last_cost_nanos: i64,
    ) -> Vec<SamplingTarget> {
        let now_ms = epoch_ms();
        self.tracker.commit_round(now_ms);
        if !self.started {
            // After the first round the role is known from what Flink registered.
            self.started = true;
            log::info!(
                "AUTOTUNE START plugin={} native={} role={} platform={} interval={} {}",
                self.plugin_version,
                autotune_model::VERSION,
                self.tracker.role(),
                self.platform,
                self.flink_interval.as_deref().unwrap_or("<flink default>"),
                self.options
            );
        }
        self.maybe_start_coordinator();
        self.maybe_start_diagnosis();
        let now = Instant::now();
        if self
            .last_status
            .is_none_or(|t| now.duration_since(t) >= self.options.summary_interval)
        {
            self.last_status = Some(now);
            log::info!(
                "AUTOTUNE STATUS report-cost={}us read-cost={}us values={} native-heap={}KiB {}",
                last_cost_nanos.max(0) / 1_000,
                last_read_nanos.max(0) / 1_000,
                count,
                crate::alloc::allocated_bytes() / 1024,
                self.tracker.summary()
            );
        }
        self.check_pools();
        self.sampling_due(now_ms)
    }

    /// In a TaskManager: the saturated vertices due for sampling, once per decision.
    fn sampling_due(&mut self, now_ms: i64) -> Vec<SamplingTarget> {
        if !self.options.flamegraph || self.tracker.role() == Role::JobManager {
            return Vec::new();
        }
        let every = self
            .options
            .decision_window
            .max(self.options.decision_interval);
        let tracker = &self.tracker;
        self.sampling
            .due(|| tracker.vertex_loads(), now_ms, every.as_millis() as i64)
    }

    /// How the shim samples: stack samples per thread, the pause between two (ms), and the
    /// frames it reads of each stack.
    pub fn sampling_parameters(&self) -> [u64; 3] {
        [
            u64::from(self.options.flamegraph_samples),
            self.options.flamegraph_sample_interval.as_millis() as u64,
            ProfileLimits::GAUGE.max_depth as u64,
        ]
    }

    /// Keeps what the shim sampled of a vertex's task threads for the coordinator to read.
    pub fn add_profile(&mut self, sampled: &Sampled<'_>) {
        if sampled.threads == 0 {
            let key = (sampled.job_id.to_string(), sampled.vertex_id.to_string());
            if self.told_unsampled.insert(key) {
                log::info!(
                    "AUTOTUNE FLAMEGRAPH vertex {} ({}) of job {} not sampled here: no task thread named \"<vertex name> (<subtask>/<parallelism>)#<attempt>\" in the thread group \"Flink Task Threads\"",
                    quoted(sampled.vertex_name),
                    sampled.vertex_id,
                    sampled.job_id
                );
            }
            return;
        }
        let profile = Profile::fold(sampled, ProfileLimits::GAUGE);
        self.profiles
            .retain(|p| !(p.job_id == profile.job_id && p.vertex_id == profile.vertex_id));
        self.profiles.push_back(profile);
        while self.profiles.len() > MAX_PROFILES_PER_TASKMANAGER {
            self.profiles.pop_front();
        }
        self.profiles_json = serde_json::to_string(&self.profiles).ok();
    }

    /// The published profiles (JSON array of `profile::Profile`); none until one is sampled.
    pub fn profiles_json(&self) -> Option<&str> {
        self.profiles_json.as_deref()
    }

    /// In a TaskManager: says when one of its own pools is too small, with the number to
    /// set, as soon as its window shows it; once per episode, not every round.
    fn check_pools(&mut self) {
        // Runs every round: a JobManager has no pools of a TaskManager to look at.
        if self.tracker.role() == Role::JobManager {
            return;
        }
        let Some(window) = self.tracker.pool_window() else {
            return;
        };
        let settings = self.memory_settings();
        if let (Some((need, pressure)), Some(max)) =
            (memory::heap_need(&window, &settings), window.heap_max)
        {
            // Only a heap under pressure says how much more it needs; otherwise the finding
            // falls back to a factor of the heap it has.
            let need = if pressure { need } else { 0 };
            *self.measured_heap.lock().unwrap_or_else(|p| p.into_inner()) =
                Some((max as u64, need));
        }
        let findings = memory::taskmanager_findings(&window, &settings);
        let codes: Vec<Code> = findings.iter().map(|f| f.code).collect();
        if codes == self.pool_pressure {
            return;
        }
        for f in &findings {
            if !self.pool_pressure.contains(&f.code) {
                log::warn!("AUTOTUNE {} taskmanager | {}", f.code, f.message);
            }
        }
        self.pool_pressure = codes;
    }

    fn memory_settings(&self) -> MemorySettings {
        MemorySettings {
            margin: self.options.memory_margin,
            heap_headroom: self.options.heap_headroom,
            ..MemorySettings::default()
        }
    }

    /// The published window: what the coordinator reads from this TaskManager over REST.
    pub fn pool_window_json(&self) -> Option<String> {
        self.tracker
            .pool_window()
            .and_then(|w| serde_json::to_string(&w).ok())
    }

    /// The published subtask loads: what the coordinator reads instead of asking the REST
    /// API vertex by vertex.
    pub fn task_loads_json(&self) -> Option<String> {
        self.tracker
            .task_loads()
            .and_then(|l| serde_json::to_string(&l).ok())
    }

    /// The REST address and log folder of the JobManager this reporter lives in.
    pub fn configure_coordinator(&mut self, rest_url: Option<String>, output_dir: Option<String>) {
        self.flink_rest_url = rest_url.filter(|u| !u.is_empty());
        self.flink_output_dir = output_dir.filter(|d| !d.is_empty()).map(PathBuf::from);
    }

    /// In a JobManager, starts the coordinator once the role is known.
    fn maybe_start_coordinator(&mut self) {
        if self.coordinator_decided
            || !matches!(self.tracker.role(), Role::JobManager | Role::MiniCluster)
        {
            return;
        }
        self.coordinator_decided = true;
        let Some(rest_url) = self
            .options
            .rest_url
            .clone()
            .or_else(|| self.flink_rest_url.clone())
        else {
            log::warn!("AUTOTUNE COORDINATOR not started: the JobManager's REST address is unknown; set metrics.reporter.autotune.rest-url");
            return;
        };
        let output_dir = self
            .options
            .output_dir
            .clone()
            .or_else(|| self.flink_output_dir.clone());
        let sink: Arc<dyn Sink> = Arc::new(LogSink);
        let mut settings =
            LoopSettings::from_options(&self.options, rest_url, output_dir, &LogSink);
        // The JobManager opens its reporters before its REST server.
        settings.startup_grace = settings::STARTUP_GRACE;
        let mut coordinator = Coordinator::new(settings, sink);
        self.figures = Some(coordinator.figures());
        let started = Background::spawn("flink-autotune-coordinator", move |stop| {
            coordinator.run(stop)
        });
        match started {
            Ok(thread) => {
                self.coordinator = Some(thread);
                // The coordinator follows the JobManager's log itself.
                self.diagnosis_decided = true;
            }
            Err(e) => {
                log::error!("AUTOTUNE COORDINATOR not started: cannot create its thread: {e}")
            }
        }
    }

    /// Once the role is known: a process without a coordinator follows its own log on a
    /// thread of its own.
    fn maybe_start_diagnosis(&mut self) {
        if self.diagnosis_decided || self.tracker.role() == Role::Unknown {
            return;
        }
        // A JobManager waits for its coordinator, which diagnoses its log and its jobs.
        if self.tracker.role() != Role::TaskManager
            && self.coordinator.is_none()
            && !self.coordinator_decided
        {
            return;
        }
        self.diagnosis_decided = true;
        if !self.options.diagnosis {
            return;
        }
        let process = match self.tracker.role() {
            Role::TaskManager => "taskmanager",
            _ => "jobmanager",
        };
        let measured =
            (self.tracker.role() == Role::TaskManager).then(|| self.measured_heap.clone());
        let Some(log_file) = self.options.log_file.clone() else {
            log::info!("AUTOTUNE DIAGNOSIS no log file to follow (Flink logs to the console; set metrics.reporter.autotune.log-file)");
            return;
        };
        let process = ProcessDiagnostics::new(
            log_file,
            settings::catalogue(&self.options, &LogSink),
            process,
            self.options.flink_version,
            self.options.diagnosis_repeat,
            measured,
        );
        let announcer = Announcer::new(Arc::new(LogSink), settings::webhook(&self.options));
        let started = Background::spawn("flink-autotune-diagnosis", move |stop| {
            process_diagnosis::follow(process, announcer, stop)
        });
        match started {
            Ok(thread) => self.diagnosis = Some(thread),
            Err(e) => log::error!("AUTOTUNE DIAGNOSIS not started: cannot create its thread: {e}"),
        }
    }

    pub fn close(mut self) {
        if let Some(coordinator) = self.coordinator.take() {
            coordinator.stop();
        }
        if let Some(diagnosis) = self.diagnosis.take() {
            diagnosis.stop();
        }
        log::info!(
            "AUTOTUNE STOP role={} rounds={} tracked={}",
            self.tracker.role(),
            self.tracker.rounds(),
            self.tracker.tracked()
        );
    }

    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }
}
