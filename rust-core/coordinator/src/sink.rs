//! Where the loop's lines go: the host decides (the Flink log in the plugin, stdout in
//! `flink-autotune watch`, memory in tests).

use std::sync::{Arc, Mutex};

use log::Level;

/// A host's destination for `AUTOTUNE` lines.
pub trait Sink: Send + Sync {
    fn say(&self, level: Level, line: &str);
}

/// To the `log` crate: inside Flink the shim's SLF4J logger, so Flink's own log files.
pub struct LogSink;

impl Sink for LogSink {
    fn say(&self, level: Level, line: &str) {
        log::log!(level, "{line}");
    }
}

/// Keeps every line (for tests and for hosts that print at the end).
#[derive(Default)]
pub struct MemorySink {
    lines: Mutex<Vec<(Level, String)>>,
}

impl MemorySink {
    pub fn new() -> Arc<Self> {
        Arc::new(MemorySink::default())
    }

    /// Every line said so far, oldest first.
    pub fn lines(&self) -> Vec<String> {
        self.lock().iter().map(|(_, l)| l.clone()).collect()
    }

    /// The lines said so far, taken out.
    pub fn take(&self) -> Vec<String> {
        self.lock().drain(..).map(|(_, l)| l).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Level, String)>> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Sink for MemorySink {
    fn say(&self, level: Level, line: &str) {
        self.lock().push((level, line.to_string()));
    }
}
