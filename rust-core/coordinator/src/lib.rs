//! The coordinator: the loop that decides for every job of a Flink cluster over its REST
//! API (collect → decide → plan memory → diagnose → say and write → apply), and the I/O it
//! needs. The plugin runs it inside the JobManager, `flink-autotune watch` as a process,
//! `analyze` for one round and `replay` on recordings; see [`rounds`].

pub mod announce;
pub mod brokers;
pub mod clock;
pub mod figures;
pub mod flamegraphs;
pub mod index_page;
pub mod job_diagnosis;
pub mod logfollow;
pub mod memory_step;
pub mod outputs;
pub mod page;
pub mod poller;
pub mod pools;
pub mod process_diagnosis;
pub mod recording;
pub mod rest;
pub mod rounds;
pub mod scaling_step;
pub mod settings;
pub mod shape;
pub mod sink;
pub mod slot_plan;
pub mod stop;
pub mod trouble;
pub mod webhook;

/// Now, in milliseconds since the epoch: the one clock of the loop's timestamps.
pub fn epoch_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A time as people read it: `2026-11-28T17:30:05Z` (UTC).
pub fn readable_time(epoch_ms: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(epoch_ms.max(0) as u64);
    humantime::format_rfc3339_seconds(at).to_string()
}

/// A time in a file name, sorting as it reads: `20261128T173005Z`.
pub fn file_time(epoch_ms: i64) -> String {
    readable_time(epoch_ms).replace(['-', ':'], "")
}
