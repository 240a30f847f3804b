//! The recording: one job's decision window exactly as it was polled (the samples of every
//! vertex), what `analyze --record` and the plugin's `record` option write and `replay` and
//! `report` read, and its summary as the scaling model's input. Pure: no I/O.
//!
//! Rates come from cumulative counters (records read and written) over the whole window,
//! not from Flink's 60-second meters, so they are right as soon as the window is; busy and
//! back-pressured time are averaged over the window's samples; a source's backlog growth is
//! the change of its `pendingRecords` over the window.

use std::collections::BTreeMap;

use autotune_model::scaling::{JobSnapshot, PartialBacklog, VertexSnapshot};
use serde::{Deserialize, Serialize};

use crate::brokers::TopicPartition;
use crate::pools::MemoryView;
use crate::shape::{JobShape, SourceMetrics};

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
    /// Each partition's end offset at the brokers, in `positions`' order (the next offset to
    /// be written); empty when the brokers are not known or could not be read.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        with = "nan_as_null_vec"
    )]
    pub ends: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub at_ms: i64,
    pub vertices: Vec<VertexSample>,
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

/// Change per second of a cumulative counter or gauge over the window.
///
/// The REST API serves values its metric fetcher refreshed up to ~10 s earlier, all at once.
/// Polling faster than that, the first and last *changes* in the series mark when fresh
/// values arrived; measuring between them keeps the error to one poll interval instead of
/// one fetch interval. Without two changes, the window's ends are used; without any, the
/// window says nothing of the rate (`None`): the refresh fell between polls whose values were
/// spoiled, or the fetcher did not refresh it, and a flat series would read as a stop.
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
    let (a, b) = match changes.len() {
        0 => return None,
        1 => (points[0], points[points.len() - 1]),
        _ => (changes[0], changes[changes.len() - 1]),
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
            // The brokers' view, when every poll had it, replaces the reader's.
            let at_brokers = broker_backlog(shape, samples, v);
            let (pending, growth, backlog_partial) = match at_brokers {
                Some(b) => (
                    Some(b.backlog),
                    Some(b.arrival_rate - records_in_rate),
                    (b.unread_partitions > 0).then_some(PartialBacklog {
                        unread_partitions: b.unread_partitions,
                        stale_partitions: 0,
                        silent_subtasks: 0,
                    }),
                ),
                None => (pending, growth, backlog_partial),
            };
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
                arrival_rate: at_brokers.map(|b| b.arrival_rate),
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

/// A Kafka source's backlog as the brokers see it.
#[derive(Debug, Clone, Copy)]
struct BrokerBacklog {
    /// At the window's end: each partition's end offset minus the reader's next offset.
    backlog: f64,
    /// The growth of the end offsets over the window: what the producers wrote.
    arrival_rate: f64,
    /// Partitions the reader has no position in yet: their backlog is left out.
    unread_partitions: u32,
}

/// The brokers' view of source `v` over the window, when every sample has an end offset for
/// each partition it reads (a window read half from the brokers is no measurement of them).
/// End offsets are read live, not through the REST API's ~10 s refresh: the rate is the plain
/// change between the window's ends.
fn broker_backlog(shape: &JobShape, samples: &[Sample], v: usize) -> Option<BrokerBacklog> {
    let partitions = shape.source_metrics.get(&v)?.partitions()?;
    let complete = |s: &VertexSample| {
        s.ends.len() == partitions.len()
            && s.positions.len() == partitions.len()
            && s.ends.iter().all(|e| e.is_finite())
    };
    if samples.len() < 2 || !samples.iter().all(|s| complete(&s.vertices[v])) {
        return None;
    }
    // One (end, position) per partition. A partition named twice (the REST API keeps a
    // subtask's metrics of what it read before a rescale) is where the reader is furthest on:
    // positions only move forward.
    let per_partition = |s: &VertexSample| {
        let mut read: BTreeMap<&TopicPartition, (f64, f64)> = BTreeMap::new();
        for ((p, end), position) in partitions.iter().zip(&s.ends).zip(&s.positions) {
            let seen = read.entry(p).or_insert((*end, f64::NAN));
            seen.1 = seen.1.max(*position);
        }
        read
    };
    let (first, last) = (per_partition(&samples[0].vertices[v]), samples.last()?);
    let at_end = per_partition(&last.vertices[v]);
    let written =
        |read: &BTreeMap<&TopicPartition, (f64, f64)>| read.values().map(|(e, _)| e).sum::<f64>();
    let seconds = (last.at_ms - samples[0].at_ms) as f64 / 1000.0;
    if seconds <= 0.0 {
        return None;
    }
    // A position is the offset last read: the next one to read is one on.
    let read: Vec<(f64, f64)> = at_end
        .values()
        .filter(|(_, p)| p.is_finite() && *p >= 0.0)
        .copied()
        .collect();
    Some(BrokerBacklog {
        backlog: read.iter().map(|(e, p)| (e - (p + 1.0)).max(0.0)).sum(),
        arrival_rate: ((written(&at_end) - written(&first)) / seconds).max(0.0),
        unread_partitions: (at_end.len() - read.len()) as u32,
    })
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
    use std::collections::HashMap;

    use crate::shape::{source_metrics, ShapeVertex};
    use autotune_model::scaling::{Edge, ShipStrategy};

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
                    ends: Vec::new(),
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

    const KAFKA_OPERATOR: &str = "Source__Kafka_Source";

    /// A Kafka source of 2 subtasks over 8 partitions (4 each); only subtask 0 reports a
    /// backlog yet.
    fn kafka_source() -> JobShape {
        let op = KAFKA_OPERATOR;
        let mut list = vec![
            format!("0.{op}.pendingRecords"),
            format!("0.{op}.numRecordsOut"),
            format!("1.{op}.numRecordsOut"),
        ];
        for p in 0..8 {
            for offset in ["currentOffset", "committedOffset"] {
                list.push(format!(
                    "{}.{op}.KafkaSourceReader.topic.events.partition.{p}.{offset}",
                    p / 4
                ));
            }
        }
        JobShape {
            job_id: "j".into(),
            job_name: "job".into(),
            vertices: vec![vertex("s", "Source", 2)],
            edges: Vec::new(),
            source_metrics: HashMap::from([(0, source_metrics(&list))]),
        }
    }

    /// A poll of the source while it is back-pressured 80% of the time: the reader is behind.
    fn behind(ms: i64, pending: f64, positions: [f64; 8]) -> Sample {
        Sample {
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
                ends: Vec::new(),
            }],
        }
    }

    /// The same source with every subtask reporting its backlog.
    fn whole_kafka_source() -> JobShape {
        let mut whole = kafka_source();
        let metrics = whole.source_metrics.get_mut(&0).unwrap();
        metrics
            .pending
            .push(format!("1.{KAFKA_OPERATOR}.pendingRecords"));
        whole
    }

    #[test]
    fn a_kafka_backlog_that_leaves_partitions_or_subtasks_out_is_partial() {
        let shape = kafka_source();
        let found = &shape.source_metrics[&0];
        assert_eq!(found.offsets.len(), 8);
        assert!(found.offsets.iter().all(|n| n.ends_with(".currentOffset")));
        // Subtask 1 holds partitions 4..7 and has not read yet: no pendingRecords.
        assert_eq!(found.silent_subtasks(), 1);

        // Partitions 0-5 unread at first; 6 and 7 read before the window, then only 7 moves:
        // 6's lag is as old as its last read. Then partition 0 joins.
        let nan = f64::NAN;
        let first = [-1.0, -1.0, -1.0, -1.0, -1.0, -1.0, 900.0, 400.0];
        let middle = [-1.0, -1.0, -1.0, -1.0, -1.0, -1.0, 900.0, nan];
        let last = [10.0, -1.0, -1.0, -1.0, -1.0, -1.0, 900.0, 2400.0];
        let samples = [
            behind(0, 400.0, first),
            behind(5_000, 900.0, middle),
            behind(10_000, 4300.0, last),
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
    }

    /// The same partial picture as above, with the brokers' end offsets in every poll: the
    /// backlog is end offsets minus positions, arrivals the growth of the end offsets (what the
    /// producers wrote, whatever the reader did), and the partitions not read yet are the only
    /// part left out. One poll without the brokers and the window is the reader's again.
    #[test]
    fn a_window_read_from_the_brokers_has_the_true_backlog_and_arrivals() {
        let shape = kafka_source();
        let at_brokers = |ms: i64, positions: [f64; 8], written: f64| {
            let mut s = behind(ms, 50.0, positions);
            // 8 partitions, each 1000 records long at first, 300 records/s in all arriving.
            s.vertices[0].ends = vec![1000.0 + written / 8.0; 8];
            s
        };
        let first = [-1.0, 99.0, 99.0, 99.0, 99.0, 99.0, 99.0, 99.0];
        let last = [-1.0, 199.0, 199.0, 199.0, 199.0, 199.0, 199.0, 599.0];
        let samples = [
            at_brokers(0, first, 0.0),
            at_brokers(5_000, first, 1_500.0),
            at_brokers(10_000, last, 3_000.0),
        ];
        let snap = summarize(&shape, &samples, None, None);
        let source = &snap.vertices[0];
        assert_eq!(source.arrival_rate, Some(300.0));
        // Each partition ends at 1375: 6 partitions read to 199 and one to 599; one unread.
        assert_eq!(
            source.pending_records,
            Some(6.0 * (1375.0 - 200.0) + (1375.0 - 600.0))
        );
        assert_eq!(
            source.backlog_partial,
            Some(PartialBacklog {
                unread_partitions: 1,
                stale_partitions: 0,
                silent_subtasks: 0
            })
        );
        // Arrivals are taken from the brokers: the model's arrival is theirs.
        assert_eq!(
            source.records_in_rate + source.backlog_growth.unwrap(),
            300.0
        );
        let json = serde_json::to_string(&samples[2]).unwrap();
        assert_eq!(serde_json::from_str::<Sample>(&json).unwrap(), samples[2]);

        let mut half_read = samples.clone();
        half_read[1].vertices[0].ends.clear();
        let snap = summarize(&shape, &half_read, None, None);
        assert_eq!(snap.vertices[0].arrival_rate, None);
        assert_eq!(
            snap.vertices[0].pending_records,
            Some(50.0),
            "the reader's pendingRecords"
        );
    }

    /// Seen on a real cluster after the source went from 1 to 2 subtasks in place: the REST API
    /// kept subtask 0's metrics of the 4 partitions subtask 1 took over, so 12 names for 8
    /// partitions. Each partition counts once, where the reader is furthest on.
    #[test]
    fn a_partition_named_twice_after_a_rescale_counts_once_where_it_was_read_furthest() {
        let mut shape = kafka_source();
        let metrics = shape.source_metrics.get_mut(&0).unwrap();
        for p in 4..8 {
            metrics.offsets.push(format!(
                "0.{KAFKA_OPERATOR}.KafkaSourceReader.topic.events.partition.{p}.currentOffset"
            ));
        }
        let poll = |ms: i64, live: f64, written: f64| {
            let mut s = behind(ms, 50.0, [live; 8]);
            // The stale names of partitions 4-7 hold the positions from before the rescale.
            s.vertices[0].positions.extend([9.0; 4]);
            s.vertices[0].ends = vec![1000.0 + written / 8.0; 12];
            s
        };
        let samples = [poll(0, 99.0, 0.0), poll(10_000, 199.0, 3_000.0)];
        let source = &summarize(&shape, &samples, None, None).vertices[0];
        assert_eq!(source.arrival_rate, Some(300.0), "not 450/s");
        assert_eq!(source.pending_records, Some(8.0 * (1375.0 - 200.0)));
        assert_eq!(source.backlog_partial, None);
    }

    #[test]
    fn a_kafka_backlog_of_every_partition_read_and_moving_is_whole() {
        let moving = |ms, base: f64| behind(ms, 100.0, [base; 8]);
        let snap = summarize(
            &whole_kafka_source(),
            &[moving(0, 10.0), moving(10_000, 20.0)],
            None,
            None,
        );
        assert_eq!(snap.vertices[0].backlog_partial, None);
    }

    /// The window's last poll served the backlog and the counters as NaN (a REST answer gone
    /// wrong): the polls before it still give the backlog, its growth and the rates.
    #[test]
    fn a_spoiled_last_poll_costs_the_window_neither_its_backlog_nor_its_rates() {
        let moving = |ms, base: f64| behind(ms, 100.0, [base; 8]);
        let spoiled = |mut s: Sample| {
            s.vertices[0].pending = Some(f64::NAN);
            s.vertices[0].write_records = f64::NAN;
            s.vertices[0].source_records = Some(f64::NAN);
            s
        };
        let snap = summarize(
            &whole_kafka_source(),
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

    /// The source's own counter was spoiled (NaN) at every poll after its refresh, so it shows
    /// no change while the job's counters show records going out: the source reads what it
    /// sends, not nothing (it was read as stalled, and Work's plan as 1).
    #[test]
    fn a_source_counter_seen_flat_between_spoiled_polls_is_not_a_stop() {
        let moving = |ms, base: f64| behind(ms, 100.0, [base; 8]);
        let flat = |mut s: Sample, value: f64| {
            s.vertices[0].source_records = Some(value);
            s
        };
        let snap = summarize(
            &whole_kafka_source(),
            &[
                flat(moving(0, 10.0), 0.0),
                flat(moving(5_000, 15.0), 0.0),
                flat(moving(10_000, 20.0), f64::NAN),
            ],
            None,
            None,
        );
        let source = &snap.vertices[0];
        assert!((source.records_in_rate - 1000.0).abs() < 1e-6, "{source:?}");
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
        assert_eq!(
            change_rate(&[(0, 5.0), (10_000, 5.0)]),
            None,
            "no change seen"
        );
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
                    ends: Vec::new(),
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
                    ends: Vec::new(),
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
