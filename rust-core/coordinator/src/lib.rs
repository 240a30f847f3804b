//! The coordinator's I/O: the JobManager's REST API read over loopback, and windows of what
//! it says turned into the pure models' inputs ([`autotune_model::scaling::JobSnapshot`]).
//! Used by the plugin inside the JobManager and by `flink-autotune analyze` from outside.

pub mod collect;
pub mod logfollow;
pub mod memory;
pub mod outputs;
pub mod rest;
pub mod webhook;
