//! Windows of the REST view of one job, turned into a [`JobSnapshot`] for the models.
//!
//! Rates come from cumulative counters (records read and written) over the whole window,
//! not from Flink's 60-second meters, so they are right as soon as the window is; busy and
//! back-pressured time are averaged over the window's samples; a source's backlog growth is
//! the change of its `pendingRecords` over the window.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

use autotune_model::scaling::{Edge, JobSnapshot, PartialBacklog, ShipStrategy, VertexSnapshot};
use serde::{Deserialize, Serialize};

use crate::pools::MemoryView;
use crate::rest::{FlinkRest, JobDetails, RestError};

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

/// The job's shape: what stays fixed within a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobShape {
    pub job_id: String,
    pub job_name: String,
    pub vertices: Vec<ShapeVertex>,
    pub edges: Vec<Edge>,
    /// Per source vertex: the operator metric names for backlog and records read.
    #[serde(default)]
    pub source_metrics: HashMap<usize, SourceMetrics>,
}

/// One vertex as the window sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "ShapeVertexForm")]
pub struct ShapeVertex {
    pub id: String,
    pub name: String,
    pub parallelism: u32,
    /// Key groups; `None` when the REST API does not say (older releases): not invented.
    #[serde(default)]
    pub max_parallelism: Option<u32>,
}

/// Recordings written before vertices had names kept them as `[id, name, p, max]`.
#[derive(Deserialize)]
#[serde(untagged)]
enum ShapeVertexForm {
    Named {
        id: String,
        name: String,
        parallelism: u32,
        #[serde(default)]
        max_parallelism: Option<u32>,
    },
    Tuple(String, String, u32, u32),
}

impl From<ShapeVertexForm> for ShapeVertex {
    fn from(form: ShapeVertexForm) -> Self {
        let (id, name, parallelism, max_parallelism) = match form {
            ShapeVertexForm::Named {
                id,
                name,
                parallelism,
                max_parallelism,
            } => (id, name, parallelism, max_parallelism),
            ShapeVertexForm::Tuple(id, name, p, max) => (id, name, p, Some(max)),
        };
        ShapeVertex {
            id,
            name,
            parallelism,
            max_parallelism,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceMetrics {
    pub pending: Vec<String>,
    pub records_out: Vec<String>,
    /// Splits (partitions) the source's readers hold, counted from the per-split metrics
    /// FLIP-27 sources register (`<subtask>.<operator>.split.<split id>.watermark.*`).
    #[serde(default)]
    pub splits: Option<u32>,
    /// Per-partition read positions of Kafka readers
    /// (`<subtask>.<operator>.KafkaSourceReader.topic.<t>.partition.<p>.currentOffset`, -1
    /// until the reader has read from the partition): they tell whether `pendingRecords`
    /// covers every partition yet.
    #[serde(default)]
    pub offsets: Vec<String>,
}

impl SourceMetrics {
    /// Subtasks that hold partitions (they report read positions) but no backlog yet.
    pub fn silent_subtasks(&self) -> u32 {
        let holding: BTreeSet<&str> = self.offsets.iter().map(|n| subtask_of(n)).collect();
        let reporting: BTreeSet<&str> = self.pending.iter().map(|n| subtask_of(n)).collect();
        holding.difference(&reporting).count() as u32
    }
}

/// One poll of one vertex.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VertexSample {
    pub read_records: f64,
    pub write_records: f64,
    /// Records the source operator emitted (sources only), cumulative.
    pub source_records: Option<f64>,
    #[serde(with = "nan_as_null")]
    pub busy_avg_ms: f64,
    #[serde(with = "nan_as_null")]
    pub busy_max_ms: f64,
    #[serde(with = "nan_as_null")]
    pub backpressure_avg_ms: f64,
    pub pending: Option<f64>,
    /// The reader's position in each partition (`SourceMetrics::offsets`, in order; NaN when
    /// not served): -1 until it has read from it.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        with = "nan_as_null_vec"
    )]
    pub positions: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub at_ms: i64,
    pub vertices: Vec<VertexSample>,
}

impl JobShape {
    pub fn from_details(details: &JobDetails) -> Self {
        let index: HashMap<&str, usize> = details
            .vertices
            .iter()
            .enumerate()
            .map(|(i, v)| (v.id.as_str(), i))
            .collect();
        let mut edges = Vec::new();
        for node in &details.plan.nodes {
            let Some(&to) = index.get(node.id.as_str()) else {
                continue;
            };
            for input in &node.inputs {
                if let Some(&from) = index.get(input.id.as_str()) {
                    edges.push(Edge {
                        from,
                        to,
                        ship: ShipStrategy::from_rest(&input.ship_strategy),
                    });
                }
            }
        }
        JobShape {
            job_id: details.jid.clone(),
            job_name: details.name.clone(),
            vertices: details
                .vertices
                .iter()
                .map(|v| {
                    // Absent (older releases), -1, or below the parallelism it runs at (which
                    // Flink never allows): unknown, not a guess.
                    let max = v
                        .max_parallelism
                        .and_then(|m| u32::try_from(m).ok())
                        .filter(|m| *m >= v.parallelism.max(1));
                    ShapeVertex {
                        id: v.id.clone(),
                        name: v.name.clone(),
                        parallelism: v.parallelism,
                        max_parallelism: max,
                    }
                })
                .collect(),
            edges,
            source_metrics: HashMap::new(),
        }
    }

    pub fn is_source(&self, v: usize) -> bool {
        !self.edges.iter().any(|e| e.to == v)
    }

    /// Finds each source's operator metrics: `<subtask>.<operator>.pendingRecords` and the
    /// same operator's `numRecordsOut`.
    pub fn discover_source_metrics(&mut self, rest: &FlinkRest) -> Result<(), RestError> {
        let sources: Vec<usize> = (0..self.vertices.len())
            .filter(|&v| self.is_source(v))
            .collect();
        for v in sources {
            let names = rest.vertex_metric_names(&self.job_id, &self.vertices[v].id)?;
            self.source_metrics.insert(v, source_metrics(&names));
        }
        Ok(())
    }
}

/// Picks the source operator's metrics from a vertex's metric names.
pub fn source_metrics(names: &[String]) -> SourceMetrics {
    let operator_of = |name: &str| name.split('.').nth(1).map(str::to_string);
    let pending: Vec<String> = names
        .iter()
        .filter(|n| n.ends_with(".pendingRecords") && n.split('.').count() == 3)
        .cloned()
        .collect();
    // The source operator: the one reporting the backlog, else the one named "Source...".
    let operator = pending.first().and_then(|n| operator_of(n)).or_else(|| {
        names
            .iter()
            .filter_map(|n| operator_of(n))
            .find(|o| o.starts_with("Source"))
    });
    let records_out = match &operator {
        Some(op) => names
            .iter()
            .filter(|n| n.split('.').count() == 3 && n.ends_with(&format!(".{op}.numRecordsOut")))
            .cloned()
            .collect(),
        None => Vec::new(),
    };
    let offsets = match &operator {
        Some(op) => names
            .iter()
            .filter(|n| {
                n.starts_with(&format!("{}.{op}.KafkaSourceReader.topic.", subtask_of(n)))
                    && n.contains(".partition.")
                    && n.ends_with(".currentOffset")
            })
            .cloned()
            .collect(),
        None => Vec::new(),
    };
    let split_ids: BTreeSet<&str> = names
        .iter()
        .filter_map(|n| {
            let parts: Vec<&str> = n.split('.').collect();
            (parts.len() >= 5
                && parts[2] == "split"
                && Some(parts[1].to_string()) == operator
                && parts[4] == "watermark")
                .then(|| parts[3])
        })
        .collect();
    SourceMetrics {
        pending,
        records_out,
        splits: (!split_ids.is_empty()).then_some(split_ids.len() as u32),
        offsets,
    }
}

fn subtask_of(name: &str) -> &str {
    name.split('.').next().unwrap_or_default()
}

/// Polls the job every `interval` for `window`. A rescale or restart inside the window
/// starts it again (at most `max_restarts` times). `sleep` waits between polls and returns
/// false when the caller wants to stop.
pub fn collect(
    rest: &FlinkRest,
    job_id: &str,
    window: Duration,
    interval: Duration,
    max_restarts: u32,
    sleep: &mut dyn FnMut(Duration) -> bool,
) -> Result<(JobShape, Vec<Sample>), CollectError> {
    collect_window(rest, job_id, window, interval, max_restarts, sleep).map_err(|e| match e {
        // Not found between two calls of one poll: the job went away mid-window.
        CollectError::Rest(e) if e.is_not_found() => CollectError::JobNotRunning {
            job_id: job_id.to_string(),
            state: "gone".into(),
        },
        e => e,
    })
}

fn collect_window(
    rest: &FlinkRest,
    job_id: &str,
    window: Duration,
    interval: Duration,
    max_restarts: u32,
    sleep: &mut dyn FnMut(Duration) -> bool,
) -> Result<(JobShape, Vec<Sample>), CollectError> {
    let mut restarts = 0;
    'window: loop {
        let details = running(rest, job_id)?;
        let mut shape = JobShape::from_details(&details);
        let deployed = deployments(&details);
        shape.discover_source_metrics(rest)?;
        let started = Instant::now();
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
                Some(sample(rest, &shape, &details)?)
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
            let long_enough = started.elapsed() >= window && samples.len() >= 2;
            if long_enough && (fresh_values(&samples) >= 2 || started.elapsed() >= window * 3) {
                return Ok((shape, samples));
            }
            let pause = interval.min(
                window
                    .saturating_sub(started.elapsed())
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
        Ok(d) if d.state == "RUNNING" => Ok(d),
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
) -> Result<Sample, CollectError> {
    let at_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
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

/// Change per second of a cumulative counter or gauge over the window.
///
/// The REST API serves values its metric fetcher refreshed up to ~10 s earlier, all at once.
/// Polling faster than that, the first and last *changes* in the series mark when fresh
/// values arrived; measuring between them keeps the error to one poll interval instead of
/// one fetch interval. Without two changes, the window's ends are used.
pub fn change_rate(series: &[(i64, f64)]) -> Option<f64> {
    let points: Vec<(i64, f64)> = series
        .iter()
        .copied()
        .filter(|(_, v)| v.is_finite())
        .collect();
    if points.len() < 2 {
        return None;
    }
    let changes: Vec<(i64, f64)> = points
        .windows(2)
        .filter(|w| w[1].1 != w[0].1)
        .map(|w| w[1])
        .collect();
    let (a, b) = if changes.len() >= 2 {
        (changes[0], changes[changes.len() - 1])
    } else {
        (points[0], points[points.len() - 1])
    };
    let seconds = (b.0 - a.0) as f64 / 1000.0;
    (seconds > 0.0).then(|| (b.1 - a.1) / seconds)
}

/// The window as the scaling model's input. Needs at least two samples.
pub fn summarize(
    shape: &JobShape,
    samples: &[Sample],
    available_slots: Option<u32>,
    slots_per_taskmanager: Option<u32>,
) -> JobSnapshot {
    let mean = |values: &mut dyn Iterator<Item = f64>| {
        let finite: Vec<f64> = values.filter(|x| x.is_finite()).collect();
        if finite.is_empty() {
            f64::NAN
        } else {
            finite.iter().sum::<f64>() / finite.len() as f64
        }
    };
    let vertices = shape
        .vertices
        .iter()
        .enumerate()
        .map(|(v, vertex)| {
            // A poll whose value is not a number is left out: one spoiled poll (the window's
            // last, say) must not cost the window its backlog or its rates.
            let series = |f: &dyn Fn(&VertexSample) -> Option<f64>| -> Vec<(i64, f64)> {
                samples
                    .iter()
                    .filter_map(|s| {
                        f(&s.vertices[v])
                            .filter(|x| x.is_finite())
                            .map(|x| (s.at_ms, x))
                    })
                    .collect()
            };
            let is_source = shape.is_source(v);
            let records_out_rate = change_rate(&series(&|x| Some(x.write_records)))
                .unwrap_or(0.0)
                .max(0.0);
            let records_in_rate = if is_source {
                change_rate(&series(&|x| x.source_records))
                    .unwrap_or(records_out_rate)
                    .max(0.0)
            } else {
                change_rate(&series(&|x| Some(x.read_records)))
                    .unwrap_or(0.0)
                    .max(0.0)
            };
            let pending_series = series(&|x| x.pending);
            let pending = pending_series.last().map(|p| p.1);
            let growth = change_rate(&pending_series);
            let (pending, growth) = match (pending, growth) {
                (Some(p), Some(g)) => (Some(p), Some(g)),
                (Some(p), None) => (Some(p), Some(0.0)),
                _ => (None, None),
            };
            let busy_max = mean(&mut samples.iter().map(|s| s.vertices[v].busy_max_ms)) / 1000.0;
            let backpressure =
                mean(&mut samples.iter().map(|s| s.vertices[v].backpressure_avg_ms)) / 1000.0;
            // Behind: it has more to read than it reads (held back, or at its own limit).
            let behind = backpressure >= 0.1 || busy_max >= 0.9;
            let backlog_partial = pending.and(partial_backlog(shape, v, samples, behind));
            VertexSnapshot {
                id: vertex.id.clone(),
                name: vertex.name.clone(),
                parallelism: vertex.parallelism,
                max_parallelism: vertex.max_parallelism,
                source_partitions: shape.source_metrics.get(&v).and_then(|m| m.splits),
                is_source,
                records_in_rate,
                records_out_rate,
                busy: mean(&mut samples.iter().map(|s| s.vertices[v].busy_avg_ms)) / 1000.0,
                busy_max,
                backpressure,
                pending_records: pending,
                backlog_growth: growth,
                backlog_partial,
            }
        })
        .collect();
    JobSnapshot {
        job_id: shape.job_id.clone(),
        job_name: shape.job_name.clone(),
        vertices,
        edges: shape.edges.clone(),
        available_slots,
        slots_per_taskmanager,
    }
}

/// What the source's backlog metric left out during the window, while the reader was behind
/// (back-pressured, or its hottest subtask saturated): partitions not read from yet (position
/// -1; a Kafka reader counts a partition's lag only once it has read from it), partitions not
/// read from during the window while others were (their lag is as old as their last read: a
/// reader that is behind drains one partition's fetch at a time), and subtasks holding
/// partitions that report no backlog yet. A reader that keeps up reads every partition with
/// data, so an empty or quiet partition says nothing then.
fn partial_backlog(
    shape: &JobShape,
    v: usize,
    samples: &[Sample],
    behind: bool,
) -> Option<PartialBacklog> {
    if !behind {
        return None;
    }
    let silent_subtasks = shape
        .source_metrics
        .get(&v)
        .map_or(0, SourceMetrics::silent_subtasks);
    let positions: Vec<&[f64]> = samples
        .iter()
        .map(|s| s.vertices[v].positions.as_slice())
        .filter(|p| !p.is_empty())
        .collect();
    let unread_partitions = positions
        .iter()
        .map(|p| p.iter().filter(|x| **x < 0.0).count() as u32)
        .max()
        .unwrap_or(0);
    let stale_partitions = match (positions.first(), positions.last()) {
        (Some(first), Some(last)) if positions.len() >= 2 && first.len() == last.len() => {
            let pairs = || {
                first
                    .iter()
                    .zip(last.iter())
                    .filter(|(a, b)| a.is_finite() && b.is_finite())
            };
            let any_moved = pairs().any(|(a, b)| a != b);
            let idle = pairs().filter(|(a, b)| **a >= 0.0 && a == b).count() as u32;
            if any_moved {
                idle
            } else {
                0
            }
        }
        _ => 0,
    };
    (silent_subtasks > 0 || unread_partitions > 0 || stale_partitions > 0).then_some(
        PartialBacklog {
            unread_partitions,
            stale_partitions,
            silent_subtasks,
        },
    )
}

/// NaN positions (a metric the REST API did not serve) as JSON null.
mod nan_as_null_vec {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(values: &[f64], s: S) -> Result<S::Ok, S::Error> {
        let shown: Vec<Option<f64>> = values.iter().map(|v| v.is_finite().then_some(*v)).collect();
        shown.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        let read: Vec<Option<f64>> = Vec::deserialize(d)?;
        Ok(read.into_iter().map(|v| v.unwrap_or(f64::NAN)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vertex(id: &str, name: &str, parallelism: u32) -> ShapeVertex {
        ShapeVertex {
            id: id.into(),
            name: name.into(),
            parallelism,
            max_parallelism: Some(128),
        }
    }

    #[test]
    fn recordings_of_either_vertex_form_read_and_broken_ones_are_refused() {
        let old = r#"{"format":1,"rest":"r","shape":{"job_id":"j","job_name":"n","vertices":[["s","Source",1,128]],"edges":[]},"samples":[],"available_slots":null,"slots_per_taskmanager":null}"#;
        let recording: Recording = serde_json::from_str(old).unwrap();
        assert_eq!(recording.shape.vertices, vec![vertex("s", "Source", 1)]);
        assert!(recording.memory.is_none());
        let again: Recording =
            serde_json::from_str(&serde_json::to_string(&recording).unwrap()).unwrap();
        assert_eq!(again, recording);
        assert!(recording
            .check()
            .unwrap_err()
            .contains("at least two samples"));
        let sample = |n: usize| Sample {
            at_ms: 0,
            vertices: vec![
                VertexSample {
                    read_records: 0.0,
                    write_records: 0.0,
                    source_records: None,
                    busy_avg_ms: 0.0,
                    busy_max_ms: 0.0,
                    backpressure_avg_ms: 0.0,
                    pending: None,
                    positions: Vec::new(),
                };
                n
            ],
        };
        let mut short = recording.clone();
        short.samples = vec![sample(1), sample(0)];
        assert_eq!(
            short.check().unwrap_err(),
            "sample 2 has 0 vertices, the job has 1"
        );
        let mut bad_edge = recording.clone();
        bad_edge.samples = vec![sample(1), sample(1)];
        assert!(bad_edge.check().is_ok());
        bad_edge.shape.edges.push(Edge {
            from: 0,
            to: 3,
            ship: ShipStrategy::Forward,
        });
        assert!(bad_edge.check().unwrap_err().contains("edge 0 -> 3"));
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn finds_the_source_operators_backlog_and_output() {
        let found = source_metrics(&names(&[
            "0.Source__Queue_Source.pendingRecords",
            "1.Source__Queue_Source.pendingRecords",
            "0.Source__Queue_Source.numRecordsOut",
            "1.Source__Queue_Source.numRecordsOut",
            "0.Source__Queue_Source.numRecordsOutPerSecond",
            "0.Map.numRecordsOut",
            "0.Source__Queue_Source.split.partition-0.watermark.currentWatermark",
            "0.Source__Queue_Source.split.partition-0.watermark.idleTimeMsPerSecond",
            "1.Source__Queue_Source.split.partition-3.watermark.currentWatermark",
            "0.numRecordsOut",
        ]));
        assert_eq!(found.splits, Some(2), "partition-0 and partition-3");
        assert_eq!(
            found.pending,
            names(&[
                "0.Source__Queue_Source.pendingRecords",
                "1.Source__Queue_Source.pendingRecords"
            ])
        );
        assert_eq!(
            found.records_out,
            names(&[
                "0.Source__Queue_Source.numRecordsOut",
                "1.Source__Queue_Source.numRecordsOut"
            ])
        );
    }

    #[test]
    fn a_kafka_backlog_that_leaves_partitions_or_subtasks_out_is_partial() {
        let op = "Source__Kafka_Source";
        let mut list = vec![
            format!("0.{op}.pendingRecords"),
            format!("0.{op}.numRecordsOut"),
            format!("1.{op}.numRecordsOut"),
        ];
        for p in 0..8 {
            list.push(format!(
                "{}.{op}.KafkaSourceReader.topic.events.partition.{p}.currentOffset",
                p / 4
            ));
            list.push(format!(
                "{}.{op}.KafkaSourceReader.topic.events.partition.{p}.committedOffset",
                p / 4
            ));
        }
        let found = source_metrics(&list);
        assert_eq!(found.offsets.len(), 8);
        assert!(found.offsets.iter().all(|n| n.ends_with(".currentOffset")));
        // Subtask 1 holds partitions 4..7 and has not read yet: no pendingRecords.
        assert_eq!(found.silent_subtasks(), 1);

        let shape = JobShape {
            job_id: "j".into(),
            job_name: "job".into(),
            vertices: vec![vertex("s", "Source", 2)],
            edges: Vec::new(),
            source_metrics: HashMap::from([(0, found)]),
        };
        // Back-pressured 80% of the time: the reader is behind.
        let at = |ms, pending: f64, positions: [f64; 8]| Sample {
            at_ms: ms,
            vertices: vec![VertexSample {
                read_records: 0.0,
                write_records: ms as f64,
                source_records: Some(ms as f64),
                busy_avg_ms: 100.0,
                busy_max_ms: 100.0,
                backpressure_avg_ms: 800.0,
                pending: Some(pending),
                positions: positions.to_vec(),
            }],
        };
        // Partitions 0-5 unread at first; 6 and 7 read before the window, then only 7 moves:
        // 6's lag is as old as its last read. Then partition 0 joins.
        let nan = f64::NAN;
        let first = [-1.0, -1.0, -1.0, -1.0, -1.0, -1.0, 900.0, 400.0];
        let middle = [-1.0, -1.0, -1.0, -1.0, -1.0, -1.0, 900.0, nan];
        let last = [10.0, -1.0, -1.0, -1.0, -1.0, -1.0, 900.0, 2400.0];
        let samples = [
            at(0, 400.0, first),
            at(5_000, 900.0, middle),
            at(10_000, 4300.0, last),
        ];
        let snap = summarize(&shape, &samples, None, None);
        assert_eq!(
            snap.vertices[0].backlog_partial,
            Some(PartialBacklog {
                unread_partitions: 6,
                stale_partitions: 1,
                silent_subtasks: 1
            })
        );
        // Positions are kept in recordings (a metric not served reads back as NaN).
        let json = serde_json::to_string(&samples[1]).unwrap();
        let back: Sample = serde_json::from_str(&json).unwrap();
        assert!(back.vertices[0].positions[7].is_nan());
        assert_eq!(back.vertices[0].positions[6], 900.0);

        // A reader that keeps up reads every partition with data: an empty (-1) or quiet
        // partition says nothing then.
        let keeping_up: Vec<Sample> = samples
            .iter()
            .cloned()
            .map(|mut s| {
                s.vertices[0].backpressure_avg_ms = 0.0;
                s
            })
            .collect();
        let snap = summarize(&shape, &keeping_up, None, None);
        assert_eq!(snap.vertices[0].backlog_partial, None);

        // Every partition read and moving: the backlog is whole.
        let moving = |ms, base: f64| at(ms, 100.0, [base; 8]);
        let mut whole = shape.clone();
        whole
            .source_metrics
            .get_mut(&0)
            .unwrap()
            .pending
            .push(format!("1.{op}.pendingRecords"));
        let snap = summarize(&whole, &[moving(0, 10.0), moving(10_000, 20.0)], None, None);
        assert_eq!(snap.vertices[0].backlog_partial, None);

        // The window's last poll served the backlog and the counters as NaN (a REST answer
        // gone wrong): the polls before it still give the backlog, its growth and the rates.
        let spoiled = |mut s: Sample| {
            s.vertices[0].pending = Some(f64::NAN);
            s.vertices[0].write_records = f64::NAN;
            s.vertices[0].source_records = Some(f64::NAN);
            s
        };
        let snap = summarize(
            &whole,
            &[
                moving(0, 10.0),
                moving(5_000, 15.0),
                spoiled(moving(10_000, 20.0)),
            ],
            None,
            None,
        );
        let source = &snap.vertices[0];
        assert_eq!(source.pending_records, Some(100.0));
        assert!((source.records_in_rate - 1000.0).abs() < 1e-6, "{source:?}");
    }

    #[test]
    fn a_source_without_backlog_still_finds_its_output() {
        let found = source_metrics(&names(&[
            "0.Source__datagen.numRecordsOut",
            "0.Calc.numRecordsOut",
        ]));
        assert!(found.pending.is_empty());
        assert_eq!(
            found.records_out,
            names(&["0.Source__datagen.numRecordsOut"])
        );
    }

    #[test]
    fn rates_are_measured_between_fresh_values() {
        // Fetched every 10 s, polled every 2 s: 100 records/s really.
        let series: Vec<(i64, f64)> = [
            (0, 500.0),
            (2, 500.0),
            (4, 1500.0),
            (6, 1500.0),
            (8, 1500.0),
            (10, 1500.0),
            (12, 1500.0),
            (14, 2500.0),
            (16, 2500.0),
        ]
        .iter()
        .map(|(t, v)| (t * 1000, *v))
        .collect();
        assert_eq!(change_rate(&series), Some(100.0));
        // Ends of the window when values never changed twice.
        assert_eq!(change_rate(&[(0, 1.0), (10_000, 11.0)]), Some(1.0));
        assert_eq!(change_rate(&[(0, 5.0)]), None);
        assert_eq!(change_rate(&[(0, f64::NAN), (1_000, 5.0)]), None);
    }

    #[test]
    fn window_rates_come_from_counters_and_backlog_growth_from_pending() {
        let shape = JobShape {
            job_id: "j".into(),
            job_name: "job".into(),
            vertices: vec![vertex("s", "Source", 1), vertex("w", "Work", 2)],
            edges: vec![Edge {
                from: 0,
                to: 1,
                ship: ShipStrategy::Hash,
            }],
            source_metrics: HashMap::new(),
        };
        let at = |ms, src: f64, pending: f64, read: f64, busy: f64| Sample {
            at_ms: ms,
            vertices: vec![
                VertexSample {
                    read_records: 0.0,
                    write_records: src,
                    source_records: Some(src),
                    busy_avg_ms: 10.0,
                    busy_max_ms: 10.0,
                    backpressure_avg_ms: 900.0,
                    pending: Some(pending),
                    positions: Vec::new(),
                },
                VertexSample {
                    read_records: read,
                    write_records: read,
                    source_records: None,
                    busy_avg_ms: busy,
                    busy_max_ms: busy,
                    backpressure_avg_ms: 0.0,
                    pending: None,
                    positions: Vec::new(),
                },
            ],
        };
        let samples = vec![
            at(0, 0.0, 1000.0, 0.0, 990.0),
            at(10_000, 6500.0, 4500.0, 6400.0, f64::NAN),
            at(20_000, 13_000.0, 8000.0, 12_900.0, 1000.0),
        ];
        let snap = summarize(&shape, &samples, Some(4), Some(2));
        let (s, w) = (&snap.vertices[0], &snap.vertices[1]);
        assert!(s.is_source && !w.is_source);
        assert_eq!(s.records_in_rate, 650.0);
        assert_eq!(s.pending_records, Some(8000.0));
        assert_eq!(s.backlog_growth, Some(350.0));
        // Measured between the first and last fresh values (10 s and 20 s).
        assert_eq!(w.records_in_rate, 650.0);
        assert!(
            (w.busy - 0.995).abs() < 1e-9,
            "NaN samples are skipped: {}",
            w.busy
        );
        assert!((s.backpressure - 0.9).abs() < 1e-9);
        assert_eq!(snap.available_slots, Some(4));
    }
}

/// What `analyze --record` and the plugin's `record` option write and `replay` reads: one
/// job's decision window exactly as it was polled, with the TaskManagers' memory as it was,
/// so the loop can decide on it again, deterministically, anywhere.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recording {
    /// Format version of this file.
    pub format: u32,
    pub rest: String,
    pub shape: JobShape,
    pub samples: Vec<Sample>,
    pub available_slots: Option<u32>,
    pub slots_per_taskmanager: Option<u32>,
    /// The memory plan's inputs at the end of the window (absent in older recordings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryView>,
    /// The decision window the loop ran with: how long a pool window must be to plan on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_window_ms: Option<u64>,
}

impl Recording {
    pub const FORMAT: u32 = 1;

    /// Whether the models can run on it: the format this tool reads, two samples or more,
    /// every sample with every vertex, edges between vertices of the job.
    pub fn check(&self) -> Result<(), String> {
        if self.format != Self::FORMAT {
            return Err(format!(
                "recording format {} (this tool reads {})",
                self.format,
                Self::FORMAT
            ));
        }
        if self.samples.len() < 2 {
            return Err("a window needs at least two samples".into());
        }
        let n = self.shape.vertices.len();
        if n == 0 {
            return Err("the job has no vertices".into());
        }
        if let Some((i, s)) = self
            .samples
            .iter()
            .enumerate()
            .find(|(_, s)| s.vertices.len() != n)
        {
            return Err(format!(
                "sample {} has {} vertices, the job has {n}",
                i + 1,
                s.vertices.len()
            ));
        }
        if let Some(e) = self.shape.edges.iter().find(|e| e.from >= n || e.to >= n) {
            return Err(format!(
                "edge {} -> {} names a vertex the job does not have ({n} vertices)",
                e.from, e.to
            ));
        }
        if let Some(v) = self.shape.source_metrics.keys().find(|v| **v >= n) {
            return Err(format!(
                "source metrics for vertex {v}, which the job does not have"
            ));
        }
        Ok(())
    }

    /// When the window ended: the time its decision is made at.
    pub fn end_ms(&self) -> i64 {
        self.samples.last().map_or(0, |s| s.at_ms)
    }

    pub fn snapshot(&self) -> JobSnapshot {
        summarize(
            &self.shape,
            &self.samples,
            self.available_slots,
            self.slots_per_taskmanager,
        )
    }
}

/// JSON has no NaN: a missing measurement is written as `null` and read back as NaN.
mod nan_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
        if value.is_finite() {
            serializer.serialize_f64(*value)
        } else {
            serializer.serialize_none()
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(deserializer)?.unwrap_or(f64::NAN))
    }
}
