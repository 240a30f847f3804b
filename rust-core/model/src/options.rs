//! The reporter's options (`metrics.reporter.autotune.<option>`), validated in one place.
//!
//! A bad value never disables the plugin: it is reported with the key, the value, the
//! reason and the default used instead, and everything else keeps working.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::duration;
use crate::memory::MemorySettings;
use crate::quiet::QuietWindows;
use crate::scaling::ScalingConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Log and write recommendations; never touch the job.
    Recommend,
    /// Also apply recommendations in place where Flink allows it.
    Apply,
    /// No decision for the job, scaling or memory (its failures are still diagnosed): a job
    /// that opts out, or a cluster whose jobs opt in one by one.
    Off,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Recommend => "recommend",
            Mode::Apply => "apply",
            Mode::Off => "off",
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub mode: Mode,
    /// How often the STATUS line summarises what is tracked.
    pub summary_interval: Duration,
    /// How many report rounds each metric window keeps.
    pub window_size: usize,
    /// Where recommended config files and histories go; `None`: beside the Flink logs.
    pub output_dir: Option<PathBuf>,
    /// The JobManager's REST API for the coordinator; `None`: from the Flink configuration.
    pub rest_url: Option<String>,
    /// How long the coordinator watches a job before each decision.
    pub decision_window: Duration,
    /// Pause between the coordinator's decisions.
    pub decision_interval: Duration,
    /// How often the coordinator polls the REST API within a window.
    pub poll_interval: Duration,
    /// Time after a job's (re)start before its metrics count.
    pub stabilization: Duration,
    /// Busy ratio each vertex should run at after scaling.
    pub target_utilization: f64,
    /// Time in which an existing source backlog should be consumed.
    pub catch_up: Duration,
    /// How long a scale-down is recommended before it is made.
    pub scale_down_delay: Duration,
    /// How long a vertex whose scale-up did not pay is not scaled above what it kept.
    pub ineffective_hold: Duration,
    /// Keep what each decision window read (for `flink-autotune replay` and bug reports).
    pub record: bool,
    /// Per-vertex parallelism limits: vertex id -> (min, max).
    pub vertex_limits: BTreeMap<String, (u32, u32)>,
    /// In `mode: apply`, how many times its parallelism a vertex may grow in one step.
    pub apply_max_step: f64,
    /// Share added to measured peaks of metaspace, managed and off-heap memory.
    pub memory_margin: f64,
    /// Room for new objects on top of the live heap, as a share of it.
    pub heap_headroom: f64,
    /// Whether known failures are looked for (in this process's log and, in the JobManager,
    /// in every job's exceptions and checkpoints).
    pub diagnosis: bool,
    /// A catalogue file of the user's that adds or replaces signatures.
    pub diagnosis_catalogue: Option<PathBuf>,
    /// A finding seen again is said again at most this often (with its count).
    pub diagnosis_repeat: Duration,
    /// The log file followed; the shim fills in the process's own (`log.file`).
    pub log_file: Option<PathBuf>,
    /// The running Flink release; the shim fills it in (keys are spelled for it).
    pub flink_version: Option<crate::diagnosis::FlinkVersion>,
    /// Where findings are posted (Slack-compatible); a secret, never logged.
    pub webhook_url: Option<String>,
    /// At most one webhook post per this interval.
    pub webhook_interval: Duration,
    /// Whether TaskManagers sample the task threads of saturated vertices (flame graphs).
    pub flamegraph: bool,
    /// Stack samples per task thread in one sampling.
    pub flamegraph_samples: u32,
    /// Pause between two stack samples.
    pub flamegraph_sample_interval: Duration,
    /// The Kafka brokers a job's sources read (`host:port,...`): their end offsets give the
    /// true backlog. `None`: the readers' `pendingRecords`.
    pub kafka_bootstrap_servers: Option<String>,
    /// Kafka client properties, spelled as Flink's Kafka connector spells them
    /// (`security.protocol`, `sasl.mechanism`, `sasl.jaas.config`, `ssl.*`).
    pub kafka_properties: BTreeMap<String, String>,
    /// In `mode: apply`, how long a rescale may take to run at its new shape before it is
    /// rolled back.
    pub rescale_timeout: Duration,
    /// Failovers after an applied rescale, before a window at its new shape is decided on, that
    /// roll it back; 0: never.
    pub rollback_failovers: u32,
    /// How long a rolled-back vertex is not scaled above where it went back to.
    pub rollback_hold: Duration,
    /// Times in which nothing is applied (cron expressions).
    pub quiet_windows: QuietWindows,
    /// The task slots a job may take at most (one slot sharing group: its widest vertex).
    pub max_slots: Option<u32>,
    /// The task slots the jobs rescaled in place may take at most, all together.
    pub cluster_max_slots: Option<u32>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            mode: Mode::Recommend,
            summary_interval: Duration::from_secs(60),
            window_size: 30,
            output_dir: None,
            rest_url: None,
            decision_window: Duration::from_secs(60),
            decision_interval: Duration::from_secs(60),
            poll_interval: Duration::from_secs(5),
            stabilization: Duration::from_secs(60),
            // The scaling model's own defaults: one place for them.
            target_utilization: ScalingConfig::default().target_utilization,
            catch_up: ScalingConfig::default().catch_up,
            scale_down_delay: ScalingConfig::default().scale_down_delay,
            ineffective_hold: ScalingConfig::default().ineffective_hold,
            record: false,
            vertex_limits: BTreeMap::new(),
            apply_max_step: 4.0,
            // The memory model's own defaults: one place for them.
            memory_margin: MemorySettings::default().margin,
            heap_headroom: MemorySettings::default().heap_headroom,
            diagnosis: true,
            diagnosis_catalogue: None,
            diagnosis_repeat: Duration::from_secs(600),
            log_file: None,
            flink_version: None,
            webhook_url: None,
            webhook_interval: Duration::from_secs(60),
            flamegraph: true,
            flamegraph_samples: 100,
            flamegraph_sample_interval: Duration::from_millis(30),
            kafka_bootstrap_servers: None,
            kafka_properties: BTreeMap::new(),
            rescale_timeout: Duration::from_secs(5 * 60),
            rollback_failovers: 2,
            rollback_hold: Duration::from_secs(60 * 60),
            quiet_windows: QuietWindows::default(),
            max_slots: None,
            cluster_max_slots: None,
        }
    }
}

/// Who reads an option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionScope {
    /// The coordinator's loop: in the JobManager, and a flag of `watch` and `analyze`.
    Loop,
    /// Every reporter instance (TaskManagers too).
    Reporter,
    /// The Java shim, before the native library exists.
    Shim,
}

/// One option, declared once: its key, default, documentation, parser and how the START
/// line shows it. Parsing, the README's table, the sample configuration files, the START
/// line and the command-line flags all come from [`OPTIONS`].
pub struct OptionSpec {
    pub key: &'static str,
    /// The default and how the START line shows the value in force.
    pub default: DefaultValue,
    /// One line of documentation (Markdown): the README's "meaning" column.
    pub doc: &'static str,
    pub scope: OptionScope,
    /// The value is a credential: never shown, never echoed in a problem.
    pub secret: bool,
    /// Former keys, still read (the key wins when both are set), each with one warning;
    /// as Flink's `ConfigOption::withDeprecatedKeys`. The shim's options have none.
    pub deprecated: &'static [&'static str],
    /// A job may set it for itself, as `autotune.<key>` in its global job parameters
    /// ([`Options::for_job`]); the cluster's value is its default.
    pub per_job: bool,
    set: fn(&mut Options, &str) -> Result<(), String>,
}

/// An option's default. A value lives only in `impl Default for Options`: the table shows
/// it from there, so the README, the sample files and `--help` cannot disagree with it.
#[derive(Clone, Copy)]
pub enum DefaultValue {
    /// The value `Options::default()` holds, shown by this function (the START line's
    /// spelling, which the option's parser reads back).
    Shown(fn(&Options) -> String),
    /// No value of the option's own: `Options::default()` holds none and something else
    /// decides (the Flink configuration, the shim, the log), or nothing is done.
    Unset {
        /// What happens instead, as the documentation says it (Markdown).
        doc: &'static str,
        /// A value for the sample configuration files (a test parses it).
        example: &'static str,
        /// How the START line shows the value in force; a `<...>` marker when unset.
        show: fn(&Options) -> String,
    },
}

/// The documentation's text: a shown value in backticks, else the words of `Unset`.
impl fmt::Display for DefaultValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DefaultValue::Shown(show) => write!(f, "`{}`", show(&Options::default())),
            DefaultValue::Unset { doc, .. } => f.write_str(doc),
        }
    }
}

impl OptionSpec {
    /// How the START line shows the option's value in force.
    pub fn shown(&self, options: &Options) -> String {
        match self.default {
            DefaultValue::Shown(show) | DefaultValue::Unset { show, .. } => show(options),
        }
    }
}

fn nothing(_: &Options) -> String {
    String::new()
}

fn path_or(p: &Option<PathBuf>, otherwise: &str) -> String {
    p.as_ref()
        .map_or_else(|| otherwise.to_string(), |p| p.display().to_string())
}

/// Every option of the plugin, in the order the documentation lists them.
pub const OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        key: "mode",
        default: DefaultValue::Shown(|o| o.mode.to_string()),
        doc: "`recommend`: log and write recommendations; `apply`: also rescale in place through the adaptive scheduler (`jobmanager.scheduler: adaptive`, Flink 1.18+); `off`: no decision for the job (its failures are still diagnosed), so that jobs opt in one by one with their own `autotune.mode`",
        scope: OptionScope::Loop,
        secret: false,
        per_job: true,
        deprecated: &[],
        set: |o, v| match v.to_ascii_lowercase().as_str() {
            "recommend" => {
                o.mode = Mode::Recommend;
                Ok(())
            }
            "apply" => {
                o.mode = Mode::Apply;
                Ok(())
            }
            "off" => {
                o.mode = Mode::Off;
                Ok(())
            }
            _ => Err(format!(
                "must be 'recommend', 'apply' or 'off', using '{}'",
                o.mode
            )),
        },
    },
    OptionSpec {
        key: "summary-interval",
        default: DefaultValue::Shown(|o| duration::format(o.summary_interval)),
        doc: "how often the `STATUS` line is written (at least `1 s`)",
        scope: OptionScope::Reporter,
        secret: false,
        per_job: false,
        deprecated: &[],
        set: |o, v| duration_option(&mut o.summary_interval, v, Duration::from_secs(1)),
    },
    OptionSpec {
        key: "window-size",
        default: DefaultValue::Shown(|o| o.window_size.to_string()),
        doc: "report rounds kept per metric (2 to 10000); 30 rounds at 10 s is 5 minutes",
        scope: OptionScope::Reporter,
        secret: false,
        per_job: false,
        deprecated: &[],
        set: |o, v| match v.parse::<usize>() {
            Ok(n) if (2..=10_000).contains(&n) => {
                o.window_size = n;
                Ok(())
            }
            _ => Err(format!(
                "must be a whole number of report rounds from 2 to 10000, using {}",
                o.window_size
            )),
        },
    },
    OptionSpec {
        key: "output-dir",
        default: DefaultValue::Unset {
            doc: "`<Flink log folder>/autotune`",
            example: "/var/log/flink-autotune",
            show: |o| path_or(&o.output_dir, "<flink log dir>"),
        },
        doc: "where the coordinator writes, per job, `<job id>/recommended-config.yaml`, `decisions.jsonl` (every window's figures and every decision and finding; rotated at 32 MiB), `scaling-history.json` (what the scaling model remembers, read back when the job comes back with the same id), `report.html` and `flamegraphs/`; the folders of jobs that are gone are kept, the newest 100",
        scope: OptionScope::Loop,
        secret: false,
        per_job: false,
        deprecated: &[],
        set: |o, v| {
            if v.is_empty() {
                return Err("is empty, using the Flink log folder".to_string());
            }
            o.output_dir = Some(PathBuf::from(v));
            Ok(())
        },
    },
    OptionSpec {
        key: "rest-url",
        default: DefaultValue::Unset {
            doc: "from the JobManager's Flink configuration (`rest.bind-address`/`rest.port`, loopback)",
            example: "http://127.0.0.1:8081",
            show: |o| o.rest_url.clone().unwrap_or_else(|| "<flink config>".into()),
        },
        doc: "the REST API the coordinator reads",
        scope: OptionScope::Loop,
        secret: false,
        per_job: false,
        deprecated: &[],
        set: |o, v| {
            if !(v.starts_with("http://") || v.starts_with("https://")) {
                return Err("must start with http:// or https://, using the Flink configuration's".to_string());
            }
            o.rest_url = Some(v.trim_end_matches('/').to_string());
            Ok(())
        },
    },
    OptionSpec {
        key: "stabilization",
        default: DefaultValue::Shown(|o| duration::format(o.stabilization)),
        doc: "time after a job's (re)deployment, from when all its tasks run (a vertex restoring its state reads busy and counts nothing), before its metrics count; Flink averages busy and back-pressured time over the last minute, so below `1 min` the first window reads a just-deployed vertex less busy than it is",
        scope: OptionScope::Loop,
        secret: false,
        per_job: false,
        deprecated: &[],
        set: |o, v| duration_option(&mut o.stabilization, v, Duration::ZERO),
    },
    OptionSpec {
        key: "decision-window",
        default: DefaultValue::Shown(|o| duration::format(o.decision_window)),
        doc: "how long the coordinator watches a job for one decision (stretched until the REST values were refreshed twice)",
        scope: OptionScope::Loop,
        secret: false,
        per_job: false,
        deprecated: &[],
        set: |o, v| duration_option(&mut o.decision_window, v, MIN_DECISION_WINDOW),
    },
    OptionSpec {
        key: "decision-interval",
        default: DefaultValue::Shown(|o| duration::format(o.decision_interval)),
        doc: "pause between decisions",
        scope: OptionScope::Loop,
        secret: false,
        per_job: false,
        deprecated: &[],
        set: |o, v| duration_option(&mut o.decision_interval, v, Duration::from_secs(1)),
    },
    OptionSpec {
        key: "poll-interval",
        default: DefaultValue::Shown(|o| duration::format(o.poll_interval)),
        doc: "REST polls within a window",
        scope: OptionScope::Loop,
        secret: false,
        per_job: false,
        deprecated: &[],
        set: |o, v| duration_option(&mut o.poll_interval, v, Duration::from_millis(500)),
    },
    OptionSpec {
        key: "target-utilization",
        default: DefaultValue::Shown(|o| o.target_utilization.to_string()),
        doc: "busy ratio each vertex should run at after scaling",
        scope: OptionScope::Loop,
        secret: false,
        per_job: true,
        deprecated: &[],
        set: |o, v| match v.parse::<f64>() {
            Ok(u) if u > 0.0 && u <= 1.0 => {
                o.target_utilization = u;
                Ok(())
            }
            _ => Err(format!(
                "must be a number above 0 and at most 1, using {}",
                o.target_utilization
            )),
        },
    },
    OptionSpec {
        key: "catch-up",
        default: DefaultValue::Shown(|o| duration::format(o.catch_up)),
        doc: "time in which an existing source backlog should be consumed, on top of the arrivals",
        scope: OptionScope::Loop,
        secret: false,
        per_job: true,
        deprecated: &[],
        set: |o, v| duration_option(&mut o.catch_up, v, Duration::ZERO),
    },
    OptionSpec {
        key: "scale-down-delay",
        default: DefaultValue::Shown(|o| duration::format(o.scale_down_delay)),
        doc: "a scale-down is made only after it was recommended for this long, and then to the highest parallelism recommended meanwhile (AT125)",
        scope: OptionScope::Loop,
        secret: false,
        per_job: true,
        deprecated: &[],
        set: |o, v| duration_option(&mut o.scale_down_delay, v, Duration::ZERO),
    },
    OptionSpec {
        key: "ineffective-hold",
        default: DefaultValue::Shown(|o| duration::format(o.ineffective_hold)),
        doc: "after a scale-up that did not raise the rate as expected (AT121, given back with AT134), the vertex is not scaled above what it kept for this long",
        scope: OptionScope::Loop,
        secret: false,
        per_job: true,
        deprecated: &[],
        set: |o, v| duration_option(&mut o.ineffective_hold, v, Duration::ZERO),
    },
    OptionSpec {
        key: "vertex-limits",
        default: DefaultValue::Unset {
            doc: "none",
            example: "cbc357ccb763df2852fee8c4fc7d55f2:2-16",
            show: |o| {
                let limits: Vec<String> = o
                    .vertex_limits
                    .iter()
                    .map(|(id, (min, max))| format!("{id}:{min}-{max}"))
                    .collect();
                if limits.is_empty() {
                    "<none>".into()
                } else {
                    limits.join(",")
                }
            },
        },
        doc: "per-vertex parallelism limits: `<vertex id>:<min>-<max>,...` (ids as in the REST API and the PLAN line)",
        scope: OptionScope::Loop,
        secret: false,
        per_job: true,
        deprecated: &[],
        set: |o, v| vertex_limits(v).map(|limits| o.vertex_limits = limits),
    },
    OptionSpec {
        key: "apply-max-step",
        default: DefaultValue::Shown(|o| o.apply_max_step.to_string()),
        doc: "in `mode: apply`, a vertex's parallelism grows at most this many times in one step (by one subtask at least); the next decision, made on what the step bought, goes on. More task slots than the cluster has are asked for only after AT124 said so (1 to 1000)",
        scope: OptionScope::Loop,
        secret: false,
        per_job: true,
        deprecated: &[],
        set: |o, v| ratio_option(&mut o.apply_max_step, v, 1.0, 1000.0),
    },
    OptionSpec {
        key: "rescale-timeout",
        default: DefaultValue::Shown(|o| duration::format(o.rescale_timeout)),
        doc: "in `mode: apply`, a rescale whose every subtask does not run at the new shape within this long is rolled back to the parallelism that worked (AT135)",
        scope: OptionScope::Loop,
        secret: false,
        per_job: true,
        deprecated: &[],
        set: |o, v| duration_option(&mut o.rescale_timeout, v, Duration::from_secs(1)),
    },
    OptionSpec {
        key: "rollback-failovers",
        default: DefaultValue::Shown(|o| o.rollback_failovers.to_string()),
        doc: "in `mode: apply`, a rescale after which the job fails over this many times before a decision window at its new shape closes is rolled back to the parallelism that worked (AT135); 0: never (0 to 100)",
        scope: OptionScope::Loop,
        secret: false,
        per_job: true,
        deprecated: &[],
        set: |o, v| count_option(&mut o.rollback_failovers, v, 0, 100),
    },
    OptionSpec {
        key: "rollback-hold",
        default: DefaultValue::Shown(|o| duration::format(o.rollback_hold)),
        doc: "after a rollback (AT135), each vertex it narrowed is not scaled above the parallelism it went back to for this long; kept in the job's scaling history, so a restarted JobManager holds it too",
        scope: OptionScope::Loop,
        secret: false,
        per_job: true,
        deprecated: &[],
        set: |o, v| duration_option(&mut o.rollback_hold, v, Duration::ZERO),
    },
    OptionSpec {
        key: "quiet-windows",
        default: DefaultValue::Unset {
            doc: "none",
            example: "0 * 9-17 ? * MON-FRI; 0 0-29 3 * * ?",
            show: |o| {
                if o.quiet_windows.is_empty() {
                    "<none>".into()
                } else {
                    o.quiet_windows.to_string()
                }
            },
        },
        doc: "times in which nothing is applied in place, decisions and recommendations going on: `;`-separated cron expressions with seconds (`sec min hour day-of-month month day-of-week [year]`, in the JobManager's time zone), a minute in which one fires being quiet; e.g. `0 * 9-17 ? * MON-FRI` is 9:00 to 17:59 on weekdays. An apply held back is said once per window (AT136)",
        scope: OptionScope::Loop,
        secret: false,
        per_job: true,
        deprecated: &[],
        set: |o, v| {
            o.quiet_windows = QuietWindows::parse(v).map_err(|e| format!("{e}; no quiet windows used"))?;
            Ok(())
        },
    },
    OptionSpec {
        key: "max-slots",
        default: DefaultValue::Unset {
            doc: "none",
            example: "8",
            show: |o| o.max_slots.map_or_else(|| "<none>".into(), |s| s.to_string()),
        },
        doc: "the task slots a job may take at most: no vertex is recommended wider (one slot sharing group), said once per decision that it caps (AT137)",
        scope: OptionScope::Loop,
        secret: false,
        per_job: true,
        deprecated: &[],
        set: |o, v| slots_option(&mut o.max_slots, v),
    },
    OptionSpec {
        key: "cluster-max-slots",
        default: DefaultValue::Unset {
            doc: "none",
            example: "32",
            show: |o| o.cluster_max_slots.map_or_else(|| "<none>".into(), |s| s.to_string()),
        },
        doc: "in `mode: apply`, the task slots all jobs together may hold after a rescale in place: a step that would take more is cut to what is left, said once per decision (AT137). The cluster's alone: a job cannot raise it",
        scope: OptionScope::Loop,
        secret: false,
        per_job: false,
        deprecated: &[],
        set: |o, v| slots_option(&mut o.cluster_max_slots, v),
    },
    OptionSpec {
        key: "memory-margin",
        default: DefaultValue::Shown(|o| o.memory_margin.to_string()),
        doc: "share added to the measured peaks of metaspace, managed and off-heap memory (0 to 4)",
        scope: OptionScope::Loop,
        secret: false,
        per_job: false,
        deprecated: &[],
        set: |o, v| ratio_option(&mut o.memory_margin, v, 0.0, 4.0),
    },
    OptionSpec {
        key: "heap-headroom",
        default: DefaultValue::Shown(|o| o.heap_headroom.to_string()),
        doc: "room for new objects on top of the live heap, as a share of it: JVM heap = live x (1 + headroom), at least live + 256 MiB (0.1 to 10)",
        scope: OptionScope::Loop,
        secret: false,
        per_job: false,
        deprecated: &[],
        set: |o, v| ratio_option(&mut o.heap_headroom, v, 0.1, 10.0),
    },
    OptionSpec {
        key: "record",
        default: DefaultValue::Shown(|o| o.record.to_string()),
        doc: "`true`: the coordinator also appends each decision window to `<job id>/recording.jsonl` (the `replay` format; rotated at 32 MiB)",
        scope: OptionScope::Loop,
        secret: false,
        per_job: false,
        deprecated: &[],
        set: |o, v| bool_option(&mut o.record, v),
    },
    OptionSpec {
        key: "diagnosis",
        default: DefaultValue::Shown(|o| o.diagnosis.to_string()),
        doc: "look for known failures in the process's log and, in the JobManager, in every job's exceptions and checkpoints",
        scope: OptionScope::Loop,
        secret: false,
        per_job: false,
        deprecated: &[],
        set: |o, v| bool_option(&mut o.diagnosis, v),
    },
    OptionSpec {
        key: "diagnosis-catalogue",
        default: DefaultValue::Unset {
            doc: "none",
            example: "/etc/flink/autotune-catalogue.toml",
            show: |o| path_or(&o.diagnosis_catalogue, "<built-in>"),
        },
        doc: "a catalogue file of your own (same format as `rust-core/model/diagnosis/catalogue.toml`): entries with a built-in code replace it, new codes (use AT9xx) are added; a bad file is one `AUTOTUNE CONFIG` warning and the built-in catalogue is used",
        scope: OptionScope::Loop,
        secret: false,
        per_job: false,
        deprecated: &[],
        set: |o, v| {
            if v.is_empty() {
                return Err("is empty; not used".to_string());
            }
            o.diagnosis_catalogue = Some(PathBuf::from(v));
            Ok(())
        },
    },
    OptionSpec {
        key: "diagnosis-repeat",
        default: DefaultValue::Shown(|o| duration::format(o.diagnosis_repeat)),
        doc: "a finding seen again is said again (with its count) at most this often; when its job ends, at once",
        scope: OptionScope::Loop,
        secret: false,
        per_job: false,
        deprecated: &[],
        set: |o, v| duration_option(&mut o.diagnosis_repeat, v, Duration::from_secs(1)),
    },
    OptionSpec {
        key: "log-file",
        default: DefaultValue::Unset {
            doc: "the process's own log (`log.file`)",
            example: "/opt/flink/log/flink-jobmanager.log",
            show: |o| path_or(&o.log_file, "<none>"),
        },
        doc: "the log file the diagnosis follows (rotation and truncation are handled)",
        scope: OptionScope::Loop,
        secret: false,
        per_job: false,
        deprecated: &[],
        set: |o, v| {
            if v.is_empty() {
                return Err("is empty; not used".to_string());
            }
            o.log_file = Some(PathBuf::from(v));
            Ok(())
        },
    },
    OptionSpec {
        key: "flink-version",
        default: DefaultValue::Unset {
            doc: "the running release (the shim asks Flink)",
            example: "1.20.3",
            show: |o| o.flink_version.map_or_else(|| "<from the log>".into(), |v| v.to_string()),
        },
        doc: "the release findings spell their keys for",
        scope: OptionScope::Loop,
        secret: false,
        per_job: false,
        deprecated: &[],
        set: |o, v| {
            v.parse()
                .map(|version| o.flink_version = Some(version))
                .map_err(|e| format!("{e}; read from the log instead"))
        },
    },
    OptionSpec {
        key: "webhook-secret-url",
        default: DefaultValue::Unset {
            doc: "none",
            example: "https://hooks.slack.com/services/T000/B000/XXXX",
            show: |o| if o.webhook_url.is_some() { "<set>".into() } else { "<none>".into() },
        },
        doc: "post findings to this Slack-compatible incoming webhook (`{\"text\": ...}`). The word `secret` in the key makes Flink mask the value wherever it prints its configuration (client, JobManager, TaskManagers, REST), and the plugin never writes it either",
        scope: OptionScope::Loop,
        secret: true,
        per_job: false,
        deprecated: &["webhook-url"],
        set: |o, v| {
            if !(v.starts_with("http://") || v.starts_with("https://")) {
                return Err("must start with http:// or https://; no webhook".to_string());
            }
            o.webhook_url = Some(v.to_string());
            Ok(())
        },
        // Never the URL itself: it is a credential.
    },
    OptionSpec {
        key: "webhook-interval",
        default: DefaultValue::Shown(|o| duration::format(o.webhook_interval)),
        doc: "at most one webhook post per interval; findings in between go out together (at most 10 per post)",
        scope: OptionScope::Loop,
        secret: false,
        per_job: false,
        deprecated: &[],
        set: |o, v| duration_option(&mut o.webhook_interval, v, Duration::from_secs(1)),
    },
    OptionSpec {
        key: "flamegraph",
        default: DefaultValue::Shown(|o| o.flamegraph.to_string()),
        doc: "TaskManagers sample the task threads of a vertex that stays at least 50% busy (at most once per the longer of `decision-window` and `decision-interval`, on a thread of its own); the coordinator writes the bottleneck's flame graph to `<job id>/flamegraphs/` (AT111). Flink's own `rest.flamegraph.enabled` is not needed",
        scope: OptionScope::Reporter,
        secret: false,
        per_job: false,
        deprecated: &[],
        set: |o, v| bool_option(&mut o.flamegraph, v),
    },
    OptionSpec {
        key: "flamegraph-samples",
        default: DefaultValue::Shown(|o| o.flamegraph_samples.to_string()),
        doc: "stack samples of each task thread per flame graph (10 to 1000)",
        scope: OptionScope::Reporter,
        secret: false,
        per_job: false,
        deprecated: &[],
        set: |o, v| match v.parse::<u32>() {
            Ok(n) if (10..=1_000).contains(&n) => {
                o.flamegraph_samples = n;
                Ok(())
            }
            _ => Err(format!(
                "must be a whole number from 10 to 1000, using {}",
                o.flamegraph_samples
            )),
        },
    },
    OptionSpec {
        key: "flamegraph-sample-interval",
        default: DefaultValue::Shown(|o| duration::format(o.flamegraph_sample_interval)),
        doc: "pause between two stack samples (at least 5 ms): 100 samples 30 ms apart take 3 s",
        scope: OptionScope::Reporter,
        secret: false,
        per_job: false,
        deprecated: &[],
        set: |o, v| duration_option(&mut o.flamegraph_sample_interval, v, Duration::from_millis(5)),
    },
    OptionSpec {
        key: "kafka.bootstrap-servers",
        default: DefaultValue::Unset {
            doc: "none: a Kafka source's backlog is its reader's `pendingRecords`",
            example: "broker-1:9092,broker-2:9092",
            show: |o| o.kafka_bootstrap_servers.clone().unwrap_or_else(|| "<none>".into()),
        },
        doc: "the Kafka brokers the jobs read (as the connector's `bootstrap.servers`): the coordinator reads the end offsets of exactly the partitions its Kafka sources report, so backlog = end offsets minus the readers' positions and arrivals = the growth of the end offsets, right under back-pressure (AT130). Brokers that cannot be read are said once (AT131) and the backlog falls back to `pendingRecords`",
        scope: OptionScope::Loop,
        secret: false,
        per_job: true,
        deprecated: &[],
        set: |o, v| {
            let servers: Vec<&str> = v.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
            if servers.is_empty() || servers.iter().any(|s| !s.contains(':')) {
                return Err("must be host:port[,host:port...]; the backlog stays pendingRecords".into());
            }
            o.kafka_bootstrap_servers = Some(servers.join(","));
            Ok(())
        },
    },
    OptionSpec {
        key: "kafka.properties.<property>",
        default: DefaultValue::Unset {
            doc: "none (PLAINTEXT)",
            example: "security.protocol=SASL_PLAINTEXT",
            show: |o| match o.kafka_properties.keys().cloned().collect::<Vec<_>>() {
                keys if keys.is_empty() => "<none>".into(),
                keys => format!("<{}>", keys.join(",")),
            },
        },
        doc: "a Kafka client property for reading the brokers, spelled as the Kafka connector's `properties.*`: `security.protocol` (`PLAINTEXT`, `SASL_PLAINTEXT`, `SSL`, `SASL_SSL`), `sasl.mechanism` (`PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`), `sasl.jaas.config` (its `username` and `password`), `ssl.truststore.location` or `ssl.truststore.certificates` (PEM), `client.id`. Values of credentials are never shown, and a job cannot set them (Flink masks them among its parameters over REST): set them for the cluster. A mechanism or store the client cannot use is one AT131 line",
        scope: OptionScope::Loop,
        secret: true,
        per_job: true,
        deprecated: &[],
        set: |o, v| match v.split_once('=') {
            Some((property, value)) if !property.trim().is_empty() => {
                o.kafka_properties.insert(property.trim().to_string(), value.trim().to_string());
                Ok(())
            }
            _ => Err("names no client property".into()),
        },
    },
    OptionSpec {
        key: "native-library",
        default: DefaultValue::Unset {
            doc: "(the one in the jar)",
            example: "/opt/autotune/libflink_autotune.so",
            show: nothing,
        },
        doc: "load this library file instead of the bundled one",
        scope: OptionScope::Shim,
        secret: false,
        per_job: false,
        deprecated: &[],
        set: |_, _| Ok(()),
    },
    OptionSpec {
        key: "native-tmpdir",
        default: DefaultValue::Unset {
            doc: "`java.io.tmpdir`",
            example: "/var/tmp/flink-autotune",
            show: nothing,
        },
        doc: "where the bundled library is extracted (a private folder per load); set it when `/tmp` is mounted `noexec`",
        scope: OptionScope::Shim,
        secret: false,
        per_job: false,
        deprecated: &[],
        set: |_, _| Ok(()),
    },

];

/// The shortest decision window: the REST API refreshes its values every ~10 s.
pub const MIN_DECISION_WINDOW: Duration = Duration::from_secs(5);

/// Options every Flink reporter accepts; Flink handles them, we only must not warn.
const FLINK_REPORTER_OPTIONS: &[&str] = &[
    "factory.class",
    "class",
    "interval",
    "scope.delimiter",
    "scope.variables.excludes",
    "scope.variables.additional",
    "filter.includes",
    "filter.excludes",
];

/// The option with this key, if the plugin has one (`kafka.properties.security.protocol` is
/// `kafka.properties.<property>`'s).
pub fn spec(key: &str) -> Option<&'static OptionSpec> {
    OPTIONS
        .iter()
        .find(|s| s.key == key || s.named_in(key).is_some())
}

/// Parts of a key whose value Flink masks wherever it shows its configuration, as
/// `GlobalConfiguration` does; over REST a job's parameters under such keys read `******`.
const SENSITIVE: &[&str] = &[
    "password",
    "secret",
    "jaas.config",
    "token",
    "apikey",
    "api-key",
    "auth-params",
    "service-key",
    "basic-auth",
];

/// How Flink's REST API shows a job parameter it masks.
const MASKED: &str = "******";

/// An option whose key ends with this is a family: any name in its place sets one entry.
const ANY_NAME: &str = "<property>";

impl OptionSpec {
    /// The key before the name, for a family of keys (`kafka.properties.`).
    pub fn prefix(&self) -> Option<&'static str> {
        self.key.strip_suffix(ANY_NAME)
    }

    /// The name `key` gives in a family's place.
    fn named_in<'k>(&self, key: &'k str) -> Option<&'k str> {
        key.strip_prefix(self.prefix()?)
            .filter(|name| !name.is_empty())
    }

    /// Whether the value under `key` is a credential, never shown: the option's, or for a
    /// family the entry's, named as Flink names the keys it masks (`password`, `jaas.config`...).
    pub fn is_secret(&self, key: &str) -> bool {
        match self.named_in(key) {
            Some(name) => {
                let name = name.to_ascii_lowercase();
                self.secret && SENSITIVE.iter().any(|word| name.contains(word))
            }
            None => self.secret,
        }
    }

    /// What `set` reads for `key: value`: a family's entry as `name=value`.
    fn setting(&self, key: &str, value: &str) -> String {
        match self.named_in(key) {
            Some(name) => format!("{name}={value}"),
            None => value.to_string(),
        }
    }
}

/// The option a key names: by its key, or by a former one (then `true`).
fn lookup(key: &str) -> Option<(&'static OptionSpec, bool)> {
    spec(key).map(|s| (s, false)).or_else(|| {
        OPTIONS
            .iter()
            .find(|s| s.deprecated.contains(&key))
            .map(|s| (s, true))
    })
}

/// The documentation of an option, naming its former keys and whether a job may set it.
fn documentation(spec: &OptionSpec) -> String {
    let mut doc = match spec.deprecated {
        [] => spec.doc.to_string(),
        old => format!(
            "{} (formerly `{}`, still read with a warning)",
            spec.doc,
            old.join("`, `")
        ),
    };
    if spec.per_job {
        doc.push_str(&format!(". Per job: `{JOB_PREFIX}{}`", spec.key));
    }
    doc
}

/// The README's configuration table, rows of the plugin's own options (Flink's
/// `factory.class` and `interval` rows come first in the README, by hand).
pub fn markdown_rows() -> String {
    OPTIONS
        .iter()
        .map(|s| format!("| `{}` | {} | {} |\n", s.key, s.default, documentation(s)))
        .collect()
}

/// The prefix of every key of the plugin in Flink's configuration.
const PREFIX: &str = "metrics.reporter.autotune.";

/// The prefix of a job's own settings among its global job parameters.
pub const JOB_PREFIX: &str = "autotune.";

/// Where [`flink_conf_snippet`] and [`config_yaml_snippet`] are kept, under the project root.
pub const SNIPPETS: [&str; 2] = [
    "examples/conf/flink-conf.yaml.snippet",
    "examples/conf/config.yaml.snippet",
];

/// Says where a sample file comes from and how it is rewritten.
const GENERATED: &str = "Every option of the plugin follows, commented out, with its default (or, where it has none, an example value). Generated from rust-core/model/src/options.rs; after a change there run AUTOTUNE_BLESS=1 cargo test -p autotune-model --lib options";

/// `examples/conf/flink-conf.yaml.snippet`: Flink 1.x's flat keys, every option.
pub fn flink_conf_snippet() -> String {
    let mut out = String::from(
        "# flink-autotune reporter for Flink 1.x (conf/flink-conf.yaml, flat keys).\n\
         # Put the plugin jar in $FLINK_HOME/plugins/autotune/ on every JobManager and TaskManager host.\n",
    );
    push_comment(&mut out, "", GENERATED);
    out.push_str(&format!(
        "{PREFIX}factory.class: dev.flinkautotune.AutotuneReporterFactory\n\
         {PREFIX}interval: 10 SECONDS\n"
    ));
    for spec in OPTIONS {
        out.push('\n');
        push_comment(&mut out, "", &spec_comment(spec));
        out.push_str(&format!("# {PREFIX}{}\n", sample_setting(spec)));
    }
    out
}

/// `examples/conf/config.yaml.snippet`: Flink 2.x's nested YAML, every option.
pub fn config_yaml_snippet() -> String {
    let mut out = String::from(
        "# flink-autotune reporter for Flink 2.x (conf/config.yaml, nested YAML).\n\
         # Merge into the existing top-level \"metrics:\" section if there is one; a duplicate top-level\n\
         # key is a YAML error. Put the plugin jar in $FLINK_HOME/plugins/autotune/ on every host.\n",
    );
    push_comment(&mut out, "", GENERATED);
    out.push_str(
        "metrics:\n  \
           reporter:\n    \
             autotune:\n      \
               factory:\n        \
                 class: dev.flinkautotune.AutotuneReporterFactory\n      \
               interval: 10 SECONDS\n",
    );
    let indent = "      ";
    for spec in OPTIONS {
        out.push('\n');
        push_comment(&mut out, indent, &spec_comment(spec));
        out.push_str(&format!("{indent}# {}\n", sample_setting(spec)));
    }
    out
}

/// An option's documentation as plain text, with its default.
fn spec_comment(spec: &OptionSpec) -> String {
    format!("{}. Default: {}.", documentation(spec), spec.default).replace('`', "")
}

/// The setting a sample file shows, `key: value`: the default, or an example where there is
/// none (a family's example is one `name=value` of it).
fn sample_setting(spec: &OptionSpec) -> String {
    let value = match spec.default {
        DefaultValue::Shown(show) => show(&Options::default()),
        DefaultValue::Unset { example, .. } => example.to_string(),
    };
    match (spec.prefix(), value.split_once('=')) {
        (Some(prefix), Some((name, value))) => format!("{prefix}{name}: {value}"),
        _ => format!("{}: {value}", spec.key),
    }
}

/// `text` as `#` comment lines of at most 100 characters, each starting with `indent`.
fn push_comment(out: &mut String, indent: &str, text: &str) {
    let width = 100 - indent.len() - 2;
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            out.push_str(&format!("{indent}# {line}\n"));
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        out.push_str(&format!("{indent}# {line}\n"));
    }
}

fn bool_option(target: &mut bool, value: &str) -> Result<(), String> {
    match value.to_ascii_lowercase().as_str() {
        "true" => *target = true,
        "false" => *target = false,
        _ => return Err(format!("must be true or false, using {target}")),
    }
    Ok(())
}

/// A number within `min..=max`; otherwise the reason, naming the value kept.
fn ratio_option(target: &mut f64, value: &str, min: f64, max: f64) -> Result<(), String> {
    match value.trim().parse::<f64>() {
        Ok(v) if (min..=max).contains(&v) => {
            *target = v;
            Ok(())
        }
        _ => Err(format!(
            "must be a number from {min} to {max}, using {target}"
        )),
    }
}

/// A whole number within `min..=max`; otherwise the reason, naming the value kept.
fn count_option(target: &mut u32, value: &str, min: u32, max: u32) -> Result<(), String> {
    match value.trim().parse::<u32>() {
        Ok(v) if (min..=max).contains(&v) => {
            *target = v;
            Ok(())
        }
        _ => Err(format!(
            "must be a whole number from {min} to {max}, using {target}"
        )),
    }
}

/// A cap on task slots, 1 to 100000; otherwise the reason, and no cap.
fn slots_option(target: &mut Option<u32>, value: &str) -> Result<(), String> {
    match value.trim().parse::<u32>() {
        Ok(v) if (1..=100_000).contains(&v) => {
            *target = Some(v);
            Ok(())
        }
        _ => {
            *target = None;
            Err("must be a whole number of task slots from 1 to 100000; no cap used".into())
        }
    }
}

/// `<vertex id>:<min>-<max>,...`, e.g. `cbc357ccb763df2852fee8c4fc7d55f2:2-16`.
fn vertex_limits(value: &str) -> Result<BTreeMap<String, (u32, u32)>, String> {
    let mut limits = BTreeMap::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let parsed = entry.rsplit_once(':').and_then(|(id, range)| {
            let (min, max) = range.split_once('-')?;
            let (min, max) = (
                min.trim().parse::<u32>().ok()?,
                max.trim().parse::<u32>().ok()?,
            );
            (!id.trim().is_empty() && min >= 1 && min <= max)
                .then(|| (id.trim().to_string(), (min, max)))
        });
        match parsed {
            Some((id, range)) => {
                limits.insert(id, range);
            }
            None => return Err(format!("has '{entry}', expected <vertex id>:<min>-<max> with 1 <= min <= max; no limits used")),
        }
    }
    Ok(limits)
}

/// Parsed options plus one readable problem per bad or unknown key.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedOptions {
    pub options: Options,
    pub problems: Vec<String>,
}

/// Sets a duration option if it parses and is at least `min`; else says why and what is kept.
fn duration_option(target: &mut Duration, value: &str, min: Duration) -> Result<(), String> {
    match duration::parse(value) {
        Ok(d) if d >= min => {
            *target = d;
            Ok(())
        }
        Ok(_) => Err(format!(
            "must be at least {}, using {}",
            duration::format(min),
            duration::format(*target)
        )),
        Err(e) => Err(format!("{e}; using {}", duration::format(*target))),
    }
}

impl Options {
    /// Parses `metrics.reporter.autotune.*` properties (keys without the prefix). A former
    /// key is read as its option's (unless the option's key is set too, which wins) and is
    /// one problem, saying the key to use.
    pub fn parse<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> ParsedOptions {
        let pairs: Vec<(&str, &str)> = pairs.into_iter().collect();
        let mut o = Options::default();
        let mut problems = Vec::new();
        for &(key, value) in &pairs {
            let value = value.trim();
            let found = lookup(key);
            if let Some((spec, true)) = found {
                let superseded = pairs.iter().any(|(k, _)| *k == spec.key);
                problems.push(format!(
                    "{PREFIX}{key}: is deprecated, use {PREFIX}{}{}{}",
                    spec.key,
                    if spec.secret {
                        " (Flink masks the value only under that key)"
                    } else {
                        ""
                    },
                    if superseded {
                        "; it is set too, so this one is ignored"
                    } else {
                        ""
                    }
                ));
                if superseded {
                    continue;
                }
            }
            let result = match found {
                Some((spec, _)) => (spec.set)(&mut o, &spec.setting(key, value)),
                None if FLINK_REPORTER_OPTIONS.contains(&key)
                    || key.starts_with("filter.")
                    || key.starts_with("scope.") =>
                {
                    Ok(())
                }
                None => Err(format!(
                    "is not an option of this plugin (known: {})",
                    OPTIONS.iter().map(|s| s.key).collect::<Vec<_>>().join(", ")
                )),
            };
            if let Err(reason) = result {
                // The value is repeated only for a known key that is no credential: an
                // unknown key may be a credential under a mistyped name (webhook_secret_url).
                let shown = match found {
                    Some((s, _)) if !s.is_secret(key) => format!("'{value}' "),
                    _ => String::new(),
                };
                problems.push(format!("{PREFIX}{key}: {shown}{reason}"));
            }
        }
        ParsedOptions {
            options: o,
            problems,
        }
    }
}

impl Options {
    /// A job's settings: these options (the cluster's), with what the job sets for itself as
    /// `autotune.<key>` among `pairs` (its global job parameters; other parameters are the
    /// job's own business). A bad value, or a key a job cannot set, is one problem each and
    /// leaves the cluster's value.
    pub fn for_job<'a>(
        &self,
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> ParsedOptions {
        let mut o = self.clone();
        let mut problems = Vec::new();
        for (key, value) in pairs {
            let Some(name) = key.strip_prefix(JOB_PREFIX) else {
                continue;
            };
            let result = match spec(name) {
                // Flink masks credentials among a job's parameters over REST: not readable.
                Some(spec) if spec.per_job && value.trim() == MASKED => Err(format!(
                    "is masked by Flink's REST API, as every credential among a job's parameters; set it for the cluster ({PREFIX}{name})"
                )),
                Some(spec) if spec.per_job => (spec.set)(&mut o, &spec.setting(name, value.trim())),
                Some(_) => Err(format!(
                    "is set for the whole cluster only ({PREFIX}{name}); a job may set {}",
                    per_job_keys()
                )),
                None => Err(format!(
                    "is not an option a job may set (it may set {})",
                    per_job_keys()
                )),
            };
            if let Err(reason) = result {
                let shown = match spec(name) {
                    Some(s) if s.is_secret(name) => String::new(),
                    _ => format!("'{}' ", value.trim()),
                };
                problems.push(format!("{key}: {shown}{reason}"));
            }
        }
        ParsedOptions {
            options: o,
            problems,
        }
    }
}

fn per_job_keys() -> String {
    let keys: Vec<String> = OPTIONS
        .iter()
        .filter(|s| s.per_job)
        .map(|s| format!("{JOB_PREFIX}{}", s.key))
        .collect();
    keys.join(", ")
}

/// The START line's view: every option the native side reads, as `key=value`.
impl fmt::Display for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: Vec<String> = OPTIONS
            .iter()
            .filter(|s| s.scope != OptionScope::Shim)
            .map(|s| format!("{}={}", s.key, s.shown(self)))
            .collect();
        f.write_str(&shown.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_when_nothing_is_set() {
        let parsed = Options::parse([]);
        assert_eq!(parsed.options, Options::default());
        assert!(parsed.problems.is_empty());
    }

    #[test]
    fn the_webhook_url_is_never_shown() {
        let secret = "https://hooks.slack.com/services/T000/B000/SECRETTOKEN";
        let parsed = Options::parse([
            ("webhook-secret-url", secret),
            ("webhook-interval", "5 min"),
            ("diagnosis-repeat", "1 h"),
        ]);
        assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
        assert_eq!(parsed.options.webhook_url.as_deref(), Some(secret));
        let shown = parsed.options.to_string();
        assert!(
            !shown.contains("SECRETTOKEN")
                && shown.contains("webhook-secret-url=<set>")
                && shown.contains("webhook-interval=5min"),
            "{shown}"
        );
        let bad = Options::parse([("webhook-secret-url", "hooks.slack.com/SECRETTOKEN")]);
        assert!(bad.options.webhook_url.is_none());
        assert!(
            !bad.problems[0].contains("SECRETTOKEN"),
            "{:?}",
            bad.problems
        );
        let mistyped = Options::parse([("webhook_url", secret)]);
        assert!(
            mistyped.problems[0].contains("is not an option"),
            "{:?}",
            mistyped.problems
        );
        assert!(
            !mistyped.problems[0].contains("SECRETTOKEN"),
            "an unknown key's value is not repeated"
        );
        let v = Options::parse([("flink-version", "1.17.2")]);
        assert_eq!(
            v.options.flink_version.map(|v| v.to_string()),
            Some("1.17.2".into())
        );
        assert!(Options::parse([("flink-version", "unknown")]).problems[0]
            .contains("read from the log instead"));
        let off = Options::parse([
            ("diagnosis", "false"),
            ("diagnosis-catalogue", "/etc/flink/mine.toml"),
        ]);
        assert!(!off.options.diagnosis);
        assert_eq!(
            off.options.diagnosis_catalogue,
            Some(PathBuf::from("/etc/flink/mine.toml"))
        );
    }

    /// Each default lives in `impl Default for Options` only; the table shows it from there.
    /// This proves the shown text is a value the option's own parser reads back as that
    /// default, that `show` reads the field `set` writes (another value shows otherwise and
    /// reads back the same), and that an option with no default of its own holds none.
    #[test]
    fn every_shown_default_is_the_default() {
        const OTHER_VALUES: &[&str] = &[
            "apply", "3", "17", "0.5", "2.5", "7 s", "3 min", "45 ms", "false", "true",
        ];
        let defaults = Options::default();
        for spec in OPTIONS {
            let key = spec.key;
            match spec.default {
                DefaultValue::Shown(show) => {
                    let text = show(&defaults);
                    let mut read = Options::default();
                    assert_eq!(
                        (spec.set)(&mut read, &text),
                        Ok(()),
                        "{key}: the shown default '{text}' must parse"
                    );
                    assert_eq!(
                        read, defaults,
                        "{key}: '{text}' reads back as another value"
                    );
                    let other = OTHER_VALUES
                        .iter()
                        .find_map(|v| {
                            let mut o = Options::default();
                            ((spec.set)(&mut o, v).is_ok() && o != defaults).then_some(o)
                        })
                        .unwrap_or_else(|| panic!("{key}: add a value it takes to OTHER_VALUES"));
                    let shown = show(&other);
                    assert_ne!(shown, text, "{key}: shows another field than it sets");
                    let mut again = Options::default();
                    assert_eq!((spec.set)(&mut again, &shown), Ok(()), "{key}: '{shown}'");
                    assert_eq!(again, other, "{key}: '{shown}' reads back as another value");
                }
                DefaultValue::Unset { example, show, .. } => {
                    let unset = show(&defaults);
                    assert!(
                        unset.is_empty() || unset.starts_with('<'),
                        "{key}: has no default of its own, yet shows '{unset}'"
                    );
                    let mut o = Options::default();
                    assert_eq!(
                        (spec.set)(&mut o, example),
                        Ok(()),
                        "{key}: example '{example}'"
                    );
                    if spec.scope != OptionScope::Shim {
                        assert_ne!(o, defaults, "{key}: the example sets nothing");
                        assert_ne!(show(&o), unset, "{key}: the example is not shown");
                    }
                }
            }
        }
    }

    /// The committed sample files are what the table renders (`AUTOTUNE_BLESS=1` rewrites them).
    #[test]
    fn the_sample_files_are_rendered_from_the_table() {
        let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
        for (file, rendered) in SNIPPETS
            .into_iter()
            .zip([flink_conf_snippet(), config_yaml_snippet()])
        {
            let path = root.join(file);
            if std::env::var_os("AUTOTUNE_BLESS").is_some() {
                std::fs::write(&path, &rendered).expect("write the sample file");
            }
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            if committed != rendered {
                let line = committed
                    .lines()
                    .zip(rendered.lines())
                    .position(|(a, b)| a != b)
                    .unwrap_or(committed.lines().count().min(rendered.lines().count()));
                panic!(
                    "{file} is not what rust-core/model/src/options.rs renders (from line {}); \
                     rewrite it with: AUTOTUNE_BLESS=1 cargo test -p autotune-model --lib options",
                    line + 1
                );
            }
        }
    }

    /// The keys a sample file sets once each option block's commented setting (its last
    /// line) is uncommented, flattened to Flink's dotted keys, in order.
    fn sample_settings(snippet: &str) -> Vec<(String, String)> {
        let uncommented: String = snippet
            .split("\n\n")
            .enumerate()
            .map(|(i, block)| {
                let (doc, setting) = block.trim_end().rsplit_once('\n').unwrap();
                match i {
                    0 => format!("{block}\n"),
                    _ => format!("{doc}\n{}\n", setting.replacen("# ", "", 1)),
                }
            })
            .collect();
        // Nested YAML by indentation: `key:` opens a mapping, `key: value` is a setting.
        let mut open: Vec<(usize, &str)> = Vec::new();
        let mut settings = Vec::new();
        for line in uncommented.lines() {
            let content = line.trim_start();
            if content.is_empty() || content.starts_with('#') {
                continue;
            }
            assert!(!line.contains('\t'), "a tab in YAML: {line}");
            let indent = line.len() - content.len();
            let (key, value) = content.split_once(':').expect("key: value");
            let value = value.trim();
            open.retain(|(i, _)| *i < indent);
            if value.is_empty() {
                open.push((indent, key));
                continue;
            }
            // A plain YAML scalar, read by Flink as the text it is.
            assert!(
                !value.contains(": ")
                    && !value.contains(" #")
                    && !value.starts_with(|c| "[]{}&*!|>'\"%@`#,?-".contains(c)),
                "{line}: not a plain YAML scalar"
            );
            let path: Vec<&str> = open.iter().map(|(_, k)| *k).chain([key]).collect();
            settings.push((path.join("."), value.to_string()));
        }
        settings
    }

    /// Both sample files hold every option, in the table's order, with the same values,
    /// and every one of those values is taken without a problem.
    #[test]
    fn the_sample_files_hold_every_option() {
        let flat = sample_settings(&flink_conf_snippet());
        let nested = sample_settings(&config_yaml_snippet());
        assert_eq!(flat, nested, "flink-conf.yaml and config.yaml set the same");
        // A family's sample key (`kafka.properties.security.protocol`) is its option's.
        let keys: Vec<&str> = flat
            .iter()
            .map(|(k, _)| k.strip_prefix(PREFIX).expect("the reporter's prefix"))
            .map(|k| spec(k).map_or(k, |s| s.key))
            .collect();
        let expected: Vec<&str> = ["factory.class", "interval"]
            .into_iter()
            .chain(OPTIONS.iter().map(|s| s.key))
            .collect();
        assert_eq!(keys, expected);
        let parsed = Options::parse(
            flat.iter()
                .map(|(k, v)| (k.strip_prefix(PREFIX).unwrap(), v.as_str())),
        );
        assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
        assert!(config_yaml_snippet()
            .lines()
            .chain(flink_conf_snippet().lines())
            .all(|l| l.len() <= 100));
    }

    /// `webhook-url` was renamed `webhook-secret-url` (so that Flink masks it): the old key
    /// still works, with one warning that never repeats the credential; the new key wins.
    #[test]
    fn a_former_key_still_works_with_one_warning() {
        let secret = "https://hooks.slack.com/services/T000/B000/SECRETTOKEN";
        let old = Options::parse([("webhook-url", secret)]);
        assert_eq!(old.options.webhook_url.as_deref(), Some(secret));
        assert_eq!(
            old.problems,
            ["metrics.reporter.autotune.webhook-url: is deprecated, use \
              metrics.reporter.autotune.webhook-secret-url (Flink masks the value only under that key)"]
        );
        let new = "https://hooks.slack.com/services/T000/B000/NEW";
        for pairs in [
            [("webhook-url", secret), ("webhook-secret-url", new)],
            [("webhook-secret-url", new), ("webhook-url", secret)],
        ] {
            let both = Options::parse(pairs);
            assert_eq!(both.options.webhook_url.as_deref(), Some(new));
            assert_eq!(both.problems.len(), 1, "{:?}", both.problems);
            assert!(both.problems[0].ends_with("it is set too, so this one is ignored"));
            assert!(!both.problems[0].contains("SECRETTOKEN"));
        }
        let bad = Options::parse([("webhook-url", "hooks.slack.com/SECRETTOKEN")]);
        assert!(bad.options.webhook_url.is_none());
        assert_eq!(bad.problems.len(), 2, "{:?}", bad.problems);
        assert!(bad.problems[1].contains("webhook-url: must start with http"));
        assert!(bad.problems.iter().all(|p| !p.contains("SECRETTOKEN")));
    }

    /// A former key names one option only, is no current key nor one Flink reads itself,
    /// and only the native side reads former keys (the shim reads its own options).
    #[test]
    fn former_keys_are_unambiguous() {
        let mut seen: Vec<&str> = OPTIONS.iter().map(|s| s.key).collect();
        for spec in OPTIONS {
            assert!(spec.scope != OptionScope::Shim || spec.deprecated.is_empty());
            for old in spec.deprecated {
                assert!(!seen.contains(old), "{old} names two options");
                assert!(!FLINK_REPORTER_OPTIONS.contains(old) && !old.contains('.'));
                assert_eq!(
                    lookup(old).map(|(s, was)| (s.key, was)),
                    Some((spec.key, true))
                );
                seen.push(old);
            }
        }
    }

    #[test]
    fn the_readme_documents_exactly_these_options() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
                .expect("README.md at the project root");
        let section = readme
            .split("\n## ")
            .find(|s| s.starts_with("Configuration reference"))
            .expect("a Configuration reference section");
        let documented: Vec<&str> = section
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split_once("` |").map(|(key, _)| key))
            .collect();
        let keys: Vec<&str> = ["factory.class", "interval"]
            .into_iter()
            .chain(OPTIONS.iter().map(|s| s.key))
            .collect();
        assert_eq!(documented, keys, "README's configuration table, in order");
        assert!(
            readme.contains(&markdown_rows()),
            "README's rows must read as `flink-autotune options` prints them:\n{}",
            markdown_rows()
        );
    }

    /// `kafka.properties.<property>` is a family: each key sets one client property, as the
    /// connector spells it; its values (credentials) are never shown, nor repeated in a problem.
    #[test]
    fn kafka_properties_are_a_family_whose_values_are_never_shown() {
        let jaas = "org.apache.kafka.common.security.plain.PlainLoginModule required username=\"u\" password=\"SECRETPW\";";
        let parsed = Options::parse([
            (
                "kafka.bootstrap-servers",
                " 127.0.0.1:9092 , 127.0.0.1:9093",
            ),
            ("kafka.properties.security.protocol", "SASL_PLAINTEXT"),
            ("kafka.properties.sasl.jaas.config", jaas),
            ("kafka.properties.", "nameless"),
        ]);
        let o = &parsed.options;
        assert_eq!(
            o.kafka_bootstrap_servers.as_deref(),
            Some("127.0.0.1:9092,127.0.0.1:9093")
        );
        assert_eq!(o.kafka_properties["security.protocol"], "SASL_PLAINTEXT");
        assert_eq!(o.kafka_properties["sasl.jaas.config"], jaas);
        assert_eq!(parsed.problems.len(), 1, "{:?}", parsed.problems);
        assert!(parsed.problems[0].contains("kafka.properties.: is not an option"));
        let shown = o.to_string();
        assert!(
            shown.contains("kafka.properties.<property>=<sasl.jaas.config,security.protocol>")
                && !shown.contains("SECRETPW"),
            "{shown}"
        );
        let bad = Options::parse([("kafka.bootstrap-servers", "broker-without-port")]);
        assert!(bad.options.kafka_bootstrap_servers.is_none());
        assert!(
            bad.problems[0].contains("must be host:port"),
            "{:?}",
            bad.problems
        );
        // A job names its own brokers and mechanism; its credentials Flink masks over REST.
        let job = Options::default().for_job([
            ("autotune.kafka.bootstrap-servers", "10.0.0.1:9092"),
            ("autotune.kafka.properties.sasl.mechanism", "SCRAM-SHA-512"),
            ("autotune.kafka.properties.sasl.jaas.config", "******"),
        ]);
        assert_eq!(
            job.options.kafka_properties["sasl.mechanism"],
            "SCRAM-SHA-512"
        );
        assert!(!job
            .options
            .kafka_properties
            .contains_key("sasl.jaas.config"));
        assert_eq!(job.problems.len(), 1, "{:?}", job.problems);
        assert!(
            job.problems[0].contains("masked by Flink's REST API"),
            "{:?}",
            job.problems
        );
        let family = spec("kafka.properties.<property>").unwrap();
        assert!(family.is_secret("kafka.properties.sasl.jaas.config"));
        assert!(family.is_secret("kafka.properties.ssl.truststore.password"));
        assert!(!family.is_secret("kafka.properties.security.protocol"));
    }

    #[test]
    fn a_job_sets_its_own_options_over_the_clusters_and_a_bad_one_keeps_the_clusters() {
        let cluster = Options::parse([("mode", "apply"), ("target-utilization", "0.6")]).options;
        let job = cluster.for_job([
            ("autotune.mode", "off"),
            ("autotune.catch-up", "2 min"),
            ("autotune.target-utilization", "7"),
            ("autotune.decision-window", "10 s"),
            ("autotune.bogus", "1"),
            ("orders.topic", "orders"),
        ]);
        assert_eq!(job.options.mode, Mode::Off);
        assert_eq!(job.options.catch_up, Duration::from_secs(120));
        assert_eq!(job.options.target_utilization, 0.6, "the cluster's, kept");
        assert_eq!(job.options.decision_window, cluster.decision_window);
        assert_eq!(job.problems.len(), 3, "{:?}", job.problems);
        assert!(job.problems[0].starts_with("autotune.target-utilization: '7' must be"));
        assert!(job.problems[1]
            .contains("whole cluster only (metrics.reporter.autotune.decision-window)"));
        assert!(job.problems[2].starts_with("autotune.bogus: '1' is not an option a job may set"));
        assert!(job.problems[2].contains("autotune.mode, "));
        // Nothing set: the cluster's options, no problem.
        let none = cluster.for_job([("orders.topic", "orders")]);
        assert_eq!((none.options, none.problems.len()), (cluster, 0));
    }

    #[test]
    fn reads_every_option() {
        let parsed = Options::parse([
            ("mode", "APPLY"),
            ("summary-interval", "30 s"),
            ("window-size", "12"),
            ("output-dir", "/var/autotune"),
            ("factory.class", "dev.flinkautotune.AutotuneReporterFactory"),
            ("interval", "10 SECONDS"),
            ("native-tmpdir", "/opt/tmp"),
            ("flamegraph", "false"),
            ("flamegraph-samples", "50"),
            ("flamegraph-sample-interval", "20 ms"),
        ]);
        assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
        let o = parsed.options;
        assert!(!o.flamegraph);
        assert_eq!(o.flamegraph_samples, 50);
        assert_eq!(o.flamegraph_sample_interval, Duration::from_millis(20));
        assert!(Options::parse([("flamegraph-samples", "5")]).problems[0].contains("10 to 1000"));
        assert_eq!(o.mode, Mode::Apply);
        assert_eq!(o.summary_interval, Duration::from_secs(30));
        assert_eq!(o.window_size, 12);
        assert_eq!(o.output_dir, Some(PathBuf::from("/var/autotune")));
    }

    #[test]
    fn reads_the_coordinator_options() {
        let parsed = Options::parse([
            ("rest-url", "http://127.0.0.1:8081/"),
            ("decision-window", "2 min"),
            ("decision-interval", "30 s"),
            ("poll-interval", "2 s"),
            ("stabilization", "0"),
            ("target-utilization", "0.8"),
            ("catch-up", "10 min"),
            ("record", "TRUE"),
            (
                "vertex-limits",
                "cbc357ccb763df2852fee8c4fc7d55f2:2-16, 674df9b0384c0348e0b9d1034a44c46c:1-4",
            ),
        ]);
        assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
        let o = parsed.options;
        assert_eq!(o.rest_url.as_deref(), Some("http://127.0.0.1:8081"));
        assert_eq!(o.decision_window, Duration::from_secs(120));
        assert_eq!(o.decision_interval, Duration::from_secs(30));
        assert_eq!(o.poll_interval, Duration::from_secs(2));
        assert_eq!(o.stabilization, Duration::ZERO);
        assert_eq!(o.target_utilization, 0.8);
        assert_eq!(o.catch_up, Duration::from_secs(600));
        assert!(o.record);
        assert_eq!(
            o.vertex_limits.get("cbc357ccb763df2852fee8c4fc7d55f2"),
            Some(&(2, 16))
        );
        assert_eq!(o.vertex_limits.len(), 2);
        let bad = Options::parse([("vertex-limits", "abc:5-2")]);
        assert!(
            bad.problems[0].contains("expected <vertex id>:<min>-<max>"),
            "{:?}",
            bad.problems
        );

        let bad = Options::parse([
            ("rest-url", "127.0.0.1:8081"),
            ("target-utilization", "1.5"),
            ("decision-window", "1 s"),
        ]);
        assert_eq!(bad.options, Options::default());
        assert_eq!(bad.problems.len(), 3, "{:?}", bad.problems);
        assert!(
            bad.problems[2].contains("must be at least 5s"),
            "{:?}",
            bad.problems
        );
    }

    #[test]
    fn bad_values_keep_defaults_and_say_why() {
        let parsed = Options::parse([
            ("mode", "yolo"),
            ("summary-interval", "often"),
            ("window-size", "1"),
            ("windowsize", "5"),
        ]);
        assert_eq!(parsed.options, Options::default());
        assert_eq!(parsed.problems.len(), 4);
        assert!(parsed.problems[0].contains(
            "metrics.reporter.autotune.mode: 'yolo' must be 'recommend', 'apply' or 'off'"
        ));
        assert!(parsed.problems[1].contains("using 1min"));
        assert!(parsed.problems[2].contains("from 2 to 10000"));
        assert!(parsed.problems[3].contains("not an option of this plugin"));
    }
}
