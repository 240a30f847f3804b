//! `flink-autotune`: the plugin's loop and models from outside the cluster.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use autotune_model::diagnosis::FlinkVersion;
use autotune_model::{duration, metrics, options};

mod diagnose;
mod flags;
mod flamegraph;
mod runs;

use flags::LoopFlags;

#[derive(Parser)]
#[command(
    name = "flink-autotune",
    version,
    about = "Tune Apache Flink from its own metrics"
)]
struct Cli {
    /// Also print the loop's debug messages (to standard error).
    #[arg(long, short, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the plugin's coordinator loop from outside the cluster: decide for every job over
    /// Flink's REST API, print the AUTOTUNE lines and write the per-job files, until Ctrl-C.
    Watch {
        /// The JobManager's REST address, e.g. http://127.0.0.1:8081
        #[arg(long, alias = "rest-url")]
        rest: String,
        /// Watch only this job (default: every job).
        #[arg(long)]
        job: Option<String>,
        /// Stop after this long (default: run until Ctrl-C).
        #[arg(long, value_parser = parse_duration)]
        duration: Option<Duration>,
        /// Give up on a REST request after this long.
        #[arg(long, default_value = "5 s", value_parser = parse_duration)]
        timeout: Duration,
        #[command(flatten)]
        options: LoopFlags,
    },
    /// One round of the loop: watch the running jobs for one window and print what each
    /// vertex needs, the TaskManagers' memory plan and the failures found.
    Analyze {
        /// The JobManager's REST address, e.g. http://127.0.0.1:8081
        #[arg(long, alias = "rest-url")]
        rest: String,
        /// Analyze only this job (default: every running job).
        #[arg(long)]
        job: Option<String>,
        /// How long to watch (the decision window).
        #[arg(long, value_parser = parse_duration)]
        duration: Option<Duration>,
        /// How often to poll during the window.
        #[arg(long, value_parser = parse_duration)]
        interval: Option<Duration>,
        /// Give up on a REST request after this long.
        #[arg(long, default_value = "5 s", value_parser = parse_duration)]
        timeout: Duration,
        /// Print JSON (one document per job: the window's metrics, the decision, the memory plan).
        #[arg(long)]
        json: bool,
        /// Also write what was polled to this file (JSON lines, one job a line) for `replay`.
        #[arg(long)]
        record: Option<PathBuf>,
        #[command(flatten)]
        options: LoopFlags,
    },
    /// Decide again on a recording (`analyze --record`, or the plugin's `record: true`):
    /// consecutive windows carry the loop's history, so it says what the plugin said.
    Replay {
        /// The recording; `-` reads standard input.
        file: PathBuf,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        options: LoopFlags,
    },
    /// A vertex's flame graph through Flink's own endpoint (`rest.flamegraph.enabled: true`),
    /// written as `.folded` and `.svg`; or, with `--folded`, a folded file rendered as SVG.
    Flamegraph {
        /// The JobManager's REST address, e.g. http://127.0.0.1:8081
        #[arg(long, alias = "rest-url", required_unless_present = "folded")]
        rest: Option<String>,
        /// The job's id.
        #[arg(long, required_unless_present = "folded")]
        job: Option<String>,
        /// The vertex: its id, its name, or the start of its name.
        #[arg(long, required_unless_present = "folded")]
        vertex: Option<String>,
        /// What Flink samples: threads on the CPU, off it, or both.
        #[arg(long = "type", default_value = "full", value_parser = ["full", "on_cpu", "off_cpu"])]
        kind: String,
        /// Where the files go (default: the current folder; with --folded, beside the file).
        #[arg(long)]
        out: Option<PathBuf>,
        /// How long to wait for Flink to sample.
        #[arg(long, default_value = "60 s", value_parser = parse_duration)]
        wait: Duration,
        /// Render this folded file (`frame;frame;... count` lines) as SVG instead.
        #[arg(long, conflicts_with_all = ["rest", "job", "vertex"])]
        folded: Option<PathBuf>,
    },
    /// Render a job's page (`report.html`: graph, figures over time, memory, findings, flame
    /// graph, decisions) from its files, or from a recording decided again.
    Report {
        /// A job's folder (`<output dir>/<job id>`), the output folder (every job), or a
        /// recording (`recording.jsonl`).
        path: PathBuf,
        /// Write the page here (default: `report.html` in the job's folder; for a recording,
        /// `<recording>.report.html` beside it).
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        options: LoopFlags,
    },
    /// List the Flink metrics the plugin reads, by the scope they live in.
    #[command(alias = "catalogue")]
    Metrics,
    /// Print the plugin's options as the README's configuration table (Markdown).
    Options,
    /// List the known failures of the diagnosis catalogue (built in, plus your file).
    Signatures {
        /// A catalogue file of your own that adds or replaces signatures.
        #[arg(long)]
        catalogue: Option<PathBuf>,
    },
    /// Find known failures in Flink log files and print the configuration that fixes them.
    Diagnose {
        /// Log files (JobManager, TaskManager, `.out`, REST stack traces); none or `-`: standard input.
        files: Vec<PathBuf>,
        /// Print JSON: every finding with its code, evidence and config, most important first.
        #[arg(long)]
        json: bool,
        /// A catalogue file of your own that adds or replaces signatures (same format as the built-in one).
        #[arg(long)]
        catalogue: Option<PathBuf>,
        /// The Flink release that wrote the logs (default: read from the logs' startup banner).
        #[arg(long)]
        flink_version: Option<FlinkVersion>,
    },
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    duration::parse(text)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = if cli.verbose {
        log::LevelFilter::Debug
    } else {
        log::LevelFilter::Warn
    };
    env_logger::Builder::new()
        .filter_level(level)
        .target(env_logger::Target::Stderr)
        .init();
    match cli.command {
        Command::Metrics => {
            print_metrics();
            ExitCode::SUCCESS
        }
        Command::Options => {
            print!("{}", options::markdown_rows());
            ExitCode::SUCCESS
        }
        Command::Signatures { catalogue } => {
            finish("signatures", diagnose::signatures(catalogue.as_deref()))
        }
        Command::Diagnose {
            files,
            json,
            catalogue,
            flink_version,
        } => finish(
            "diagnose",
            diagnose::diagnose(&files, json, catalogue.as_deref(), flink_version),
        ),
        Command::Watch {
            rest,
            job,
            duration,
            timeout,
            options,
        } => finish(
            "watch",
            runs::watch(runs::Target { rest, job, timeout }, duration, &options),
        ),
        Command::Analyze {
            rest,
            job,
            duration,
            interval,
            timeout,
            json,
            record,
            options,
        } => finish(
            "analyze",
            runs::analyze(
                runs::Target { rest, job, timeout },
                runs::AnalyzeWindow { duration, interval },
                &options,
                json,
                record.as_deref(),
            ),
        ),
        Command::Replay {
            file,
            json,
            options,
        } => finish("replay", runs::replay(&file, &options, json)),
        Command::Report { path, out, options } => {
            finish("report", runs::report(&path, out.as_deref(), &options))
        }
        Command::Flamegraph {
            rest,
            job,
            vertex,
            kind,
            out,
            wait,
            folded,
        } => finish(
            "flamegraph",
            match (folded, rest, job, vertex) {
                (Some(folded), ..) => flamegraph::render_folded(&folded, out.as_deref()),
                (None, Some(rest), Some(job), Some(vertex)) => flamegraph::capture(
                    &flamegraph::Capture {
                        rest: &rest,
                        job: &job,
                        vertex: &vertex,
                        kind: &kind,
                        wait,
                    },
                    out.as_deref().unwrap_or(std::path::Path::new(".")),
                ),
                _ => Err("--rest, --job and --vertex, or --folded".into()),
            },
        ),
    }
}

fn finish(command: &str, result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("flink-autotune {command}: {message}");
            ExitCode::from(2)
        }
    }
}

fn print_metrics() {
    let groups: [(&str, &[&str]); 4] = [
        ("task (per subtask of a vertex)", metrics::TASK_METRICS),
        (
            "operator (per subtask of an operator)",
            metrics::OPERATOR_METRICS,
        ),
        ("job (JobManager)", metrics::JOB_METRICS),
        ("jobmanager", metrics::JOBMANAGER_METRICS),
    ];
    for (scope, names) in groups {
        println!("{scope}:");
        for name in names {
            println!("  {name}");
        }
    }
    println!("taskmanager and jobmanager (by prefix):");
    for prefix in metrics::PROCESS_PREFIXES {
        println!("  {prefix}");
    }
}
