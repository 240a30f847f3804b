//! Builders for scaling-model inputs, shared by the example and simulation tests.
#![allow(dead_code)]

use autotune_model::scaling::{
    Code, Edge, Finding, JobSnapshot, ScalingConfig, ShipStrategy, VertexDecision, VertexSnapshot,
};
use std::time::Duration;

/// A vertex processing `rate` records/s at parallelism `p`, `busy` of the time, passing
/// every record on.
pub fn vertex(id: &str, p: u32, rate: f64, busy: f64) -> VertexSnapshot {
    VertexSnapshot {
        id: id.to_string(),
        name: id.to_string(),
        parallelism: p,
        max_parallelism: Some(32_768),
        source_partitions: None,
        is_source: false,
        records_in_rate: rate,
        records_out_rate: rate,
        busy,
        busy_max: busy,
        backpressure: 0.0,
        pending_records: None,
        backlog_growth: None,
        backlog_partial: None,
        arrival_rate: None,
    }
}

/// A source reading `rate` records/s with a backlog of `pending` growing by `growth` per second.
pub fn source(id: &str, p: u32, rate: f64, busy: f64, pending: f64, growth: f64) -> VertexSnapshot {
    VertexSnapshot {
        is_source: true,
        pending_records: Some(pending),
        backlog_growth: Some(growth),
        ..vertex(id, p, rate, busy)
    }
}

/// A vertex alone in its job, whose true processing rate is `tpr` and target rate `target`
/// (the arrival at a source with no backlog): the shape of Flink autoscaler's unit tests.
pub fn evaluated(p: u32, target: f64, tpr: f64) -> JobSnapshot {
    // busy = target / tpr makes the true rate exactly tpr at a consumed rate of `target`.
    let v = source("v", p, target, target / tpr, 0.0, 0.0);
    job(vec![v], vec![])
}

pub fn job(vertices: Vec<VertexSnapshot>, edges: Vec<Edge>) -> JobSnapshot {
    JobSnapshot {
        job_id: "job".into(),
        job_name: "test job".into(),
        vertices,
        edges,
        available_slots: None,
        slots_per_taskmanager: None,
    }
}

pub fn edge(from: usize, to: usize, ship: ShipStrategy) -> Edge {
    Edge { from, to, ship }
}

/// One-step model with nothing that holds a decision back: no hold band, no scale-down delay.
pub fn eager(target_utilization: f64) -> ScalingConfig {
    ScalingConfig {
        target_utilization,
        hold_band: (f64::NAN, f64::NAN),
        scale_down_delay: Duration::ZERO,
        ..ScalingConfig::default()
    }
}

/// The vertex's finding with `code`, whose message must contain every one of `phrases`.
pub fn finding<'a>(d: &'a VertexDecision, code: Code, phrases: &[&str]) -> &'a Finding {
    let f = d
        .findings
        .iter()
        .find(|f| f.code == code)
        .unwrap_or_else(|| panic!("no {code} finding in {:?}", d.findings));
    for phrase in phrases {
        assert!(
            f.message.contains(phrase),
            "{code} message lacks {phrase:?}: {}",
            f.message
        );
    }
    f
}
