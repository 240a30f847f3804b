//! Log text into records: one log event (header line, message, and the exception with its
//! `Caused by` chain), fed line by line so a file can be followed without re-reading it.
//!
//! Flink logs with log4j's `%d %-5p %-60c %x - %m%n`; the parser also takes stack traces
//! without any header (REST stack traces, `.out` files, container logs). Memory is bounded:
//! long messages, deep chains and long traces are cut, never accumulated.

use std::sync::OnceLock;

use regex::Regex;

/// At most this much text of one message (an exception message or the log message) is kept.
pub const MAX_MESSAGE: usize = 4096;
/// At most this many exceptions of one chain are kept (the innermost are kept).
pub const MAX_CHAIN: usize = 24;
/// At most this many stack frames of one exception are kept (the top ones).
pub const MAX_FRAMES: usize = 32;

/// One exception of a chain: `class: message` and its top frames.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Throwable {
    pub class: String,
    pub message: String,
    /// Frames as printed after `at `, e.g. `com.example.Enrich.map(Enrich.java:42)`.
    pub frames: Vec<String>,
}

impl Throwable {
    /// The exception the way Java prints its first line.
    pub fn headline(&self) -> String {
        if self.message.is_empty() {
            self.class.clone()
        } else {
            format!("{}: {}", self.class, self.message)
        }
    }
}

/// One log event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// 1-based line of the header (or first line) in its source.
    pub line: usize,
    pub time: Option<String>,
    pub level: Option<String>,
    pub logger: Option<String>,
    pub message: String,
    /// Outermost first; each entry is the cause of the one before.
    pub chain: Vec<Throwable>,
}

fn header() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r"^\[?(?P<time>\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:[,.]\d+)?(?:Z|[+-]\d{2}:?\d{2})?)\]?\s+(?:\[[^\]]*\]\s+)?(?P<level>TRACE|DEBUG|INFO|WARN|WARNING|ERROR|FATAL)\s+(?:\[[^\]]*\]\s+)?(?P<logger>[\w$.]+)?\s*(?:\[[^\]]*\]\s*)?(?:-|:)\s?(?P<message>.*)$",
        )
        .expect("header regex")
    })
}

fn exception_line() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        // A qualified class name whose simple name says it is a Throwable.
        Regex::new(
            r"^(?:Exception in thread .*?\x22 )?(?P<caused>\s*Caused by: )?(?P<class>(?:[a-zA-Z_$][\w$]*\.)+[\w$]*(?:Exception|Error|Throwable|Failure|Fault)(?:\$[\w$]+)?)(?::\s?(?P<message>.*))?$",
        )
        .expect("exception regex")
    })
}

fn frame_line() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^\s+at (?P<frame>\S.*)$").expect("frame regex"))
}

fn elided_line() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^\s+\.\.\. \d+ (?:more|common frames omitted)").expect("elided regex")
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    /// The log message (continuation lines belong to it).
    Message,
    /// Inside the last exception of the chain: its message lines, then frames.
    Exception { frames_started: bool },
    /// Inside a `Suppressed:` block: skipped until the chain goes on or the record ends.
    Suppressed,
}

/// Turns lines into records. Feed lines with [`push`](LogReader::push); a record is
/// returned when the next one starts, and by [`finish`](LogReader::finish) at the end.
#[derive(Debug)]
pub struct LogReader {
    current: Option<Record>,
    section: Section,
    line: usize,
}

impl Default for LogReader {
    fn default() -> Self {
        LogReader {
            current: None,
            section: Section::Message,
            line: 0,
        }
    }
}

fn append(text: &mut String, more: &str) {
    if text.len() >= MAX_MESSAGE {
        return;
    }
    if !text.is_empty() {
        text.push('\n');
    }
    let room = MAX_MESSAGE.saturating_sub(text.len());
    let mut cut = more.len().min(room);
    while !more.is_char_boundary(cut) {
        cut -= 1;
    }
    text.push_str(&more[..cut]);
}

impl LogReader {
    pub fn new() -> Self {
        Self::default()
    }

    /// Lines seen so far.
    pub fn lines(&self) -> usize {
        self.line
    }

    /// One line, without its line break. Returns the previous record when this line starts a
    /// new one.
    pub fn push(&mut self, raw: &str) -> Option<Record> {
        self.line += 1;
        let line = raw.trim_end_matches(['\r', '\n']);
        if let Some(h) = header().captures(line) {
            return self.start(headed_record(self.line, &h));
        }
        if line.trim().is_empty() {
            return None;
        }
        let finished = self.start_unless_continued(line);
        let record = self.current.as_mut().expect("a current record");
        read_body_line(record, &mut self.section, line);
        finished
    }

    /// Makes `record` the current one, its message read next; returns the record it ends.
    fn start(&mut self, record: Record) -> Option<Record> {
        let done = self.current.take();
        self.current = Some(record);
        self.section = Section::Message;
        done
    }

    /// A line without a header goes on with the current record, unless there is none (a
    /// trace without any header) or the line starts another trace: then it starts a record.
    fn start_unless_continued(&mut self, line: &str) -> Option<Record> {
        if self.current.is_none() || self.starts_another_trace(line) {
            return self.start(Record {
                line: self.line,
                ..Record::default()
            });
        }
        None
    }

    /// A new top-level exception after a finished trace, without a log header: a stderr dump
    /// of several traces, one after another.
    fn starts_another_trace(&self, line: &str) -> bool {
        matches!(
            self.section,
            Section::Exception {
                frames_started: true
            }
        ) && !line.starts_with(char::is_whitespace)
            && !line.starts_with("Caused by:")
            && exception_line().is_match(line)
    }

    /// The last record, if any.
    pub fn finish(&mut self) -> Option<Record> {
        self.section = Section::Message;
        self.current.take()
    }
}

/// The record a log header starts: its time, level, logger and the first line of its message.
fn headed_record(line: usize, h: &regex::Captures<'_>) -> Record {
    let mut record = Record {
        line,
        time: h.name("time").map(|m| m.as_str().to_string()),
        level: h.name("level").map(|m| m.as_str().to_string()),
        logger: h.name("logger").map(|m| m.as_str().to_string()),
        ..Record::default()
    };
    append(
        &mut record.message,
        h.name("message").map_or("", |m| m.as_str()).trim_end(),
    );
    record
}

/// A line of a record after its first: a stack frame, the start of a `Suppressed:` block,
/// the next exception of the chain, or more text of what is being read.
fn read_body_line(record: &mut Record, section: &mut Section, line: &str) {
    if frame_line().is_match(line) || elided_line().is_match(line) {
        add_frame(record, section, line);
    } else if line.trim_start().starts_with("Suppressed:") {
        *section = Section::Suppressed;
    } else if !add_exception(record, section, line) {
        add_text(record, *section, line);
    }
}

/// A frame (or `... n more`) counts only inside an exception, whose frames have then
/// started; the top [`MAX_FRAMES`] are kept.
fn add_frame(record: &mut Record, section: &mut Section, line: &str) {
    if !matches!(section, Section::Exception { .. }) {
        return;
    }
    *section = Section::Exception {
        frames_started: true,
    };
    if let (Some(c), Some(f)) = (record.chain.last_mut(), frame_line().captures(line)) {
        if c.frames.len() < MAX_FRAMES {
            c.frames.push(f["frame"].to_string());
        }
    }
}

/// An exception that goes on with the chain (a cause) or starts it, added with its message's
/// first line; `false` when `line` is no such exception.
fn add_exception(record: &mut Record, section: &mut Section, line: &str) -> bool {
    let Some(e) = exception_line().captures(line) else {
        return false;
    };
    let is_cause = e.name("caused").is_some();
    // An indented `Caused by:` inside a `Suppressed:` block is the suppressed one's.
    let continues_chain =
        is_cause && (*section != Section::Suppressed || !line.starts_with(char::is_whitespace));
    let starts_chain = !is_cause && record.chain.is_empty();
    if !(continues_chain || starts_chain) {
        return false;
    }
    // A full chain drops the exception after the outermost: the innermost hold the cause.
    if record.chain.len() == MAX_CHAIN {
        record.chain.remove(1.min(record.chain.len() - 1));
    }
    let mut message = String::new();
    append(
        &mut message,
        e.name("message").map_or("", |m| m.as_str()).trim_end(),
    );
    record.chain.push(Throwable {
        class: e["class"].to_string(),
        message,
        frames: Vec::new(),
    });
    *section = Section::Exception {
        frames_started: false,
    };
    true
}

/// A line that is no frame and no exception: more of the message being read.
fn add_text(record: &mut Record, section: Section, line: &str) {
    match section {
        Section::Message => append(&mut record.message, line),
        Section::Exception {
            frames_started: false,
        } => {
            if let Some(c) = record.chain.last_mut() {
                append(&mut c.message, line);
            }
        }
        // Text after frames that is no exception: Flink's own multi-line messages after
        // a trace are rare; keep them with the message.
        Section::Exception {
            frames_started: true,
        } => append(&mut record.message, line),
        Section::Suppressed => {}
    }
}

/// Every record of a text (a whole file, or a REST stack trace).
pub fn records(text: &str) -> Vec<Record> {
    let mut reader = LogReader::new();
    let mut out: Vec<Record> = text.lines().filter_map(|l| reader.push(l)).collect();
    out.extend(reader.finish());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "\
2024-05-14 10:21:33,100 INFO  org.apache.flink.runtime.checkpoint.CheckpointCoordinator    [] - Completed checkpoint 4 for job 5d1e (1234 bytes).
2024-05-14 10:21:33,512 WARN  org.apache.flink.runtime.taskmanager.Task                    [] - Work (1/1)#0 (0b5e) switched from RUNNING to FAILED with failure cause:
java.io.IOException: Could not perform checkpoint 5 for operator Work (1/1)#0.
\tat org.apache.flink.streaming.runtime.tasks.StreamTask.triggerCheckpointOnBarrier(StreamTask.java:1200)
\tat java.base/java.lang.Thread.run(Thread.java:840)
\tSuppressed: java.lang.RuntimeException: close failed
\t\tat com.example.Sink.close(Sink.java:10)
\tCaused by: java.lang.IllegalStateException: inner of suppressed
\t\t... 3 more
Caused by: org.apache.flink.runtime.JobException: Recovery is suppressed by NoRestartBackoffTimeStrategy
\tat org.apache.flink.runtime.executiongraph.failover.ExecutionFailureHandler.handleFailure(ExecutionFailureHandler.java:180)
\t... 12 more
Caused by: java.util.concurrent.TimeoutException: Invocation of [RemoteRpcInvocation(TaskExecutorGateway.requestSlot)] at recipient [pekko.tcp://flink@127.0.0.1:6122/user/rpc/taskmanager_0] timed out. This is usually caused by:
1) Pekko failed sending the message silently
2) The recipient needs more time
\t... 5 more
2024-05-14 10:21:34,000 INFO  org.apache.flink.runtime.taskmanager.Task                    [] - Freeing task resources for Work (1/1)#0 (0b5e).
";

    #[test]
    fn a_log_is_split_into_records_with_their_cause_chains() {
        let records = records(TRACE);
        assert_eq!(records.len(), 3);
        let failed = &records[1];
        assert_eq!(failed.line, 2);
        assert_eq!(failed.level.as_deref(), Some("WARN"));
        assert_eq!(
            failed.logger.as_deref(),
            Some("org.apache.flink.runtime.taskmanager.Task")
        );
        assert!(failed.message.ends_with("with failure cause:"));
        let classes: Vec<&str> = failed.chain.iter().map(|t| t.class.as_str()).collect();
        // The suppressed exception and its own cause are not part of the chain.
        assert_eq!(
            classes,
            [
                "java.io.IOException",
                "org.apache.flink.runtime.JobException",
                "java.util.concurrent.TimeoutException"
            ]
        );
        assert_eq!(failed.chain[0].frames.len(), 2);
        assert!(failed.chain[2]
            .message
            .contains("2) The recipient needs more time"));
        assert_eq!(records[2].line, 17);
    }

    #[test]
    fn a_stack_trace_without_headers_is_one_record_each() {
        let text = "java.lang.OutOfMemoryError: Java heap space\n\tat a.B.c(B.java:1)\nException in thread \"main\" java.lang.OutOfMemoryError: Metaspace\n";
        let r = records(text);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].chain[0].message, "Java heap space");
        assert_eq!(
            r[1].chain[0].headline(),
            "java.lang.OutOfMemoryError: Metaspace"
        );
    }

    #[test]
    fn memory_is_bounded_whatever_the_input() {
        let mut reader = LogReader::new();
        reader.push("2024-05-14 10:21:33,512 ERROR a.B [] - boom");
        reader.push("java.lang.RuntimeException: top");
        for i in 0..10_000 {
            reader.push(&format!(
                "Caused by: java.lang.IllegalStateException: level {i} {}",
                "x".repeat(100)
            ));
            reader.push("\tat a.B.c(B.java:1)");
        }
        for _ in 0..10_000 {
            reader.push(&"y".repeat(1000));
        }
        let r = reader.finish().unwrap();
        assert_eq!(r.chain.len(), MAX_CHAIN);
        assert_eq!(r.chain[0].message, "top", "the outermost is kept");
        assert!(
            r.chain.last().unwrap().message.starts_with("level 9999"),
            "the innermost is kept"
        );
        assert!(r.message.len() <= MAX_MESSAGE + 1);
        assert!(r
            .chain
            .iter()
            .all(|t| t.frames.len() <= MAX_FRAMES && t.message.len() <= MAX_MESSAGE + 1));
    }
}
