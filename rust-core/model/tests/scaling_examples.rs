//! Worked examples of the scaling model. Where the numbers come from the unit tests of
//! Flink's own autoscaler (flink-kubernetes-operator, `JobVertexScalerTest`,
//! `ScalingMetricEvaluatorTest`, `BacklogBasedScalingTest`), the name says so and the
//! expected parallelism is theirs.

mod common;

use std::time::Duration;

use autotune_model::scaling::{
    decide, Code, JobDecision, JobSnapshot, PartialBacklog, ScalingConfig, ScalingHistory,
    ShipStrategy, VertexDecision,
};
use common::*;

/// One decision with no history, at time 0.
fn decided(job: &JobSnapshot, config: &ScalingConfig) -> JobDecision {
    decide(job, config, &mut ScalingHistory::default(), 0).unwrap()
}

fn one(job: &autotune_model::scaling::JobSnapshot, config: &ScalingConfig) -> u32 {
    decide(job, config, &mut ScalingHistory::default(), 0)
        .unwrap()
        .vertices[0]
        .recommended
}

/// Successive decisions on one lone vertex, with the history they build:
/// `step(parallelism, target rate, true processing rate)`.
fn decisions_on_one_vertex(
    config: &ScalingConfig,
) -> impl FnMut(u32, f64, f64) -> VertexDecision + '_ {
    let mut history = ScalingHistory::default();
    move |p, target, tpr| {
        decide(&evaluated(p, target, tpr), config, &mut history, 0)
            .unwrap()
            .vertices
            .remove(0)
    }
}

#[test]
fn flink_parallelism_scaling_examples() {
    // evaluated(parallelism, target rate, true processing rate) -> expected parallelism
    assert_eq!(one(&evaluated(10, 50.0, 100.0), &eager(1.0)), 5);
    assert_eq!(one(&evaluated(2, 100.0, 40.0), &eager(0.5)), 10);
    assert_eq!(one(&evaluated(2, 100.0, 100.0), &eager(0.6)), 4);
    assert_eq!(one(&evaluated(10, 80.0, 100.0), &eager(0.8)), 10);
}

#[test]
fn flink_min_and_max_parallelism_limits() {
    let mut config = eager(0.7);
    config.min_parallelism = 5;
    assert_eq!(one(&evaluated(10, 100.0, 500.0), &config), 5);

    let mut config = eager(1.0);
    config.max_parallelism = 10;
    let job = evaluated(10, 500.0, 100.0);
    let decision = decided(&job, &config);
    assert_eq!(decision.vertices[0].recommended, 10);
    // Not silently: the vertex needs 50 and says why it cannot have it.
    assert!(
        decision.vertices[0].has(Code::ParallelismBound),
        "{:?}",
        decision.vertices[0].findings
    );
}

#[test]
fn flink_lag_based_source_target_rates_propagate_with_the_output_ratio() {
    // Source reads 100 records/s, its backlog grows 50/s (950 -> 1000 over 1 s) and it emits
    // 200 records/s; the sink receives those 200. Catch-up time 2 s.
    let mut src = source("source", 1, 100.0, 0.7, 1000.0, 50.0);
    src.records_out_rate = 200.0;
    let sink = vertex("sink", 1, 200.0, 0.35);
    let job = job(vec![src, sink], vec![edge(0, 1, ShipStrategy::Rebalance)]);
    let mut config = eager(0.7);
    config.catch_up = Duration::from_secs(2);
    let d = decided(&job, &config);
    let (source, sink) = (&d.vertices[0].evidence, &d.vertices[1].evidence);
    assert!((source.arrival_rate - 150.0).abs() < 1e-9, "{source:?}");
    assert!((sink.arrival_rate - 300.0).abs() < 1e-9, "{sink:?}");
    assert!((source.catch_up_rate - 500.0).abs() < 1e-9);
    assert!((sink.catch_up_rate - 1000.0).abs() < 1e-9);

    config.catch_up = Duration::ZERO;
    let d = decided(&job, &config);
    assert_eq!(d.vertices[1].evidence.catch_up_rate, 0.0);
}

#[test]
fn flink_backlog_based_scaling_end_to_end() {
    // Source reads 500 records/s at 85% busy with 2000 pending; the sink gets 500 at 85%.
    // Target utilization 0.8, catch-up 2 s: both vertices go to 4.
    let src = source("source", 1, 500.0, 0.85, 2000.0, 0.0);
    let sink = vertex("sink", 1, 500.0, 0.85);
    let job = job(vec![src, sink], vec![edge(0, 1, ShipStrategy::Rebalance)]);
    let mut config = eager(0.8);
    config.catch_up = Duration::from_secs(2);
    let d = decided(&job, &config);
    assert_eq!(
        d.vertices.iter().map(|v| v.recommended).collect::<Vec<_>>(),
        vec![4, 4]
    );
}

#[test]
fn flink_scale_down_after_its_interval_takes_the_highest_recommendation() {
    let mut config = eager(1.0);
    config.scale_down_delay = Duration::from_secs(60);
    let mut history = ScalingHistory::default();
    // parallelism 100, true rate 1000: targets 800, 900, 720, 640 within the minute...
    for (t, target) in [(0, 800.0), (10, 900.0), (40, 720.0), (59, 640.0)] {
        let d = decide(
            &evaluated(100, target, 1000.0),
            &config,
            &mut history,
            t * 1000,
        )
        .unwrap();
        assert_eq!(d.vertices[0].recommended, 100, "at {t}s");
        assert!(d.vertices[0].has(Code::ScaleDownDelayed));
    }
    // ...and at 60 s the highest of the window (90), not the latest (70).
    let d = decide(
        &evaluated(100, 700.0, 1000.0),
        &config,
        &mut history,
        60_000,
    )
    .unwrap();
    assert_eq!(d.vertices[0].recommended, 90);
}

#[test]
fn flink_ineffective_scaling_detection() {
    // Flink's test runs without its observed-scalability learning, and with its threshold
    // (10%; ours is 30%).
    let config = ScalingConfig {
        learn_scaling: false,
        effectiveness_threshold: 0.1,
        ..eager(1.0)
    };
    let mut step = decisions_on_one_vertex(&config);
    assert_eq!(step(5, 100.0, 50.0).recommended, 10);
    assert_eq!(step(10, 180.0, 90.0).recommended, 20);
    // 20 subtasks process 94 where 180 were expected from 90: +4 of +90. Flink's autoscaler
    // blocks the next step and keeps 20; here the 9 subtasks beyond the 11 that would do 94
    // scaling as expected (9 each) are given back.
    let given_back = step(20, 180.0, 94.0);
    assert_eq!(given_back.recommended, 11, "{given_back:?}");
    finding(
        &given_back,
        Code::GiveBack,
        &[
            "from 10 to 20",
            "4% of the",
            "9 of its subtasks are given back",
        ],
    );
    // +10 of +90 is past the 10% threshold: scaling goes on.
    let mut step = decisions_on_one_vertex(&config);
    step(5, 100.0, 50.0);
    step(10, 180.0, 90.0);
    let paid = step(20, 180.0, 100.0);
    assert_eq!(paid.recommended, 36);
    assert!(
        !paid.has(Code::GiveBack) && !paid.has(Code::ExternalBottleneck),
        "{:?}",
        paid.findings
    );
}

#[test]
fn a_scale_up_that_bought_far_less_is_given_back() {
    // Reported on a 2-core machine: arrivals misread as 3969.7/s; 1 -> 13 asked, the adaptive
    // scheduler gave the 11 slots the cluster had, and at 11 the vertex did 1148.8/s, 2.6
    // times its rate at 1. The step is judged at 11: +706.9 of the +4418 expected there, and
    // 3 subtasks would do 1148.8/s at the 441.8/s each the step expected.
    let config = eager(0.7);
    let mut step = decisions_on_one_vertex(&config);
    assert_eq!(step(1, 3969.7, 441.8).recommended, 13);
    let given_back = step(11, 3969.7, 1148.8);
    assert_eq!(given_back.recommended, 3, "{given_back:?}");
    finding(
        &given_back,
        Code::GiveBack,
        &[
            "from 1 to 11 (asked: 13)",
            "16% of the",
            "8 of its subtasks",
        ],
    );
    // At 3 it does as much; it still cannot keep up, but it does not climb again.
    let held = step(3, 3969.7, 1160.0);
    assert_eq!(held.recommended, 3, "{held:?}");
    finding(&held, Code::ExternalBottleneck, &["not scaled above 3"]);
}

#[test]
fn the_slots_a_cpu_bound_scale_up_did_not_use_are_given_back_for_an_hour() {
    // Issue 23's case, a CPU-bound vertex on a 2-core host: 1 -> 4 to catch up raised the rate
    // from 300/s to 540/s, +240 of the +900 expected (27%): 4 slots doing the work of 2.
    let config = eager(1.0);
    let mut history = ScalingHistory::default();
    let mut at = |p, rate, minute: i64| {
        decide(
            &evaluated(p, 1200.0, rate),
            &config,
            &mut history,
            minute * 60_000,
        )
        .unwrap()
        .vertices
        .remove(0)
    };
    assert_eq!(at(1, 300.0, 0).recommended, 4);
    let given_back = at(4, 540.0, 2);
    assert_eq!(given_back.recommended, 2, "{given_back:?}");
    finding(
        &given_back,
        Code::GiveBack,
        &["27% of the", "2 would do the 540.0 records/s", "for 60min"],
    );
    // At 2 it does as much (560/s) and would want 5 by the p^0.5 it was seen to scale at:
    // held at 2 for the hour, said each time it is held.
    for minute in [4, 30, 61] {
        let held = at(2, 560.0, minute);
        assert_eq!(held.recommended, 2, "minute {minute}: {held:?}");
        finding(
            &held,
            Code::ExternalBottleneck,
            &["from 1 to 4", "not scaled above 2"],
        );
    }
    // After the hour it may try again.
    assert!(at(2, 560.0, 63).recommended > 2);
}

#[test]
fn a_scale_up_that_would_not_pay_is_not_made() {
    // Seen at 10 (60/s) and at 5 (50/s): the vertex scales as p^0.26, taken as p^0.5 at
    // best. 200/s would take 80 subtasks for 4 times the rate.
    let config = eager(1.0);
    let mut step = decisions_on_one_vertex(&config);
    assert_eq!(step(10, 30.0, 60.0).recommended, 5);
    let held = step(5, 200.0, 50.0);
    assert_eq!(held.recommended, 5, "{held:?}");
    finding(
        &held,
        Code::ExternalBottleneck,
        &[
            "would raise its rate 4.0 times for 16.0 times the slots",
            "parallelism^0.50",
        ],
    );
}

#[test]
fn how_a_vertex_really_scales_is_learned() {
    // 5 -> 10 subtasks raised the rate from 50 to only 90 records/s (exponent 0.85): to reach
    // 180 it needs 23 subtasks, not the 20 a linear model would give (and then miss).
    let config = eager(1.0);
    let mut step = decisions_on_one_vertex(&config);
    assert_eq!(step(5, 100.0, 50.0).recommended, 10);
    assert_eq!(step(10, 180.0, 90.0).recommended, 23);
}

#[test]
fn key_groups_are_honoured_without_blocking_the_scale_up() {
    // 128 key groups, 16 subtasks, 1.5x the capacity needed: 24 subtasks would leave the
    // hottest with 6 key groups (21.3 effective); 26 gives 5 each at most (25.6 effective).
    let up = vertex("up", 16, 1000.0, 0.5);
    let mut keyed = vertex("keyed", 16, 1000.0, 1.0);
    keyed.max_parallelism = Some(128);
    let job = job(vec![up, keyed], vec![edge(0, 1, ShipStrategy::Hash)]);
    let mut src = job.clone();
    src.vertices[0].is_source = true;
    src.vertices[0].pending_records = Some(0.0);
    src.vertices[0].backlog_growth = Some(500.0); // arrivals 1500/s
    let d = decided(&src, &eager(1.0));
    assert_eq!(d.vertices[1].recommended, 26);
}

#[test]
fn source_partitions_bound_and_align_the_source() {
    // Falling behind at 7 subtasks on 15 partitions: its 700/s are what the hottest subtask
    // (3 partitions) allows. It needs 1.2x: 8 subtasks give the hottest 2 partitions, 1.5x.
    // The hottest subtask's share is counted once: not 15, and no 267% for a 120% need.
    let mut s = source("s", 7, 700.0, 1.0, 0.0, 140.0);
    s.source_partitions = Some(15);
    let d = decide(
        &job(vec![s.clone()], vec![]),
        &eager(1.0),
        &mut ScalingHistory::default(),
        0,
    )
    .unwrap();
    assert_eq!(d.vertices[0].recommended, 8);
    assert!((d.vertices[0].evidence.expected_utilization - 1.2).abs() < 1e-9);
    assert!(!d.vertices[0].has(Code::ParallelismBound));

    s.parallelism = 6;
    s.records_in_rate = 600.0;
    s.busy = 1.0;
    s.backlog_growth = Some(-360.0); // needs 0.4x
    assert_eq!(one(&job(vec![s.clone()], vec![]), &eager(1.0)), 3);

    // More than partitions cannot help: say so.
    s.backlog_growth = Some(6000.0);
    let d = decide(
        &job(vec![s], vec![]),
        &eager(1.0),
        &mut ScalingHistory::default(),
        0,
    )
    .unwrap();
    assert_eq!(d.vertices[0].recommended, 15);
    finding(
        &d.vertices[0],
        Code::ParallelismBound,
        &["the source has 15 partitions"],
    );
}

#[test]
fn the_bottleneck_is_named_and_only_it_is_scaled() {
    // Source arrivals 1000/s (backlog growing 500/s); Work saturated at 500/s; sink idle-ish.
    let mut src = source("src", 1, 500.0, 0.05, 10_000.0, 500.0);
    src.backpressure = 0.9;
    let work = vertex("work", 1, 500.0, 1.0);
    let sink = vertex("sink", 1, 500.0, 0.1);
    let job = job(
        vec![src, work, sink],
        vec![
            edge(0, 1, ShipStrategy::Hash),
            edge(1, 2, ShipStrategy::Forward),
        ],
    );
    let d = decide(
        &job,
        &ScalingConfig {
            catch_up: Duration::ZERO,
            ..ScalingConfig::default()
        },
        &mut ScalingHistory::default(),
        0,
    )
    .unwrap();
    assert_eq!(d.bottleneck, Some(1));
    assert!(d.vertices[1].has(Code::Bottleneck));
    // 1000/s at 500/s per subtask and 70% utilization: ceil(2.86) = 3.
    assert_eq!(d.vertices[1].recommended, 3);
    assert_eq!(d.vertices[1].code(), Some(Code::ScaleUp));
    assert_eq!(d.vertices[0].recommended, 1);
    assert_eq!(
        d.vertices[2].recommended, 1,
        "the sink at 20% after scaling is within the hold band"
    );
    assert_eq!(d.parallelism_overrides(), "src:1,work:3,sink:1");
}

#[test]
fn a_bottleneck_whose_input_buffers_still_fill_is_sized_on_what_is_sent_to_it() {
    // The first window of a new bottleneck (seen on Flink 1.17 and 2.0): the source emits
    // its 1000/s without back-pressure or backlog yet, because the network buffers in
    // front of Work take the 330/s that Work, saturated, does not.
    let src = source("src", 1, 1000.0, 0.15, 2.0, 0.0);
    let work = vertex("work", 1, 670.0, 0.99);
    let one_edge = job(
        vec![src.clone(), work.clone()],
        vec![edge(0, 1, ShipStrategy::Hash)],
    );
    let d = decided(&one_edge, &ScalingConfig::default());
    // 1000/s at 677/s per subtask and 70% utilization: ceil(2.11) = 3, in one step.
    assert_eq!(d.vertices[1].recommended, 3, "{:?}", d.vertices[1]);
    // Where the source feeds two vertices, what each takes in is its share (a split, a side
    // output): only that is measured, buffers or not.
    let other = vertex("other", 1, 330.0, 0.2);
    let split = job(
        vec![src, work, other],
        vec![
            edge(0, 1, ShipStrategy::Hash),
            edge(0, 2, ShipStrategy::Rebalance),
        ],
    );
    let d = decided(&split, &ScalingConfig::default());
    assert_eq!(d.vertices[1].recommended, 2, "{:?}", d.vertices[1]);
}

#[test]
fn a_backlog_or_growth_that_is_not_finite_asks_for_nothing_infinite() {
    // Seen through a REST answer with "Infinity" for pendingRecords: Work 1 -> 128 before.
    for (pending, growth) in [
        (f64::INFINITY, 0.0),
        (1000.0, f64::INFINITY),
        (f64::NAN, f64::NAN),
    ] {
        let mut src = source("src", 1, 1000.0, 0.0, pending, growth);
        src.backpressure = 1.0;
        let work = vertex("work", 1, 700.0, 1.0);
        let d = decided(
            &job(vec![src, work], vec![edge(0, 1, ShipStrategy::Hash)]),
            &ScalingConfig::default(),
        );
        let work = &d.vertices[1];
        assert!(
            work.evidence.arrival_rate.is_finite() && work.evidence.catch_up_rate.is_finite(),
            "{pending} {growth}: {work:?}"
        );
        assert!(
            (2..=4).contains(&work.recommended),
            "{pending} {growth}: {work:?}"
        );
        assert_eq!(d.vertices[0].recommended, 1);
    }
}

#[test]
fn a_skewed_vertex_is_reported_not_scaled() {
    let src = source("src", 2, 1000.0, 0.1, 0.0, 200.0);
    let mut agg = vertex("agg", 4, 1000.0, 0.3);
    agg.busy_max = 1.0;
    let job = job(vec![src, agg], vec![edge(0, 1, ShipStrategy::Hash)]);
    let d = decided(&job, &ScalingConfig::default());
    let agg = &d.vertices[1];
    assert_eq!(agg.recommended, 4);
    finding(
        agg,
        Code::DataSkew,
        &[
            "hottest subtask 100% busy while the average is 30% (3.3x)",
            "keyBy after \"src\"",
        ],
    );
}

#[test]
fn a_source_without_backlog_metric_says_what_is_unknown() {
    let mut src = source("src", 1, 800.0, 0.2, 0.0, 0.0);
    src.pending_records = None;
    src.backlog_growth = None;
    src.backpressure = 0.6;
    let d = decide(
        &job(vec![src], vec![]),
        &ScalingConfig::default(),
        &mut ScalingHistory::default(),
        0,
    )
    .unwrap();
    finding(
        &d.vertices[0],
        Code::NoBacklogMetric,
        &["800.0 records/s it consumed", "back-pressured 60%"],
    );
}

#[test]
fn too_few_slots_say_how_many_taskmanagers_more() {
    let mut j = evaluated(2, 700.0, 200.0); // needs 7 at 100%
    j.available_slots = Some(4);
    j.slots_per_taskmanager = Some(2);
    let d = decided(&j, &eager(1.0));
    assert_eq!(d.slots_needed, 7);
    assert_eq!(d.findings[0].code, Code::SlotsShort);
    assert!(d.findings[0]
        .message
        .contains("needs 7 task slots, the cluster has 4: add 3 slots (2 more TaskManagers)"));
}

#[test]
fn small_changes_are_ignored_and_idle_vertices_wait_to_scale_down() {
    // 60% busy against a 70% target: within the hold band, no restart for that.
    assert_eq!(
        one(&evaluated(4, 600.0, 1000.0), &ScalingConfig::default()),
        4
    );
    // Idle: scale-down is wanted, but delayed by default.
    let d = decide(
        &evaluated(8, 0.0, 1000.0),
        &ScalingConfig::default(),
        &mut ScalingHistory::default(),
        0,
    )
    .unwrap();
    assert_eq!(d.vertices[0].recommended, 8);
    assert!(d.vertices[0].has(Code::ScaleDownDelayed));
}

#[test]
fn a_cyclic_graph_is_a_clear_error() {
    let j = job(
        vec![vertex("a", 1, 1.0, 0.5), vertex("b", 1, 1.0, 0.5)],
        vec![
            edge(0, 1, ShipStrategy::Forward),
            edge(1, 0, ShipStrategy::Forward),
        ],
    );
    let err = decide(
        &j,
        &ScalingConfig::default(),
        &mut ScalingHistory::default(),
        0,
    )
    .unwrap_err();
    assert!(err.0.contains("cycle"));
}

#[test]
fn codes_are_stable() {
    assert_eq!(Code::ScaleUp.to_string(), "AT101 SCALE_UP");
    assert_eq!(Code::DataSkew.code(), "AT120");
    assert_eq!(Code::ExternalBottleneck.code(), "AT121");
    assert_eq!(Code::SlotsShort.code(), "AT124");
}

#[test]
fn a_source_falling_behind_unblocked_is_at_its_limit_whatever_its_busy_time() {
    // A Kafka-style reader fetches in its own threads: 20% busy on the task thread, yet it
    // reads 1000/s while 1500/s arrive and nothing downstream holds it back.
    let src = source("kafka", 2, 1000.0, 0.2, 50_000.0, 500.0);
    let d = decide(
        &job(vec![src], vec![]),
        &eager(0.7),
        &mut ScalingHistory::default(),
        0,
    )
    .unwrap();
    // 1500/s + 50000 over 5 min = 1666.7/s at 500/s per subtask and 70%: ceil(4.76) = 5.
    assert_eq!(d.vertices[0].recommended, 5);
    assert_eq!(d.bottleneck, Some(0));
}

#[test]
fn a_source_held_back_by_back_pressure_is_not_scaled_up() {
    // Measured on the sample job: idle most of the time and blocked 14% of it, its backlog
    // growing, behind a saturated Work: the bottleneck is Work, not the source.
    let mut src = source("queue", 1, 660.0, 0.0, 20_000.0, 340.0);
    src.backpressure = 0.14;
    let work = vertex("work", 1, 660.0, 0.99);
    let d = decide(
        &job(vec![src, work], vec![edge(0, 1, ShipStrategy::Hash)]),
        &ScalingConfig::default(),
        &mut ScalingHistory::default(),
        0,
    )
    .unwrap();
    assert_eq!(d.vertices[0].recommended, 1);
    assert_eq!(d.bottleneck, Some(1));
}

#[test]
fn a_standing_backlog_sizes_the_source_by_what_it_reads() {
    // Issue 11: 10 million records of lag, 900/s consumed, 30% busy, 10% back-pressured and
    // nothing downstream saturated. Busy time says 3,000/s per subtask; what it reads when
    // not blocked says 1,000/s. Flink's autoscaler takes the observed rate here too.
    let mut src = source("kafka", 1, 900.0, 0.3, 10_000_000.0, 0.0);
    src.backpressure = 0.1;
    let sink = vertex("sink", 1, 900.0, 0.5);
    let d = decided(
        &job(vec![src, sink], vec![edge(0, 1, ShipStrategy::Forward)]),
        &eager(0.7),
    );
    let s = &d.vertices[0];
    assert!((s.evidence.true_rate - 1000.0).abs() < 1e-6, "{s:?}");
    // 900/s + 10M over 5 min = 34,233/s at 700/s per subtask: 49.
    assert_eq!(s.recommended, 49);
    assert_eq!(d.bottleneck, Some(0));
}

#[test]
fn busy_without_records_is_unknown_not_idle() {
    // A window that saw no fresh counters: 99% busy, 0 records/s. No decision, no bottleneck.
    let mut work = vertex("work", 1, 0.0, 0.99);
    work.records_out_rate = 0.0;
    let d = decide(
        &job(vec![work], vec![]),
        &ScalingConfig::default(),
        &mut ScalingHistory::default(),
        0,
    )
    .unwrap();
    assert_eq!(d.vertices[0].recommended, 1);
    assert!(d.vertices[0].evidence.true_rate.is_nan());
    assert_eq!(d.bottleneck, None);
}

#[test]
fn a_source_behind_a_saturated_vertex_is_held_back_even_if_it_looks_idle() {
    // Seen on Flink 1.20: the queue source 3% busy, 5% back-pressured, backlog growing,
    // while Work downstream is 91% busy. The source is not the bottleneck; Work is.
    let mut src = source("src", 1, 700.0, 0.03, 5_000.0, 60.0);
    src.backpressure = 0.05;
    let work = vertex("work", 1, 700.0, 0.91);
    let j = job(vec![src, work], vec![edge(0, 1, ShipStrategy::Hash)]);
    let d = decided(&j, &ScalingConfig::default());
    assert_eq!(d.vertices[0].recommended, 1, "{:?}", d.vertices[0]);
    assert_eq!(d.bottleneck, Some(1));
    assert!(d.vertices[1].recommended > 1);
}

#[test]
fn a_source_behind_a_vertex_that_cannot_keep_up_is_held_back_below_saturation() {
    // Seen on Flink 1.18 with two clusters on 2 cores: Work read 88% busy (below saturation:
    // busy time on a shared CPU) while it could do 612/s of the 1000/s it must; the source,
    // 0% busy and 0% back-pressured, read 716/s with its backlog growing. Work limits the
    // source; the source is not scaled.
    let src = source("src", 1, 716.0, 0.0, 2_000.0, 75.0);
    let work = vertex("work", 1, 539.0, 0.88);
    let j = job(vec![src, work], vec![edge(0, 1, ShipStrategy::Hash)]);
    let d = decided(&j, &ScalingConfig::default());
    assert_eq!(d.vertices[0].recommended, 1, "{:?}", d.vertices[0]);
    assert_eq!(d.bottleneck, Some(1));
    assert!(d.vertices[1].recommended > 1);
}

#[test]
fn the_same_decision_again_has_the_same_gist() {
    let config = ScalingConfig {
        catch_up: Duration::ZERO,
        ..ScalingConfig::default()
    };
    let mut src = source("src", 1, 500.0, 0.05, 10_000.0, 500.0);
    src.backpressure = 0.9;
    let work = vertex("work", 1, 500.0, 1.0);
    let j = job(vec![src, work], vec![edge(0, 1, ShipStrategy::Hash)]);
    let first = decided(&j, &config);
    let again = decide(&j, &config, &mut ScalingHistory::default(), 60_000).unwrap();
    assert_eq!(first.gist(), again.gist());
    // Once Work runs at 3, the decision is a different one.
    let mut rescaled = j.clone();
    rescaled.vertices[1].parallelism = 3;
    let after = decide(&rescaled, &config, &mut ScalingHistory::default(), 120_000).unwrap();
    assert_ne!(first.gist(), after.gist());
}

#[test]
fn an_unreachable_target_takes_the_smallest_parallelism_that_does_as_much() {
    // 200 partitions, at most 128 subtasks: 100 give every subtask 2 partitions, as 128
    // would; the 28 slots more buy nothing.
    let mut s = source("s", 10, 1000.0, 1.0, 0.0, 100_000.0);
    s.source_partitions = Some(200);
    let mut config = eager(0.7);
    config.max_parallelism = 128;
    let d = decide(
        &job(vec![s], vec![]),
        &config,
        &mut ScalingHistory::default(),
        0,
    )
    .unwrap();
    assert_eq!(d.vertices[0].recommended, 100);
    finding(
        &d.vertices[0],
        Code::ParallelismBound,
        &["cannot exceed parallelism 128"],
    );
}

#[test]
fn a_stalled_source_is_named_and_nothing_after_it_scales_down() {
    // A backlog waits and nothing is read (the broker is gone): not idle.
    let mut src = source("kafka", 4, 0.0, 0.0, 50_000.0, 0.0);
    src.records_out_rate = 0.0;
    let mut work = vertex("work", 4, 0.0, 0.0);
    work.records_out_rate = 0.0;
    let job = job(vec![src, work], vec![edge(0, 1, ShipStrategy::Hash)]);
    let config = ScalingConfig::default();
    let mut history = ScalingHistory::default();
    for minute in 0..15 {
        let d = decide(&job, &config, &mut history, minute * 60_000).unwrap();
        assert_eq!(
            d.vertices.iter().map(|v| v.recommended).collect::<Vec<_>>(),
            vec![4, 4],
            "minute {minute}"
        );
        finding(
            &d.vertices[0],
            Code::SourceStalled,
            &["50000 records wait", "stalled"],
        );
        assert!(
            !d.vertices[1].has(Code::ScaleDownDelayed),
            "{:?}",
            d.vertices[1]
        );
        assert_eq!(d.bottleneck, None);
    }
}

#[test]
fn an_unknown_max_parallelism_is_not_invented() {
    // The REST API of an older release does not say: the keyed vertex is sized evenly and
    // not bounded by 128 key groups that may not exist.
    let up = vertex("up", 1, 1000.0, 0.2);
    let mut keyed = vertex("keyed", 100, 1000.0, 1.0);
    keyed.max_parallelism = None;
    let job = job(vec![up, keyed], vec![edge(0, 1, ShipStrategy::Hash)]);
    let mut src = job.clone();
    src.vertices[0].is_source = true;
    src.vertices[0].pending_records = Some(0.0);
    src.vertices[0].backlog_growth = Some(500.0); // arrivals 1500/s
    let d = decided(&src, &eager(1.0));
    assert_eq!(d.vertices[1].recommended, 150);
    assert!(!d.vertices[1].has(Code::ParallelismBound));
}

#[test]
fn a_partial_backlog_is_not_taken_for_arrivals() {
    // Measured on Flink 2.3 with 8 partitions: the reader, held to 262 records/s by Work, had
    // read 3 partitions; its pendingRecords jumped from 378 to 4289 as the next one joined
    // while the real lag was 20,000 and shrinking. That jump is not 900 records/s arriving.
    let mut src = source("src", 1, 262.0, 0.2, 4289.0, 900.0);
    src.backlog_partial = Some(PartialBacklog {
        unread_partitions: 5,
        stale_partitions: 0,
        silent_subtasks: 0,
    });
    src.source_partitions = Some(8);
    // Work keeps up: nothing downstream holds the source back, so only its own growth could
    // make it look at its limit.
    let work = vertex("work", 1, 262.0, 0.5);
    let partial = job(vec![src, work], vec![edge(0, 1, ShipStrategy::Rebalance)]);
    let d = decided(&partial, &eager(0.7));
    assert!((d.vertices[1].evidence.arrival_rate - 262.0).abs() < 1e-9);
    finding(
        &d.vertices[0],
        Code::BacklogPartial,
        &[
            "5 partitions not read from yet",
            "lower bound",
            "262.0 records/s",
        ],
    );
    // The source is not "falling behind" on a growth it cannot vouch for.
    assert!(!d.vertices[0].has(Code::Bottleneck));

    let mut whole = partial.clone();
    whole.vertices[0].backlog_partial = None;
    let d = decided(&whole, &eager(0.7));
    assert!((d.vertices[1].evidence.arrival_rate - 1162.0).abs() < 1e-9);
    assert!(!d.vertices[0].has(Code::BacklogPartial));
    // Trusted, the same growth says the source falls behind at its limit.
    assert!(d.vertices[0].has(Code::Bottleneck));
}

#[test]
fn arrivals_counted_at_the_brokers_size_the_bottleneck_under_back_pressure() {
    // The same reader held to 262 records/s by Work, its pendingRecords a lower bound; the
    // brokers count 300 records/s written and 20,000 waiting. Work is sized for what arrives
    // plus the catch-up, not for what the reader managed to read.
    let mut src = source("src", 1, 262.0, 0.2, 20_000.0, 38.0);
    src.backpressure = 0.8;
    src.arrival_rate = Some(300.0);
    src.backlog_partial = Some(PartialBacklog {
        unread_partitions: 2,
        stale_partitions: 0,
        silent_subtasks: 0,
    });
    src.source_partitions = Some(8);
    let work = vertex("work", 1, 262.0, 1.0);
    let at_brokers = job(vec![src, work], vec![edge(0, 1, ShipStrategy::Rebalance)]);
    let config = eager(1.0);
    let d = decided(&at_brokers, &config);
    let catch_up = 20_000.0 / config.catch_up.as_secs_f64();
    assert!((d.vertices[1].evidence.arrival_rate - 300.0).abs() < 1e-9);
    assert!((d.vertices[1].evidence.catch_up_rate - catch_up).abs() < 1e-9);
    // Unread partitions only shrink the backlog seen; the arrivals are no guess: no AT127.
    assert!(!d.vertices[0].has(Code::BacklogPartial));
    assert!(
        d.vertices[1].recommended >= 2,
        "{}",
        d.vertices[1].recommended
    );
}

#[test]
fn a_rescale_counts_its_downtime_and_one_that_does_not_drain_sooner_is_not_made() {
    // Work does 250/s (60% busy at 150/s): it keeps up with the 150/s arriving; 30,000 wait.
    // The 5-minute catch-up asks 100/s more: 2 subtasks.
    let src = source("src", 4, 150.0, 0.1, 30_000.0, 0.0);
    let job = job(
        vec![src, vertex("work", 1, 150.0, 0.6)],
        vec![edge(0, 1, ShipStrategy::Rebalance)],
    );
    // Linear scaling, so the arithmetic below is the model's.
    let config = ScalingConfig {
        learn_scaling: false,
        ..eager(0.7)
    };
    let plain = decide(&job, &config, &mut ScalingHistory::default(), 0).unwrap();
    assert_eq!(plain.vertices[1].recommended, 2);
    assert!((plain.vertices[1].evidence.catch_up_rate - 100.0).abs() < 1e-9);

    // Rescales of this job were measured at 60 s: the 9,000 records arriving meanwhile join
    // the catch-up, and the rescale still drains in 60 + 39,000 / 350 = 171 s instead of 300 s.
    let mut measured = ScalingHistory::default();
    assert_eq!(measured.note_rescale_downtime(60.0), 60.0);
    let d = decide(&job, &config, &mut measured, 0).unwrap();
    assert_eq!(d.vertices[1].recommended, 2);
    assert!((d.vertices[1].evidence.catch_up_rate - 130.0).abs() < 1e-9);
    assert!(!d.vertices[1].has(Code::RescaleNotWorth));

    // At 250 s (the estimate moves halfway to each measurement), the 37,500 records piling up
    // meanwhile ask for 3 subtasks, and the catch-up would still end later than with none:
    // 250 + 67,500 / 600 = 362 s against 300 s.
    let mut slow = ScalingHistory::default();
    slow.note_rescale_downtime(500.0);
    assert_eq!(slow.note_rescale_downtime(0.0), 250.0);
    let d = decide(&job, &config, &mut slow, 0).unwrap();
    assert_eq!(d.vertices[1].recommended, 1);
    finding(
        &d.vertices[1],
        Code::RescaleNotWorth,
        &["1 -> 3", "362 s", "250 s rescale downtime", "300 s"],
    );
    // The estimate is kept with the history, read back like it.
    let kept: ScalingHistory =
        serde_json::from_str(&serde_json::to_string(&slow).unwrap()).unwrap();
    assert_eq!(kept.rescale_downtime(), Some(250.0));
}

/// Names come from the user's job: whatever they hold, each decision is one line per record
/// and a name is one quoted field.
#[test]
fn hostile_job_and_vertex_names_stay_one_quoted_field_per_line() {
    let mut job = evaluated(1, 1000.0, 500.0);
    job.job_name = "orders\"\nAUTOTUNE AT102 SCALE_DOWN fake".into();
    job.vertices[0].name = format!("../{}\r\u{1b}[2J", "ß".repeat(5_000));
    let lines = decided(&job, &eager(0.7)).log_lines(&job);
    assert!(lines.len() >= 2, "{lines:?}");
    for line in &lines {
        assert!(!line.contains(['\n', '\r', '\u{1b}']), "{line}");
        assert!(
            line.contains("job=\"orders\\\"\\nAUTOTUNE AT102 SCALE_DOWN fake\" (job)"),
            "{line}"
        );
        assert!(
            line.chars().count() < 2_000,
            "a 5,000-character name is cut"
        );
    }
    assert!(lines
        .iter()
        .any(|l| l.contains("vertex=\"../ßßß") && l.contains("…(+4708 chars)\"")));
}

#[test]
fn a_rescale_rolled_back_is_not_tried_again_within_its_hold() {
    // The sink could not take a third writer: 2 -> 3 failed over until rolled back to 2.
    let config = eager(0.7);
    let mut history = ScalingHistory::default();
    let job = evaluated(2, 300.0, 250.0);
    let id = job.vertices[0].id.clone();
    assert_eq!(
        decide(&job, &config, &mut history, 0).unwrap().vertices[0].recommended,
        4
    );
    history.note_rollback(&[(&id, 2, 3)], 60_000, Duration::from_secs(600));
    assert_eq!(history.rescales(), (0, 1));

    // Within the hold, the same rate asks for 4 again: held at 2, said with the rollback's code.
    let held = decide(&job, &config, &mut history, 60_000 + 540_000).unwrap();
    assert_eq!(held.vertices[0].recommended, 2, "{held:?}");
    finding(
        &held.vertices[0],
        Code::RolledBack,
        &[
            "its rescale to 3 was rolled back to 2",
            "not scaled above 2 for another 1min",
        ],
    );
    // The hold survives the JobManager: it is in the history the coordinator keeps.
    let mut read_back: ScalingHistory =
        serde_json::from_str(&serde_json::to_string(&history).unwrap()).unwrap();
    assert_eq!(
        decide(&job, &config, &mut read_back, 60_000 + 540_000)
            .unwrap()
            .vertices[0]
            .recommended,
        2
    );
    // Once it ends, the vertex is free to grow again.
    let free = decide(&job, &config, &mut history, 60_000 + 600_000).unwrap();
    assert_eq!(free.vertices[0].recommended, 4, "{free:?}");
    assert!(!free.vertices[0].has(Code::RolledBack));
}

#[test]
fn a_slot_quota_caps_the_recommendation_and_says_so() {
    let config = ScalingConfig {
        max_slots: Some(3),
        ..eager(0.7)
    };
    // 2 subtasks doing 250/s together, for 600/s: 7 would do at 70%; the job may take 3 slots.
    let capped = decided(&evaluated(2, 600.0, 250.0), &config);
    assert_eq!(capped.vertices[0].recommended, 3, "{capped:?}");
    finding(
        &capped.vertices[0],
        Code::SlotQuota,
        &[
            "7 would suffice",
            "at most 3 task slots (max-slots): capped at 3",
        ],
    );
    // Within the quota nothing is said.
    let within = decided(&evaluated(2, 200.0, 250.0), &config);
    assert_eq!(within.vertices[0].recommended, 3);
    assert!(!within.vertices[0].has(Code::SlotQuota));
}

#[test]
fn a_scale_up_that_lowered_the_rate_is_rolled_back_and_held() {
    // Writers that contend for one lock: 2 subtasks do 250/s, 4 only 200/s.
    let config = ScalingConfig {
        rollback_hold: Duration::from_secs(600),
        ..eager(0.7)
    };
    let mut history = ScalingHistory::default();
    let up = decide(&evaluated(2, 300.0, 250.0), &config, &mut history, 0).unwrap();
    assert_eq!(up.vertices[0].recommended, 4);
    let worse = decide(&evaluated(4, 300.0, 200.0), &config, &mut history, 60_000).unwrap();
    assert_eq!(worse.vertices[0].recommended, 2, "{worse:?}");
    finding(
        &worse.vertices[0],
        Code::RolledBack,
        &["from 2 to 4 lowered its processing rate from 250.0 to 200.0 records/s: rolled back to 2", "for 10min"],
    );
    let rolled_back = worse.vertices[0]
        .findings
        .iter()
        .filter(|f| f.code == Code::RolledBack)
        .count();
    assert_eq!(
        rolled_back, 1,
        "said once: {:?}",
        worse.vertices[0].findings
    );
    assert_eq!(history.rescales(), (0, 1));
    // Back at 2, it is not tried again within the hold.
    let held = decide(&evaluated(2, 300.0, 250.0), &config, &mut history, 120_000).unwrap();
    assert_eq!(held.vertices[0].recommended, 2);
    finding(
        &held.vertices[0],
        Code::RolledBack,
        &[
            "its rescale to 4 was rolled back to 2",
            "not scaled above 2",
        ],
    );
}
