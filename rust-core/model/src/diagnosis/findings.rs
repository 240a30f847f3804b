//! Findings over time: the same failure seen again is one finding with a count, and what is
//! due to be said (new findings, and repeats at most once per interval) is handed out once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::checkpoints::Advice;
use super::logtext::Record;
use super::matcher::{self, Match, Origin};
use super::signatures::{Catalogue, Signature};
use super::suggest::{self, Context, Process, Suggestion};
use super::{FlinkVersion, Severity};

/// At most this many distinct findings are kept; more are counted, not stored.
pub const MAX_FINDINGS: usize = 256;

/// One finding: a known failure (or a root cause) with everything a person needs to act.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub code: String,
    pub name: String,
    pub severity: Severity,
    pub title: String,
    /// How often it was seen.
    pub count: u64,
    /// The first line that showed it.
    pub evidence: String,
    /// Where: `file:line`, or the REST source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<String>,
    /// The wrapper it was found under, or the root cause under a wrapper.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    pub wrapper: bool,
    pub cause: String,
    pub fix: String,
    /// The config changes, concrete, spelled for the version.
    pub config: Vec<Suggestion>,
    pub docs: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fixed_in: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flink_version: Option<FlinkVersion>,
    /// The process it happened in: its keys are spelled for it.
    pub process: Process,
    /// Count when it was last handed out to be said; 0: never.
    #[serde(skip)]
    said_count: u64,
    /// When it was last handed out, epoch ms.
    #[serde(skip)]
    said_at_ms: i64,
}

impl Finding {
    fn from_match(m: &Match<'_>, catalogue: &Catalogue, ctx: &Context) -> Finding {
        let (name, severity, title, wrapper, cause, fix, docs, fixed_in, config) =
            match (m.signature, m.builtin) {
                (Some(s), _) => (
                    s.name.clone(),
                    s.severity,
                    s.title.clone(),
                    s.wrapper,
                    s.cause.clone(),
                    match (&s.jobmanager_fix, ctx.process) {
                        (Some(fix), Process::JobManager) => fix.clone(),
                        _ => s.fix.clone(),
                    },
                    s.docs.clone(),
                    // Said only to releases older than the fix.
                    s.fixed_in.clone().filter(|fixed| {
                        match (ctx.version, fixed.parse::<FlinkVersion>()) {
                            (Some(running), Ok(fixed)) => running < fixed,
                            _ => true,
                        }
                    }),
                    suggestions(s, catalogue, ctx, &m.captures),
                ),
                (None, Some(b)) => (
                    b.name.to_string(),
                    b.severity,
                    b.title.to_string(),
                    false,
                    b.cause.to_string(),
                    b.fix.to_string(),
                    b.docs.to_string(),
                    None,
                    Vec::new(),
                ),
                (None, None) => unreachable!("a match is a signature or a built-in finding"),
            };
        Finding {
            code: m.code().to_string(),
            name,
            severity,
            title,
            count: 0,
            evidence: m.evidence.clone(),
            source: None,
            first_seen: None,
            last_seen: None,
            context: m.context.clone(),
            wrapper,
            cause,
            fix,
            config,
            docs,
            fixed_in,
            flink_version: ctx.version,
            process: ctx.process,
            said_count: 0,
            said_at_ms: 0,
        }
    }

    /// The finding as one `AUTOTUNE` log line; `scope` says where (`job="..." (id)`, a
    /// TaskManager, a file).
    pub fn log_line(&self, scope: &str) -> String {
        let mut line = format!(
            "AUTOTUNE {} {} severity={} {scope} count={} | {}",
            self.code, self.name, self.severity, self.count, self.evidence
        );
        if let Some(source) = &self.source {
            line.push_str(&format!(" [{source}]"));
        }
        if let Some(context) = &self.context {
            line.push_str(&format!(" ({context})"));
        }
        if !self.config.is_empty() {
            let changes: Vec<String> = self.config.iter().map(|s| s.describe()).collect();
            line.push_str(&format!(" | set {}", changes.join(", ")));
        }
        line.push_str(&format!(" | {}", self.fix));
        if let Some(fixed) = &self.fixed_in {
            line.push_str(&format!(" Fixed in Flink {fixed}: upgrade."));
        }
        line.push_str(&format!(" | {}", self.docs));
        line
    }

    /// Ranking: root causes before wrappers, then the most severe, the most frequent, the first.
    fn rank_key(&self) -> (bool, std::cmp::Reverse<Severity>, std::cmp::Reverse<u64>) {
        (
            self.wrapper,
            std::cmp::Reverse(self.severity),
            std::cmp::Reverse(self.count),
        )
    }
}

/// Aggregates findings from records. Memory is bounded by [`MAX_FINDINGS`].
#[derive(Debug, Clone)]
pub struct Diagnoser {
    catalogue: Arc<Catalogue>,
    findings: Vec<Finding>,
    index: BTreeMap<String, usize>,
    /// Occurrences of findings that did not fit.
    pub dropped: u64,
    dropped_said: bool,
}

impl Diagnoser {
    pub fn new(catalogue: Arc<Catalogue>) -> Self {
        Diagnoser {
            catalogue,
            findings: Vec::new(),
            index: BTreeMap::new(),
            dropped: 0,
            dropped_said: false,
        }
    }

    pub fn catalogue(&self) -> &Arc<Catalogue> {
        &self.catalogue
    }

    /// Looks at one record; returns the index of the finding it adds to, if any.
    pub fn observe(
        &mut self,
        record: &Record,
        origin: Origin,
        source: Option<&str>,
        ctx: &Context,
    ) -> Option<usize> {
        let catalogue = self.catalogue.clone();
        let mut m = matcher::diagnose(&catalogue, record, origin)?;
        // In a JobManager's log, a task's or job's failure happened in a TaskManager.
        let process = process_of(record, ctx.process);
        let owned;
        let ctx = if process == ctx.process {
            ctx
        } else {
            owned = Context {
                process,
                ..ctx.clone()
            };
            &owned
        };
        if process != Process::TaskManager {
            // A JobManager's or client's own failure is a finding apart from the same in a
            // TaskManager.
            m.key = format!("{}@{}", m.key, process.name());
        }
        let source = source.map(|s| {
            if record.line > 0 {
                format!("{s}:{}", record.line)
            } else {
                s.to_string()
            }
        });
        self.add(&m, record.time.as_deref(), source, ctx)
    }

    /// One record of a Flink log: the startup banner and configuration lines teach `ctx` the
    /// version and the configuration; anything else is observed.
    pub fn observe_log(
        &mut self,
        record: &Record,
        source: Option<&str>,
        ctx: &mut Context,
    ) -> Option<usize> {
        if let Some(v) = super::version_in(&record.message) {
            ctx.version = Some(v);
            if let Some(p) = super::process_in(&record.message) {
                (ctx.process, ctx.process_unknown) = (p, false);
            }
        }
        if let (true, Some(p)) = (ctx.process_unknown, super::process_of_line(record)) {
            (ctx.process, ctx.process_unknown) = (p, false);
        }
        if ctx.version.is_none() {
            ctx.version = super::version_of_trace(record);
        }
        if let Some((k, v)) = super::config_in(&record.message) {
            ctx.config.insert(k, v);
            return None;
        }
        self.observe(record, Origin::Log, source, ctx)
    }

    /// A finding concluded from measurements rather than read in a message (a TaskManager
    /// that left while its heap was full is a heap OOM whose trace left with it).
    pub fn conclude(
        &mut self,
        code: &str,
        evidence: String,
        context: Option<String>,
        ctx: &Context,
    ) -> Option<usize> {
        let catalogue = self.catalogue.clone();
        let signature = catalogue.get(code)?;
        let m = Match {
            signature: Some(signature),
            builtin: None,
            evidence,
            context,
            captures: BTreeMap::new(),
            key: code.to_string(),
        };
        self.add(
            &m,
            None,
            Some("concluded from the TaskManager's last measurements".into()),
            ctx,
        )
    }

    fn add(
        &mut self,
        m: &Match<'_>,
        time: Option<&str>,
        source: Option<String>,
        ctx: &Context,
    ) -> Option<usize> {
        let at = match self.index.get(&m.key) {
            Some(&i) => i,
            None => {
                if self.findings.len() >= MAX_FINDINGS {
                    self.dropped += 1;
                    return None;
                }
                let mut d = Finding::from_match(m, &self.catalogue, ctx);
                d.source = source;
                d.first_seen = time.map(str::to_string);
                self.findings.push(d);
                self.index.insert(m.key.clone(), self.findings.len() - 1);
                self.findings.len() - 1
            }
        };
        let d = &mut self.findings[at];
        d.count += 1;
        if time.is_some() {
            d.last_seen = time.map(str::to_string);
        }
        Some(at)
    }

    /// A record that explains findings rather than adding one (a failed job's final
    /// exception, which its history already counted): it gives an existing finding its
    /// context (the wrapper it ended in), which makes the finding due again; a finding not
    /// seen before is added.
    pub fn explain(
        &mut self,
        record: &Record,
        origin: Origin,
        source: Option<&str>,
        ctx: &Context,
    ) -> Option<usize> {
        let catalogue = self.catalogue.clone();
        let m = matcher::diagnose(&catalogue, record, origin)?;
        match self.index.get(&m.key) {
            Some(&i) => {
                let d = &mut self.findings[i];
                if m.context.is_some() && d.context != m.context {
                    d.context = m.context.clone();
                    d.said_count = 0;
                }
                Some(i)
            }
            None => self.observe(record, origin, source, ctx),
        }
    }

    /// Adds one piece of the checkpoint advisor's advice; the same code again counts up and
    /// takes the newest evidence.
    pub fn advise(&mut self, advice: &Advice, ctx: &Context) -> Option<usize> {
        let key = advice.code.code().to_string();
        let at = match self.index.get(&key) {
            Some(&i) => {
                self.findings[i].evidence = advice.evidence.clone();
                i
            }
            None => {
                if self.findings.len() >= MAX_FINDINGS {
                    self.dropped += 1;
                    return None;
                }
                let none = BTreeMap::new();
                self.findings.push(Finding {
                    code: key.clone(),
                    name: advice.code.name().to_string(),
                    severity: advice.severity,
                    title: advice.title.to_string(),
                    count: 0,
                    evidence: advice.evidence.clone(),
                    source: None,
                    first_seen: None,
                    last_seen: None,
                    context: None,
                    wrapper: false,
                    process: ctx.process,
                    cause: advice.cause.to_string(),
                    fix: advice.fix.clone(),
                    config: advice
                        .set
                        .iter()
                        .filter_map(|s| suggest::suggest(s, &self.catalogue.renames, ctx, &none))
                        .collect(),
                    docs: advice.docs.to_string(),
                    fixed_in: None,
                    flink_version: ctx.version,
                    said_count: 0,
                    said_at_ms: 0,
                });
                self.index.insert(key, self.findings.len() - 1);
                self.findings.len() - 1
            }
        };
        self.findings[at].count += 1;
        Some(at)
    }

    /// True once, the first time a finding did not fit: the caller says so.
    pub fn first_overflow(&mut self) -> bool {
        let first = self.dropped > 0 && !self.dropped_said;
        self.dropped_said |= first;
        first
    }

    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }

    /// The findings, most important first (see [`Finding`] ranking).
    pub fn ranked(&self) -> Vec<&Finding> {
        let mut out: Vec<&Finding> = self.findings.iter().collect();
        out.sort_by_key(|d| d.rank_key());
        out
    }

    /// Findings to say now (`now_ms`: epoch ms): those never said, and those seen again since
    /// they were last said if `repeat` has passed since. Each is marked as said.
    pub fn due(&mut self, now_ms: i64, repeat: Duration) -> Vec<Finding> {
        let repeat_ms = i64::try_from(repeat.as_millis()).unwrap_or(i64::MAX);
        let mut out = Vec::new();
        for d in &mut self.findings {
            let new = d.said_count == 0;
            let repeated =
                d.count > d.said_count && now_ms.saturating_sub(d.said_at_ms) >= repeat_ms;
            if new || repeated {
                d.said_count = d.count;
                d.said_at_ms = now_ms;
                out.push(d.clone());
            }
        }
        out.sort_by_key(|d| d.rank_key());
        out
    }

    /// Every config change of the findings, one value per key (the highest-ranked finding's),
    /// for the job's recommended config file.
    pub fn config_keys(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for d in self.ranked() {
            for s in &d.config {
                if let Some(v) = &s.value {
                    out.entry(s.key.clone()).or_insert_with(|| v.clone());
                }
            }
        }
        out
    }
}

/// The config changes of a signature's settings for this match: a setting bound to a part of
/// the message (`when`) only when that part matched; a key once (a TaskManager's two off-heap
/// pools are one pool in a JobManager).
fn suggestions(
    signature: &Signature,
    catalogue: &Catalogue,
    ctx: &Context,
    captures: &BTreeMap<String, String>,
) -> Vec<Suggestion> {
    let mut out: Vec<Suggestion> = Vec::new();
    for setting in &signature.set {
        if setting
            .when
            .as_ref()
            .is_some_and(|part| !captures.contains_key(part))
        {
            continue;
        }
        if let Some(s) = suggest::suggest(setting, &catalogue.renames, ctx, captures) {
            if !out.iter().any(|o| o.key == s.key) {
                out.push(s);
            }
        }
    }
    out
}

/// The process a record's failure happened in, in the log of `log_of`:
/// - a message that names its process (Flink's rewritten OOM texts, memory configuration
///   errors) is believed;
/// - else the frames of its root cause, where Flink's own classes show the process (a source
///   enumerator's failure in the JobManager travels as the job's failure);
/// - in a JobManager's log, a task that failed on a TaskManager, or a job that failed with
///   it, failed in a TaskManager (its exception travelled to the JobManager); a task that
///   never got a slot, and anything else there, is the JobManager's own;
/// - in a client's log, a job that failed while it ran failed in a TaskManager; anything
///   else (planning, the job graph, submission) is the client's own.
fn process_of(record: &Record, log_of: Process) -> Process {
    let texts = std::iter::once(record.message.as_str())
        .chain(record.chain.iter().map(|t| t.message.as_str()));
    if let Some(named) = texts.filter_map(Process::named_in).next() {
        return named;
    }
    // Where it was thrown: the deepest exception whose frames show Flink's own classes (a root
    // cause in user code alone is placed by the Flink frames that wrap it).
    let thrown_in = record
        .chain
        .iter()
        .rev()
        .find_map(|t| Process::of_frames(t.frames.iter().map(String::as_str)));
    if let Some(p) = thrown_in {
        return p;
    }
    let m = &record.message;
    let ran_on_a_taskmanager = m.contains("switched from") && !m.contains("[unassigned resource]");
    let job_ran = ran_on_a_taskmanager
        || record
            .chain
            .iter()
            .any(|t| t.class.ends_with("JobExecutionException"));
    match log_of {
        Process::JobManager if !ran_on_a_taskmanager => Process::JobManager,
        Process::Client if !job_ran => Process::Client,
        _ => Process::TaskManager,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnosis::logtext::records;

    const FINISHED: &str = "2023-02-09 16:42:30,047 INFO  org.apache.flink.runtime.checkpoint.CheckpointFailureManager [] - Failed to trigger checkpoint for job c07b since Some tasks of the job have already finished and checkpointing with finished tasks is not enabled. Failure reason: Not all required tasks are currently running..";

    fn diagnosed(version: &str, times: usize) -> Diagnoser {
        let mut d = Diagnoser::new(Arc::new(Catalogue::builtin()));
        let ctx = Context {
            version: Some(version.parse().unwrap()),
            ..Context::default()
        };
        for _ in 0..times {
            for r in records(FINISHED) {
                d.observe(&r, Origin::Log, Some("jm.log"), &ctx);
            }
        }
        d
    }

    /// In a JobManager's log: its own heap OOM is a JobManager finding with the JobManager's
    /// key and a value from its configuration; a task's OOM reported there is the
    /// TaskManager's, with the TaskManager's key. Two findings, not one.
    #[test]
    fn the_process_that_failed_decides_the_key() {
        let log = "\
2026-11-28 10:00:00,000 INFO  org.apache.flink.configuration.GlobalConfiguration [] - Loading dynamic configuration property: jobmanager.memory.heap.size, 469762048b
2026-11-28 10:00:00,000 INFO  org.apache.flink.configuration.GlobalConfiguration [] - Loading configuration property: taskmanager.memory.task.heap.size, 256m
2026-11-28 10:05:00,000 INFO  org.apache.flink.runtime.executiongraph.ExecutionGraph [] - Work (1/1)#0 (b1c2) switched from RUNNING to FAILED on 127.0.0.1:35261-7cd6c2 @ localhost (dataPort=40215).
java.lang.OutOfMemoryError: Java heap space
\tat com.example.Work.map(Work.java:12)
2026-11-28 10:09:00,000 ERROR org.apache.flink.util.FatalExitExceptionHandler [] - FATAL: Thread 'flink-pekko.actor.default-dispatcher-15' produced an uncaught exception. Stopping the process...
java.lang.OutOfMemoryError: Java heap space
\tat java.util.Arrays.copyOf(Arrays.java:3745)
2026-11-28 10:09:01,000 ERROR org.apache.flink.runtime.blob.BlobServerConnection [] - Error while executing BLOB connection.
java.lang.OutOfMemoryError: Direct buffer memory
\tat java.nio.Bits.reserveMemory(Bits.java:175)
";
        let mut d = Diagnoser::new(Arc::new(Catalogue::builtin()));
        let mut ctx = Context {
            process: Process::JobManager,
            ..Context::default()
        };
        for r in records(log) {
            d.observe_log(&r, Some("jm.log"), &mut ctx);
        }
        let heap: Vec<&Finding> = d.findings().iter().filter(|f| f.code == "AT300").collect();
        assert_eq!(heap.len(), 2, "{:#?}", d.findings());
        let task = heap
            .iter()
            .find(|f| f.process == Process::TaskManager)
            .unwrap();
        assert_eq!(task.config[0].key, "taskmanager.memory.task.heap.size");
        assert_eq!(task.config[0].value.as_deref(), Some("384m"));
        let own = heap
            .iter()
            .find(|f| f.process == Process::JobManager)
            .unwrap();
        assert_eq!(own.config[0].key, "jobmanager.memory.heap.size");
        assert_eq!(own.config[0].value.as_deref(), Some("672m"), "448m x1.5");
        assert_eq!(own.config[0].basis, "current x1.5");
        let direct = d.findings().iter().find(|f| f.code == "AT302").unwrap();
        assert_eq!(direct.process, Process::JobManager);
        assert!(
            direct
                .config
                .iter()
                .all(|s| s.key.starts_with("jobmanager.memory.")),
            "{:?}",
            direct.config
        );
        assert_eq!(direct.config[0].key, "jobmanager.memory.off-heap.size");
    }

    /// A job's failure whose root cause was thrown in a source enumerator happened in the
    /// JobManager, wherever it is read (here: a job's exception from the REST API, which a
    /// TaskManager context reads); one thrown in a task, in a TaskManager.
    #[test]
    fn the_frames_of_the_root_cause_name_the_process() {
        let failure = |frames: &str| {
            format!("org.apache.flink.runtime.JobException: Recovery is suppressed by NoRestartBackoffTimeStrategy\n\tat org.apache.flink.runtime.executiongraph.failover.ExecutionFailureHandler.handleFailure(ExecutionFailureHandler.java:180)\nCaused by: java.lang.OutOfMemoryError: Cannot reserve 1048576 bytes of direct buffer memory (allocated: 15791932, limit: 16777216)\n\tat java.base/java.nio.Bits.reserveMemory(Bits.java:178)\n{frames}")
        };
        let observe = |text: &str| {
            let mut d = Diagnoser::new(Arc::new(Catalogue::builtin()));
            let ctx = Context {
                config: [(
                    "jobmanager.memory.off-heap.size".to_string(),
                    "16m".to_string(),
                )]
                .into(),
                ..Context::default()
            };
            for r in records(text) {
                d.observe(&r, Origin::JobFailure, None, &ctx);
            }
            let top = d.ranked()[0].clone();
            (top.process, top.config[0].key.clone())
        };
        let enumerator = failure("\tat com.example.QueueEnumerator.start(QueueEnumerator.java:37)\n\tat org.apache.flink.runtime.source.coordinator.SourceCoordinator.lambda$start$1(SourceCoordinator.java:264)\n");
        assert_eq!(
            observe(&enumerator),
            (
                Process::JobManager,
                "jobmanager.memory.off-heap.size".to_string()
            )
        );
        // A jar run from the web UI builds its graph in the JobManager.
        let web_run = failure("\tat com.example.Main.main(Main.java:12)\n\tat org.apache.flink.client.program.PackagedProgramUtils.getPipelineFromProgram(PackagedProgramUtils.java:108)\n\tat org.apache.flink.runtime.webmonitor.handlers.JarRunHandler.lambda$getJobGraphAsync$6(JarRunHandler.java:138)\n");
        assert_eq!(observe(&web_run).0, Process::JobManager);
        let task = failure("\tat com.example.Enrich.map(Enrich.java:37)\n\tat org.apache.flink.streaming.runtime.tasks.StreamTask.invoke(StreamTask.java:264)\n");
        assert_eq!(
            observe(&task),
            (
                Process::TaskManager,
                "taskmanager.memory.task.off-heap.size".to_string()
            )
        );
    }

    /// Where the log alone would say otherwise, the message names the process: a rewritten
    /// OOM text, a worker's container ended (in the JobManager's log), a client's own failure.
    #[test]
    fn the_message_names_the_process() {
        let observe = |banner: &str, text: &str| {
            let mut d = Diagnoser::new(Arc::new(Catalogue::builtin()));
            let mut ctx = Context::default();
            let log = format!("2026-11-28 10:00:00,000 INFO  x [] -  Starting {banner} (Version: 2.2.1, Scala: 2.12)\n{text}");
            for r in records(&log) {
                d.observe_log(&r, None, &mut ctx);
            }
            d.ranked()
                .first()
                .map(|f| (f.code.clone(), f.process, f.config.first().cloned()))
        };
        let jm_direct = "2026-11-28 10:05:00,000 ERROR x [] - Fatal error occurred in the cluster entrypoint.\njava.lang.OutOfMemoryError: Direct buffer memory. The direct out-of-memory error has occurred. In this case 'jobmanager.memory.off-heap.size' configuration option should be increased. The Flink Master has to be shutdown...\n";
        // The text, not the (wrongly named) TaskManager log, decides.
        let (code, process, set) = observe("TaskManager", jm_direct).unwrap();
        assert_eq!((code.as_str(), process), ("AT302", Process::JobManager));
        let set = set.unwrap();
        assert_eq!(set.key, "jobmanager.memory.off-heap.size");
        assert_eq!(
            (set.value.as_deref(), set.basis.as_str()),
            (Some("256m"), "fixed")
        );

        let killed = "2026-11-28 10:05:00,000 INFO  x [] - Worker orders-taskmanager-1-3 is terminated. Diagnostics: Pod terminated, container termination statuses: [flink-main-container(exitCode=137, reason=OOMKilled, message=null)]\n";
        let (code, process, set) = observe("KubernetesSessionClusterEntrypoint", killed).unwrap();
        assert_eq!((code.as_str(), process), ("AT309", Process::TaskManager));
        assert_eq!(set.unwrap().key, "taskmanager.memory.jvm-overhead.fraction");

        let above_max = "2026-11-28 10:05:00,000 ERROR x [] - Error while running the command.\norg.apache.flink.runtime.JobException: Vertex Work's parallelism (300) is higher than the max parallelism (128). Please lower the parallelism or increase the max parallelism.\n";
        let (code, process, set) = observe("Command Line Client", above_max).unwrap();
        assert_eq!((code.as_str(), process), ("AT326", Process::Client));
        assert_eq!(set.unwrap().value.as_deref(), Some("128"));
    }

    #[test]
    fn a_fix_in_a_later_release_is_said_only_to_older_ones() {
        let old = diagnosed("1.14.6", 1);
        let f = &old.findings()[0];
        assert_eq!(
            (f.code.as_str(), f.fixed_in.as_deref()),
            ("AT322", Some("1.15"))
        );
        assert_eq!(
            f.config[0].key, "execution.checkpointing.checkpoints-after-tasks-finish.enabled",
            "1.14 spelling"
        );
        assert!(f
            .log_line("job=\"x\"")
            .contains("Fixed in Flink 1.15: upgrade."));
        let new = diagnosed("2.3.0", 1);
        assert_eq!(new.findings()[0].fixed_in, None);
        assert_eq!(
            new.findings()[0].config[0].key,
            "execution.checkpointing.checkpoints-after-tasks-finish"
        );
        assert!(
            diagnosed("1.13.6", 1).findings()[0].config.is_empty(),
            "1.13 has no such key"
        );
    }

    #[test]
    fn repeats_are_one_finding_said_again_only_after_the_interval() {
        let mut d = diagnosed("1.20.3", 5);
        assert_eq!(d.findings().len(), 1);
        assert_eq!(d.findings()[0].count, 5);
        assert_eq!(d.due(1_000, Duration::from_secs(600)).len(), 1, "new: said");
        assert!(
            d.due(2_000, Duration::from_secs(600)).is_empty(),
            "nothing new"
        );
        let ctx = Context::default();
        for r in records(FINISHED) {
            d.observe(&r, Origin::Log, None, &ctx);
        }
        assert!(
            d.due(300_000, Duration::from_secs(600)).is_empty(),
            "seen again, but within the interval"
        );
        let again = d.due(601_000, Duration::from_secs(600));
        assert_eq!(
            (again.len(), again[0].count),
            (1, 6),
            "said again with its count"
        );
        assert!(
            d.due(1_300_000, Duration::from_secs(600)).is_empty(),
            "not seen since: silent"
        );
    }
}
