//! `flink-autotune`: the plugin's models from outside the cluster.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use autotune_coordinator::collect::{collect, summarize};
use autotune_coordinator::rest::FlinkRest;
use autotune_model::scaling::{decide, ScalingConfig, ScalingHistory};
use autotune_model::{catalogue, duration};

#[derive(Parser)]
#[command(name = "flink-autotune", version, about = "Tune Apache Flink from its own metrics")]
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
        #[arg(long, default_value_t = 0.7)]
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
    },
    /// List the Flink metrics the plugin reads, by the scope they live in.
    Catalogue,
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
        Command::Analyze { rest, job, duration, interval, target_utilization, catch_up, timeout, json } => {
            let config = ScalingConfig { target_utilization, catch_up, ..ScalingConfig::default() };
            match analyze(&rest, job.as_deref(), duration, interval, timeout, &config, json) {
                Ok(()) => ExitCode::SUCCESS,
                Err(message) => {
                    eprintln!("flink-autotune analyze: {message}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

fn analyze(
    base: &str,
    only: Option<&str>,
    window: Duration,
    interval: Duration,
    timeout: Duration,
    config: &ScalingConfig,
    json: bool,
) -> Result<(), String> {
    let rest = FlinkRest::new(base, timeout);
    let jobs: Vec<String> = match only {
        Some(id) => vec![id.to_string()],
        None => rest.jobs().map_err(|e| e.to_string())?.into_iter().filter(|j| j.state == "RUNNING").map(|j| j.jid).collect(),
    };
    if jobs.is_empty() {
        return Err(format!("no running job at {base}"));
    }
    let mut documents = Vec::new();
    for job_id in jobs {
        let (shape, samples) = collect(&rest, &job_id, window, interval, 3).map_err(|e| e.to_string())?;
        let overview = rest.overview().map_err(|e| e.to_string())?;
        let in_use: u32 = shape.vertices.iter().map(|v| v.2).max().unwrap_or(0);
        let available = overview.slots_available + in_use;
        let per_tm = rest.slots_per_taskmanager().map_err(|e| e.to_string())?;
        let snapshot = summarize(&shape, &samples, Some(available), per_tm);
        let now_ms = samples.last().map(|s| s.at_ms).unwrap_or(0);
        let decision = decide(&snapshot, config, &mut ScalingHistory::default(), now_ms).map_err(|e| e.to_string())?;
        if json {
            documents.push(serde_json::json!({ "snapshot": snapshot, "decision": decision }));
        } else {
            for line in decision.log_lines(&snapshot) {
                println!("{line}");
            }
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&documents).map_err(|e| e.to_string())?);
    }
    Ok(())
}

fn print_catalogue() {
    let groups: [(&str, &[&str]); 4] = [
        ("task (per subtask of a vertex)", catalogue::TASK_METRICS),
        ("operator (per subtask of an operator)", catalogue::OPERATOR_METRICS),
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
