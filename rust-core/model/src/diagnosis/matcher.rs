//! One record in, its deepest actionable cause out.
//!
//! Every exception of the `Caused by` chain and the log message itself are matched against
//! the catalogue in one pass (a `RegexSet`). The deepest hit that is not a wrapper wins.
//! When only wrappers match ("Recovery is suppressed by ...", "tolerable failure
//! threshold"), the root cause under them decides: a user's exception gets its own code
//! (AT390) naming the exception and the user's frame, not the wrapper.

use std::collections::BTreeMap;

use super::logtext::{Record, Throwable};
use super::signatures::{Catalogue, Signature};
use super::Severity;

/// Where a record comes from: a log line may be noise; a job's exception is a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A log file: only catalogue entries and failed tasks count.
    Log,
    /// A job's exception from the REST API: always a failure, known or not.
    JobFailure,
}

/// A finding the code gives when the catalogue has no entry for the root cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Builtin {
    pub code: &'static str,
    pub name: &'static str,
    pub severity: Severity,
    pub title: &'static str,
    pub cause: &'static str,
    pub fix: &'static str,
    pub docs: &'static str,
}

pub const USER_CODE: Builtin = Builtin {
    code: "AT390",
    name: "USER_CODE_FAILURE",
    severity: Severity::Error,
    title: "The job's own code threw an exception",
    cause: "An exception thrown by the job's code (or a library it calls) failed the task; Flink restarts the job, or gives up when its restart strategy is exhausted. No Flink setting fixes it.",
    fix: "Fix or guard the code at the named frame (bad input, a missing field, a null); the restart strategy only decides how often the job retries.",
    docs: "https://nightlies.apache.org/flink/flink-docs-stable/docs/ops/state/task_failure_recovery/",
};

pub const UNRECOGNIZED: Builtin = Builtin {
    code: "AT399",
    name: "UNRECOGNIZED_FAILURE",
    severity: Severity::Warning,
    title: "The job failed with an exception the catalogue does not know",
    cause: "The root cause is not in the catalogue.",
    fix: "No known fix applies: read the root cause and where it was thrown, named here; if it recurs, add a signature for it to your own catalogue file (option diagnosis-catalogue).",
    docs: "https://nightlies.apache.org/flink/flink-docs-stable/docs/ops/state/task_failure_recovery/",
};

/// What a record was found to be.
#[derive(Debug, Clone)]
pub struct Match<'c> {
    /// The catalogue entry, or `None` for a built-in finding.
    pub signature: Option<&'c Signature>,
    pub builtin: Option<Builtin>,
    /// The line that shows it (the matched exception's first line, or the message).
    pub evidence: String,
    /// The wrapper it was found under, or the root cause under a wrapper finding.
    pub context: Option<String>,
    /// Named captures of the matched pattern.
    pub captures: BTreeMap<String, String>,
    /// What makes two occurrences the same finding.
    pub key: String,
}

impl Match<'_> {
    pub fn code(&self) -> &str {
        self.signature
            .map_or_else(|| self.builtin.map_or("", |b| b.code), |s| s.code.as_str())
    }
}

/// Prefixes of the JDK and of languages' runtimes: frames that tell nothing about who called.
const RUNTIME_FRAMES: &[&str] = &[
    "java.", "javax.", "jdk.", "sun.", "com.sun.", "scala.", "kotlin.",
];
/// Prefixes of Flink, its RPC and the libraries it bundles or commonly runs.
const FRAMEWORK_FRAMES: &[&str] = &[
    "org.apache.flink.",
    "org.apache.pekko.",
    "akka.",
    "org.apache.kafka.",
    "io.netty.",
    "org.apache.hadoop.",
    "org.rocksdb.",
    "com.google.",
    "org.apache.commons.",
    "org.apache.calcite.",
    "org.codehaus.janino.",
    "com.esotericsoftware.kryo.",
    "software.amazon.",
    "com.amazonaws.",
    "org.apache.avro.",
    "org.apache.parquet.",
    "org.apache.orc.",
    "com.fasterxml.jackson.",
    "io.confluent.",
    "org.postgresql.",
    "com.mysql.",
    "org.slf4j.",
    "org.apache.logging.",
];

/// The first frame of `t` that is the job's own code, if it was thrown from there.
pub fn user_frame(t: &Throwable) -> Option<&str> {
    let first = t
        .frames
        .iter()
        .find(|f| !RUNTIME_FRAMES.iter().any(|p| f.starts_with(p)))?;
    (!FRAMEWORK_FRAMES.iter().any(|p| first.starts_with(p))).then_some(first.as_str())
}

/// A network failure that passes by itself: a connection refused, reset or timed out.
fn is_transient(t: &Throwable) -> bool {
    const CLASSES: &[&str] = &[
        "java.net.ConnectException",
        "java.net.SocketTimeoutException",
        "java.net.SocketException",
        "java.net.NoRouteToHostException",
    ];
    CLASSES.contains(&t.class.as_str())
        || (t.class == "java.io.IOException"
            && ["Connection reset", "Broken pipe", "Connection refused"]
                .iter()
                .any(|m| t.message.contains(m)))
}

/// The first line of a text, at most 400 characters, control characters escaped: evidence
/// fits one log line.
pub fn evidence_line(text: &str) -> String {
    let first = crate::text::one_line(text.lines().next().unwrap_or("").trim()).into_owned();
    if first.chars().count() > 400 {
        let cut: String = first.chars().take(400).collect();
        format!("{cut}...")
    } else {
        first
    }
}

struct Hit<'c> {
    /// Position in the catalogue: ties go to the earlier entry.
    index: usize,
    signature: &'c Signature,
    depth: usize,
    text: String,
    captures: BTreeMap<String, String>,
}

/// The named parts of the signature's pattern that matches `text`; `None` when none does
/// (the one-pass set found a pattern whose parts do not agree, see `Signature::same`).
fn captures_of(sig: &Signature, text: &str) -> Option<BTreeMap<String, String>> {
    let (pattern, caps) = sig.matched(text)?;
    Some(
        pattern
            .capture_names()
            .flatten()
            .filter_map(|n| {
                caps.name(n)
                    .map(|m| (n.to_string(), m.as_str().to_string()))
            })
            .collect(),
    )
}

/// Whether the log message says a task or job failed, or the process stops on a fatal error
/// (so an unknown cause still counts).
fn says_failed(record: &Record) -> bool {
    const FAILED: &[&str] = &[
        "to FAILED",
        "to FAILING",
        "Fatal error occurred",
        "produced an uncaught exception",
    ];
    FAILED.iter().any(|f| record.message.contains(f))
}

/// A failure whose root cause is a stop on purpose: a cluster or job being shut down or
/// cancelled fails its tasks (and, without restarts, its jobs) with these, and nothing is
/// wrong. A process that stops on a fatal error says so in a record of its own.
fn stopped_on_purpose(record: &Record) -> bool {
    const EXPECTED: &[&str] = &[
        "org.apache.flink.util.FlinkExpectedException",
        "org.apache.flink.runtime.client.JobCancellationException",
    ];
    record
        .chain
        .last()
        .into_iter()
        .any(|t| EXPECTED.contains(&t.class.as_str()) || t.message.contains("is shutting down"))
}

/// A stop on purpose that ended a task or the job: its root cause is the stop, and no
/// restart strategy gave up on it (with restarts off, a cluster stopped under its jobs fails
/// them: nothing to fix). A job whose restarts were used up by stops (a fixed-delay strategy,
/// say) did fail: that stays AT338.
fn ended_by_a_stop(record: &Record) -> bool {
    let restarts_used_up = |t: &Throwable| {
        t.message.contains("Recovery is suppressed by")
            && !t.message.contains("NoRestartBackoffTimeStrategy")
    };
    stopped_on_purpose(record) && !record.chain.iter().any(restarts_used_up)
}

/// Matches one record. `None`: nothing worth a finding.
pub fn diagnose<'c>(
    catalogue: &'c Catalogue,
    record: &Record,
    origin: Origin,
) -> Option<Match<'c>> {
    // The plugin's own lines quote what it found: reading them again would count it twice.
    if record.message.starts_with("AUTOTUNE ") || ended_by_a_stop(record) {
        return None;
    }
    let hits = hits(catalogue, record);
    if let Some(found) = deepest_actionable(&hits) {
        return Some(found);
    }
    // Only wrappers matched, or nothing: what lies under them decides.
    let root = record.chain.last();
    let wrapper = hits.iter().max_by_key(|h| h.depth);
    let failed = wrapper.is_some() || origin == Origin::JobFailure || says_failed(record);
    if failed {
        if let Some(found) = root.and_then(|t| user_code(t, wrapper)) {
            return Some(found);
        }
    }
    if let Some(w) = wrapper {
        return Some(wrapper_finding(w, record));
    }
    // A failure nothing knows: a job's exception always; in a log, one that a line says
    // failed a task, the job or the process, unless it was stopped on purpose.
    if origin == Origin::JobFailure || failed {
        return root.map(|t| unrecognized(t, record));
    }
    None
}

/// Every catalogue entry that matches the log message (depth 0) or an exception of the chain
/// (depth 1 is the outermost).
fn hits<'c>(catalogue: &'c Catalogue, record: &Record) -> Vec<Hit<'c>> {
    let mut texts: Vec<String> = Vec::with_capacity(record.chain.len() + 1);
    texts.push(record.message.clone());
    texts.extend(record.chain.iter().map(Throwable::headline));

    let mut hits: Vec<Hit<'c>> = Vec::new();
    for (depth, text) in texts.iter().enumerate() {
        if text.is_empty() {
            continue;
        }
        for index in catalogue.matching(text) {
            let signature = &catalogue.signatures[index];
            let Some(captures) = captures_of(signature, text) else {
                continue;
            };
            hits.push(Hit {
                index,
                signature,
                depth,
                captures,
                text: text.clone(),
            });
        }
    }
    hits
}

/// The deepest hit that is no wrapper, with the outermost wrapper above it as context; among
/// equally deep ones, the more severe, then the catalogue's order.
fn deepest_actionable<'c>(hits: &[Hit<'c>]) -> Option<Match<'c>> {
    let h = hits
        .iter()
        .filter(|h| !h.signature.wrapper)
        .max_by(|a, b| {
            a.depth
                .cmp(&b.depth)
                .then(a.signature.severity.cmp(&b.signature.severity))
                .then(b.index.cmp(&a.index))
        })?;
    let wrapper = hits
        .iter()
        .filter(|w| w.signature.wrapper && w.depth < h.depth)
        .min_by_key(|w| w.depth);
    Some(Match {
        signature: Some(h.signature),
        builtin: None,
        evidence: evidence_line(&h.text),
        context: wrapper.map(wrapper_line),
        captures: h.captures.clone(),
        key: h.signature.code.clone(),
    })
}

/// AT390 when the root cause `t` was thrown by the job's own code. Under a wrapper (restarts
/// exhausted), a passing network failure is what restarts are for: the wrapper's fix (the
/// restart strategy) is the finding, not the code.
fn user_code<'c>(t: &Throwable, wrapper: Option<&Hit<'c>>) -> Option<Match<'c>> {
    if wrapper.is_some() && is_transient(t) {
        return None;
    }
    let frame = user_frame(t)?;
    Some(Match {
        signature: None,
        builtin: Some(USER_CODE),
        evidence: format!("{} at {frame}", evidence_line(&t.headline())),
        context: wrapper.map(wrapper_line),
        captures: BTreeMap::new(),
        key: format!("{}:{}:{}", USER_CODE.code, t.class, frame),
    })
}

/// The wrapper itself, with the root cause under it as context.
fn wrapper_finding<'c>(w: &Hit<'c>, record: &Record) -> Match<'c> {
    Match {
        signature: Some(w.signature),
        builtin: None,
        evidence: evidence_line(&w.text),
        context: record
            .chain
            .last()
            .filter(|_| w.depth < record.chain.len())
            .map(|t| format!("root cause: {}", evidence_line(&t.headline()))),
        captures: w.captures.clone(),
        key: w.signature.code.clone(),
    }
}

/// AT399: a job failed with a root cause nothing knows, with where it happened: the task the
/// log line names and the code that threw it (an operator's or a connector's frame).
fn unrecognized(t: &Throwable, record: &Record) -> Match<'static> {
    let task = failed_task(&record.message).map(|task| format!("in {task}"));
    let thrown = t
        .frames
        .iter()
        .find(|f| !RUNTIME_FRAMES.iter().any(|p| f.starts_with(p)));
    // The component: the first caller that is neither the JDK nor a framework (the operator or
    // the connector that asked Flink for what failed).
    let caller = t
        .frames
        .iter()
        .skip_while(|f| Some(*f) != thrown)
        .find(|f| {
            !RUNTIME_FRAMES
                .iter()
                .chain(FRAMEWORK_FRAMES)
                .any(|p| f.starts_with(p))
        });
    let context = [
        task,
        thrown.map(|f| format!("thrown at {f}")),
        caller.map(|f| format!("called from {f}")),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>();
    Match {
        signature: None,
        builtin: Some(UNRECOGNIZED),
        evidence: evidence_line(&t.headline()),
        context: (!context.is_empty()).then(|| context.join("; ")),
        captures: BTreeMap::new(),
        key: format!("{}:{}", UNRECOGNIZED.code, t.class),
    }
}

/// The task a "switched from RUNNING to FAILED" line names (`Work (1/2)#0`), without its
/// execution id.
fn failed_task(message: &str) -> Option<&str> {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        regex::Regex::new(r"^(?P<task>.+?) \([0-9a-f_]{16,}\) switched from \w+ to FAIL")
            .expect("task regex")
    });
    re.captures(message)
        .and_then(|c| c.name("task"))
        .map(|m| m.as_str())
}

/// A wrapper as context of the finding under it: its code, name and line.
fn wrapper_line(w: &Hit<'_>) -> String {
    format!(
        "{} {}: {}",
        w.signature.code,
        w.signature.name,
        evidence_line(&w.text)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnosis::logtext::records;

    fn one(text: &str, origin: Origin) -> Option<(String, String, Option<String>)> {
        let catalogue = Catalogue::builtin();
        let record = records(text).into_iter().next().unwrap();
        diagnose(&catalogue, &record, origin).map(|m| (m.code().to_string(), m.evidence, m.context))
    }

    const SUPPRESSED: &str = "org.apache.flink.runtime.JobException: Recovery is suppressed by NoRestartBackoffTimeStrategy\n\
\tat org.apache.flink.runtime.executiongraph.failover.ExecutionFailureHandler.handleFailure(ExecutionFailureHandler.java:180)\n";

    #[test]
    fn restarts_exhausted_by_a_passing_network_failure_name_the_restart_strategy() {
        let transient = format!(
            "{SUPPRESSED}Caused by: java.io.IOException: Connection reset by peer\n\tat sun.nio.ch.FileDispatcherImpl.read0(Native Method)\n\tat com.example.PaymentsClient.call(PaymentsClient.java:88)\n"
        );
        let (code, _, context) = one(&transient, Origin::JobFailure).unwrap();
        assert_eq!(code, "AT338");
        assert!(context.unwrap().contains("Connection reset by peer"));
        // A bug in the same code stays the code's.
        let bug = transient.replace(
            "java.io.IOException: Connection reset by peer",
            "java.lang.IllegalStateException: no tier",
        );
        assert_eq!(one(&bug, Origin::JobFailure).unwrap().0, "AT390");
    }

    #[test]
    fn the_deepest_known_cause_wins_over_its_wrapper() {
        let text = format!(
            "{SUPPRESSED}Caused by: java.io.IOException: Insufficient number of network buffers: required 5, but only 3 available. The total number of network buffers is currently set to 8 of 32768 bytes each.\n\tat org.apache.flink.runtime.io.network.buffer.NetworkBufferPool.tryRedistributeBuffers(NetworkBufferPool.java:490)\n"
        );
        let (code, evidence, context) = one(&text, Origin::JobFailure).unwrap();
        assert_eq!(code, "AT305");
        assert!(
            evidence.starts_with("java.io.IOException: Insufficient number"),
            "{evidence}"
        );
        assert!(context.unwrap().starts_with("AT338 RESTART_EXHAUSTED"));
    }

    #[test]
    fn a_user_exception_under_a_wrapper_is_named_with_its_frame() {
        let text = format!(
            "{SUPPRESSED}Caused by: java.lang.NumberFormatException: For input string: \"12a\"\n\
\tat java.base/java.lang.NumberFormatException.forInputString(NumberFormatException.java:67)\n\
\tat java.base/java.lang.Integer.parseInt(Integer.java:662)\n\
\tat com.example.orders.ParsePrice.map(ParsePrice.java:21)\n\
\tat org.apache.flink.streaming.api.operators.StreamMap.processElement(StreamMap.java:37)\n"
        );
        let (code, evidence, context) = one(&text, Origin::Log).unwrap();
        assert_eq!(code, "AT390");
        assert_eq!(evidence, "java.lang.NumberFormatException: For input string: \"12a\" at com.example.orders.ParsePrice.map(ParsePrice.java:21)");
        assert!(context.unwrap().contains("Recovery is suppressed"));
    }

    #[test]
    fn unknown_framework_failures_count_only_as_job_failures() {
        let text = "org.apache.flink.util.FlinkRuntimeException: something new\n\tat org.apache.flink.runtime.Foo.bar(Foo.java:1)\n";
        assert!(
            one(text, Origin::Log).is_none(),
            "an unknown exception in a log is noise"
        );
        let (code, evidence, _) = one(text, Origin::JobFailure).unwrap();
        assert_eq!(
            (code.as_str(), evidence.as_str()),
            (
                "AT399",
                "org.apache.flink.util.FlinkRuntimeException: something new"
            )
        );
        // A user exception logged without a failure is not a finding either.
        let user = "java.lang.IllegalStateException: retrying\n\tat com.example.Client.call(Client.java:5)\n";
        assert!(one(user, Origin::Log).is_none());
        assert_eq!(one(user, Origin::JobFailure).unwrap().0, "AT390");
    }

    #[test]
    fn an_unknown_failure_a_log_line_says_failed_a_task_is_named_with_its_task_and_code() {
        let text = "2026-12-07 02:29:01,563 INFO  org.apache.flink.runtime.taskmanager.Task [] - Work -> Sink: Writer (1/2)#0 (6de8f8f07da67787fc4265ac232c2a1a_38abd0bfb5b4b041c29b168225317795_0_3) switched from RUNNING to FAILED with failure cause:\n\
org.apache.flink.util.FlinkRuntimeException: writer state lost\n\
\tat java.base/java.util.Objects.requireNonNull(Objects.java:233)\n\
\tat org.apache.flink.connector.base.sink.writer.AsyncSinkWriter.flush(AsyncSinkWriter.java:321)\n\
\tat org.apache.flink.streaming.runtime.operators.sink.SinkWriterOperator.endInput(SinkWriterOperator.java:10)\n\
\tat com.example.LedgerSink.close(LedgerSink.java:12)\n";
        let (code, evidence, context) = one(text, Origin::Log).expect("a finding");
        assert_eq!(code, "AT399");
        assert_eq!(
            evidence,
            "org.apache.flink.util.FlinkRuntimeException: writer state lost"
        );
        assert_eq!(
            context.as_deref(),
            Some("in Work -> Sink: Writer (1/2)#0; thrown at org.apache.flink.connector.base.sink.writer.AsyncSinkWriter.flush(AsyncSinkWriter.java:321); called from com.example.LedgerSink.close(LedgerSink.java:12)")
        );
        // A process stopping on a fatal error it does not know is one too.
        let fatal = "2026-12-07 02:29:01,563 ERROR org.apache.flink.util.FatalExitExceptionHandler [] - FATAL: Thread 'flink-scheduler' produced an uncaught exception. Stopping the process...\n\
java.lang.IllegalStateException: scheduler closed\n\
\tat org.apache.flink.runtime.concurrent.Scheduler.run(Scheduler.java:10)\n";
        assert_eq!(one(fatal, Origin::Log).unwrap().0, "AT399");
    }

    #[test]
    fn a_cluster_or_job_stopped_on_purpose_is_no_failure() {
        let shutdown = "2026-12-07 02:29:01,563 INFO  org.apache.flink.runtime.taskmanager.Task [] - Work (1/1)#0 (6de8f8f07da67787fc4265ac232c2a1a_38abd0bfb5b4b041c29b168225317795_0_0) switched from RUNNING to FAILED with failure cause:\n\
org.apache.flink.util.FlinkExpectedException: The TaskExecutor is shutting down.\n\
\tat org.apache.flink.runtime.taskexecutor.TaskExecutor.onStop(TaskExecutor.java:481)\n";
        assert!(one(shutdown, Origin::Log).is_none());
        assert!(one(shutdown, Origin::JobFailure).is_none());
        // Without restarts, the job's failure wraps it: not restarts exhausted either.
        let wrapped = format!("{SUPPRESSED}Caused by: org.apache.flink.util.FlinkExpectedException: The TaskExecutor is shutting down.\n");
        assert!(one(&wrapped, Origin::JobFailure).is_none());
        assert!(one(&wrapped, Origin::Log).is_none());
        let disconnected = "org.apache.flink.util.FlinkException: Disconnect from JobManager responsible for ff2dbb2811d5c48333b77ec4a3715661.\nCaused by: org.apache.flink.util.FlinkExpectedException: The TaskExecutor is shutting down.\n";
        assert!(one(disconnected, Origin::JobFailure).is_none());
        // Restarts used up by stops: the job did fail, and restarts are the finding.
        let used_up = "org.apache.flink.runtime.JobException: Recovery is suppressed by FixedDelayRestartBackoffTimeStrategy(maxNumberRestartAttempts=3, backoffTimeMS=10000)\nCaused by: org.apache.flink.util.FlinkExpectedException: The TaskExecutor is shutting down.\n";
        assert_eq!(one(used_up, Origin::JobFailure).unwrap().0, "AT338");
        let cancelled =
            "org.apache.flink.runtime.client.JobCancellationException: Job was cancelled.\n\
\tat org.apache.flink.runtime.jobmaster.JobMaster.cancel(JobMaster.java:1)\n";
        assert!(one(cancelled, Origin::JobFailure).is_none());
    }

    #[test]
    fn the_plugins_own_lines_are_not_read_again() {
        let line = "2024-05-14 10:21:33,512 WARN  dev.flinkautotune.native.diagnostics [] - AUTOTUNE AT300 HEAP_OOM severity=critical count=1 | java.lang.OutOfMemoryError: Java heap space";
        assert!(one(line, Origin::Log).is_none());
    }
}
