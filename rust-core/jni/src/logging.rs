//! Rust `log` records go to the shim's SLF4J logger, so they land in Flink's log files
//! with Flink's log configuration. The level in force comes from SLF4J with every report.

use autotune_model::text::one_line;
use jni::sys::jint;
use log::{LevelFilter, Log, Metadata, Record};

struct JavaLogger;

static LOGGER: JavaLogger = JavaLogger;

pub fn install() {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(LevelFilter::Info);
    }
}

/// The numbering shared with the shim: 0 off, 1 error, 2 warn, 3 info, 4 debug, 5 trace.
pub fn set_level(level: jint) {
    log::set_max_level(match level {
        i32::MIN..=0 => LevelFilter::Off,
        1 => LevelFilter::Error,
        2 => LevelFilter::Warn,
        3 => LevelFilter::Info,
        4 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    });
}

impl Log for JavaLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if self.enabled(record.metadata()) {
            // One record stays one line, whatever names or messages it carries.
            crate::bridge::log_to_java(
                record.level() as i32,
                record.target(),
                &one_line(&record.args().to_string()),
            );
        }
    }

    fn flush(&self) {}
}
