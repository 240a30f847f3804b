//! The job's shape: what stays fixed within a decision window (its vertices, their
//! parallelism, the edges between them) and the source operators' metric names.

use std::collections::{BTreeSet, HashMap};

use autotune_model::scaling::{Edge, ShipStrategy};
use serde::{Deserialize, Serialize};

use crate::brokers::TopicPartition;
use crate::rest::{FlinkRest, JobDetails, RestError};

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
            // A recording is read as the REST API is: a max it cannot have is unknown.
            max_parallelism: known_max_parallelism(max_parallelism.map(i64::from), parallelism),
        }
    }
}

/// A vertex's max parallelism as far as it is known: absent (older releases), -1, or below
/// the parallelism it runs at (which Flink never allows) is unknown, not a guess.
fn known_max_parallelism(max: Option<i64>, parallelism: u32) -> Option<u32> {
    max.and_then(|m| u32::try_from(m).ok())
        .filter(|m| *m >= parallelism.max(1))
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
    /// The partition each read position is of, in `offsets`' order; `None` when a name does
    /// not parse as a Kafka reader's (`...KafkaSourceReader.topic.<t>.partition.<p>.currentOffset`)
    /// or there are none.
    pub fn partitions(&self) -> Option<Vec<TopicPartition>> {
        let parsed: Option<Vec<TopicPartition>> =
            self.offsets.iter().map(|n| partition_of(n)).collect();
        parsed.filter(|p| !p.is_empty())
    }

    /// Subtasks that hold partitions (they report read positions) but no backlog yet.
    pub fn silent_subtasks(&self) -> u32 {
        let holding: BTreeSet<&str> = self.offsets.iter().map(|n| subtask_of(n)).collect();
        let reporting: BTreeSet<&str> = self.pending.iter().map(|n| subtask_of(n)).collect();
        holding.difference(&reporting).count() as u32
    }
}

impl JobShape {
    /// The task slots the job holds: one slot sharing group, so its widest vertex.
    pub fn slots_held(&self) -> u32 {
        self.vertices
            .iter()
            .map(|v| v.parallelism)
            .max()
            .unwrap_or(0)
    }

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
                .map(|v| ShapeVertex {
                    id: v.id.clone(),
                    name: v.name.clone(),
                    parallelism: v.parallelism,
                    max_parallelism: known_max_parallelism(v.max_parallelism, v.parallelism),
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

/// The topic (which may hold dots) and partition a read position's metric name is of.
fn partition_of(name: &str) -> Option<TopicPartition> {
    let (_, rest) = name.split_once(".KafkaSourceReader.topic.")?;
    let (topic, partition) = rest
        .strip_suffix(".currentOffset")?
        .rsplit_once(".partition.")?;
    Some(TopicPartition {
        topic: topic.to_string(),
        partition: partition.parse().ok()?,
    })
}

fn subtask_of(name: &str) -> &str {
    name.split('.').next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn read_positions_name_their_topic_and_partition() {
        let found = SourceMetrics {
            offsets: names(&[
                "0.Source__Kafka.KafkaSourceReader.topic.orders.eu.partition.0.currentOffset",
                "1.Source__Kafka.KafkaSourceReader.topic.orders.eu.partition.11.currentOffset",
            ]),
            ..SourceMetrics::default()
        };
        let tp = |t: &str, p| TopicPartition {
            topic: t.into(),
            partition: p,
        };
        assert_eq!(
            found.partitions(),
            Some(vec![tp("orders.eu", 0), tp("orders.eu", 11)])
        );
        let odd = SourceMetrics {
            offsets: names(&[
                "0.Source__Kafka.KafkaSourceReader.topic.t.partition.x.currentOffset",
            ]),
            ..SourceMetrics::default()
        };
        assert_eq!(odd.partitions(), None);
        assert_eq!(SourceMetrics::default().partitions(), None);
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
}
