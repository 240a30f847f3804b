//! The poller: polls one job's REST view every interval for a decision window and hands the
//! window's samples on. A rescale or restart inside the window starts it again.

use std::fmt;
use std::time::Duration;

use crate::clock::{elapsed, Clock};
use crate::recording::{Sample, VertexSample};
use crate::rest::{FlinkRest, JobDetails, RestError};
use crate::shape::JobShape;

#[derive(Debug)]
pub enum CollectError {
    Rest(RestError),
    /// The job is not running (finished, failed, cancelled) or is gone.
    JobNotRunning {
        job_id: String,
        state: String,
    },
    /// The job kept restarting or rescaling: no stable window could be had.
    Unstable {
        job_id: String,
        restarts: u32,
    },
    /// The caller asked to stop (the plugin is closing).
    Stopped,
}

impl fmt::Display for CollectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CollectError::Rest(e) => e.fmt(f),
            CollectError::JobNotRunning { job_id, state } => {
                write!(f, "job {job_id} is not running ({state})")
            }
            CollectError::Stopped => f.write_str("stopped"),
            CollectError::Unstable { job_id, restarts } => {
                write!(f, "job {job_id} changed parallelism or restarted {restarts} times during the window")
            }
        }
    }
}

impl std::error::Error for CollectError {}

impl From<RestError> for CollectError {
    fn from(e: RestError) -> Self {
        CollectError::Rest(e)
    }
}

/// Polls the job every `interval` for `window`. A rescale or restart inside the window
/// starts it again (at most `max_restarts` times). Time is the `clock`'s; `sleep` waits
/// between polls (on that clock) and returns false when the caller wants to stop.
pub fn collect(
    rest: &FlinkRest,
    job_id: &str,
    window: Duration,
    interval: Duration,
    max_restarts: u32,
    clock: &dyn Clock,
    sleep: &mut dyn FnMut(Duration) -> bool,
) -> Result<(JobShape, Vec<Sample>), CollectError> {
    collect_window(rest, job_id, window, interval, max_restarts, clock, sleep).map_err(
        |e| match e {
            // Not found between two calls of one poll: the job went away mid-window.
            CollectError::Rest(e) if e.is_not_found() => CollectError::JobNotRunning {
                job_id: job_id.to_string(),
                state: "gone".into(),
            },
            e => e,
        },
    )
}

fn collect_window(
    rest: &FlinkRest,
    job_id: &str,
    window: Duration,
    interval: Duration,
    max_restarts: u32,
    clock: &dyn Clock,
    sleep: &mut dyn FnMut(Duration) -> bool,
) -> Result<(JobShape, Vec<Sample>), CollectError> {
    let mut restarts = 0;
    'window: loop {
        let details = running(rest, job_id)?;
        let mut shape = JobShape::from_details(&details);
        let deployed = deployments(&details);
        shape.discover_source_metrics(rest)?;
        let started = clock.now_ms();
        let mut samples: Vec<Sample> = Vec::new();
        loop {
            let details = running(rest, job_id)?;
            // Rescaled, or restarted at the same parallelism (its tasks redeployed, or its
            // counters gone back between two refreshes of their start): the window so far
            // measured another run of the job.
            let redeployed = JobShape::from_details(&details).vertices != shape.vertices
                || deployments(&details) != deployed;
            let next = if redeployed {
                None
            } else {
                // The JobManager lists a vertex's metrics only after its metric fetcher has
                // run: look again while a source shows none.
                if shape
                    .source_metrics
                    .values()
                    .any(|m| m.records_out.is_empty())
                {
                    shape.discover_source_metrics(rest)?;
                }
                Some(sample(rest, &shape, &details, clock.now_ms())?)
            };
            let Some(next) = next.filter(|n| {
                !samples
                    .last()
                    .is_some_and(|last| counters_went_back(last, n))
            }) else {
                restarts += 1;
                if restarts > max_restarts {
                    return Err(CollectError::Unstable {
                        job_id: job_id.to_string(),
                        restarts,
                    });
                }
                continue 'window;
            };
            samples.push(next);
            // The REST API refreshes its values every ~10 s: a window must have seen the
            // counters change twice to measure a rate, so a short one is stretched (to at
            // most three times its length).
            let long_enough = elapsed(clock, started) >= window && samples.len() >= 2;
            if long_enough && (fresh_values(&samples) >= 2 || elapsed(clock, started) >= window * 3)
            {
                return Ok((shape, samples));
            }
            let pause = interval.min(
                window
                    .saturating_sub(elapsed(clock, started))
                    .max(Duration::from_millis(100)),
            );
            if !sleep(pause) {
                return Err(CollectError::Stopped);
            }
        }
    }
}

/// When each vertex's tasks were (re)deployed: a restart changes it.
fn deployments(details: &JobDetails) -> Vec<i64> {
    details.vertices.iter().map(|v| v.start_time).collect()
}

/// Whether a cumulative counter of any vertex is lower than before.
fn counters_went_back(before: &Sample, after: &Sample) -> bool {
    let back = |a: f64, b: f64| a.is_finite() && b.is_finite() && b < a;
    before.vertices.iter().zip(&after.vertices).any(|(a, b)| {
        back(a.read_records, b.read_records)
            || back(a.write_records, b.write_records)
            || matches!((a.source_records, b.source_records), (Some(x), Some(y)) if back(x, y))
    })
}

/// How many times the job's counters were refreshed during the samples.
fn fresh_values(samples: &[Sample]) -> usize {
    let total = |s: &Sample| {
        s.vertices
            .iter()
            .map(|v| v.write_records + v.read_records)
            .sum::<f64>()
    };
    samples
        .windows(2)
        .filter(|w| total(&w[1]) != total(&w[0]))
        .count()
}

fn running(rest: &FlinkRest, job_id: &str) -> Result<JobDetails, CollectError> {
    match rest.job(job_id) {
        Ok(d) if d.state == "RUNNING" && d.plan_served() => Ok(d),
        Ok(d) if d.state == "RUNNING" => Err(CollectError::JobNotRunning {
            job_id: job_id.to_string(),
            state: "RUNNING, its plan not served yet".into(),
        }),
        Ok(d) => Err(CollectError::JobNotRunning {
            job_id: job_id.to_string(),
            state: d.state,
        }),
        Err(e) if e.is_not_found() => Err(CollectError::JobNotRunning {
            job_id: job_id.to_string(),
            state: "gone".into(),
        }),
        Err(e) => Err(e.into()),
    }
}

/// One poll of every vertex of the job: what a window is made of.
pub fn sample(
    rest: &FlinkRest,
    shape: &JobShape,
    details: &JobDetails,
    at_ms: i64,
) -> Result<Sample, CollectError> {
    let mut vertices = Vec::with_capacity(shape.vertices.len());
    for (v, vertex) in shape.vertices.iter().enumerate() {
        let id = &vertex.id;
        let aggregated = rest.subtask_metrics(
            &shape.job_id,
            id,
            &["busyTimeMsPerSecond", "backPressuredTimeMsPerSecond"],
        )?;
        let busy = aggregated
            .get("busyTimeMsPerSecond")
            .copied()
            .unwrap_or_default();
        let backpressure = aggregated
            .get("backPressuredTimeMsPerSecond")
            .copied()
            .unwrap_or_default();
        let (mut pending, mut source_records, mut positions) = (None, None, Vec::new());
        if let Some(names) = shape.source_metrics.get(&v) {
            let wanted: Vec<String> = names
                .pending
                .iter()
                .chain(&names.records_out)
                .chain(&names.offsets)
                .cloned()
                .collect();
            let values = rest.vertex_metrics(&shape.job_id, id, &wanted)?;
            let found = |of: &[String]| -> Vec<f64> {
                of.iter().filter_map(|n| values.get(n).copied()).collect()
            };
            // A subtask's value that is not a number makes the sum no measurement: a missing
            // sample, not a smaller backlog.
            let sum = |of: &[String]| -> Option<f64> {
                let found = found(of);
                (!found.is_empty() && found.iter().all(|x| x.is_finite()))
                    .then(|| found.iter().sum())
            };
            pending = sum(&names.pending);
            source_records = sum(&names.records_out);
            positions = names
                .offsets
                .iter()
                .map(|n| values.get(n).copied().unwrap_or(f64::NAN))
                .collect();
        }
        let counters = &details.vertices[v].metrics;
        vertices.push(VertexSample {
            read_records: counters.read_records,
            write_records: counters.write_records,
            source_records,
            busy_avg_ms: busy.avg,
            busy_max_ms: busy.max,
            backpressure_avg_ms: backpressure.avg,
            pending,
            positions,
        });
    }
    Ok(Sample { at_ms, vertices })
}
