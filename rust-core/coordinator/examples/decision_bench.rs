//! Cost of one coordinator decision for a job of 100 vertices: the REST reads of a poll
//! (against a local stand-in for the JobManager's REST API on 127.0.0.1) and the scaling
//! model on a window. Prints figures; never fails on timing.
//!
//!     cargo run --release -p autotune-coordinator --example decision_bench

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use autotune_coordinator::poller::sample;
use autotune_coordinator::pools::WindowCache;
use autotune_coordinator::recording::summarize;
use autotune_coordinator::rest::FlinkRest;
use autotune_coordinator::shape::JobShape;
use autotune_model::scaling::{decide, ScalingConfig, ScalingHistory};
use serde_json::json;

const VERTICES: usize = 100;
const JOB: &str = "4f0e5c2d9a8b7c6d5e4f3a2b1c0d9e8f";
const POLLS: usize = 20;

fn vertex_id(v: usize) -> String {
    format!("{v:032x}")
}

/// Answers the endpoints the coordinator reads, for a chain of 100 vertices (every third
/// edge a keyBy), with counters that grow with every poll as a running job's do.
fn serve(server: tiny_http::Server, polls: Arc<AtomicU64>) {
    for request in server.incoming_requests() {
        let url = request.url().to_string();
        let n = polls.load(Ordering::Relaxed) as f64;
        let body = if url == format!("/jobs/{JOB}") {
            polls.fetch_add(1, Ordering::Relaxed);
            let vertices: Vec<_> = (0..VERTICES)
                .map(|v| {
                    json!({"id": vertex_id(v), "name": format!("Operator {v}"), "parallelism": 4, "maxParallelism": 128,
                           "metrics": {"read-records": n * 5000.0, "write-records": n * 5000.0}})
                })
                .collect();
            let nodes: Vec<_> = (0..VERTICES)
                .map(|v| {
                    let inputs = if v == 0 { json!([]) } else {
                        json!([{"id": vertex_id(v - 1), "ship_strategy": if v % 3 == 0 { "HASH" } else { "FORWARD" }}])
                    };
                    json!({"id": vertex_id(v), "inputs": inputs})
                })
                .collect();
            json!({"jid": JOB, "name": "bench", "state": "RUNNING", "vertices": vertices, "plan": {"nodes": nodes}})
        } else if url.contains("/subtasks/metrics") {
            let busy = 300.0 + (url.len() % 7) as f64 * 90.0;
            json!([{"id": "busyTimeMsPerSecond", "min": busy - 50.0, "max": busy + 50.0, "avg": busy, "sum": busy * 4.0},
                   {"id": "backPressuredTimeMsPerSecond", "min": 0.0, "max": 0.0, "avg": 0.0, "sum": 0.0}])
        } else if url.ends_with("/metrics") {
            json!((0..4)
                .flat_map(|s| [
                    json!({"id": format!("{s}.Source__Kafka.pendingRecords")}),
                    json!({"id": format!("{s}.Source__Kafka.numRecordsOut")})
                ])
                .collect::<Vec<_>>())
        } else if url.contains("/metrics?get=") {
            json!((0..4).flat_map(|s| [json!({"id": format!("{s}.Source__Kafka.pendingRecords"), "value": format!("{}", 1000.0 + n * 100.0)}),
                                        json!({"id": format!("{s}.Source__Kafka.numRecordsOut"), "value": format!("{}", n * 1250.0)})]).collect::<Vec<_>>())
        } else {
            let _ = request.respond(tiny_http::Response::from_string("{}").with_status_code(404));
            continue;
        };
        let _ = request.respond(tiny_http::Response::from_string(body.to_string()));
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    let server = tiny_http::Server::http("127.0.0.1:0").expect("bind 127.0.0.1");
    let base = format!("http://{}", server.server_addr());
    let polls = Arc::new(AtomicU64::new(0));
    let served = polls.clone();
    std::thread::spawn(move || serve(server, served));

    let rest = FlinkRest::new(&base, Duration::from_secs(5));
    let details = rest.job(JOB).expect("job details");
    let mut shape = JobShape::from_details(&details);
    shape
        .discover_source_metrics(&rest)
        .expect("source metrics");

    let mut poll_ms = Vec::new();
    let mut samples = Vec::new();
    for i in 0..POLLS + 3 {
        let start = Instant::now();
        let details = rest.job(JOB).expect("job details");
        // Nothing published: every vertex asked for over REST, as without the plugin.
        let published = WindowCache::default();
        let mut s = sample(
            &rest,
            &published,
            &shape,
            &details,
            None,
            autotune_coordinator::epoch_ms(),
        )
        .expect("a poll");
        let elapsed = start.elapsed().as_secs_f64() * 1000.0;
        if i >= 3 {
            poll_ms.push(elapsed);
            s.at_ms = (samples.len() as i64) * 5_000; // a poll every 5 s of job time
            samples.push(s);
        }
    }

    let config = ScalingConfig::default();
    let rounds = 200;
    let start = Instant::now();
    let mut changes = 0;
    for _ in 0..rounds {
        let snapshot = summarize(&shape, &samples, Some(1000), Some(4));
        let decision = decide(&snapshot, &config, &mut ScalingHistory::default(), 100_000)
            .expect("a decision");
        changes += decision.changes().count();
    }
    let model_us = start.elapsed().as_secs_f64() * 1e6 / rounds as f64;
    let poll = median(poll_ms);
    let requests = 1 + VERTICES + 1; // job details, one aggregated metrics call per vertex, the source's values
    println!("job of {VERTICES} vertices, REST on 127.0.0.1 (local stand-in), {POLLS} polls, {} changes per decision", changes / rounds);
    println!("one poll (REST reads, {requests} requests):   {poll:8.2} ms  (median)");
    println!("model on a {POLLS}-poll window (summarize + decide): {model_us:8.1} us");
    println!(
        "one decision from a 12-poll (1 min at 5 s) window:   {:8.1} ms of work",
        12.0 * poll + model_us / 1000.0
    );
}
