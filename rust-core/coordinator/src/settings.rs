//! What one run of the loop is told: the plugin's options (or `watch`'s flags, the same
//! table) plus what the host knows (where the REST API and the output folder are).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use autotune_model::diagnosis::{Catalogue, FlinkVersion};
use autotune_model::memory::MemorySettings;
use autotune_model::options::{Mode, Options};
use autotune_model::quiet::QuietWindows;
use autotune_model::scaling::ScalingConfig;

use crate::brokers::KafkaTarget;
use crate::sink::Sink;
use crate::webhook::Webhook;

/// Webhook posts give up after this long.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(3);

/// REST calls from inside the JobManager give up quickly: closing waits for at most one.
pub const REST_TIMEOUT: Duration = Duration::from_secs(3);

/// A read of the Kafka brokers' end offsets gives up after this long (a slow broker costs a
/// poll no more).
pub const KAFKA_TIMEOUT: Duration = Duration::from_secs(3);

/// Jobs are looked at for diagnosis no more often than this by default (the coordinator
/// ticks at every poll).
pub const DIAGNOSIS_EVERY: Duration = Duration::from_secs(10);

/// How long a JobManager's REST server may take to come up after the plugin starts.
pub const STARTUP_GRACE: Duration = Duration::from_secs(120);

pub struct LoopSettings {
    pub rest_url: String,
    pub rest_timeout: Duration,
    /// Until the REST API first answers, for this long, its silence is not trouble (a host
    /// that starts before it); `watch` and `analyze` say a wrong address at once.
    pub startup_grace: Duration,
    /// Where each job's files go; `None`: no files (lines only).
    pub output_dir: Option<PathBuf>,
    /// Only this job (`watch --job`, `analyze --job`); `None`: every job.
    pub only_job: Option<String>,
    /// How long a job is polled before each decision (option `decision-window`).
    pub decision_window: Duration,
    pub poll: Duration,
    pub interval: Duration,
    pub stabilization: Duration,
    /// The cluster's options: what a job's own settings ([`JobSettings`]) start from.
    pub options: Options,
    /// Each decision window is appended to `<job id>/recording.jsonl`.
    pub record: bool,
    pub memory: MemorySettings,
    /// The diagnosis catalogue; `None`: diagnosis is off.
    pub catalogue: Option<Arc<Catalogue>>,
    /// The JobManager's own log, followed by the loop.
    pub process_log: Option<PathBuf>,
    pub flink_version: Option<FlinkVersion>,
    pub diagnosis_repeat: Duration,
    /// How often every job's exceptions and checkpoints are read.
    pub diagnosis_every: Duration,
    pub webhook: Option<(String, Duration)>,
}

impl LoopSettings {
    /// The loop's settings from the options; a catalogue file that cannot be read is said
    /// on `sink` once and the built-in one is used.
    pub fn from_options(
        options: &Options,
        rest_url: String,
        output_dir: Option<PathBuf>,
        sink: &dyn Sink,
    ) -> Self {
        LoopSettings {
            rest_url,
            rest_timeout: REST_TIMEOUT,
            startup_grace: Duration::ZERO,
            output_dir,
            only_job: None,
            decision_window: options.decision_window,
            poll: options.poll_interval,
            interval: options.decision_interval,
            stabilization: options.stabilization,
            options: options.clone(),
            record: options.record,
            memory: MemorySettings {
                margin: options.memory_margin,
                heap_headroom: options.heap_headroom,
                ..MemorySettings::default()
            },
            catalogue: options.diagnosis.then(|| catalogue(options, sink)),
            process_log: options.log_file.clone(),
            flink_version: options.flink_version,
            diagnosis_repeat: options.diagnosis_repeat,
            diagnosis_every: DIAGNOSIS_EVERY,
            webhook: options
                .webhook_url
                .clone()
                .map(|url| (url, options.webhook_interval)),
        }
    }

    /// The cluster's settings for a job that sets none of its own.
    pub fn cluster_job_settings(&self) -> JobSettings {
        JobSettings::from_options(&self.options)
    }

    /// A job's settings: the cluster's, with what the job sets for itself as `autotune.<key>`
    /// among its global job parameters; and a problem for each value it could not take.
    pub fn job_settings<'a>(
        &self,
        parameters: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> (JobSettings, Vec<String>) {
        let parsed = self.options.for_job(parameters);
        (JobSettings::from_options(&parsed.options), parsed.problems)
    }

    pub fn webhook(&self) -> Option<Webhook> {
        self.webhook
            .as_ref()
            .map(|(url, interval)| Webhook::new(url.clone(), *interval, WEBHOOK_TIMEOUT))
    }
}

/// What a job may decide for itself (`autotune.<key>` in its global job parameters): whether
/// and how it is tuned.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSettings {
    pub mode: Mode,
    /// In `mode: apply`, how many times its parallelism a vertex may grow in one step.
    pub apply_max_step: f64,
    pub scaling: ScalingConfig,
    /// The Kafka brokers its sources read; `None`: backlogs are the readers' `pendingRecords`.
    pub kafka: Option<KafkaTarget>,
    /// What rolls an applied rescale back, and how long the rollback holds.
    pub rollback: RollbackSettings,
    /// Times in which nothing is applied.
    pub quiet_windows: QuietWindows,
}

/// When an applied rescale is rolled back (AT135).
#[derive(Debug, Clone, PartialEq)]
pub struct RollbackSettings {
    /// Every subtask must run at the new shape within this long.
    pub timeout: Duration,
    /// Failovers before the first window at the new shape is decided on; 0: never.
    pub failovers: u32,
    /// How long a rolled-back vertex is not scaled above where it went back to.
    pub hold: Duration,
}

impl JobSettings {
    pub fn from_options(options: &Options) -> Self {
        JobSettings {
            mode: options.mode,
            apply_max_step: options.apply_max_step,
            scaling: ScalingConfig {
                target_utilization: options.target_utilization,
                catch_up: options.catch_up,
                scale_down_delay: options.scale_down_delay,
                ineffective_hold: options.ineffective_hold,
                vertex_limits: options.vertex_limits.clone(),
                max_slots: options.max_slots,
                rollback_hold: options.rollback_hold,
                ..ScalingConfig::default()
            },
            kafka: KafkaTarget::of(options),
            rollback: RollbackSettings {
                timeout: options.rescale_timeout,
                failovers: options.rollback_failovers,
                hold: options.rollback_hold,
            },
            quiet_windows: options.quiet_windows.clone(),
        }
    }
}

/// The webhook the options ask for (a process without a coordinator posts its own findings).
pub fn webhook(options: &Options) -> Option<Webhook> {
    options
        .webhook_url
        .clone()
        .map(|url| Webhook::new(url, options.webhook_interval, WEBHOOK_TIMEOUT))
}

/// The built-in catalogue plus the user's file. A bad file is said once and left out.
pub fn catalogue(options: &Options, sink: &dyn Sink) -> Arc<Catalogue> {
    let Some(path) = &options.diagnosis_catalogue else {
        return Arc::new(Catalogue::builtin());
    };
    let loaded = std::fs::read_to_string(path)
        .map_err(|e| e.to_string())
        .and_then(|text| Catalogue::builtin_with(&text).map_err(|e| e.to_string()));
    Arc::new(match loaded {
        Ok(catalogue) => {
            sink.say(
                log::Level::Info,
                &format!(
                    "AUTOTUNE CONFIG diagnosis catalogue {} loaded: {} signatures in all",
                    path.display(),
                    catalogue.signatures.len()
                ),
            );
            catalogue
        }
        Err(e) => {
            sink.say(
                log::Level::Warn,
                &format!(
                    "AUTOTUNE CONFIG metrics.reporter.autotune.diagnosis-catalogue: {}: {e}; using the built-in catalogue",
                    path.display()
                ),
            );
            Catalogue::builtin()
        }
    })
}
