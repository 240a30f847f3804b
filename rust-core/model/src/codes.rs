//! Stable codes: what users grep for and dashboards count. Released codes never change
//! meaning; the README's table lists them all.

use std::fmt;

use serde::{Serialize, Serializer};

/// Stable codes of every decision and finding (grep for them; dashboards count them).
/// AT1xx: parallelism; AT2xx: memory pools; AT3xx: known failures (the diagnosis
/// catalogue, data: `diagnosis/catalogue.toml`); AT4xx: the checkpoint advisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Code {
    /// AT100: the job's plan: every vertex's parallelism, changed or not.
    Plan,
    /// AT101: more parallelism needed.
    ScaleUp,
    /// AT103: the plan was applied in place (adaptive scheduler).
    Applied,
    /// AT104: the plan cannot be applied in place; it stays a recommendation.
    ApplyUnavailable,
    /// AT102: less parallelism suffices.
    ScaleDown,
    /// AT110: the vertex that limits the job now.
    Bottleneck,
    /// AT111: the bottleneck's flame graph was written: the file and the code that burns the time.
    FlameGraph,
    /// AT120: the hottest subtask is saturated while the others are not.
    DataSkew,
    /// AT121: the last scale-up bought too little at the parallelism it reached, or the next
    /// one would by how the vertex was seen to scale: something outside limits it.
    ExternalBottleneck,
    /// AT122: a source without a backlog metric: its arrival rate is only what it consumed.
    NoBacklogMetric,
    /// AT123: the vertex cannot go wider (partitions, key groups or its limit).
    ParallelismBound,
    /// AT124: the recommendation needs more task slots than the cluster has.
    SlotsShort,
    /// AT125: a scale-down waits for its delay.
    ScaleDownDelayed,
    /// AT126: a source with a backlog reads nothing: stalled, not idle.
    SourceStalled,
    /// AT127: a source's backlog metric leaves out partitions not read yet or not during the
    /// window, or subtasks that report none yet.
    BacklogPartial,
    /// AT128: a session cluster's jobs need more task slots in all than the cluster has.
    ClusterSlotsShort,
    /// AT129: jobs rescaling in place ask for more task slots than are free: who gets what.
    ClusterSlotPlan,
    /// AT130: where a Kafka source's backlog and arrivals come from: the brokers' end offsets,
    /// or the reader's `pendingRecords` (and why), said when it changes.
    BacklogSource,
    /// AT131: the Kafka brokers cannot be read (unreachable, credentials, a topic gone, a
    /// partition added, too slow): backlogs fall back to `pendingRecords`.
    KafkaUnreadable,
    /// AT132: an applied rescale's downtime, from the request until the job ran again, and the
    /// job's estimate that the next decisions count.
    RescaleDowntime,
    /// AT133: a scale-up to catch up that would not drain the backlog sooner once its downtime
    /// is counted: not made.
    RescaleNotWorth,
    /// AT134: a scale-up that did not raise the rate as expected is given back to the smallest
    /// parallelism that would have done as much.
    GiveBack,
    /// AT135: an applied rescale made the job worse (it failed over again and again, or did not
    /// run at its new shape in time): rolled back to the parallelism that worked, and held there.
    RolledBack,
    /// AT136: a quiet window holds an apply back: the decision stays a recommendation.
    QuietWindow,
    /// AT137: a slot quota (the job's or the cluster's) caps the recommendation.
    SlotQuota,
    /// AT200: the TaskManager memory plan: process size and every `taskmanager.memory.*` key.
    MemoryPlan,
    /// AT201: one pool, current -> recommended, with the measurements behind it.
    MemoryPool,
    /// AT202: the heap is too small (live data near its maximum, or GC eats the time).
    HeapPressure,
    /// AT203: metaspace is nearly full.
    MetaspacePressure,
    /// AT204: the recommended parallelism needs more network memory than the TaskManagers have.
    NetworkForParallelism,
    /// AT205: managed memory is reserved and nothing uses it.
    ManagedUnused,
    /// AT206: direct (off-heap) memory is nearly exhausted.
    DirectPressure,
    /// AT207: no TaskManager measurements yet (the plugin is missing there, or no window yet).
    MemoryNotMeasured,
    /// AT400: checkpoints take longer than the interval between them.
    CheckpointSlowerThanInterval,
    /// AT401: checkpoints come close to their timeout.
    CheckpointNearTimeout,
    /// AT402: barriers wait behind back-pressured buffers (alignment dominates).
    CheckpointBackpressured,
    /// AT403: the state on the heap backend keeps growing.
    HeapStateGrowing,
    /// AT404: checkpoints fail for a reason the catalogue does not know.
    CheckpointFailing,
}

impl Code {
    pub fn code(self) -> &'static str {
        match self {
            Code::Plan => "AT100",
            Code::ScaleUp => "AT101",
            Code::Applied => "AT103",
            Code::ApplyUnavailable => "AT104",
            Code::ScaleDown => "AT102",
            Code::Bottleneck => "AT110",
            Code::FlameGraph => "AT111",
            Code::DataSkew => "AT120",
            Code::ExternalBottleneck => "AT121",
            Code::NoBacklogMetric => "AT122",
            Code::ParallelismBound => "AT123",
            Code::SlotsShort => "AT124",
            Code::ScaleDownDelayed => "AT125",
            Code::SourceStalled => "AT126",
            Code::BacklogPartial => "AT127",
            Code::ClusterSlotsShort => "AT128",
            Code::ClusterSlotPlan => "AT129",
            Code::BacklogSource => "AT130",
            Code::KafkaUnreadable => "AT131",
            Code::RescaleDowntime => "AT132",
            Code::RescaleNotWorth => "AT133",
            Code::GiveBack => "AT134",
            Code::RolledBack => "AT135",
            Code::QuietWindow => "AT136",
            Code::SlotQuota => "AT137",
            Code::MemoryPlan => "AT200",
            Code::MemoryPool => "AT201",
            Code::HeapPressure => "AT202",
            Code::MetaspacePressure => "AT203",
            Code::NetworkForParallelism => "AT204",
            Code::ManagedUnused => "AT205",
            Code::DirectPressure => "AT206",
            Code::MemoryNotMeasured => "AT207",
            Code::CheckpointSlowerThanInterval => "AT400",
            Code::CheckpointNearTimeout => "AT401",
            Code::CheckpointBackpressured => "AT402",
            Code::HeapStateGrowing => "AT403",
            Code::CheckpointFailing => "AT404",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Code::Plan => "PLAN",
            Code::ScaleUp => "SCALE_UP",
            Code::Applied => "APPLIED",
            Code::ApplyUnavailable => "APPLY_UNAVAILABLE",
            Code::ScaleDown => "SCALE_DOWN",
            Code::Bottleneck => "BOTTLENECK",
            Code::FlameGraph => "FLAMEGRAPH",
            Code::DataSkew => "DATA_SKEW",
            Code::ExternalBottleneck => "EXTERNAL_BOTTLENECK",
            Code::NoBacklogMetric => "NO_BACKLOG_METRIC",
            Code::ParallelismBound => "PARALLELISM_BOUND",
            Code::SlotsShort => "SLOTS_SHORT",
            Code::ScaleDownDelayed => "SCALE_DOWN_DELAYED",
            Code::SourceStalled => "SOURCE_STALLED",
            Code::BacklogPartial => "BACKLOG_PARTIAL",
            Code::ClusterSlotsShort => "CLUSTER_SLOTS_SHORT",
            Code::ClusterSlotPlan => "CLUSTER_SLOT_PLAN",
            Code::BacklogSource => "BACKLOG_SOURCE",
            Code::KafkaUnreadable => "KAFKA_UNREADABLE",
            Code::RescaleDowntime => "RESCALE_DOWNTIME",
            Code::RescaleNotWorth => "RESCALE_NOT_WORTH",
            Code::GiveBack => "GIVE_BACK",
            Code::RolledBack => "ROLLED_BACK",
            Code::QuietWindow => "QUIET_WINDOW",
            Code::SlotQuota => "SLOT_QUOTA",
            Code::MemoryPlan => "MEMORY_PLAN",
            Code::MemoryPool => "MEMORY_POOL",
            Code::HeapPressure => "HEAP_PRESSURE",
            Code::MetaspacePressure => "METASPACE_PRESSURE",
            Code::NetworkForParallelism => "NETWORK_FOR_PARALLELISM",
            Code::ManagedUnused => "MANAGED_UNUSED",
            Code::DirectPressure => "DIRECT_PRESSURE",
            Code::MemoryNotMeasured => "MEMORY_NOT_MEASURED",
            Code::CheckpointSlowerThanInterval => "CHECKPOINT_SLOWER_THAN_INTERVAL",
            Code::CheckpointNearTimeout => "CHECKPOINT_NEAR_TIMEOUT",
            Code::CheckpointBackpressured => "CHECKPOINT_BACKPRESSURED",
            Code::HeapStateGrowing => "HEAP_STATE_GROWING",
            Code::CheckpointFailing => "CHECKPOINT_FAILING",
        }
    }
}

impl Serialize for Code {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code(), self.name())
    }
}

/// A finding: a code and a sentence a person can act on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub code: Code,
    pub message: String,
}
