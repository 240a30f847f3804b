//! Diagnosis inside every Flink process: the process follows its own log file, matches what
//! it writes against the catalogue, and says each finding once (then again with its count
//! at most every `diagnosis-repeat`), to the log and, when configured, to the webhook.
//! In a TaskManager this runs on a thread of its own; in the JobManager the coordinator
//! drives it, next to the jobs' exceptions and checkpoints.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use autotune_coordinator::logfollow::LogFollower;
use autotune_coordinator::webhook::Webhook;
use autotune_model::diagnosis::logtext::Record;
use autotune_model::diagnosis::{Catalogue, Context, Diagnoser, Diagnosis, Severity};
use autotune_model::memory;
use autotune_model::options::Options;

/// At most this much of the log is read per tick: a flood is read over several ticks (or
/// skipped), never all at once.
pub const MAX_READ_PER_TICK: u64 = 1024 * 1024;
/// Webhook posts give up after this long.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(3);

/// The built-in catalogue plus the user's file. A bad file is said once and left out.
pub fn catalogue(options: &Options) -> Arc<Catalogue> {
    let Some(path) = &options.diagnosis_catalogue else {
        return Arc::new(Catalogue::builtin());
    };
    let loaded = std::fs::read_to_string(path)
        .map_err(|e| e.to_string())
        .and_then(|text| Catalogue::builtin_with(&text).map_err(|e| e.to_string()));
    Arc::new(match loaded {
        Ok(catalogue) => {
            log::info!(
                "AUTOTUNE CONFIG diagnosis catalogue {} loaded: {} signatures in all",
                path.display(),
                catalogue.signatures.len()
            );
            catalogue
        }
        Err(e) => {
            log::warn!(
                    "AUTOTUNE CONFIG metrics.reporter.autotune.diagnosis-catalogue: {}: {e}; using the built-in catalogue",
                    path.display()
                );
            Catalogue::builtin()
        }
    })
}

pub fn webhook(options: &Options) -> Option<Webhook> {
    options
        .webhook_url
        .clone()
        .map(|url| Webhook::new(url, options.webhook_interval, WEBHOOK_TIMEOUT))
}

/// Said once per diagnoser when it is full.
pub fn say_overflow(scope: &str) {
    log::warn!(
        "AUTOTUNE DIAGNOSIS {scope}: more than {} distinct findings; new ones are counted, not said",
        autotune_model::diagnosis::findings::MAX_FINDINGS
    );
}

/// Logs a finding: a warning when it is an error or worse.
pub fn say(finding: &Diagnosis, scope: &str) {
    let line = finding.log_line(scope);
    if finding.severity >= Severity::Error {
        log::warn!("{line}");
    } else {
        log::info!("{line}");
    }
}

/// What a TaskManager measures about its own heap, for the diagnosis's values:
/// `(JVM heap now, JVM heap its live data needs or 0 when not under pressure)`, bytes.
/// Written by the reporter each round.
pub type MeasuredHeap = Arc<Mutex<Option<(u64, u64)>>>;

/// Flink's default framework heap: the part of the JVM heap that is not the task heap.
const FRAMEWORK_HEAP_DEFAULT: u64 = 128 << 20;

/// This process's own log, followed and diagnosed.
pub struct ProcessDiagnostics {
    follower: LogFollower,
    diagnoser: Diagnoser,
    ctx: Context,
    scope: String,
    repeat: Duration,
    measured: Option<MeasuredHeap>,
}

impl ProcessDiagnostics {
    /// `None` when there is no log file to follow (Flink logs to the console only).
    pub fn new(
        options: &Options,
        catalogue: Arc<Catalogue>,
        process: &str,
        measured: Option<MeasuredHeap>,
    ) -> Option<Self> {
        let path = options.log_file.clone()?;
        Some(ProcessDiagnostics {
            scope: format!(
                "process={process} log={}",
                path.file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
            ),
            follower: LogFollower::new(path),
            diagnoser: Diagnoser::new(catalogue),
            ctx: Context {
                version: options.flink_version,
                ..Context::default()
            },
            repeat: options.diagnosis_repeat,
            measured,
        })
    }

    /// The task heap this TaskManager has and the one its live data needs, from its own
    /// measurements (framework heap as configured, else Flink's default).
    fn refresh_measured(&mut self) {
        let Some((heap, need)) = self
            .measured
            .as_ref()
            .and_then(|m| *m.lock().unwrap_or_else(|p| p.into_inner()))
        else {
            return;
        };
        let framework = self
            .ctx
            .config
            .get("taskmanager.memory.framework.heap.size")
            .and_then(|v| memory::parse_size(v))
            .unwrap_or(FRAMEWORK_HEAP_DEFAULT);
        let key = "taskmanager.memory.task.heap.size";
        self.ctx
            .config
            .entry(key.into())
            .or_insert_with(|| memory::size(heap.saturating_sub(framework)));
        if need > heap {
            self.ctx
                .plan
                .insert(key.into(), memory::size(need.saturating_sub(framework)));
        } else {
            self.ctx.plan.remove(key);
        }
    }

    fn observe(&mut self, record: &Record) {
        let source = self
            .follower
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        self.refresh_measured();
        self.diagnoser
            .observe_log(record, source.as_deref(), &mut self.ctx);
    }

    /// Reads what the log gained; returns the findings due to be said (the caller says them,
    /// unless it said them already with more context).
    pub fn tick(&mut self, now_ms: u64) -> Vec<Diagnosis> {
        match self.follower.poll(MAX_READ_PER_TICK) {
            Ok(polled) => {
                if polled.skipped > 0 {
                    log::warn!(
                        "AUTOTUNE DIAGNOSIS the log grows faster than it is read: skipped {} MiB of {}",
                        polled.skipped >> 20,
                        self.follower.path().display()
                    );
                }
                for record in &polled.records {
                    self.observe(record);
                }
            }
            Err(e) => log::debug!(
                "AUTOTUNE DIAGNOSIS cannot read {}: {e}",
                self.follower.path().display()
            ),
        }
        if self.diagnoser.first_overflow() {
            say_overflow(&self.scope);
        }
        self.diagnoser.due(now_ms, self.repeat.as_millis() as u64)
    }

    /// At the end of the process: what the log gained since the last tick, what is still
    /// held, then what is due.
    pub fn flush(&mut self, now_ms: u64) -> Vec<Diagnosis> {
        if let Ok(polled) = self.follower.poll(MAX_READ_PER_TICK) {
            for record in &polled.records {
                self.observe(record);
            }
        }
        for record in self.follower.flush() {
            self.observe(&record);
        }
        self.diagnoser.due(now_ms, self.repeat.as_millis() as u64)
    }

    pub fn scope(&self) -> &str {
        &self.scope
    }
}

/// How often a TaskManager looks at its log.
pub const TICK: Duration = Duration::from_secs(2);

fn now_ms() -> u64 {
    crate::coordinator::now_ms().max(0) as u64
}

/// A TaskManager's diagnosis thread. Stopping it reads the log one last time, so a failure
/// logged just before the process ends is still said.
pub struct DiagnosisThread {
    shared: Arc<crate::coordinator::Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DiagnosisThread {
    pub fn start(
        mut process: ProcessDiagnostics,
        mut webhook: Option<Webhook>,
    ) -> std::io::Result<Self> {
        let shared = crate::coordinator::Shared::new();
        let for_thread = shared.clone();
        let thread = std::thread::Builder::new().name("flink-autotune-diagnosis".into()).spawn(move || {
            log::info!("AUTOTUNE DIAGNOSIS following {}", process.scope());
            let say_all = |found: Vec<Diagnosis>, scope: &str, webhook: &mut Option<Webhook>| {
                for d in found {
                    say(&d, scope);
                    if let Some(w) = webhook.as_mut() {
                        w.push(scope, d);
                    }
                }
                if let Some(w) = webhook.as_mut() {
                    w.flush(now_ms());
                }
            };
            loop {
                let ticked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| process.tick(now_ms())));
                match ticked {
                    Ok(found) => say_all(found, process.scope(), &mut webhook),
                    Err(_) => log::warn!("AUTOTUNE DIAGNOSIS a tick panicked (see the native panic above); going on"),
                }
                if !for_thread.sleep(TICK) {
                    break;
                }
            }
            if let Ok(found) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| process.flush(now_ms()))) {
                say_all(found, process.scope(), &mut webhook);
            }
        })?;
        Ok(DiagnosisThread {
            shared,
            thread: Some(thread),
        })
    }

    pub fn stop(mut self) {
        self.shared.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
