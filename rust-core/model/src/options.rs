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
use crate::scaling::ScalingConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Log and write recommendations; never touch the job.
    Recommend,
    /// Also apply recommendations in place where Flink allows it.
    Apply,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Recommend => "recommend",
            Mode::Apply => "apply",
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
    /// Keep what each decision window read (for `flink-autotune replay` and bug reports).
    pub record: bool,
    /// Per-vertex parallelism limits: vertex id -> (min, max).
    pub vertex_limits: BTreeMap<String, (u32, u32)>,
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
            record: false,
            vertex_limits: BTreeMap::new(),
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
        }
    }
}

/// Options the Java shim reads itself, before the native library exists.
pub const JAVA_SIDE_OPTIONS: &[&str] = &["native-library", "native-tmpdir"];

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

const OPTIONS: &[&str] = &[
    "mode",
    "summary-interval",
    "window-size",
    "output-dir",
    "rest-url",
    "decision-window",
    "decision-interval",
    "poll-interval",
    "stabilization",
    "target-utilization",
    "catch-up",
    "record",
    "vertex-limits",
    "memory-margin",
    "heap-headroom",
    "diagnosis",
    "diagnosis-catalogue",
    "diagnosis-repeat",
    "log-file",
    "flink-version",
    "webhook-secret-url",
    "webhook-interval",
];

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
    /// Parses `metrics.reporter.autotune.*` properties (keys without the prefix).
    pub fn parse<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> ParsedOptions {
        let mut o = Options::default();
        let mut problems = Vec::new();
        let second = Duration::from_secs(1);
        for (key, value) in pairs {
            let value = value.trim();
            let result = match key {
                "mode" => match value.to_ascii_lowercase().as_str() {
                    "recommend" => {
                        o.mode = Mode::Recommend;
                        Ok(())
                    }
                    "apply" => {
                        o.mode = Mode::Apply;
                        Ok(())
                    }
                    _ => Err(format!(
                        "must be 'recommend' or 'apply', using '{}'",
                        o.mode
                    )),
                },
                "summary-interval" => duration_option(&mut o.summary_interval, value, second),
                "decision-window" => {
                    duration_option(&mut o.decision_window, value, Duration::from_secs(5))
                }
                "decision-interval" => duration_option(&mut o.decision_interval, value, second),
                "poll-interval" => {
                    duration_option(&mut o.poll_interval, value, Duration::from_millis(500))
                }
                "stabilization" => duration_option(&mut o.stabilization, value, Duration::ZERO),
                "catch-up" => duration_option(&mut o.catch_up, value, Duration::ZERO),
                "window-size" => match value.parse::<usize>() {
                    Ok(n) if (2..=10_000).contains(&n) => {
                        o.window_size = n;
                        Ok(())
                    }
                    _ => Err(format!(
                        "must be a whole number of report rounds from 2 to 10000, using {}",
                        o.window_size
                    )),
                },
                "target-utilization" => match value.parse::<f64>() {
                    Ok(u) if u > 0.0 && u <= 1.0 => {
                        o.target_utilization = u;
                        Ok(())
                    }
                    _ => Err(format!(
                        "must be a number above 0 and at most 1, using {}",
                        o.target_utilization
                    )),
                },
                "memory-margin" => ratio_option(&mut o.memory_margin, value, 0.0, 4.0),
                "heap-headroom" => ratio_option(&mut o.heap_headroom, value, 0.1, 10.0),
                "record" => bool_option(&mut o.record, value),
                "diagnosis" => bool_option(&mut o.diagnosis, value),
                "diagnosis-repeat" => duration_option(&mut o.diagnosis_repeat, value, second),
                "webhook-interval" => duration_option(&mut o.webhook_interval, value, second),
                "diagnosis-catalogue" | "log-file" if value.is_empty() => {
                    Err("is empty; not used".to_string())
                }
                "diagnosis-catalogue" => {
                    o.diagnosis_catalogue = Some(PathBuf::from(value));
                    Ok(())
                }
                "log-file" => {
                    o.log_file = Some(PathBuf::from(value));
                    Ok(())
                }
                "flink-version" => value
                    .parse()
                    .map(|v| o.flink_version = Some(v))
                    .map_err(|e| format!("{e}; read from the log instead")),
                // The URL is a credential: the problem line must not repeat it. The key contains
                // "secret" so that Flink masks it wherever it prints its configuration.
                "webhook-secret-url"
                    if value.starts_with("http://") || value.starts_with("https://") =>
                {
                    o.webhook_url = Some(value.to_string());
                    Ok(())
                }
                "webhook-secret-url" => {
                    problems.push("metrics.reporter.autotune.webhook-secret-url: must start with http:// or https://; no webhook".to_string());
                    continue;
                }
                "vertex-limits" => vertex_limits(value).map(|limits| o.vertex_limits = limits),
                "output-dir" if !value.is_empty() => {
                    o.output_dir = Some(PathBuf::from(value));
                    Ok(())
                }
                "output-dir" => Err("is empty, using the Flink log folder".to_string()),
                "rest-url" if value.starts_with("http://") || value.starts_with("https://") => {
                    o.rest_url = Some(value.trim_end_matches('/').to_string());
                    Ok(())
                }
                "rest-url" => Err(
                    "must start with http:// or https://, using the Flink configuration's"
                        .to_string(),
                ),
                k if JAVA_SIDE_OPTIONS.contains(&k) || FLINK_REPORTER_OPTIONS.contains(&k) => {
                    Ok(())
                }
                k if k.starts_with("filter.") || k.starts_with("scope.") => Ok(()),
                _ => Err(format!(
                    "is not an option of this plugin (known: {})",
                    OPTIONS.join(", ")
                )),
            };
            if let Err(reason) = result {
                // An unknown key's value is not repeated: it may be a credential under a
                // mistyped name (webhook_secret_url).
                let shown = if OPTIONS.contains(&key) {
                    format!("'{value}' ")
                } else {
                    String::new()
                };
                problems.push(format!("metrics.reporter.autotune.{key}: {shown}{reason}"));
            }
        }
        ParsedOptions {
            options: o,
            problems,
        }
    }
}

impl fmt::Display for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "mode={} summary-interval={} window-size={} output-dir={} rest-url={} decision-window={} decision-interval={} poll-interval={} stabilization={} target-utilization={} catch-up={} record={} memory-margin={} heap-headroom={} diagnosis={} diagnosis-catalogue={} diagnosis-repeat={} log-file={} webhook={}",
            self.mode,
            duration::format(self.summary_interval),
            self.window_size,
            self.output_dir.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "<flink log dir>".into()),
            self.rest_url.as_deref().unwrap_or("<flink config>"),
            duration::format(self.decision_window),
            duration::format(self.decision_interval),
            duration::format(self.poll_interval),
            duration::format(self.stabilization),
            self.target_utilization,
            duration::format(self.catch_up),
            self.record,
            self.memory_margin,
            self.heap_headroom,
            self.diagnosis,
            self.diagnosis_catalogue.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "<built-in>".into()),
            duration::format(self.diagnosis_repeat),
            self.log_file.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "<none>".into()),
            // Never the URL itself: it is a credential.
            if self.webhook_url.is_some() { format!("<set> every {}", duration::format(self.webhook_interval)) } else { "<none>".into() },
        )
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
            !shown.contains("SECRETTOKEN") && shown.contains("webhook=<set> every 5min"),
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
        ]);
        assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
        let o = parsed.options;
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
        assert!(parsed.problems[0]
            .contains("metrics.reporter.autotune.mode: 'yolo' must be 'recommend' or 'apply'"));
        assert!(parsed.problems[1].contains("using 1min"));
        assert!(parsed.problems[2].contains("from 2 to 10000"));
        assert!(parsed.problems[3].contains("not an option of this plugin"));
    }
}
