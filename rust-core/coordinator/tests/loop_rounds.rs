//! The coordinator's loop against a fake JobManager REST API on loopback: no JVM, no
//! cluster. Windows are a few hundred milliseconds long; everything else is the loop the
//! plugin runs in the JobManager and `flink-autotune watch` runs as a process.

mod fake_flink;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use autotune_coordinator::clock::{Clock, ManualClock};
use autotune_coordinator::recording::Recording;
use autotune_coordinator::rounds::{Coordinator, JobRound};
use autotune_coordinator::settings::LoopSettings;
use autotune_coordinator::sink::{LogSink, MemorySink};
use autotune_coordinator::stop::{Background, StopFlag};
use autotune_model::memory::{MemoryPlan, PoolWindow};
use autotune_model::options::{Mode, Options};
use autotune_model::quiet::QuietWindows;
use autotune_model::scaling::ScalingHistory;
use fake_flink::{epoch_ms, Cluster, FakeFlink, FakeJob, FakeTaskManager, FakeVertex, Load};
use serde_json::json;

const JOB: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";

/// Source (1 subtask, backlog growing) -> keyBy -> Work (1 subtask, saturated): Work is the
/// bottleneck and needs 2 subtasks at 70% busy.
fn bottleneck_job() -> FakeJob {
    let long_ago = epoch_ms() - 120_000;
    let mut source = FakeVertex::new("src0000000000000000000000000000", "Source: Queue", 1);
    source.rate_in = 1000.0;
    source.rate_out = 1000.0;
    source.busy_ms = 100.0;
    source.backpressure_ms = 850.0;
    source.pending = Some((5_000.0, 50.0));
    source.start_time = long_ago;
    let mut work = FakeVertex::new("wrk0000000000000000000000000000", "Work", 1);
    work.rate_in = 1000.0;
    work.rate_out = 1000.0;
    work.busy_ms = 1000.0;
    work.busy_max_ms = 1000.0;
    work.start_time = long_ago;
    FakeJob::running(
        JOB.into(),
        "queue-job",
        long_ago,
        vec![source, work],
        vec![(0, 1, "HASH")],
    )
}

fn taskmanager(id: &str, pool_window: Option<PoolWindow>) -> FakeTaskManager {
    let metrics = [
        ("Status.JVM.Memory.Heap.Max", 536_870_912.0),
        ("Status.JVM.Memory.Metaspace.Used", 60_000_000.0),
        ("Status.JVM.Memory.Metaspace.Max", 268_435_456.0),
        ("Status.JVM.Memory.Direct.MemoryUsed", 140_000_000.0),
        ("Status.Flink.Memory.Managed.Used", 0.0),
        ("Status.Flink.Memory.Managed.Total", 536_870_912.0),
        ("Status.Shuffle.Netty.UsedMemory", 1_000_000.0),
        ("Status.Shuffle.Netty.TotalMemory", 134_217_728.0),
    ];
    FakeTaskManager {
        id: id.into(),
        slots: 2,
        free_slots: 1,
        pool_window: pool_window.map(|w| serde_json::to_string(&w).unwrap()),
        metrics: metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
    }
}

/// What the plugin publishes in a TaskManager with 100 MiB of live data.
fn published_window() -> PoolWindow {
    PoolWindow {
        window_seconds: 300.0,
        samples: 30,
        full: true,
        heap_max: Some(536_870_912.0),
        heap_used_peak: Some(300_000_000.0),
        heap_after_gc_peak: Some(104_857_600.0),
        gc_ms_per_s: Some(5.0),
        metaspace_used_peak: Some(60_000_000.0),
        metaspace_max: Some(268_435_456.0),
        direct_used_peak: Some(140_000_000.0),
        managed_used_peak: Some(0.0),
        managed_total: Some(536_870_912.0),
        network_used_peak: Some(1_000_000.0),
        network_total: Some(134_217_728.0),
    }
}

/// Work runs 4 subtasks at 10% busy: one would do, after the scale-down delay.
fn over_provisioned_job() -> FakeJob {
    let mut job = bottleneck_job();
    job.vertices[0].pending = None;
    job.vertices[0].backpressure_ms = 0.0;
    job.vertices[1].parallelism = 4;
    job.vertices[1].busy_ms = 100.0;
    job.vertices[1].busy_max_ms = 120.0;
    job
}

fn cluster(jobs: Vec<FakeJob>, taskmanagers: Vec<FakeTaskManager>) -> FakeFlink {
    FakeFlink::start(Cluster {
        jobs,
        taskmanagers,
        ..Cluster::default()
    })
}

/// The plugin's defaults with windows short enough for a unit test.
fn settings(url: &str, output_dir: Option<PathBuf>) -> LoopSettings {
    let mut s = LoopSettings::from_options(&Options::default(), url.into(), output_dir, &LogSink);
    s.decision_window = Duration::from_millis(300);
    s.poll = Duration::from_millis(50);
    s.interval = Duration::from_millis(100);
    s.stabilization = Duration::ZERO;
    s.diagnosis_every = Duration::ZERO;
    s.rest_timeout = Duration::from_secs(2);
    s
}

fn coordinator(settings: LoopSettings) -> (Coordinator, Arc<MemorySink>) {
    let sink = MemorySink::new();
    (Coordinator::new(settings, sink.clone()), sink)
}

fn round(c: &mut Coordinator) -> Vec<JobRound> {
    c.round(&StopFlag::new()).expect("a round")
}

fn with_code<'a>(lines: &'a [String], code: &str) -> Vec<&'a String> {
    lines
        .iter()
        .filter(|l| l.starts_with(&format!("AUTOTUNE {code} ")))
        .collect()
}

/// The value of one key of a memory plan.
fn plan_key(plan: &MemoryPlan, name: &str) -> String {
    let keys = plan.config_keys();
    match keys.iter().find(|(k, _)| *k == name) {
        Some((_, v)) => v.clone(),
        None => panic!("{name} not in {keys:?}"),
    }
}

/// The job's recommended config file holds every `key: value`.
fn assert_config_holds(dir: &std::path::Path, entries: &[&str]) {
    let config = std::fs::read_to_string(dir.join(JOB).join("recommended-config.yaml")).unwrap();
    for entry in entries {
        assert!(config.contains(entry), "{entry} not in {config}");
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("autotune-loop-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn the_bottleneck_is_named_and_sized() {
    let flink = cluster(vec![bottleneck_job()], vec![]);
    let (mut c, sink) = coordinator(settings(&flink.url, None));
    let reports = round(&mut c);
    let lines = sink.lines();
    let decided = reports[0].decided.as_ref().expect("a decision");
    let work = &decided.decision.vertices[1];
    assert_eq!((work.current, work.recommended), (1, 2), "{lines:#?}");
    assert_eq!(decided.decision.bottleneck, Some(1));
    assert!(
        with_code(&lines, "AT110")[0].contains("vertex=\"Work\""),
        "{lines:#?}"
    );
    assert!(with_code(&lines, "AT100")[0].contains(
        "pipeline.jobvertex-parallelism-overrides=src0000000000000000000000000000:1,wrk0000000000000000000000000000:2"
    ));
}

#[test]
fn each_decision_is_published_as_figures_per_vertex_and_per_job() {
    let flink = cluster(vec![bottleneck_job()], vec![]);
    let (mut c, _) = coordinator(settings(&flink.url, None));
    let figures = c.figures();
    round(&mut c);
    let (version, all) = figures.since(0).expect("figures after a decision");
    let value = |vertex: Option<&str>, name: &str| {
        all.iter()
            .find(|(k, _)| {
                k.job_id == JOB
                    && k.name == name
                    && k.group.as_ref().map(|(_, v)| v.as_str()) == vertex
            })
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("{name} of {vertex:?} not in {all:?}"))
    };
    let work = Some("wrk0000000000000000000000000000");
    let source = Some("src0000000000000000000000000000");
    assert_eq!(value(work, "recommendedParallelism"), 2.0);
    assert_eq!(value(work, "parallelism"), 1.0);
    assert_eq!(value(work, "bottleneck"), 1.0);
    assert_eq!(value(source, "bottleneck"), 0.0);
    assert!(value(work, "trueProcessingRate") > 0.0);
    assert!(value(work, "targetRate") > value(work, "trueProcessingRate"));
    assert_eq!(value(None, "rescalesApplied"), 0.0);
    assert_eq!(value(Some("critical"), "findings"), 0.0);
    // The job gone, its figures go.
    flink.cluster().jobs.clear();
    let _ = c.poll(&StopFlag::new());
    let (_, left) = figures.since(version).expect("changed");
    assert!(left.is_empty(), "{left:?}");
}

/// The decision and the subtask-metric requests of one round of `job` on `taskmanagers`.
fn decided_with(job: FakeJob, taskmanagers: Vec<FakeTaskManager>) -> (Vec<u32>, (f64, f64), usize) {
    let flink = cluster(vec![job], taskmanagers);
    let (mut c, _) = coordinator(settings(&flink.url, None));
    let reports = round(&mut c);
    let decided = reports[0].decided.as_ref().expect("a decision");
    let plan = decided
        .decision
        .vertices
        .iter()
        .map(|v| v.recommended)
        .collect();
    let work = &decided.decision.vertices[1].evidence;
    let work_busy = (work.busy, work.busy_max);
    let asked = flink
        .cluster()
        .requests_by_kind
        .get("/jobs/*/vertices/*/subtasks/metrics")
        .copied()
        .unwrap_or(0);
    (plan, work_busy, asked)
}

#[test]
fn the_taskmanagers_published_loads_replace_a_request_per_vertex() {
    // Work at 3 subtasks over 2 TaskManagers, its hottest one saturated.
    let job = || {
        let mut job = bottleneck_job();
        job.vertices[1].parallelism = 3;
        job.vertices[1].busy_ms = 600.0;
        job.vertices[1].busy_max_ms = 900.0;
        job
    };
    let plugin = || {
        vec![
            taskmanager("tm-1", Some(published_window())),
            taskmanager("tm-2", Some(published_window())),
        ]
    };
    let (over_rest, busy_over_rest, asked_over_rest) = decided_with(job(), vec![]);
    let (published, busy_published, asked_published) = decided_with(job(), plugin());
    // The same decision from the same loads, without one request per vertex and poll.
    assert_eq!(published, over_rest);
    assert_eq!(busy_published, busy_over_rest);
    assert!(
        busy_published.1 > busy_published.0,
        "the hottest subtask seen: {busy_published:?}"
    );
    assert!(asked_over_rest > 0);
    assert_eq!(asked_published, 0);
    // A TaskManager without the plugin leaves some subtasks unpublished: those vertices are
    // asked for over REST, and decided the same.
    let mixed = vec![
        taskmanager("tm-1", Some(published_window())),
        taskmanager("tm-2", None),
    ];
    let (plan, busy, asked) = decided_with(job(), mixed);
    assert_eq!(plan, over_rest);
    assert_eq!(busy, busy_over_rest);
    assert!(asked > 0);
}

#[test]
fn a_job_is_not_decided_on_while_it_stabilizes() {
    let mut job = bottleneck_job();
    for v in &mut job.vertices {
        v.start_time = epoch_ms();
    }
    let flink = cluster(vec![job], vec![]);
    let mut s = settings(&flink.url, None);
    s.stabilization = Duration::from_secs(30);
    let (mut c, sink) = coordinator(s);
    let reports = round(&mut c);
    assert!(reports[0].decided.is_none());
    assert!(reports[0]
        .no_decision
        .as_deref()
        .unwrap()
        .contains("stabilizing"));
    assert!(with_code(&sink.lines(), "AT100").is_empty());
    // Redeployed long enough ago: decided.
    for v in &mut flink.cluster().jobs[0].vertices {
        v.start_time = epoch_ms() - 60_000;
    }
    assert!(round(&mut c)[0].decided.is_some());
    assert_eq!(with_code(&sink.lines(), "AT100").len(), 1);
}

/// A vertex restoring its state (INITIALIZING, seen for 90 s on a real cluster) reads as 100%
/// busy and counts nothing: no window while it does, and the stabilization starts when every
/// task runs, however long ago they were deployed.
#[test]
fn a_job_restoring_its_state_is_not_decided_on_until_it_runs_and_stabilizes() {
    let mut job = bottleneck_job();
    for v in &mut job.vertices {
        v.start_time = epoch_ms() - 120_000;
    }
    job.vertices[1].status = "INITIALIZING";
    let flink = cluster(vec![job], vec![]);
    let mut s = settings(&flink.url, None);
    s.stabilization = Duration::from_secs(30);
    let (mut c, sink) = coordinator(s);
    let no_decision = |c: &mut Coordinator| round(c)[0].no_decision.clone().unwrap_or_default();
    assert!(no_decision(&mut c).contains("not all running yet"));
    flink.cluster().jobs[0].vertices[1].status = "RUNNING";
    assert!(no_decision(&mut c).contains("stabilizing"));
    assert!(with_code(&sink.lines(), "AT100").is_empty());
}

/// After a TaskManager was lost, the REST API served the dead TaskManager's last values for a
/// restarted job: no record counted for a whole stretched window while Work read 99% busy.
/// That view measures nothing (it was decided as arrivals of 0/s and Work at 1); an idle job,
/// nothing busy, is still decided.
#[test]
fn counters_that_never_move_beside_a_busy_vertex_get_no_decision() {
    let still = |work_busy_ms: f64| {
        let mut job = bottleneck_job();
        for v in &mut job.vertices {
            (v.rate_in, v.rate_out, v.pending) = (0.0, 0.0, None);
            v.backpressure_ms = 0.0;
        }
        job.vertices[0].busy_ms = 0.0;
        job.vertices[1].busy_ms = work_busy_ms;
        job.vertices[1].busy_max_ms = work_busy_ms;
        job
    };

    let flink = cluster(vec![still(995.0)], vec![]);
    let (mut c, sink) = coordinator(settings(&flink.url, None));
    let reports = round(&mut c);
    assert!(reports[0].decided.is_none(), "{:?}", reports[0].decided);
    let why = reports[0].no_decision.as_deref().unwrap();
    assert!(
        why.contains("counted no record") && why.contains("\"Work\" shows 100% busy"),
        "{why}"
    );
    let said: Vec<_> = sink
        .lines()
        .into_iter()
        .filter(|l| l.contains("no decision for job") && l.contains("stale"))
        .collect();
    assert_eq!(said.len(), 1, "{:#?}", sink.lines());
    assert!(with_code(&sink.lines(), "AT100").is_empty());

    let flink = cluster(vec![still(5.0)], vec![]);
    let (mut c, _) = coordinator(settings(&flink.url, None));
    assert!(round(&mut c)[0].decided.is_some(), "an idle job is decided");
}

#[test]
fn the_same_decision_is_said_once() {
    let flink = cluster(vec![bottleneck_job()], vec![]);
    let (mut c, sink) = coordinator(settings(&flink.url, None));
    assert!(round(&mut c)[0].decided.as_ref().unwrap().fresh);
    let first = sink.take();
    assert!(!with_code(&first, "AT101").is_empty());
    let again = round(&mut c);
    assert!(!again[0].decided.as_ref().unwrap().fresh);
    assert_eq!(sink.take(), Vec::<String>::new(), "nothing new to say");
}

#[test]
fn a_rescale_mid_window_starts_the_window_again() {
    let mut job = bottleneck_job();
    job.rescale_at = vec![4];
    let flink = cluster(vec![job], vec![]);
    let (mut c, _) = coordinator(settings(&flink.url, None));
    let reports = round(&mut c);
    let decided = reports[0]
        .decided
        .as_ref()
        .expect("a decision on the new window");
    assert_eq!(
        decided.snapshot.vertices[1].parallelism, 2,
        "decided on the parallelism the job has after the rescale"
    );
    let samples = &reports[0].recording.as_ref().unwrap().samples;
    assert!(samples.len() >= 2);

    // Rescaled again and again: no window holds, no decision.
    let mut job = bottleneck_job();
    job.rescale_at = (3..40).collect();
    let flink = cluster(vec![job], vec![]);
    let (mut c, sink) = coordinator(settings(&flink.url, None));
    let reports = round(&mut c);
    assert!(reports[0].decided.is_none());
    assert!(
        reports[0]
            .no_decision
            .as_deref()
            .unwrap()
            .contains("changed parallelism or restarted"),
        "{reports:?}"
    );
    assert!(with_code(&sink.lines(), "AT100").is_empty());
}

#[test]
fn a_restart_mid_window_at_the_same_parallelism_starts_the_window_again() {
    let mut job = bottleneck_job();
    job.restart_at = vec![5];
    let flink = cluster(vec![job], vec![]);
    let (mut c, _) = coordinator(settings(&flink.url, None));
    let reports = round(&mut c);
    let recording = reports[0]
        .recording
        .as_ref()
        .expect("a window after the restart");
    // Every sample is from after the restart: the counters only grow, from near zero.
    let written: Vec<f64> = recording
        .samples
        .iter()
        .map(|s| s.vertices[1].write_records)
        .collect();
    assert!(written.windows(2).all(|w| w[1] >= w[0]), "{written:?}");
    assert!(written[0] < 1000.0 * 0.5, "started again: {written:?}");
    let work = &reports[0].decided.as_ref().unwrap().decision.vertices[1];
    assert_eq!(
        (work.current, work.recommended),
        (1, 2),
        "the rate is not halved"
    );
}

#[test]
fn an_unknown_max_parallelism_is_said_once_and_not_invented() {
    let mut job = bottleneck_job();
    job.vertices[1].max_parallelism = -1;
    let flink = cluster(vec![job], vec![]);
    let (mut c, sink) = coordinator(settings(&flink.url, None));
    let reports = round(&mut c);
    let shape = &reports[0].recording.as_ref().unwrap().shape;
    assert_eq!(shape.vertices[1].max_parallelism, None);
    assert_eq!(shape.vertices[0].max_parallelism, Some(128));
    flink.cluster().jobs[0].vertices[0].pending = Some((5_000.0, -500.0));
    round(&mut c);
    let told: Vec<String> = sink
        .lines()
        .into_iter()
        .filter(|l| l.contains("gives no max parallelism"))
        .collect();
    assert_eq!(told.len(), 1, "{told:#?}");
    assert!(told[0].contains("vertex \"Work\""), "{}", told[0]);
}

#[test]
fn a_job_that_vanishes_mid_window_gets_no_decision_and_no_error() {
    let mut job = bottleneck_job();
    job.vanish_at = Some(4);
    let flink = cluster(vec![job], vec![]);
    let (mut c, sink) = coordinator(settings(&flink.url, None));
    let reports = round(&mut c);
    assert!(reports[0].decided.is_none());
    assert!(reports[0]
        .no_decision
        .as_deref()
        .unwrap()
        .contains("is not running (gone)"));
    assert!(sink
        .lines()
        .iter()
        .any(|l| l.starts_with("AUTOTUNE COORDINATOR no decision for job \"queue-job\"")));
    // Gone for good: the next round has nothing to do.
    assert!(round(&mut c).is_empty());
}

#[test]
fn rest_down_is_said_once_and_its_end_too() {
    let flink = cluster(vec![bottleneck_job()], vec![]);
    flink.cluster().down = true;
    let (c, sink) = coordinator(settings(&flink.url, None));
    let running = Background::spawn("loop-under-test", move |stop| {
        let mut c = c;
        c.run(stop)
    })
    .unwrap();
    let wait_for = |what: &str, found: &dyn Fn(&[String]) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !found(&sink.lines()) {
            assert!(
                Instant::now() < deadline,
                "waited for {what}: {:#?}",
                sink.lines()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let requests = |flink: &FakeFlink| flink.cluster().requests;
    let before = requests(&flink);
    wait_for("three failed rounds", &|_| requests(&flink) >= before + 3);
    let down: Vec<String> = sink
        .lines()
        .into_iter()
        .filter(|l| l.contains("answered 503"))
        .collect();
    assert_eq!(down.len(), 1, "said once: {down:#?}");
    assert!(down[0].contains("trying again every 50ms"), "{down:?}");
    flink.cluster().down = false;
    wait_for("the loop working again", &|lines| {
        lines
            .iter()
            .any(|l| l == "AUTOTUNE COORDINATOR working again")
    });
    wait_for("a decision", &|lines| {
        lines.iter().any(|l| l.starts_with("AUTOTUNE AT100 PLAN"))
    });
    running.stop();
    assert_eq!(
        sink.lines().last().map(String::as_str),
        Some("AUTOTUNE COORDINATOR stopped")
    );
}

#[test]
fn apply_asks_the_adaptive_scheduler_for_the_plan() {
    let mut job = bottleneck_job();
    job.scheduler = "Adaptive".into();
    let flink = cluster(vec![job], vec![]);
    let mut s = settings(&flink.url, None);
    s.options.mode = Mode::Apply;
    let (mut c, sink) = coordinator(s);
    round(&mut c);
    let applied = with_code(&sink.lines(), "AT103").len();
    assert_eq!(applied, 1, "{:#?}", sink.lines());
    let requirements = flink.cluster().requirements.clone();
    assert_eq!(requirements.len(), 1);
    assert_eq!(
        requirements[0].1["wrk0000000000000000000000000000"],
        json!({"parallelism": {"lowerBound": 1, "upperBound": 2}})
    );
}

#[test]
fn an_applied_rescale_is_seen_through_and_its_downtime_kept_for_the_next_decisions() {
    let mut job = bottleneck_job();
    job.scheduler = "Adaptive".into();
    job.rescale_downtime_ms = 7_000; // its tasks deploy 7 s after the request, run 0.5 s later
    let flink = FakeFlink::start(Cluster {
        jobs: vec![job],
        slots_total: Some(4), // the fake rescales the job as the adaptive scheduler would
        ..Cluster::default()
    });
    let out = std::env::temp_dir().join(format!("autotune-downtime-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let mut s = settings(&flink.url, Some(out.clone()));
    s.options.mode = Mode::Apply;
    let (mut c, sink) = coordinator(s);
    round(&mut c);
    assert_eq!(with_code(&sink.lines(), "AT103").len(), 1);
    assert!(
        with_code(&sink.lines(), "AT132").is_empty(),
        "not seen through yet"
    );
    round(&mut c);
    let lines = sink.lines();
    let said = with_code(&lines, "AT132");
    assert_eq!(said.len(), 1, "{lines:#?}");
    assert!(
        said[0].contains("downtime=7.5s estimate=7.5s") && said[0].contains("\"Work\" 1->2"),
        "{}",
        said[0]
    );
    // Kept where the job's decisions and history are, read back like them.
    let job_dir = out.join(JOB);
    let decisions = std::fs::read_to_string(job_dir.join("decisions.jsonl")).unwrap();
    let rescale: serde_json::Value = decisions
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|l| l.get("rescale").cloned())
        .expect("a rescale line");
    // Stamped when asked, on the loop's clock, a moment before the fake got the request.
    let downtime = rescale["downtime_s"].as_f64().unwrap();
    assert!((downtime - 7.5).abs() < 0.5, "{rescale}");
    let kept: ScalingHistory = serde_json::from_str(
        &std::fs::read_to_string(job_dir.join("scaling-history.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(kept.rescale_downtime(), Some(downtime));
    round(&mut c);
    assert_eq!(
        with_code(&sink.lines(), "AT132").len(),
        1,
        "said once per rescale"
    );
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn a_rescale_the_job_fails_over_after_is_rolled_back_and_not_tried_again_within_the_hold() {
    let mut job = bottleneck_job();
    job.scheduler = "Adaptive".into();
    let flink = FakeFlink::start(Cluster {
        jobs: vec![job],
        slots_total: Some(4),
        ..Cluster::default()
    });
    let out = temp_dir("rollback");
    let mut s = settings(&flink.url, Some(out.clone()));
    s.options.mode = Mode::Apply;
    s.options.rollback_hold = Duration::from_secs(3600);
    let (mut c, sink) = coordinator(s);
    round(&mut c);
    assert_eq!(with_code(&sink.lines(), "AT103").len(), 1);
    assert_eq!(flink.cluster().jobs[0].vertices[1].parallelism, 2);

    // The sink cannot take a second writer: the job fails over, again and again.
    let failure = |at: i64| {
        json!({"exceptionName": "java.lang.IllegalStateException",
               "stacktrace": "java.lang.IllegalStateException: the sink takes at most 1 writer\n\tat Writer.open",
               "timestamp": at, "taskName": "Work"})
    };
    flink.cluster().jobs[0]
        .exceptions
        .push(failure(epoch_ms() - 3_600_000)); // before: not counted
    flink.cluster().jobs[0].exceptions.push(failure(epoch_ms()));
    c.poll(&StopFlag::new()).unwrap();
    assert!(
        with_code(&sink.lines(), "AT135").is_empty(),
        "one failover is no pattern"
    );
    flink.cluster().jobs[0].exceptions.push(failure(epoch_ms()));
    c.poll(&StopFlag::new()).unwrap();
    let lines = sink.lines();
    let rolled_back = with_code(&lines, "AT135");
    assert_eq!(rolled_back.len(), 1, "{lines:#?}");
    for said in [
        "failed over 2 times since the rescale",
        "the sink takes at most 1 writer",
        "wrk0000000000000000000000000000:1",
        "\"Work\" 2->1",
        "for 60min",
    ] {
        assert!(
            rolled_back[0].contains(said),
            "{said} not in {}",
            rolled_back[0]
        );
    }
    let requirements = flink.cluster().requirements.clone();
    assert_eq!(
        requirements.last().unwrap().1["wrk0000000000000000000000000000"],
        json!({"parallelism": {"lowerBound": 1, "upperBound": 1}})
    );
    assert_eq!(flink.cluster().jobs[0].vertices[1].parallelism, 1);

    // Work still needs 2 by its rate; within the hold it is not tried again, and the decision
    // says why.
    round(&mut c);
    round(&mut c);
    let lines = sink.lines();
    assert_eq!(with_code(&lines, "AT103").len(), 1, "{lines:#?}");
    let held = with_code(&lines, "AT135");
    assert!(
        held.iter().any(|l| l
            .contains("2 would suffice by its rate, but its rescale to 2 was rolled back to 1")),
        "{lines:#?}"
    );
    // Kept in the job's history, so a restarted JobManager holds it too.
    let kept: ScalingHistory = serde_json::from_str(
        &std::fs::read_to_string(out.join(JOB).join("scaling-history.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(kept.rescales(), (1, 1));
    let decisions = std::fs::read_to_string(out.join(JOB).join("decisions.jsonl")).unwrap();
    assert!(decisions.contains("\"rollback\""), "{decisions}");
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn a_rescale_the_job_does_not_run_at_in_time_is_rolled_back() {
    let mut job = bottleneck_job();
    job.scheduler = "Adaptive".into();
    let flink = FakeFlink::start(Cluster {
        jobs: vec![job],
        slots_total: Some(4),
        ..Cluster::default()
    });
    let mut s = settings(&flink.url, None);
    s.options.mode = Mode::Apply;
    s.options.rescale_timeout = Duration::from_secs(1);
    let (mut c, sink) = coordinator(s);
    round(&mut c);
    assert_eq!(with_code(&sink.lines(), "AT103").len(), 1);
    // The new shape never comes up: the job waits for what it cannot get.
    flink.cluster().jobs[0].state = "RESTARTING".into();
    c.poll(&StopFlag::new()).unwrap();
    assert!(
        with_code(&sink.lines(), "AT135").is_empty(),
        "not yet overdue"
    );
    std::thread::sleep(Duration::from_millis(1_100));
    c.poll(&StopFlag::new()).unwrap();
    let lines = sink.lines();
    let rolled_back = with_code(&lines, "AT135");
    assert_eq!(rolled_back.len(), 1, "{lines:#?}");
    assert!(
        rolled_back[0]
            .contains("not running at its new shape 1s after the rescale (it is RESTARTING)"),
        "{}",
        rolled_back[0]
    );
    assert_eq!(
        flink.cluster().requirements.last().unwrap().1["wrk0000000000000000000000000000"],
        json!({"parallelism": {"lowerBound": 1, "upperBound": 1}})
    );
}

#[test]
fn a_quiet_window_holds_the_apply_back_once_until_it_ends_and_a_cluster_quota_cuts_the_step() {
    let clock = ManualClock::starting_at(1_800_000_000_000);
    let mut job = bottleneck_job();
    job.scheduler = "Adaptive".into();
    job.vertices[0].pending = Some((0.0, 9_000.0)); // Work needs 16
    let flink = FakeFlink::start_with_clock(
        Cluster {
            jobs: vec![job],
            ..Cluster::default()
        },
        clock.clone(),
    );
    // Quiet for the minute the clock starts in, in this machine's time zone.
    let quiet_minute = (0..60)
        .map(|m| format!("* {m} * * * ?"))
        .find(|e| {
            QuietWindows::parse(e)
                .unwrap()
                .holding_at(clock.now_ms())
                .is_some()
        })
        .expect("a minute");
    let mut s = settings(&flink.url, None);
    s.options.mode = Mode::Apply;
    s.options.quiet_windows = QuietWindows::parse(&quiet_minute).unwrap();
    s.options.cluster_max_slots = Some(3);
    let sink = MemorySink::new();
    let mut c = Coordinator::with_clock(s, sink.clone(), clock.clone());
    round(&mut c);
    round(&mut c);
    let lines = sink.lines();
    let held = with_code(&lines, "AT136");
    assert_eq!(held.len(), 1, "said once: {lines:#?}");
    assert!(
        held[0].contains(&format!("window=\"{quiet_minute}\"")),
        "{}",
        held[0]
    );
    assert!(with_code(&lines, "AT103").is_empty(), "{lines:#?}");
    assert!(flink.cluster().requirements.is_empty());

    // The window over, the decision held back (said before, so not fresh) is applied, cut to
    // what the cluster's quota leaves the job: 3 slots in all.
    clock.advance(Duration::from_secs(60));
    round(&mut c);
    let lines = sink.lines();
    let applied = with_code(&lines, "AT103");
    assert_eq!(applied.len(), 1, "{lines:#?}");
    assert!(
        applied[0].contains("wrk0000000000000000000000000000:3")
            && applied[0]
                .contains("by cluster-max-slots, which leaves the job 3 task slots (AT137"),
        "{}",
        applied[0]
    );
    assert_eq!(with_code(&lines, "AT136").len(), 1);
}

#[test]
fn apply_takes_a_bounded_step_and_says_first_what_the_cluster_lacks() {
    // Arrivals of 10,000/s need Work at 16; one applied step grows it at most 4 times, and
    // the one slot the job has is said (AT124) before the scheduler is asked for 4.
    let mut job = bottleneck_job();
    job.scheduler = "Adaptive".into();
    job.vertices[0].pending = Some((0.0, 9_000.0));
    let flink = cluster(vec![job], vec![]);
    let mut s = settings(&flink.url, None);
    s.options.mode = Mode::Apply;
    let (mut c, sink) = coordinator(s);
    round(&mut c);
    let lines = sink.lines();
    let applied = with_code(&lines, "AT103");
    assert_eq!(applied.len(), 1, "{lines:#?}");
    assert!(
        applied[0].contains("wrk0000000000000000000000000000:4")
            && applied[0].contains("1->4 of 1->16 by apply-max-step 4")
            && applied[0].contains("needs 4 task slots where the cluster has 1 (AT124"),
        "{}",
        applied[0]
    );
    let said_first = lines.iter().position(|l| l.starts_with("AUTOTUNE AT124 "));
    let asked = lines.iter().position(|l| l.starts_with("AUTOTUNE AT103 "));
    assert!(said_first.unwrap() < asked.unwrap(), "{lines:#?}");
    assert_eq!(
        flink.cluster().requirements[0].1["wrk0000000000000000000000000000"],
        json!({"parallelism": {"lowerBound": 1, "upperBound": 4}})
    );
}

#[test]
fn apply_without_the_adaptive_scheduler_says_why_once() {
    let flink = cluster(vec![bottleneck_job()], vec![]);
    let mut s = settings(&flink.url, None);
    s.options.mode = Mode::Apply;
    let (mut c, sink) = coordinator(s);
    round(&mut c);
    // A different decision next time (the backlog now shrinks): still said once.
    flink.cluster().jobs[0].vertices[0].pending = Some((5_000.0, -500.0));
    round(&mut c);
    let lines = sink.lines();
    let unavailable = with_code(&lines, "AT104");
    assert_eq!(unavailable.len(), 1, "{lines:#?}");
    assert!(unavailable[0].contains("needs jobmanager.scheduler: adaptive"));
    assert!(with_code(&lines, "AT103").is_empty());
    assert!(flink.cluster().requirements.is_empty());
}

#[test]
fn memory_is_planned_from_the_published_windows() {
    let dir = temp_dir("memory");
    let tms = vec![
        taskmanager("tm-1", Some(published_window())),
        taskmanager("tm-2", Some(published_window())),
    ];
    let flink = cluster(vec![bottleneck_job()], tms);
    let (mut c, sink) = coordinator(settings(&flink.url, Some(dir.clone())));
    let reports = round(&mut c);
    let plan = reports[0].memory.as_ref().expect("a memory plan");
    let lines = sink.lines();
    assert_eq!(with_code(&lines, "AT200").len(), 1, "{lines:#?}");
    assert!(with_code(&lines, "AT207").is_empty());
    // 100 MiB live x 2, at least + 256 MiB: a 368 MiB JVM heap, 240 MiB of task heap.
    assert_eq!(plan_key(plan, "taskmanager.memory.task.heap.size"), "240m");
    assert_config_holds(
        &dir,
        &[
            "pipeline.jobvertex-parallelism-overrides: src0000000000000000000000000000:1,wrk0000000000000000000000000000:2",
            "taskmanager.memory.task.heap.size: 240m",
            "taskmanager.memory.managed.size: 0m",
        ],
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A session cluster's jobs share the TaskManagers and one configuration: one memory plan for
/// the cluster, said once, in the output folder's own config file, with network memory for
/// the hungriest job's graph; no job's file holds memory keys that contradict another's.
#[test]
fn a_session_cluster_gets_one_memory_plan_not_one_per_job() {
    let dir = temp_dir("cluster-memory");
    let tms = vec![
        taskmanager("tm-1", Some(published_window())),
        taskmanager("tm-2", Some(published_window())),
    ];
    let light = session_job(1, epoch_ms() - 120_000);
    // The wide one: Work at 32 subtasks behind a keyBy needs the most network buffers.
    let mut wide = session_job(2, epoch_ms() - 120_000);
    wide.vertices[1].parallelism = 32;
    wide.vertices[1].busy_ms = 500.0;
    wide.vertices[1].busy_max_ms = 500.0;
    let alone = {
        let flink = cluster(vec![wide.clone()], tms.clone());
        let (mut c, _) = coordinator(settings(&flink.url, None));
        round(&mut c)[0]
            .memory
            .clone()
            .expect("the wide job's own plan")
    };
    let flink = cluster(vec![light, wide], tms);
    let (mut c, sink) = coordinator(settings(&flink.url, Some(dir.clone())));
    let rounds = round(&mut c);
    assert_eq!(rounds.len(), 2, "{rounds:?}");
    let lines = sink.lines();
    let plans = with_code(&lines, "AT200");
    assert_eq!(plans.len(), 1, "one plan for the cluster: {lines:#?}");
    assert!(plans[0].contains("cluster jobs=2"), "{}", plans[0]);
    assert!(with_code(&lines, "AT201")
        .iter()
        .all(|l| l.contains("cluster jobs=2")));
    let plan = rounds.iter().find_map(|r| r.memory.clone()).unwrap();
    assert_eq!(
        plan_key(&plan, "taskmanager.memory.network.max"),
        plan_key(&alone, "taskmanager.memory.network.max"),
        "network sized for the hungriest job"
    );
    let cluster_config = std::fs::read_to_string(dir.join("recommended-config.yaml")).unwrap();
    assert!(
        cluster_config.contains("session cluster (2 jobs)"),
        "{cluster_config}"
    );
    assert!(
        cluster_config.contains("taskmanager.memory.process.size: "),
        "{cluster_config}"
    );
    for n in [1, 2] {
        let job_config = std::fs::read_to_string(
            dir.join(format!("{n:032x}"))
                .join("recommended-config.yaml"),
        )
        .unwrap();
        assert!(!job_config.contains("taskmanager.memory"), "{job_config}");
        assert!(
            job_config.contains("pipeline.jobvertex-parallelism-overrides"),
            "{job_config}"
        );
    }
    // The cluster's page lists both jobs.
    let index = std::fs::read_to_string(dir.join("index.html")).unwrap();
    for n in [1, 2] {
        assert!(
            index.contains(&format!("data-job-id=\"{n:032x}\"")),
            "{index}"
        );
        assert!(index.contains(&format!("session-job-{n}")), "{index}");
    }
    // The next round's plan is the same: not said again, for either job.
    round(&mut c);
    assert_eq!(with_code(&sink.lines(), "AT200").len(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn taskmanagers_without_the_plugin_are_measured_over_rest() {
    let dir = temp_dir("rest-memory");
    let flink = cluster(
        vec![bottleneck_job()],
        vec![taskmanager("tm-1", None), taskmanager("tm-2", None)],
    );
    let (mut c, sink) = coordinator(settings(&flink.url, Some(dir.clone())));
    let mut plan = None;
    for _ in 0..3 {
        plan = plan.or(round(&mut c)[0].memory.clone());
    }
    let plan = plan.expect("a memory plan from Flink's own metrics");
    let lines = sink.lines();
    let told = with_code(&lines, "AT207");
    assert_eq!(told.len(), 1, "{lines:#?}");
    assert!(told[0].contains("the heap is kept as it is"));
    // Kept: Flink's own metrics do not show the live heap.
    assert_eq!(plan_key(&plan, "taskmanager.memory.task.heap.size"), "384m");
    assert_eq!(plan_key(&plan, "taskmanager.memory.managed.size"), "0m");
    assert_config_holds(&dir, &["taskmanager.memory.process.size: "]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_new_exception_is_diagnosed() {
    let dir = temp_dir("diagnosis");
    let flink = cluster(vec![bottleneck_job()], vec![]);
    let (mut c, sink) = coordinator(settings(&flink.url, Some(dir.clone())));
    round(&mut c);
    assert!(sink.lines().iter().all(|l| !l.contains("AT300")));
    flink.cluster().jobs[0].exceptions.push(json!({
        "exceptionName": "java.lang.OutOfMemoryError",
        "stacktrace": "java.lang.OutOfMemoryError: Java heap space\n\tat com.example.Enrich.map(Enrich.java:42)\n",
        "timestamp": epoch_ms(),
        "taskName": "Work (1/1)#0",
        "endpoint": "127.0.0.1:40000",
    }));
    round(&mut c);
    let lines = sink.lines();
    let oom = with_code(&lines, "AT300");
    assert_eq!(oom.len(), 1, "{lines:#?}");
    assert!(oom[0].contains("job=\"queue-job\""));
    assert!(
        oom[0].contains("taskmanager.memory.task.heap.size"),
        "{}",
        oom[0]
    );
    let history = std::fs::read_to_string(dir.join(JOB).join("decisions.jsonl")).unwrap();
    assert!(history.contains("\"code\":\"AT300\""));
    // The same exception is not said again.
    round(&mut c);
    assert_eq!(with_code(&sink.lines(), "AT300").len(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A checkpoint the JobManager's log says a job's task declined, with the cause: the job's own
/// finding (its line, its config file), not only the JobManager log's. Its REST history gives
/// only the reason ("Asynchronous task checkpoint failed.").
#[test]
fn a_jobs_failure_in_the_jobmanagers_log_is_the_jobs() {
    let dir = temp_dir("jobmanager-log");
    let log = dir.join("flink--standalonesession-0-host.log");
    let flink = cluster(vec![bottleneck_job()], vec![]);
    let mut s = settings(&flink.url, Some(dir.clone()));
    s.process_log = Some(log.clone());
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(&log, "").unwrap();
    let (mut c, sink) = coordinator(s);
    round(&mut c);
    let declined = format!(
        "2026-12-07 06:18:01,104 INFO  org.apache.flink.runtime.checkpoint.CheckpointCoordinator [] - Decline checkpoint 9 by task 01f8_674d_0_5 of job {JOB} at 127.0.0.1:40000.\n\
org.apache.flink.util.SerializedThrowable: Asynchronous task checkpoint failed.\n\
\tat org.apache.flink.streaming.runtime.tasks.AsyncCheckpointRunnable.handleExecutionException(AsyncCheckpointRunnable.java:320)\n\
Caused by: org.apache.flink.util.SerializedThrowable: java.io.IOException: Size of the state is larger than the maximum permitted memory-backed state. Size=6311328, maxSize=5242880. Consider using a different checkpoint storage, like the FileSystemCheckpointStorage.\n\
\tat org.apache.flink.runtime.state.memory.MemCheckpointStreamFactory.checkSize(MemCheckpointStreamFactory.java:76)\n\
2026-12-07 06:18:01,110 INFO  org.apache.flink.runtime.checkpoint.CheckpointCoordinator [] - Checkpoint 10 triggered.\n"
    );
    std::fs::write(&log, declined).unwrap();
    round(&mut c);
    round(&mut c);
    let lines = sink.lines();
    let said = with_code(&lines, "AT327");
    assert_eq!(said.len(), 1, "said once, for the job: {lines:#?}");
    assert!(
        said[0].contains(&format!("job=\"queue-job\" ({JOB})")),
        "{}",
        said[0]
    );
    assert_config_holds(&dir, &["execution.checkpointing.storage: filesystem"]);
    // The job's own failure in the log is left to its exceptions, read with the job's context.
    let ended = format!(
        "2026-12-07 06:58:52,474 INFO  org.apache.flink.runtime.dispatcher.StandaloneDispatcher [] - Job {JOB} reached terminal state FAILED.\n\
org.apache.flink.runtime.JobException: Recovery is suppressed by NoRestartBackoffTimeStrategy\n\
Caused by: org.apache.flink.runtime.jobmanager.scheduler.NoResourceAvailableException: Could not acquire the minimum required resources.\n\
2026-12-07 06:58:52,480 INFO  org.apache.flink.runtime.dispatcher.StandaloneDispatcher [] - done.\n"
    );
    let mut log_file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    std::io::Write::write_all(&mut log_file, ended.as_bytes()).unwrap();
    round(&mut c);
    round(&mut c);
    let lines = sink.lines();
    let slots = with_code(&lines, "AT335");
    assert!(
        !slots.is_empty() && slots.iter().all(|l| !l.contains("job=")),
        "the log's, not the job's: {slots:#?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The job's failure when a TaskManager stops answering, as Flink 2.x gives it.
fn unreachable_taskmanager(id: &str) -> serde_json::Value {
    json!({
        "exceptionName": "org.apache.flink.runtime.resourcemanager.exceptions.ResourceManagerException",
        "stacktrace": format!("org.apache.flink.runtime.resourcemanager.exceptions.ResourceManagerException: TaskManager with id {id} is no longer reachable.\n\tat org.apache.flink.runtime.resourcemanager.ResourceManager.closeTaskManagerConnection(ResourceManager.java:1)\n"),
        "timestamp": epoch_ms(),
        "taskName": "Work (1/1)#0",
        "taskManagerId": id,
    })
}

#[test]
fn a_taskmanager_lost_with_a_full_heap_is_a_heap_oom_while_it_is_still_listed() {
    // The job loses the TaskManager before the ResourceManager unlists it: the last window
    // it published (live data at its heap's max) says what killed it.
    let full = PoolWindow {
        heap_after_gc_peak: Some(530_000_000.0),
        heap_used_peak: Some(536_000_000.0),
        ..published_window()
    };
    let flink = cluster(
        vec![bottleneck_job()],
        vec![
            taskmanager("tm-1", Some(full)),
            taskmanager("tm-2", Some(published_window())),
        ],
    );
    let (mut c, sink) = coordinator(settings(&flink.url, None));
    round(&mut c);
    flink.cluster().jobs[0]
        .exceptions
        .push(unreachable_taskmanager("tm-1"));
    round(&mut c);
    let lines = sink.lines();
    let oom = with_code(&lines, "AT300");
    assert_eq!(oom.len(), 1, "{lines:#?}");
    assert!(
        oom[0]
            .contains("TaskManager tm-1 left while its heap was full: live data 505m of 512m max"),
        "{}",
        oom[0]
    );
    assert!(
        oom[0].contains("taskmanager.memory.task.heap.size"),
        "{}",
        oom[0]
    );
    // A healthy one lost is only lost.
    flink.cluster().jobs[0]
        .exceptions
        .push(unreachable_taskmanager("tm-2"));
    round(&mut c);
    let lines = sink.lines();
    assert_eq!(with_code(&lines, "AT300").len(), 1, "{lines:#?}");
    assert_eq!(with_code(&lines, "AT331").len(), 1, "{lines:#?}");
}

#[test]
fn replay_of_the_recorded_windows_says_what_the_loop_said() {
    let dir = temp_dir("replay");
    let job = over_provisioned_job();
    let flink = cluster(
        vec![job],
        vec![taskmanager("tm-1", Some(published_window()))],
    );
    let mut s = settings(&flink.url, Some(dir.clone()));
    s.record = true;
    s.options.scale_down_delay = Duration::from_millis(800);
    let (mut c, sink) = coordinator(s);
    for _ in 0..5 {
        round(&mut c);
    }
    let said = sink.lines();
    assert!(!with_code(&said, "AT125").is_empty(), "{said:#?}");
    assert!(!with_code(&said, "AT102").is_empty(), "{said:#?}");
    assert!(!with_code(&said, "AT200").is_empty(), "{said:#?}");

    let recorded = std::fs::read_to_string(dir.join(JOB).join("recording.jsonl")).unwrap();
    assert_eq!(recorded.lines().count(), 5, "every window is recorded");
    let mut replay_settings = settings("http://replay.invalid", None);
    replay_settings.options.scale_down_delay = Duration::from_millis(800);
    replay_settings.catalogue = None;
    let (mut replay, replayed) = coordinator(replay_settings);
    for line in recorded.lines() {
        let recording: Recording = serde_json::from_str(line).unwrap();
        recording.check().unwrap();
        replay.decide_window(&recording).unwrap();
    }
    let decisions = |lines: Vec<String>| -> Vec<String> {
        lines
            .into_iter()
            .filter(|l| l.starts_with("AUTOTUNE AT1") || l.starts_with("AUTOTUNE AT2"))
            .collect()
    };
    assert_eq!(decisions(replayed.lines()), decisions(said));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A file where the output folder should be (as a full or read-only disk would): the
/// decision is still said and made (the window's recording cannot be written either), the
/// trouble is said once, and once the folder can be written the job's config file is
/// written anew.
#[test]
fn an_output_folder_that_cannot_be_written_loses_no_decision() {
    let dir = temp_dir("unwritable");
    std::fs::write(&dir, "not a folder").unwrap();
    let flink = cluster(vec![bottleneck_job()], vec![]);
    let mut recording = settings(&flink.url, Some(dir.clone()));
    recording.record = true;
    let (mut c, sink) = coordinator(recording);
    for _ in 0..3 {
        assert!(round(&mut c)[0].decided.is_some());
    }
    let lines = sink.take();
    assert_eq!(with_code(&lines, "AT100").len(), 1, "{lines:#?}");
    let trouble: Vec<_> = lines
        .iter()
        .filter(|l| l.contains("cannot write under"))
        .collect();
    assert_eq!(trouble.len(), 1, "said once: {lines:#?}");
    assert!(trouble[0].contains("decisions go on in the log"));

    std::fs::remove_file(&dir).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    round(&mut c);
    let lines = sink.take();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("writing under") && l.contains("again")),
        "{lines:#?}"
    );
    assert_config_holds(&dir, &["pipeline.jobvertex-parallelism-overrides: src0000000000000000000000000000:1,wrk0000000000000000000000000000:2"]);
    assert!(dir.join(JOB).join("report.html").is_file());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A job that comes back to a new coordinator with the same id (a JobManager restarted with
/// HA, or the job resubmitted with a fixed id): the scaling history kept in its folder is read
/// back, so a scale-down pending before the restart keeps its age. A history that cannot be
/// read is said once, and the job starts afresh.
#[test]
fn the_scaling_history_is_read_back_by_the_next_coordinator() {
    let dir = temp_dir("read-back");
    let job = over_provisioned_job();
    let flink = cluster(vec![job], vec![]);
    let delayed = || {
        let mut s = settings(&flink.url, Some(dir.clone()));
        s.options.scale_down_delay = Duration::from_millis(800);
        s
    };
    let (mut before, said_before) = coordinator(delayed());
    round(&mut before);
    let lines = said_before.take();
    assert!(
        !with_code(&lines, "AT125").is_empty(),
        "pending: {lines:#?}"
    );
    assert!(dir.join(JOB).join("scaling-history.json").is_file());
    drop(before);
    std::thread::sleep(Duration::from_millis(900));

    let (mut after, said_after) = coordinator(delayed());
    round(&mut after);
    let lines = said_after.take();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("scaling history read back (2 vertices)")),
        "{lines:#?}"
    );
    assert!(
        !with_code(&lines, "AT102").is_empty(),
        "the scale-down pending before the restart is due: {lines:#?}"
    );

    std::fs::write(
        dir.join(JOB).join("scaling-history.json"),
        "{\"vertices\": 7",
    )
    .unwrap();
    let (mut broken, said_broken) = coordinator(delayed());
    round(&mut broken);
    let lines = said_broken.take();
    let unread: Vec<_> = lines.iter().filter(|l| l.contains("not read")).collect();
    assert_eq!(unread.len(), 1, "{lines:#?}");
    assert!(unread[0].contains("the job starts afresh"), "{unread:?}");
    assert!(
        !with_code(&lines, "AT125").is_empty(),
        "afresh: pending again: {lines:#?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A recording whose vertex runs above the max parallelism it names (8 subtasks, max 4, as a
/// hand-edited or foreign recording may say): replay reads the max as unknown, as the live
/// path does, so the saturated vertex is not told that 4 would suffice.
#[test]
fn replay_takes_a_max_parallelism_below_the_parallelism_as_unknown() {
    let sample = |at_ms: i64, records: f64| {
        json!({"at_ms": at_ms, "vertices": [
            {"read_records": 0.0, "write_records": records, "source_records": records,
             "busy_avg_ms": 200.0, "busy_max_ms": 200.0, "backpressure_avg_ms": 800.0,
             "pending": 50_000.0 + at_ms as f64 / 10.0},
            {"read_records": records, "write_records": records, "source_records": null,
             "busy_avg_ms": 1000.0, "busy_max_ms": 1000.0, "backpressure_avg_ms": 0.0,
             "pending": null}
        ]})
    };
    let recording = json!({
        "format": 1, "rest": "http://replay.invalid",
        "shape": {"job_id": JOB, "job_name": "queue-job", "edges": [{"from": 0, "to": 1, "ship": "Hash"}],
                  "vertices": [
                      {"id": "src0000000000000000000000000000", "name": "Source: Queue", "parallelism": 1, "max_parallelism": 128},
                      {"id": "wrk0000000000000000000000000000", "name": "Work", "parallelism": 8, "max_parallelism": 4}]},
        "samples": (0..7).map(|i| sample(i * 10_000, 8_000.0 * i as f64)).collect::<Vec<_>>(),
        "available_slots": 16, "slots_per_taskmanager": 8
    });
    let recording: Recording = serde_json::from_value(recording).unwrap();
    recording.check().unwrap();
    assert_eq!(recording.shape.vertices[1].max_parallelism, None);

    let mut replay_settings = settings("http://replay.invalid", None);
    replay_settings.catalogue = None;
    let (mut replay, said) = coordinator(replay_settings);
    replay.decide_window(&recording).unwrap();
    let lines = said.lines();
    let work: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("AUTOTUNE AT1") && l.contains("Work"))
        .collect();
    assert!(!work.is_empty(), "{lines:#?}");
    assert!(
        work.iter().all(|l| !l.contains("would suffice")),
        "an overloaded vertex is told to shrink: {work:#?}"
    );
    assert!(
        work.iter().any(|l| l.contains("parallelism=8->16")),
        "Work is scaled up: {lines:#?}"
    );
}

/// The loop with the plugin's production timings (1-minute stabilization and windows, polls
/// every 5 s, a 10-minute scale-down delay) on a clock the test steps: nothing sleeps, yet
/// stabilization, a window, a restart inside a window and the delayed scale-down happen at
/// the times they would in a JobManager.
#[test]
fn stepped_time_takes_the_job_through_stabilization_a_restart_and_a_delayed_scale_down() {
    let clock = ManualClock::starting_at(1_800_000_000_000);
    let mut job = over_provisioned_job();
    for v in &mut job.vertices {
        v.start_time = clock.now_ms(); // just deployed
    }
    let flink = FakeFlink::start_with_clock(
        Cluster {
            jobs: vec![job],
            ..Cluster::default()
        },
        clock.clone(),
    );
    let mut s = LoopSettings::from_options(&Options::default(), flink.url.clone(), None, &LogSink);
    s.rest_timeout = Duration::from_secs(2);
    let (window, stabilization, delay) = (
        s.decision_window,
        s.stabilization,
        s.options.scale_down_delay,
    );
    assert_eq!(
        (window, stabilization, delay),
        (
            Duration::from_secs(60),
            Duration::from_secs(60),
            Duration::from_secs(600)
        ),
        "the production defaults this test walks through"
    );
    let sink = MemorySink::new();
    let mut c = Coordinator::with_clock(s, sink.clone(), clock.clone());
    let deployed = clock.now_ms();
    let stop = StopFlag::new();

    // Stabilizing until a minute after the deployment.
    clock.advance(stabilization - Duration::from_secs(1));
    let reports = c.round(&stop).unwrap();
    assert!(reports[0]
        .no_decision
        .as_deref()
        .unwrap()
        .contains("stabilizing"));

    // A minute on: the first window is polled every 5 s for a minute of the clock's time.
    clock.advance(Duration::from_secs(1));
    let reports = c.round(&stop).unwrap();
    let samples = &reports[0].recording.as_ref().expect("a window").samples;
    let span = samples.last().unwrap().at_ms - samples[0].at_ms;
    assert!(
        samples[0].at_ms >= deployed + 60_000,
        "polled after stabilization"
    );
    assert!(
        (60_000..70_000).contains(&span),
        "a one-minute window: {span} ms"
    );
    assert_eq!(samples.len(), 13, "a poll every 5 s");
    let first_delayed = clock.now_ms();
    assert_eq!(
        with_code(&sink.lines(), "AT125").len(),
        1,
        "{:#?}",
        sink.lines()
    );
    assert!(with_code(&sink.lines(), "AT102").is_empty());

    // The job restarts (same parallelism, counters from zero) inside the next window: that
    // window starts again and holds only polls from after the restart.
    {
        let mut cluster = flink.cluster();
        let read = cluster.jobs[0].details_read;
        cluster.jobs[0].restart_at = vec![read + 5];
    }
    clock.advance(Duration::from_secs(60));
    let round_started = clock.now_ms();
    let reports = c.round(&stop).unwrap();
    let restarted_at = flink.cluster().jobs[0].vertices[1].start_time;
    assert!(
        restarted_at > round_started,
        "the restart fell inside the window"
    );
    let recording = reports[0]
        .recording
        .as_ref()
        .expect("a window after the restart");
    assert!(
        recording.samples[0].at_ms >= restarted_at,
        "no poll from before the restart"
    );
    let span = recording.samples.last().unwrap().at_ms - recording.samples[0].at_ms;
    assert!(
        span >= 60_000,
        "a whole window after the restart: {span} ms"
    );

    // Rounds every minute until the scale-down is made: not before its delay, and in the
    // first window that ends after it.
    let mut scaled_down_at = None;
    for _ in 0..10 {
        clock.advance(Duration::from_secs(60));
        c.round(&stop).unwrap();
        if !with_code(&sink.lines(), "AT102").is_empty() {
            scaled_down_at = Some(clock.now_ms());
            break;
        }
    }
    let waited = scaled_down_at.expect("the scale-down after its delay") - first_delayed;
    assert!(
        waited >= delay.as_millis() as i64
            && waited < (delay + 2 * (window + Duration::from_secs(60))).as_millis() as i64,
        "scale-down {waited} ms after it was first recommended"
    );
    let down = with_code(&sink.lines(), "AT102")[0].clone();
    assert!(down.contains("parallelism=4->1"), "{down}");
}

/// Job `n` of a session cluster: the bottleneck job under its own id and name, just deployed.
fn session_job(n: usize, deployed_ms: i64) -> FakeJob {
    let mut job = bottleneck_job();
    job.id = format!("{n:032x}");
    job.name = format!("session-job-{n}");
    job.start_time = deployed_ms;
    for v in &mut job.vertices {
        v.start_time = deployed_ms;
    }
    job
}

/// A session cluster's jobs on the plugin's production timings (1-minute stabilization and
/// windows, 1-minute decision interval, a poll every 5 s), the loop run poll by poll on a
/// stepped clock as `Coordinator::run` does: every job's window closes on its own schedule,
/// whatever the others do. A job that joins, restarts or ends moves no other job's decisions.
#[test]
fn every_job_of_a_session_cluster_is_decided_every_window_on_its_own_schedule() {
    let clock = ManualClock::starting_at(1_800_000_000_000);
    let t0 = clock.now_ms();
    let flink = FakeFlink::start_with_clock(
        Cluster {
            jobs: (0..3).map(|n| session_job(n, t0)).collect(),
            ..Cluster::default()
        },
        clock.clone(),
    );
    let mut s = LoopSettings::from_options(&Options::default(), flink.url.clone(), None, &LogSink);
    s.rest_timeout = Duration::from_secs(2);
    assert_eq!(
        (s.stabilization, s.decision_window, s.interval, s.poll),
        (
            Duration::from_secs(60),
            Duration::from_secs(60),
            Duration::from_secs(60),
            Duration::from_secs(5)
        ),
        "the production defaults this test walks through"
    );
    let sink = MemorySink::new();
    let mut c = Coordinator::with_clock(s, sink.clone(), clock.clone());
    let stop = StopFlag::new();
    let mut decided_at: std::collections::BTreeMap<String, Vec<i64>> = Default::default();
    for step in 0..=120 {
        let at_s = step * 5;
        match at_s {
            // A fourth job is submitted 3 minutes in.
            180 => flink.cluster().jobs.push(session_job(3, clock.now_ms())),
            // Job 1 restarts inside its third window (300-360 s), at its next poll.
            320 => {
                let mut cluster = flink.cluster();
                let read = cluster.jobs[1].details_read;
                cluster.jobs[1].restart_at = vec![read + 1];
            }
            // Job 0 finishes 5 minutes in, its third window open.
            330 => flink.cluster().jobs[0].state = "FINISHED".into(),
            _ => {}
        }
        for round in c.poll(&stop).expect("a poll") {
            if round.decided.is_some() {
                let since_start_s = (clock.now_ms() - t0) / 1000;
                decided_at
                    .entry(round.job_name)
                    .or_default()
                    .push(since_start_s);
            }
        }
        clock.advance(Duration::from_secs(5));
    }
    let at = |name: &str| decided_at.get(name).cloned().unwrap_or_default();
    // Stabilized after a minute, a one-minute window, then a window every two minutes
    // (window + interval): the same times for every job, none waiting for another's window.
    assert_eq!(
        at("session-job-2"),
        vec![120, 240, 360, 480, 600],
        "{decided_at:?}"
    );
    assert_eq!(
        at("session-job-0"),
        vec![120, 240],
        "ends at 300 s: {decided_at:?}"
    );
    // Submitted at 180 s: its own stabilization and window, then its own schedule.
    assert_eq!(at("session-job-3"), vec![300, 420, 540], "{decided_at:?}");
    // Restarted at 320 s, inside the window that began at 300 s: that window starts again at
    // the restart and closes a minute later; its schedule moves, no one else's does.
    assert_eq!(
        at("session-job-1"),
        vec![120, 240, 380, 500],
        "{decided_at:?}"
    );
    // One line each: every job is said by name in its own decision lines.
    let lines = sink.lines();
    let plans = with_code(&lines, "AT100");
    for n in 0..4 {
        let name = format!("session-job-{n}");
        assert!(
            plans.iter().any(|l| l.contains(&name)),
            "{name} has no plan line: {plans:#?}"
        );
    }
}

/// A request that fails at one poll inside a window costs that poll's sample, not the window:
/// the decision comes on time (a window begun again would close a minute later).
#[test]
fn a_failed_request_inside_a_window_keeps_the_window_so_far() {
    let clock = ManualClock::starting_at(1_800_000_000_000);
    let flink = FakeFlink::start_with_clock(
        Cluster {
            jobs: vec![session_job(0, clock.now_ms())],
            ..Cluster::default()
        },
        clock.clone(),
    );
    let mut s = LoopSettings::from_options(&Options::default(), flink.url.clone(), None, &LogSink);
    s.rest_timeout = Duration::from_secs(2);
    let sink = MemorySink::new();
    let mut c = Coordinator::with_clock(s, sink.clone(), clock.clone());
    let stop = StopFlag::new();
    let mut decided_at_s = Vec::new();
    for step in 0..=30 {
        let at_s = step * 5;
        // Stabilized at 60 s, the window 60-120 s: its poll at 90 s fails.
        flink.cluster().metrics_failing = at_s == 90;
        match c.poll(&stop) {
            Ok(rounds) if rounds.iter().any(|r| r.decided.is_some()) => decided_at_s.push(at_s),
            Ok(_) => {}
            Err(e) => assert_eq!(at_s, 90, "only the poll at 90 s fails: {e}"),
        }
        clock.advance(Duration::from_secs(5));
    }
    assert_eq!(decided_at_s, vec![120], "{:#?}", sink.lines());
}

/// Jobs of one session cluster set their own settings in their global job parameters: one
/// opts out, one asks to be rescaled in place where the cluster only recommends (and gives a
/// bad value, said once, the cluster's kept), one sets nothing and gets the cluster's.
#[test]
fn a_job_sets_its_own_mode_or_opts_out_in_its_job_parameters() {
    let long_ago = epoch_ms() - 120_000;
    let mut opted_out = session_job(1, long_ago);
    opted_out.parameters = vec![("autotune.mode".into(), "off".into())];
    let mut applied = session_job(2, long_ago);
    applied.scheduler = "Adaptive".into();
    applied.parameters = vec![
        ("autotune.mode".into(), "apply".into()),
        ("autotune.target-utilization".into(), "lots".into()),
        ("orders.topic".into(), "orders".into()),
    ];
    let mut plain = session_job(3, long_ago);
    plain.scheduler = "Adaptive".into();
    let flink = cluster(vec![opted_out, applied, plain], vec![]);
    let (mut c, sink) = coordinator(settings(&flink.url, None));
    let rounds = round(&mut c);
    round(&mut c);
    let lines = sink.lines();
    let name = |n: usize| format!("job=\"session-job-{n}\"");

    let said_by = |n: usize| -> Vec<&String> {
        lines
            .iter()
            .filter(|l| l.starts_with("AUTOTUNE CONFIG") && l.contains(&name(n)))
            .collect()
    };
    assert_eq!(said_by(1).len(), 1, "{lines:#?}");
    assert!(said_by(1)[0].contains("sets its own: mode=off; no decision for this job"));
    assert!(
        rounds.iter().all(|r| r.job_name != "session-job-1"),
        "{rounds:?}"
    );
    assert!(with_code(&lines, "AT100")
        .iter()
        .all(|l| !l.contains(&name(1))));

    assert_eq!(said_by(2).len(), 2, "{lines:#?}");
    assert!(said_by(2).iter().any(
        |l| l.contains("autotune.target-utilization: 'lots' must be")
            && l.ends_with("the cluster's value is used")
    ));
    assert!(said_by(2)
        .iter()
        .any(|l| l.contains("sets its own: mode=apply target-utilization=lots")));
    assert!(said_by(3).is_empty(), "{lines:#?}");

    // Only the job that asked for it is rescaled; the other is recommended to, as the cluster says.
    let requirements = flink.cluster().requirements.clone();
    assert_eq!(requirements.len(), 1, "{requirements:?}");
    assert_eq!(requirements[0].0, format!("{:032x}", 2));
    assert!(with_code(&lines, "AT100")
        .iter()
        .any(|l| l.contains(&name(3))));
}

/// Three jobs of a session cluster each need 2 slots where the cluster has 4: one line says
/// what the cluster needs in all, and the cluster's config file keeps it; not said again while
/// the figures hold.
#[test]
fn a_session_cluster_short_of_slots_for_all_its_jobs_is_told_so_once() {
    let dir = temp_dir("cluster-slots");
    let long_ago = epoch_ms() - 120_000;
    let tms = vec![taskmanager("tm-1", None), taskmanager("tm-2", None)];
    let flink = cluster((1..=3).map(|n| session_job(n, long_ago)).collect(), tms);
    let (mut c, sink) = coordinator(settings(&flink.url, Some(dir.clone())));
    round(&mut c);
    round(&mut c);
    let lines = sink.lines();
    let short = with_code(&lines, "AT128");
    assert_eq!(short.len(), 1, "{lines:#?}");
    assert!(
        short[0].starts_with(
            "AUTOTUNE AT128 CLUSTER_SLOTS_SHORT cluster jobs=3 slots-needed=6 slots=4 |"
        ),
        "{}",
        short[0]
    );
    assert!(
        short[0].ends_with("run 3 TaskManagers of 2 slots (1 more)"),
        "{}",
        short[0]
    );
    let config = std::fs::read_to_string(dir.join("recommended-config.yaml")).unwrap();
    assert!(
        config
            .contains("# Task slots: the jobs' recommended parallelism needs 6, the cluster has 4"),
        "{config}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Three jobs that rescale in place on a session cluster of 7 slots, each holding 1, whose
/// plans want more than the 4 free: one slot plan (AT129) shares them, the job furthest
/// behind first and each to what keeps it up; later windows hold (nothing asked back and
/// forth), on the production timings and a stepped clock.
#[test]
fn jobs_that_rescale_in_place_share_too_few_slots_by_one_plan() {
    let clock = ManualClock::starting_at(1_800_000_000_000);
    // Work keeps up at 2, 3 and 2 subtasks (arrivals x cost: 1.9, 2.85, 1.8); at 70% busy it
    // wants more.
    let loads = [(1000.0, 0.0019), (950.0, 0.003), (900.0, 0.002)];
    let jobs = loads
        .iter()
        .enumerate()
        .map(|(n, &(arrival, cost_s))| {
            let mut job = session_job(n, clock.now_ms());
            job.scheduler = "Adaptive".into();
            job.run_at(Load { arrival, cost_s }, 0.0);
            job
        })
        .collect();
    let flink = FakeFlink::start_with_clock(
        Cluster {
            jobs,
            slots_total: Some(7),
            ..Cluster::default()
        },
        clock.clone(),
    );
    let mut s = LoopSettings::from_options(&Options::default(), flink.url.clone(), None, &LogSink);
    s.rest_timeout = Duration::from_secs(2);
    s.options.mode = Mode::Apply;
    let sink = MemorySink::new();
    let mut c = Coordinator::with_clock(s, sink.clone(), clock.clone());
    let stop = StopFlag::new();
    for _ in 0..(15 * 60 / 5) {
        c.poll(&stop).expect("a poll");
        clock.advance(Duration::from_secs(5));
    }
    let lines = sink.lines();
    let plans = with_code(&lines, "AT129");
    assert!(!plans.is_empty(), "{lines:#?}");
    // The job furthest behind (job 1: 2.85 records' worth of work for every 1 it can do) is
    // served first; each gets what keeps it up, and the 7 slots are all used.
    assert!(
        plans[0].contains("slots-free=4")
            && plans[0].contains("session-job-1\" (00000000000000000000000000000001) 3 of"),
        "{}",
        plans[0]
    );
    let cluster = flink.cluster();
    let work: Vec<u32> = cluster
        .jobs
        .iter()
        .map(|j| j.vertices[1].parallelism)
        .collect();
    assert_eq!(work, vec![2, 3, 2], "each keeps up: {lines:#?}");
    // Asked once each: no job's share moved back and forth over 13 more minutes of windows.
    for job in &cluster.jobs {
        let asked = cluster
            .requirements
            .iter()
            .filter(|(id, _)| *id == job.id)
            .count();
        assert_eq!(asked, 1, "{}: {:#?}", job.name, cluster.requirements);
    }
    assert_eq!(plans.len(), 1, "one plan while nothing changes: {plans:#?}");
}

/// Flink serves a job's configuration empty for its first seconds: its own settings are read
/// once it is served, not taken to be none.
#[test]
fn a_jobs_own_settings_are_read_once_its_configuration_is_served() {
    let job = session_job(1, epoch_ms());
    let flink = cluster(vec![job], vec![]);
    let (mut c, sink) = coordinator(settings(&flink.url, None));
    c.poll(&StopFlag::new()).unwrap();
    {
        let mut cluster = flink.cluster();
        cluster.jobs[0].parameters = vec![("autotune.mode".into(), "off".into())];
    }
    std::thread::sleep(Duration::from_millis(150)); // its next poll is due
    c.poll(&StopFlag::new()).unwrap();
    let lines = sink.lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("sets its own: mode=off; no decision for this job")),
        "{lines:#?}"
    );
}
