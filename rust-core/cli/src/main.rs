//! `flink-autotune`: the plugin's models from outside the cluster.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use std::fs;
use std::path::{Path, PathBuf};

use autotune_coordinator::collect::{collect, Recording};
use autotune_coordinator::rest::FlinkRest;
use autotune_model::diagnosis::FlinkVersion;
use autotune_model::scaling::{decide, ScalingConfig, ScalingHistory};
use autotune_model::{catalogue, duration};

mod diagnose;

#[derive(Parser)]
#[command(
    name = "flink-autotune",
    version,
    about = "Tune Apache Flink from its own metrics"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Watch running jobs over Flink's REST API for a window and print what each vertex needs.
    Analyze {
        /// The JobManager's REST address, e.g. http://127.0.0.1:8081
        #[arg(long)]
        rest: String,
        /// Analyze only this job (default: every running job).
        #[arg(long)]
        job: Option<String>,
        /// How long to watch, in Flink's duration syntax.
        #[arg(long, default_value = "60 s", value_parser = parse_duration)]
        duration: Duration,
        /// How often to poll during the window.
        #[arg(long, default_value = "5 s", value_parser = parse_duration)]
        interval: Duration,
        /// Busy ratio each vertex should run at after scaling.
        #[arg(long, default_value_t = ScalingConfig::default().target_utilization)]
        target_utilization: f64,
        /// Time in which an existing source backlog should be consumed.
        #[arg(long, default_value = "5 min", value_parser = parse_duration)]
        catch_up: Duration,
        /// Give up on a REST request after this long.
        #[arg(long, default_value = "5 s", value_parser = parse_duration)]
        timeout: Duration,
        /// Print JSON (one document: the window's metrics and the decision per job).
        #[arg(long)]
        json: bool,
        /// Also write what was polled to this file (JSON lines, one job a line) for `replay`.
        #[arg(long)]
        record: Option<PathBuf>,
    },
    /// Run the models again on a recording made by `analyze --record` (deterministic).
    Replay {
        /// The recording; `-` reads standard input.
        file: PathBuf,
        #[arg(long, default_value_t = ScalingConfig::default().target_utilization)]
        target_utilization: f64,
        #[arg(long, default_value = "5 min", value_parser = parse_duration)]
        catch_up: Duration,
        #[arg(long)]
        json: bool,
    },
    /// List the Flink metrics the plugin reads, by the scope they live in.
    Catalogue,
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
    match Cli::parse().command {
        Command::Catalogue => {
            print_catalogue();
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
        Command::Analyze {
            rest,
            job,
            duration,
            interval,
            target_utilization,
            catch_up,
            timeout,
            json,
            record,
        } => {
            let config = ScalingConfig {
                target_utilization,
                catch_up,
                ..ScalingConfig::default()
            };
            let window = Window {
                duration,
                interval,
                timeout,
            };
            finish(
                "analyze",
                analyze(
                    &rest,
                    job.as_deref(),
                    &window,
                    &config,
                    json,
                    record.as_deref(),
                ),
            )
        }
        Command::Replay {
            file,
            target_utilization,
            catch_up,
            json,
        } => {
            let config = ScalingConfig {
                target_utilization,
                catch_up,
                ..ScalingConfig::default()
            };
            finish("replay", replay(&file, &config, json))
        }
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

struct Window {
    duration: Duration,
    interval: Duration,
    timeout: Duration,
}

/// Runs the scaling model on one recorded window and prints or collects the result.
fn decide_and_print(
    recording: &Recording,
    config: &ScalingConfig,
    json: bool,
    documents: &mut Vec<serde_json::Value>,
) -> Result<(), String> {
    let snapshot = recording.snapshot();
    let now_ms = recording.samples.last().map(|s| s.at_ms).unwrap_or(0);
    let decision = decide(&snapshot, config, &mut ScalingHistory::default(), now_ms)
        .map_err(|e| e.to_string())?;
    if json {
        documents.push(serde_json::json!({ "snapshot": snapshot, "decision": decision }));
    } else {
        for line in decision.log_lines(&snapshot) {
            println!("{line}");
        }
    }
    Ok(())
}

fn print_documents(json: bool, documents: &[serde_json::Value]) -> Result<(), String> {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(documents).map_err(|e| e.to_string())?
        );
    }
    Ok(())
}

fn replay(file: &Path, config: &ScalingConfig, json: bool) -> Result<(), String> {
    let text = if file == Path::new("-") {
        std::io::read_to_string(std::io::stdin())
            .map_err(|e| format!("reading standard input: {e}"))?
    } else {
        fs::read_to_string(file).map_err(|e| format!("reading {}: {e}", file.display()))?
    };
    let mut documents = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let recording: Recording = serde_json::from_str(line)
            .map_err(|e| format!("{} line {}: not a recording: {e}", file.display(), n + 1))?;
        if recording.format != Recording::FORMAT {
            return Err(format!(
                "{} line {}: recording format {} (this tool reads {})",
                file.display(),
                n + 1,
                recording.format,
                Recording::FORMAT
            ));
        }
        if recording.samples.len() < 2 {
            return Err(format!(
                "{} line {}: a window needs at least two samples",
                file.display(),
                n + 1
            ));
        }
        decide_and_print(&recording, config, json, &mut documents)?;
    }
    if documents.is_empty() && json {
        return Err(format!("{} holds no recording", file.display()));
    }
    print_documents(json, &documents)
}

fn analyze(
    base: &str,
    only: Option<&str>,
    window: &Window,
    config: &ScalingConfig,
    json: bool,
    record: Option<&Path>,
) -> Result<(), String> {
    let rest = FlinkRest::new(base, window.timeout);
    let jobs: Vec<String> = match only {
        Some(id) => vec![id.to_string()],
        None => rest
            .jobs()
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|j| j.state == "RUNNING")
            .map(|j| j.jid)
            .collect(),
    };
    if jobs.is_empty() {
        return Err(format!("no running job at {base}"));
    }
    let mut documents = Vec::new();
    let mut recorded = String::new();
    for job_id in jobs {
        let (shape, samples) = collect(
            &rest,
            &job_id,
            window.duration,
            window.interval,
            3,
            &mut |pause| {
                std::thread::sleep(pause);
                true
            },
        )
        .map_err(|e| e.to_string())?;
        let overview = rest.overview().map_err(|e| e.to_string())?;
        // Slots this job may use: the free ones plus those it holds (one slot sharing group).
        let held: u32 = shape.vertices.iter().map(|v| v.2).max().unwrap_or(0);
        let recording = Recording {
            format: Recording::FORMAT,
            rest: base.to_string(),
            shape,
            samples,
            available_slots: Some(overview.slots_available + held),
            slots_per_taskmanager: rest.slots_per_taskmanager().map_err(|e| e.to_string())?,
        };
        if record.is_some() {
            recorded.push_str(&serde_json::to_string(&recording).map_err(|e| e.to_string())?);
            recorded.push('\n');
        }
        decide_and_print(&recording, config, json, &mut documents)?;
    }
    if let Some(path) = record {
        fs::write(path, recorded).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    print_documents(json, &documents)
}

fn print_catalogue() {
    let groups: [(&str, &[&str]); 4] = [
        ("task (per subtask of a vertex)", catalogue::TASK_METRICS),
        (
            "operator (per subtask of an operator)",
            catalogue::OPERATOR_METRICS,
        ),
        ("job (JobManager)", catalogue::JOB_METRICS),
        ("jobmanager", catalogue::JOBMANAGER_METRICS),
    ];
    for (scope, names) in groups {
        println!("{scope}:");
        for name in names {
            println!("  {name}");
        }
    }
    println!("taskmanager and jobmanager (by prefix):");
    for prefix in catalogue::PROCESS_PREFIXES {
        println!("  {prefix}");
    }
}
