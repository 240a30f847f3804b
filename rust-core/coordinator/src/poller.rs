//! The poller: reads a job's decision window from its REST view, one poll at a time, and
//! hands the window's samples on. A rescale or restart inside the window starts it again.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::time::Duration;

use crate::brokers::{BrokerReader, TopicPartition};
use crate::clock::{elapsed, Clock};
use crate::pools::{VertexBusy, WindowCache};
use crate::recording::{Sample, VertexSample};
use crate::rest::{FlinkRest, JobDetails, RestError};
use crate::shape::{JobShape, SourceMetrics};

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
    /// No record counted over a whole stretched window while a vertex shows work: the REST
    /// API's values are stale (after a TaskManager was lost, its last values stood in for the
    /// restarted tasks' for a minute) or the job is stuck. No rate can be measured from them.
    Frozen {
        job_id: String,
        seconds: u64,
        vertex: String,
        busy_ms: f64,
    },
}

impl fmt::Display for CollectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CollectError::Rest(e) => e.fmt(f),
            CollectError::JobNotRunning { job_id, state } => {
                write!(f, "job {job_id} is not running ({state})")
            }
            CollectError::Unstable { job_id, restarts } => {
                write!(f, "job {job_id} changed parallelism or restarted {restarts} times during the window")
            }
            CollectError::Frozen {
                job_id,
                seconds,
                vertex,
                busy_ms,
            } => write!(
                f,
                "job {job_id} counted no record in {seconds} s while \"{vertex}\" shows {:.0}% busy: \
                 the REST API's values are stale or the job is stuck",
                busy_ms / 10.0
            ),
        }
    }
}

impl std::error::Error for CollectError {}

impl From<RestError> for CollectError {
    fn from(e: RestError) -> Self {
        CollectError::Rest(e)
    }
}

/// One job's decision window as it is read: every poll of the loop adds a sample, and the
/// window closes on its own schedule, whatever other jobs' windows do. A rescale or restart
/// inside it starts it again (at most `max_restarts` times).
pub struct WindowReader {
    job_id: String,
    window: Duration,
    /// How often it is read: it closes at the read nearest its length, so a few milliseconds
    /// of one poll's jitter do not add a poll to it.
    poll: Duration,
    max_restarts: u32,
    restarts: u32,
    /// The run of the job being measured; `None` until the first poll (or after a restart).
    run: Option<Run>,
}

/// What a window measures: one deployment of the job at one shape.
struct Run {
    shape: JobShape,
    deployed: Vec<i64>,
    started_ms: i64,
    samples: Vec<Sample>,
}

/// What a poll did to a window.
pub enum Polled {
    /// Not long enough yet.
    Open,
    /// Long enough, with the counters seen changing: the window to decide on.
    Closed(Box<ClosedWindow>),
}

pub struct ClosedWindow {
    pub shape: JobShape,
    pub samples: Vec<Sample>,
    /// The job as the last poll saw it.
    pub details: JobDetails,
}

impl WindowReader {
    /// A window of `window`, read every `poll`.
    pub fn new(job_id: &str, window: Duration, poll: Duration, max_restarts: u32) -> Self {
        WindowReader {
            job_id: job_id.to_string(),
            window,
            poll,
            max_restarts,
            restarts: 0,
            run: None,
        }
    }

    /// One poll of the job, its vertices' loads from what the TaskManagers `published` where
    /// they cover them. The window is given up (an error) when the job stops running or keeps
    /// restarting; a REST failure leaves it open for the next poll.
    pub fn poll(
        &mut self,
        rest: &FlinkRest,
        published: &WindowCache,
        brokers: Option<&BrokerReader>,
        clock: &dyn Clock,
    ) -> Result<Polled, CollectError> {
        self.poll_running(rest, published, brokers, clock)
            .map_err(|e| gone_if_not_found(e, &self.job_id))
    }

    fn poll_running(
        &mut self,
        rest: &FlinkRest,
        published: &WindowCache,
        brokers: Option<&BrokerReader>,
        clock: &dyn Clock,
    ) -> Result<Polled, CollectError> {
        let (run, details) = loop {
            let details = running(rest, &self.job_id)?;
            let mut run = match self.run.take() {
                Some(run) => run,
                None => Run::start(rest, &details, clock)?,
            };
            match self.sampled(rest, published, brokers, &mut run, &details, clock) {
                Ok(true) => break (run, details),
                // Measured from this poll on: the new run's first sample is taken now.
                Ok(false) => self.restarted()?,
                // One sample short, the window so far kept: the next poll goes on with it.
                Err(e) => {
                    self.run = Some(run);
                    return Err(e);
                }
            }
        };
        if run.long_enough(self.window, self.poll / 2, clock) {
            if let Some(frozen) = run.frozen(&self.job_id, clock) {
                return Err(frozen);
            }
            return Ok(Polled::Closed(Box::new(ClosedWindow {
                shape: run.shape,
                samples: run.samples,
                details,
            })));
        }
        self.run = Some(run);
        Ok(Polled::Open)
    }

    /// Adds this poll's sample to the run; `false` when the job was redeployed since it began.
    fn sampled(
        &self,
        rest: &FlinkRest,
        published: &WindowCache,
        brokers: Option<&BrokerReader>,
        run: &mut Run,
        details: &JobDetails,
        clock: &dyn Clock,
    ) -> Result<bool, CollectError> {
        // Rescaled, or restarted at the same parallelism (its tasks redeployed, or its
        // counters gone back between two refreshes of their start): the window so far
        // measured another run of the job.
        if JobShape::from_details(details).vertices != run.shape.vertices
            || deployments(details) != run.deployed
        {
            return Ok(false);
        }
        // The JobManager lists a vertex's metrics only after its metric fetcher has run:
        // look again while a source shows none.
        if run
            .shape
            .source_metrics
            .values()
            .any(|m| m.records_out.is_empty())
        {
            run.shape.discover_source_metrics(rest)?;
        }
        let next = sample(
            rest,
            published,
            &run.shape,
            details,
            brokers,
            clock.now_ms(),
        )?;
        if run
            .samples
            .last()
            .is_some_and(|last| counters_went_back(last, &next))
        {
            return Ok(false);
        }
        run.samples.push(next);
        Ok(true)
    }

    fn restarted(&mut self) -> Result<(), CollectError> {
        self.restarts += 1;
        if self.restarts > self.max_restarts {
            return Err(CollectError::Unstable {
                job_id: self.job_id.clone(),
                restarts: self.restarts,
            });
        }
        Ok(())
    }

    /// How long until this window could close: the pause a caller that reads only this
    /// window makes before its next poll (never below 100 ms).
    pub fn until_closing(&self, clock: &dyn Clock) -> Duration {
        let elapsed = self
            .run
            .as_ref()
            .map_or(Duration::ZERO, |run| elapsed(clock, run.started_ms));
        self.window
            .saturating_sub(elapsed)
            .max(Duration::from_millis(100))
    }
}

impl Run {
    fn start(
        rest: &FlinkRest,
        details: &JobDetails,
        clock: &dyn Clock,
    ) -> Result<Self, CollectError> {
        let mut shape = JobShape::from_details(details);
        shape.discover_source_metrics(rest)?;
        Ok(Run {
            shape,
            deployed: deployments(details),
            started_ms: clock.now_ms(),
            samples: Vec::new(),
        })
    }

    /// The REST API refreshes its values every ~10 s: a window must have seen the counters
    /// change twice to measure a rate, so a short one is stretched (to at most three times
    /// its length).
    fn long_enough(&self, window: Duration, slack: Duration, clock: &dyn Clock) -> bool {
        let elapsed = elapsed(clock, self.started_ms);
        elapsed + slack >= window
            && self.samples.len() >= 2
            && (fresh_values(&self.samples) >= 2 || elapsed >= window * 3)
    }

    /// A window that closed without one counter moving measures an idle job only when
    /// nothing in it is busy; a busy vertex beside still counters is a view that does not
    /// hold (`CollectError::Frozen`).
    fn frozen(&self, job_id: &str, clock: &dyn Clock) -> Option<CollectError> {
        if fresh_values(&self.samples) > 0 {
            return None;
        }
        let last = self.samples.last()?;
        let (v, busy_ms) = last
            .vertices
            .iter()
            .map(|v| v.busy_max_ms)
            .enumerate()
            .filter(|(_, busy)| busy.is_finite())
            .max_by(|a, b| a.1.total_cmp(&b.1))?;
        (busy_ms >= BUSY_WITHOUT_RECORDS_MS).then(|| CollectError::Frozen {
            job_id: job_id.to_string(),
            seconds: elapsed(clock, self.started_ms).as_secs(),
            vertex: self.shape.vertices[v].name.clone(),
            busy_ms,
        })
    }
}

/// Busier than this (ms/s) with no record counted is not an idle job.
const BUSY_WITHOUT_RECORDS_MS: f64 = 100.0;

/// Not found between two calls of one poll: the job went away mid-window.
fn gone_if_not_found(e: CollectError, job_id: &str) -> CollectError {
    match e {
        CollectError::Rest(e) if e.is_not_found() => CollectError::JobNotRunning {
            job_id: job_id.to_string(),
            state: "gone".into(),
        },
        e => e,
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

/// One poll of every vertex of the job: what a window is made of. A vertex's load comes from
/// what the TaskManagers `published` when it covers every subtask, else from the REST API; a
/// Kafka source's end offsets from its `brokers`, when they are known.
pub fn sample(
    rest: &FlinkRest,
    published: &WindowCache,
    shape: &JobShape,
    details: &JobDetails,
    brokers: Option<&BrokerReader>,
    at_ms: i64,
) -> Result<Sample, CollectError> {
    let mut vertices = Vec::with_capacity(shape.vertices.len());
    for (v, vertex) in shape.vertices.iter().enumerate() {
        let id = &vertex.id;
        let load = match published.vertex_busy(&shape.job_id, id, vertex.parallelism) {
            Some(load) => load,
            None => vertex_busy_over_rest(rest, &shape.job_id, id)?,
        };
        let (mut pending, mut source_records, mut positions, mut ends) =
            (None, None, Vec::new(), Vec::new());
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
            if let Some(brokers) = brokers {
                ends = end_offsets(brokers, names, &vertex.name);
            }
        }
        let counters = &details.vertices[v].metrics;
        vertices.push(VertexSample {
            read_records: counters.read_records,
            write_records: counters.write_records,
            source_records,
            busy_avg_ms: load.busy_avg_ms,
            busy_max_ms: load.busy_max_ms,
            backpressure_avg_ms: load.backpressure_avg_ms,
            pending,
            positions,
            ends,
        });
    }
    Ok(Sample { at_ms, vertices })
}

/// The end offsets of the partitions a source reads, in its positions' order; none when its
/// metrics name no partition or the brokers cannot be read (the reader says why, once).
fn end_offsets(brokers: &BrokerReader, names: &SourceMetrics, vertex: &str) -> Vec<f64> {
    if names.offsets.is_empty() && names.pending.is_empty() {
        return Vec::new(); // not a reader of a log: nothing to ask the brokers
    }
    let Some(partitions) = names.partitions() else {
        brokers.note_unnamed_partitions(vertex);
        return Vec::new();
    };
    // After a rescale the REST API keeps a subtask's metrics of the partitions it read before,
    // so a partition can be named twice: the brokers are asked once for each.
    let distinct: Vec<TopicPartition> = partitions
        .iter()
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let Ok(ends) = brokers.end_offsets(&distinct) else {
        return Vec::new();
    };
    let end_of: HashMap<&TopicPartition, i64> = distinct.iter().zip(ends).collect();
    partitions
        .iter()
        .map(|p| end_of.get(p).map_or(f64::NAN, |e| *e as f64))
        .collect()
}

/// A vertex's load as the REST API aggregates its subtasks' metrics: one request per vertex.
fn vertex_busy_over_rest(
    rest: &FlinkRest,
    job_id: &str,
    vertex_id: &str,
) -> Result<VertexBusy, CollectError> {
    let aggregated = rest.subtask_metrics(
        job_id,
        vertex_id,
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
    Ok(VertexBusy {
        busy_avg_ms: busy.avg,
        busy_max_ms: busy.max,
        backpressure_avg_ms: backpressure.avg,
    })
}
