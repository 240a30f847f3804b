//! `flink-autotune`: the plugin's models from outside the cluster.
//!
//! Later subcommands (`analyze`, `replay`, `diagnose`) run the same pure models as the
//! plugin; this first version lists what the plugin tracks.

use clap::{Parser, Subcommand};

use autotune_model::catalogue;

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
    /// List the Flink metrics the plugin reads, by the scope they live in.
    Catalogue,
}

fn main() {
    match Cli::parse().command {
        Command::Catalogue => print_catalogue(),
    }
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
