//! Diagnosis of one Flink process's own log: the log file is followed, what it writes is
//! matched against the catalogue, and each finding is due once (then again with its count at
//! most every `diagnosis-repeat`). A TaskManager runs [`follow`] on a thread of its own; in
//! the JobManager the coordinator's rounds drive it, next to the jobs' exceptions.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use autotune_model::diagnosis::logtext::Record;
use autotune_model::diagnosis::{Catalogue, Context, Diagnoser, Finding, FlinkVersion, Process};
use autotune_model::memory;

use crate::announce::Announcer;
use crate::epoch_ms;
use crate::logfollow::LogFollower;
use crate::stop::StopFlag;

/// At most this much of the log is read per tick: a flood is read over several ticks (or
/// skipped), never all at once.
pub const MAX_READ_PER_TICK: u64 = 1024 * 1024;

/// How often a TaskManager looks at its log.
pub const TICK: Duration = Duration::from_secs(2);

/// What a TaskManager measures about its own heap, for the diagnosis's values:
/// `(JVM heap now, JVM heap its live data needs or 0 when not under pressure)`, bytes.
/// Written by the reporter each round.
pub type MeasuredHeap = Arc<Mutex<Option<(u64, u64)>>>;

/// What a tick of the log found: the findings due, and the records that name a job the caller
/// follows (a checkpoint of that job declined, say), for that job's own diagnosis.
pub struct Tick {
    pub due: Vec<Finding>,
    pub of_jobs: Vec<(String, Record)>,
}

/// A record of the JobManager's log that tells a job's checkpoint failure with its cause (a
/// checkpoint declined by a task, with the task's trace): it names the job and carries a trace.
/// The job's REST history gives only the failure's reason; the job's own failures (its change
/// of state, its terminal state) are read from its exceptions, with the job's context.
fn job_named_in<'j>(record: &Record, jobs: &[&'j str]) -> Option<&'j str> {
    if record.chain.is_empty() || !record.message.to_ascii_lowercase().contains("checkpoint") {
        return None;
    }
    jobs.iter().find(|j| record.message.contains(**j)).copied()
}

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
    /// `process` names it in every line (`jobmanager`, `taskmanager`).
    pub fn new(
        log_file: std::path::PathBuf,
        catalogue: Arc<Catalogue>,
        process: &str,
        version: Option<FlinkVersion>,
        repeat: Duration,
        measured: Option<MeasuredHeap>,
    ) -> Self {
        let name = log_file
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        ProcessDiagnostics {
            scope: format!("process={process} log={name}"),
            follower: LogFollower::new(log_file),
            diagnoser: Diagnoser::new(catalogue),
            ctx: Context {
                version,
                process: Process::from_name(process),
                ..Context::default()
            },
            repeat,
            measured,
        }
    }

    /// The task heap this TaskManager has and the one its live data needs, from its own
    /// measurements.
    fn refresh_measured(&mut self) {
        let Some((heap, need)) = self
            .measured
            .as_ref()
            .and_then(|m| *m.lock().unwrap_or_else(|p| p.into_inner()))
        else {
            return;
        };
        let key = "taskmanager.memory.task.heap.size";
        let task_heap = memory::task_heap_of(heap, &self.ctx.config);
        self.ctx
            .config
            .entry(key.into())
            .or_insert_with(|| memory::size(task_heap));
        if need > heap {
            let needed = memory::task_heap_of(need, &self.ctx.config);
            self.ctx.plan.insert(key.into(), memory::size(needed));
        } else {
            self.ctx.plan.remove(key);
        }
    }

    fn observe(&mut self, record: &Record) {
        let source = self.log_name();
        self.refresh_measured();
        self.diagnoser
            .observe_log(record, source.as_deref(), &mut self.ctx);
    }

    /// Reads what the log gained; returns the findings due to be said (the caller says them,
    /// unless it said them already with more context) and the records that name one of `jobs`.
    pub fn tick(&mut self, now_ms: i64, announcer: &Announcer, jobs: &[&str]) -> Tick {
        let mut of_jobs = Vec::new();
        match self.follower.poll(MAX_READ_PER_TICK) {
            Ok(polled) => {
                if polled.skipped > 0 {
                    announcer.warn(&format!(
                        "AUTOTUNE DIAGNOSIS the log grows faster than it is read: skipped {} MiB of {}",
                        polled.skipped >> 20,
                        self.follower.path().display()
                    ));
                }
                for record in polled.records {
                    self.observe(&record);
                    if let Some(job) = job_named_in(&record, jobs) {
                        of_jobs.push((job.to_string(), record));
                    }
                }
            }
            Err(e) => log::debug!(
                "AUTOTUNE DIAGNOSIS cannot read {}: {e}",
                self.follower.path().display()
            ),
        }
        if self.diagnoser.first_overflow() {
            announcer.overflow(&self.scope);
        }
        Tick {
            due: self.due(now_ms),
            of_jobs,
        }
    }

    /// What this process's log taught about the cluster (its release, its configuration).
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// The log's file name, where its findings were seen.
    pub fn log_name(&self) -> Option<String> {
        self.follower
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
    }

    /// At the end of the process: what the log gained since the last tick, what is still
    /// held, then what is due.
    pub fn flush(&mut self, now_ms: i64) -> Vec<Finding> {
        if let Ok(polled) = self.follower.poll(MAX_READ_PER_TICK) {
            for record in &polled.records {
                self.observe(record);
            }
        }
        for record in self.follower.flush() {
            self.observe(&record);
        }
        self.due(now_ms)
    }

    fn due(&mut self, now_ms: i64) -> Vec<Finding> {
        self.diagnoser.due(now_ms, self.repeat)
    }

    pub fn scope(&self) -> &str {
        &self.scope
    }
}

/// A process without a coordinator (a TaskManager) follows its log until stopped; stopping
/// reads the log one last time, so a failure logged just before the process ends is said.
pub fn follow(mut process: ProcessDiagnostics, mut announcer: Announcer, stop: &StopFlag) {
    announcer.info(&format!("AUTOTUNE DIAGNOSIS following {}", process.scope()));
    loop {
        let ticked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // A TaskManager's log is its own: no job's diagnosis to hand records to.
            process.tick(epoch_ms(), &announcer, &[]).due
        }));
        match ticked {
            Ok(found) => say_all(&process, found, &mut announcer),
            Err(_) => announcer
                .warn("AUTOTUNE DIAGNOSIS a tick panicked (see the native panic above); going on"),
        }
        announcer.flush(epoch_ms());
        if !stop.sleep(TICK) {
            break;
        }
    }
    if let Ok(found) =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| process.flush(epoch_ms())))
    {
        say_all(&process, found, &mut announcer);
    }
    announcer.flush_now(epoch_ms());
}

fn say_all(process: &ProcessDiagnostics, found: Vec<Finding>, announcer: &mut Announcer) {
    for d in &found {
        announcer.finding(process.scope(), d);
    }
}
