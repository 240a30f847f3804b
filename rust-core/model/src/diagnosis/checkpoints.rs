//! The checkpoint advisor: checkpoint statistics in, advice out.
//!
//! - AT400: checkpoints take longer than their interval (they run back to back);
//! - AT401: checkpoints come close to their timeout;
//! - AT402: barriers wait behind back-pressured buffers: unaligned checkpoints, buffer
//!   debloating, or fix the bottleneck the scaling model names;
//! - AT403: the full state keeps growing on the heap backend: RocksDB, incremental;
//! - AT404: checkpoints fail for a reason the catalogue does not know.

use std::time::Duration;

use super::signatures::Setting;
use super::Severity;
use crate::codes::Code;
use crate::{duration, memory};

/// One checkpoint of the job's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointSample {
    pub id: u64,
    pub completed: bool,
    pub savepoint: bool,
    pub duration_ms: i64,
    /// The full state, bytes.
    pub state_size: u64,
}

/// What the advisor looks at.
#[derive(Debug, Clone, Default)]
pub struct CheckpointView<'a> {
    pub interval_ms: i64,
    pub timeout_ms: i64,
    /// The state lives on the JVM heap (HashMapStateBackend).
    pub heap_backend: bool,
    pub unaligned: bool,
    /// Newest first, as the REST API lists them.
    pub history: &'a [CheckpointSample],
    /// The largest barrier start delay over the job's vertices (ms), and that vertex.
    pub start_delay: Option<(String, f64)>,
    /// The vertex the scaling model names as the bottleneck.
    pub bottleneck: Option<String>,
}

/// One piece of advice, with its config changes.
#[derive(Debug, Clone, PartialEq)]
pub struct Advice {
    pub code: Code,
    pub severity: Severity,
    pub title: &'static str,
    pub evidence: String,
    pub cause: &'static str,
    pub fix: String,
    pub docs: &'static str,
    pub set: Vec<Setting>,
}

/// Fewer completed checkpoints than this say nothing about a trend or a typical duration.
pub const MIN_CHECKPOINTS: usize = 3;
/// Checkpoints this close to their timeout get AT401.
pub const NEAR_TIMEOUT: f64 = 0.75;
/// A barrier delay of this share of the checkpoint's duration or more: back-pressure dominates.
pub const DELAY_SHARE: f64 = 0.5;

const CHECKPOINTING_DOCS: &str =
    "https://nightlies.apache.org/flink/flink-docs-stable/docs/ops/state/large_state_tuning/";
const UNALIGNED_DOCS: &str =
    "https://nightlies.apache.org/flink/flink-docs-stable/docs/ops/state/checkpointing_under_backpressure/";
const BACKENDS_DOCS: &str =
    "https://nightlies.apache.org/flink/flink-docs-stable/docs/ops/state/state_backends/";

fn set(key: &str, value: String) -> Setting {
    Setting {
        key: key.to_string(),
        value,
        default: None,
        since: None,
        until: None,
        when: None,
    }
}

fn time(ms: f64) -> String {
    duration::format(Duration::from_millis(ms.max(0.0).ceil() as u64))
}

/// A duration rounded up to whole seconds (or minutes past ten minutes): values people set.
fn round_up(ms: f64) -> String {
    let s = (ms / 1000.0).ceil().max(1.0) as u64;
    let d = if s > 600 { s.div_ceil(60) * 60 } else { s };
    duration::format(Duration::from_secs(d))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Advice from the job's recent checkpoints, in code order; none before there are enough.
pub fn advise(view: &CheckpointView<'_>) -> Vec<Advice> {
    let Some(recent) = Recent::of(view.history) else {
        return Vec::new();
    };
    [
        slower_than_interval(view, &recent),
        near_timeout(view, &recent),
        backpressured(view, &recent),
        heap_state_growing(view, &recent),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The last completed checkpoints (savepoints are taken on demand and say nothing about the
/// schedule), newest first, with their typical and longest duration.
struct Recent<'a> {
    completed: Vec<&'a CheckpointSample>,
    typical: f64,
    longest: f64,
}

impl<'a> Recent<'a> {
    /// `None` below [`MIN_CHECKPOINTS`]: too few to say what is typical.
    fn of(history: &'a [CheckpointSample]) -> Option<Self> {
        let completed: Vec<&CheckpointSample> = history
            .iter()
            .filter(|c| c.completed && !c.savepoint)
            .take(10)
            .collect();
        if completed.len() < MIN_CHECKPOINTS {
            return None;
        }
        let mut durations: Vec<f64> = completed.iter().map(|c| c.duration_ms as f64).collect();
        let longest = durations.iter().copied().fold(0.0, f64::max);
        let typical = median(&mut durations);
        Some(Recent {
            completed,
            typical,
            longest,
        })
    }

    fn n(&self) -> usize {
        self.completed.len()
    }
}

/// AT400: the typical checkpoint lasts as long as the interval or longer.
fn slower_than_interval(view: &CheckpointView<'_>, recent: &Recent<'_>) -> Option<Advice> {
    let (typical, longest, n) = (recent.typical, recent.longest, recent.n());
    (view.interval_ms > 0 && typical >= view.interval_ms as f64).then(|| Advice {
        code: Code::CheckpointSlowerThanInterval,
        severity: Severity::Warning,
        title: "Checkpoints take longer than their interval",
        evidence: format!(
            "median checkpoint {} (longest {}) over the last {n}, interval {}",
            time(typical),
            time(longest),
            time(view.interval_ms as f64)
        ),
        cause: "A checkpoint starts as soon as the previous one ends: the job spends its time checkpointing and recovery replays more than the interval promises.",
        fix: "Give checkpoints room: a longer interval and a minimum pause between them; if they are slow because of back-pressure or state size, see AT402 and AT403.".into(),
        docs: CHECKPOINTING_DOCS,
        set: vec![
            set("execution.checkpointing.interval", round_up(2.0 * longest)),
            set("execution.checkpointing.min-pause", round_up(typical)),
        ],
    })
}

/// AT401: the longest checkpoint took [`NEAR_TIMEOUT`] of the timeout or more; past 90% it
/// is an error, the next one may well expire.
fn near_timeout(view: &CheckpointView<'_>, recent: &Recent<'_>) -> Option<Advice> {
    let (longest, n) = (recent.longest, recent.n());
    let near = view.timeout_ms > 0 && longest >= NEAR_TIMEOUT * view.timeout_ms as f64;
    if !near {
        return None;
    }
    let share = longest / view.timeout_ms as f64;
    // Twice the longest checkpoint, and never below the timeout already set.
    let timeout = round_up((2.0 * longest).max(view.timeout_ms as f64));
    Some(Advice {
        code: Code::CheckpointNearTimeout,
        severity: if share >= 0.9 { Severity::Error } else { Severity::Warning },
        title: "Checkpoints come close to their timeout",
        evidence: format!(
            "longest checkpoint {} is {:.0}% of the timeout {} (last {n})",
            time(longest),
            share * 100.0,
            time(view.timeout_ms as f64)
        ),
        cause: "A little more state or back-pressure and checkpoints expire (AT320); after the tolerable number of failures the job restarts.",
        fix: "Raise the timeout to twice the longest checkpoint, and make checkpoints faster (AT402, AT403).".into(),
        docs: CHECKPOINTING_DOCS,
        set: vec![set("execution.checkpointing.timeout", timeout)],
    })
}

/// AT402: barriers spend [`DELAY_SHARE`] of a (second-long or longer) checkpoint or more
/// waiting to reach a vertex. The fix names the bottleneck when the scaling model knows it.
fn backpressured(view: &CheckpointView<'_>, recent: &Recent<'_>) -> Option<Advice> {
    let typical = recent.typical;
    let (vertex, delay) = view.start_delay.as_ref()?;
    // Written as the condition to meet: a delay that is no number (NaN) gives no advice.
    let waiting_dominates = typical >= 1000.0 && *delay >= DELAY_SHARE * typical;
    if !waiting_dominates {
        return None;
    }
    let culprit = view.bottleneck.as_deref().unwrap_or(vertex);
    let mut set_keys = Vec::new();
    if !view.unaligned {
        set_keys.push(set(
            "execution.checkpointing.unaligned.enabled",
            "true".into(),
        ));
    }
    set_keys.push(set(
        "taskmanager.network.memory.buffer-debloat.enabled",
        "true".into(),
    ));
    Some(Advice {
        code: Code::CheckpointBackpressured,
        severity: Severity::Warning,
        title: "Checkpoint barriers wait behind back-pressure",
        evidence: format!(
            "barriers take up to {} to reach \"{vertex}\", {:.0}% of the median checkpoint {}",
            time(*delay),
            delay / typical * 100.0,
            time(typical)
        ),
        cause: "Barriers travel with the data: behind a back-pressured vertex they wait in full network buffers, and aligned checkpoints wait for them.",
        fix: format!(
            "Let barriers overtake the data (unaligned checkpoints) and keep less data in flight (buffer debloating), or remove the back-pressure: give \"{culprit}\" the parallelism the scaling model recommends (AT101)."
        ),
        docs: UNALIGNED_DOCS,
        set: set_keys,
    })
}

/// AT403: on the heap backend, the full state grew by half or more over at least five
/// checkpoints, falling at most once on the way.
fn heap_state_growing(view: &CheckpointView<'_>, recent: &Recent<'_>) -> Option<Advice> {
    let n = recent.n();
    if !view.heap_backend || n < 5 {
        return None;
    }
    // Oldest to newest.
    let sizes: Vec<u64> = recent
        .completed
        .iter()
        .rev()
        .map(|c| c.state_size)
        .collect();
    let (first, last) = (sizes[0], sizes[sizes.len() - 1]);
    let rising = sizes.windows(2).filter(|w| w[1] >= w[0]).count();
    let growing = first > 0 && last as f64 >= 1.5 * first as f64 && rising + 1 >= sizes.len() - 1;
    growing.then(|| Advice {
        code: Code::HeapStateGrowing,
        severity: Severity::Warning,
        title: "State keeps growing on the heap backend",
        evidence: format!(
            "full state {} -> {} over the last {n} checkpoints, on the heap (HashMapStateBackend)",
            memory::human(first as f64),
            memory::human(last as f64)
        ),
        cause: "The heap backend keeps all state as objects on the TaskManager heap and snapshots all of it every time: growing state ends in long GC pauses, slow checkpoints and OutOfMemoryError.",
        fix: "Move the state to RocksDB with incremental checkpoints (state on disk, only changes uploaded), and check for state that never expires (a TTL).".into(),
        docs: BACKENDS_DOCS,
        set: vec![
            set("state.backend.type", "rocksdb".into()),
            set("execution.checkpointing.incremental", "true".into()),
        ],
    })
}

/// AT404 for a failed checkpoint whose reason the catalogue does not know.
pub fn unknown_failure(reason: &str) -> Advice {
    Advice {
        code: Code::CheckpointFailing,
        severity: Severity::Warning,
        title: "Checkpoints fail",
        evidence: super::matcher::evidence_line(reason),
        cause: "A checkpoint failed for the reason shown; repeated failures count against execution.checkpointing.tolerable-failed-checkpoints and then restart the job.",
        fix: "Read the reason; the TaskManager's log around the checkpoint's time has the full trace.".into(),
        docs: CHECKPOINTING_DOCS,
        set: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(durations_ms: &[i64], sizes: &[u64]) -> Vec<CheckpointSample> {
        // Newest first, like the REST API.
        durations_ms
            .iter()
            .zip(sizes)
            .enumerate()
            .map(|(i, (&d, &s))| CheckpointSample {
                id: 100 - i as u64,
                completed: true,
                savepoint: false,
                duration_ms: d,
                state_size: s,
            })
            .collect()
    }

    fn codes(advice: &[Advice]) -> Vec<&'static str> {
        advice.iter().map(|a| a.code.code()).collect()
    }

    #[test]
    fn healthy_checkpoints_get_no_advice() {
        let h = history(&[800, 900, 700, 850, 800], &[10 << 20; 5]);
        let view = CheckpointView {
            interval_ms: 10_000,
            timeout_ms: 600_000,
            history: &h,
            start_delay: Some(("Work".into(), 30.0)),
            heap_backend: true,
            ..Default::default()
        };
        assert!(advise(&view).is_empty(), "{:?}", advise(&view));
        // Too few checkpoints say nothing.
        let h = history(&[90_000, 95_000], &[1, 2]);
        let view = CheckpointView {
            interval_ms: 10_000,
            timeout_ms: 100_000,
            history: &h,
            ..Default::default()
        };
        assert!(advise(&view).is_empty());
    }

    #[test]
    fn slow_checkpoints_near_their_timeout_get_longer_settings() {
        let h = history(&[42_000, 39_000, 45_000, 41_000], &[1 << 30; 4]);
        let view = CheckpointView {
            interval_ms: 30_000,
            timeout_ms: 50_000,
            history: &h,
            ..Default::default()
        };
        let advice = advise(&view);
        assert_eq!(codes(&advice), ["AT400", "AT401"]);
        assert_eq!(advice[0].set[0].value, "90s", "interval = 2 x the longest");
        assert_eq!(advice[0].set[1].value, "42s", "min pause = the median");
        assert_eq!(advice[1].severity, Severity::Error, "90% of the timeout");
        assert_eq!(advice[1].set[0].value, "90s");
    }

    #[test]
    fn back_pressure_names_unaligned_checkpoints_and_the_bottleneck() {
        let h = history(&[8_000, 9_000, 7_000], &[1 << 20; 3]);
        let view = CheckpointView {
            interval_ms: 60_000,
            timeout_ms: 600_000,
            history: &h,
            start_delay: Some(("Sink".into(), 6_500.0)),
            bottleneck: Some("Work".into()),
            ..Default::default()
        };
        let advice = advise(&view);
        assert_eq!(codes(&advice), ["AT402"]);
        assert!(advice[0].fix.contains("\"Work\""), "{}", advice[0].fix);
        let keys: Vec<&str> = advice[0].set.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "execution.checkpointing.unaligned.enabled",
                "taskmanager.network.memory.buffer-debloat.enabled"
            ]
        );
        let already = CheckpointView {
            unaligned: true,
            ..view.clone()
        };
        assert_eq!(advise(&already)[0].set.len(), 1, "unaligned is already on");
    }

    #[test]
    fn growing_heap_state_suggests_rocksdb() {
        let mib = 1u64 << 20;
        let h = history(
            &[900; 6],
            &[
                300 * mib,
                260 * mib,
                230 * mib,
                200 * mib,
                180 * mib,
                150 * mib,
            ],
        );
        let view = CheckpointView {
            history: &h,
            heap_backend: true,
            ..Default::default()
        };
        let advice = advise(&view);
        assert_eq!(codes(&advice), ["AT403"]);
        assert!(
            advice[0].evidence.contains("150m -> 300m"),
            "{}",
            advice[0].evidence
        );
        let on_rocksdb = CheckpointView {
            heap_backend: false,
            ..view
        };
        assert!(advise(&on_rocksdb).is_empty());
        let flat = history(&[900; 6], &[200 * mib; 6]);
        assert!(advise(&CheckpointView {
            history: &flat,
            heap_backend: true,
            ..Default::default()
        })
        .is_empty());
    }
}
