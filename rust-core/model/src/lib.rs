//! The pure core of flink-autotune.
//!
//! Everything here is a function of its inputs: metric identities and values go in,
//! structured state and findings come out. Nothing touches JNI, files, sockets or
//! clocks, so the same code runs inside Flink (through the `flink-autotune-jni`
//! crate), in the command-line tool and in plain unit tests.

pub mod codes;
pub mod diagnosis;
pub mod duration;
pub mod memory;
pub mod metrics;
pub mod options;
pub mod profile;
pub mod quiet;
pub mod scaling;
pub mod slots;
pub mod text;
pub mod tracker;
pub mod window;

/// Version of the native core, reported next to the Java plugin's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
