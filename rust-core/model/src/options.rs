//! The reporter's options (`metrics.reporter.autotune.<option>`), validated in one place.
//!
//! A bad value never disables the plugin: it is reported with the key, the value, the
//! reason and the default used instead, and everything else keeps working.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::duration;

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
}

impl Default for Options {
    fn default() -> Self {
        Options {
            mode: Mode::Recommend,
            summary_interval: Duration::from_secs(60),
            window_size: 30,
            output_dir: None,
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

const OPTIONS: &[&str] = &["mode", "summary-interval", "window-size", "output-dir"];

/// Parsed options plus one readable problem per bad or unknown key.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedOptions {
    pub options: Options,
    pub problems: Vec<String>,
}

impl Options {
    /// Parses `metrics.reporter.autotune.*` properties (keys without the prefix).
    pub fn parse<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> ParsedOptions {
        let mut options = Options::default();
        let mut problems = Vec::new();
        for (key, value) in pairs {
            let value = value.trim();
            let result = match key {
                "mode" => match value.to_ascii_lowercase().as_str() {
                    "recommend" => {
                        options.mode = Mode::Recommend;
                        Ok(())
                    }
                    "apply" => {
                        options.mode = Mode::Apply;
                        Ok(())
                    }
                    _ => Err(format!(
                        "must be 'recommend' or 'apply', using '{}'",
                        options.mode
                    )),
                },
                "summary-interval" => match duration::parse(value) {
                    Ok(d) if d >= Duration::from_secs(1) => {
                        options.summary_interval = d;
                        Ok(())
                    }
                    Ok(_) => Err(format!(
                        "must be at least 1 s, using {}",
                        duration::format(options.summary_interval)
                    )),
                    Err(e) => Err(format!(
                        "{e}; using {}",
                        duration::format(options.summary_interval)
                    )),
                },
                "window-size" => match value.parse::<usize>() {
                    Ok(n) if (2..=10_000).contains(&n) => {
                        options.window_size = n;
                        Ok(())
                    }
                    _ => Err(format!(
                        "must be a whole number of report rounds from 2 to 10000, using {}",
                        options.window_size
                    )),
                },
                "output-dir" if !value.is_empty() => {
                    options.output_dir = Some(PathBuf::from(value));
                    Ok(())
                }
                "output-dir" => Err("is empty, using the Flink log folder".to_string()),
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
                problems.push(format!(
                    "metrics.reporter.autotune.{key}: '{value}' {reason}"
                ));
            }
        }
        ParsedOptions { options, problems }
    }
}

impl fmt::Display for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "mode={} summary-interval={} window-size={} output-dir={}",
            self.mode,
            duration::format(self.summary_interval),
            self.window_size,
            self.output_dir
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "<flink log dir>".into())
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
