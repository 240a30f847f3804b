//! A session cluster's cost to the coordinator: REST requests and the coordinator thread's CPU
//! per poll for 1, 10, 50 and 200 jobs of 5 vertices, against the loop tests' fake JobManager
//! REST API on 127.0.0.1, on the production loop settings and a stepped clock (6 minutes of
//! the loop in seconds). Also checks what the loop is for: every job decided every window.
//! Prints figures; never fails on timing.
//!
//!     cargo run --release -p autotune-coordinator --example fleet_bench [jobs,jobs,...]

#[path = "../tests/fake_flink/mod.rs"]
mod fake_flink;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use autotune_coordinator::clock::{Clock, ManualClock};
use autotune_coordinator::rounds::Coordinator;
use autotune_coordinator::settings::LoopSettings;
use autotune_coordinator::sink::LogSink;
use autotune_coordinator::stop::StopFlag;
use autotune_model::memory::PoolWindow;
use autotune_model::options::Options;
use cpu_time::ThreadTime;
use fake_flink::{Cluster, FakeFlink, FakeJob, FakeTaskManager, FakeVertex};

/// Simulated time the loop runs for: three decision windows of every job.
const RUN: Duration = Duration::from_secs(6 * 60);

/// A 5-vertex chain (source -> map -> keyBy -> window -> sink), running for ten minutes.
fn job(n: usize, deployed_ms: i64) -> FakeJob {
    let names = ["Source: Kafka", "Map", "Window", "Enrich", "Sink: Kafka"];
    let vertices = names
        .iter()
        .enumerate()
        .map(|(v, name)| {
            let mut vertex = FakeVertex::new(&format!("{n:016x}{v:016x}"), name, 2);
            vertex.rate_in = 500.0;
            vertex.rate_out = 500.0;
            vertex.busy_ms = 200.0 + 150.0 * v as f64;
            vertex.busy_max_ms = vertex.busy_ms + 50.0;
            vertex.start_time = deployed_ms;
            if v == 0 {
                vertex.pending = Some((1_000.0, 0.0));
            }
            vertex
        })
        .collect();
    let edges = vec![
        (0, 1, "FORWARD"),
        (1, 2, "HASH"),
        (2, 3, "FORWARD"),
        (3, 4, "FORWARD"),
    ];
    FakeJob::running(
        format!("{n:032x}"),
        &format!("fleet-job-{n}"),
        deployed_ms,
        vertices,
        edges,
    )
}

/// A TaskManager of 4 slots; with the plugin, it publishes its pool window and its subtasks'
/// loads (the fake serves them), else the coordinator reads Flink's own metrics.
fn taskmanager(n: usize, plugin: bool) -> FakeTaskManager {
    let window = PoolWindow {
        window_seconds: 60.0,
        samples: 12,
        full: true,
        heap_max: Some(512e6),
        heap_used_peak: Some(300e6),
        heap_after_gc_peak: Some(120e6),
        gc_ms_per_s: Some(3.0),
        ..PoolWindow::default()
    };
    FakeTaskManager {
        id: format!("tm-{n}"),
        slots: 4,
        free_slots: 0,
        pool_window: plugin.then(|| serde_json::to_string(&window).unwrap()),
        metrics: HashMap::new(),
    }
}

struct Figures {
    polls: usize,
    requests_per_poll: f64,
    cpu_per_poll: Duration,
    cpu_max_poll: Duration,
    wall: Duration,
    /// Windows decided, fewest and most over the jobs.
    decided: (usize, usize),
}

fn run(jobs: usize, plugin: bool) -> Figures {
    let clock = ManualClock::starting_at(1_800_000_000_000);
    let long_ago = clock.now_ms() - 600_000;
    let flink = FakeFlink::start_with_clock(
        Cluster {
            jobs: (0..jobs).map(|n| job(n, long_ago)).collect(),
            // Every job's 2 slots per vertex, 4 slots per TaskManager.
            taskmanagers: (0..jobs.div_ceil(2))
                .map(|n| taskmanager(n, plugin))
                .collect(),
            ..Cluster::default()
        },
        clock.clone(),
    );
    let out = std::env::temp_dir().join(format!("autotune-fleet-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let settings = LoopSettings::from_options(
        &Options::default(),
        flink.url.clone(),
        Some(out.clone()),
        &LogSink,
    );
    let poll = settings.poll;
    let mut coordinator =
        Coordinator::with_clock(settings, std::sync::Arc::new(LogSink), clock.clone());
    let stop = StopFlag::new();
    let mut decided: HashMap<String, usize> = HashMap::new();
    let (mut cpu, mut cpu_max, mut polls) = (Duration::ZERO, Duration::ZERO, 0);
    let requests_before = flink.cluster().requests;
    let wall = Instant::now();
    while clock.now_ms() - long_ago < 600_000 + RUN.as_millis() as i64 {
        let started = ThreadTime::now();
        let rounds = coordinator.poll(&stop).expect("a poll");
        let took = started.elapsed();
        cpu += took;
        cpu_max = cpu_max.max(took);
        polls += 1;
        for round in rounds.into_iter().filter(|r| r.decided.is_some()) {
            *decided.entry(round.job_id).or_default() += 1;
        }
        clock.advance(poll);
    }
    let requests = flink.cluster().requests - requests_before;
    if std::env::var_os("FLEET_BENCH_KINDS").is_some() {
        let mut kinds: Vec<(String, usize)> = flink
            .cluster()
            .requests_by_kind
            .clone()
            .into_iter()
            .collect();
        kinds.sort_by_key(|k| std::cmp::Reverse(k.1));
        for (kind, n) in kinds {
            println!("      {:>10.2}/poll {kind}", n as f64 / polls as f64);
        }
    }
    let _ = std::fs::remove_dir_all(&out);
    let counts = (0..jobs).map(|n| decided.get(&format!("{n:032x}")).copied().unwrap_or(0));
    Figures {
        polls,
        requests_per_poll: requests as f64 / polls as f64,
        cpu_per_poll: cpu / polls as u32,
        cpu_max_poll: cpu_max,
        wall: wall.elapsed(),
        decided: (counts.clone().min().unwrap_or(0), counts.max().unwrap_or(0)),
    }
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "1,10,50,200".into())
        .split(',')
        .map(|s| s.trim().parse().expect("job counts, e.g. 1,10,50,200"))
        .collect();
    println!(
        "{} of the loop on its production settings (60 s windows, 60 s between a job's windows, a poll every 5 s), jobs of 5 vertices, 2 slots each",
        humantime::format_duration(RUN)
    );
    println!(
        "{:>9} {:>5} {:>6} {:>14} {:>18} {:>14} {:>14} {:>20} {:>10}",
        "TMs",
        "jobs",
        "polls",
        "requests/poll",
        "requests/poll/job",
        "CPU/poll",
        "CPU max poll",
        "windows decided/job",
        "wall"
    );
    // In the cluster, every TaskManager runs the plugin; `watch` reads a cluster without it.
    for (plugin, label) in [(true, "plugin"), (false, "REST only")] {
        for &jobs in &sizes {
            print_row(label, jobs, &run(jobs, plugin));
        }
    }
}

fn print_row(label: &str, jobs: usize, f: &Figures) {
    println!(
        "{:>9} {:>5} {:>6} {:>14.1} {:>18.2} {:>11.2} ms {:>11.2} ms {:>20} {:>8.1} s",
        label,
        jobs,
        f.polls,
        f.requests_per_poll,
        f.requests_per_poll / jobs as f64,
        f.cpu_per_poll.as_secs_f64() * 1e3,
        f.cpu_max_poll.as_secs_f64() * 1e3,
        format!("{}..{}", f.decided.0, f.decided.1),
        f.wall.as_secs_f64()
    );
}
