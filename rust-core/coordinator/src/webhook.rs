//! Findings to a chat webhook (Slack-compatible `{"text": ...}` JSON).
//!
//! At most one post per interval: findings due in between wait and go out together, at most
//! [`MAX_BATCH`] of them (the rest are counted in the message). The same finding is not sent
//! twice unless it came back (the diagnoser decides what is due). The URL is a secret: it is
//! never logged, and errors are described without it.
//!
//! A post runs on a thread of its own, one at a time: a webhook that hangs, fails or closes
//! the connection never holds up the diagnosis that queued the findings. Its outcome is
//! taken at the next flush; meanwhile findings wait in the bounded queue.

use std::collections::VecDeque;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

use autotune_model::diagnosis::{Finding, Severity};

use crate::sink::Sink;

/// Findings waiting for the next post; more are dropped and counted.
pub const MAX_QUEUE: usize = 100;
/// Findings in one post.
pub const MAX_BATCH: usize = 10;

pub struct Webhook {
    url: String,
    agent: ureq::Agent,
    interval_ms: i64,
    last_post_ms: Option<i64>,
    queue: VecDeque<(String, Finding)>,
    dropped: usize,
    /// The last failure, said once until a post works again.
    failing: Option<String>,
    /// The post under way: its outcome (the failure and the findings it carried) once done.
    in_flight: Option<Receiver<Result<(), (String, usize)>>>,
    timeout: Duration,
}

/// Slack's three control characters.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Why a post failed, without the URL (ureq's own messages contain it).
fn describe(error: &ureq::Error) -> String {
    match error {
        ureq::Error::Status(status, _) => format!("the webhook answered HTTP {status}"),
        ureq::Error::Transport(t) => format!(
            "the webhook cannot be reached ({})",
            crate::rest::why_unreachable(t)
        ),
    }
}

impl Webhook {
    pub fn new(url: String, interval: Duration, timeout: Duration) -> Self {
        Webhook {
            url,
            agent: ureq::AgentBuilder::new().timeout(timeout).build(),
            interval_ms: i64::try_from(interval.as_millis()).unwrap_or(i64::MAX),
            last_post_ms: None,
            queue: VecDeque::new(),
            dropped: 0,
            failing: None,
            in_flight: None,
            timeout,
        }
    }

    /// Queues a finding said about `scope` (a job, a process). Info findings stay in the log:
    /// a chat is for what needs someone.
    pub fn push(&mut self, scope: &str, finding: Finding) {
        if finding.severity == Severity::Info {
            return;
        }
        if self.queue.len() >= MAX_QUEUE {
            self.dropped += 1;
            return;
        }
        self.queue.push_back((scope.to_string(), finding));
    }

    /// The message for a batch. Everything from a message is escaped: an exception text must
    /// not ping a channel or render a link in the chat.
    fn text(batch: &[(String, Finding)], more: usize) -> String {
        let mut text = String::new();
        for (scope, d) in batch {
            text.push_str(&format!(
                "*{} {}* ({}, x{}) {}: {}\n",
                d.code,
                d.name,
                d.severity,
                d.count,
                escape(scope),
                escape(&d.title)
            ));
            text.push_str(&format!("> {}\n", escape(&d.evidence)));
            if !d.config.is_empty() {
                let keys: Vec<String> = d
                    .config
                    .iter()
                    .map(|s| format!("`{}`", escape(&s.describe())))
                    .collect();
                text.push_str(&format!("Set {}. ", keys.join(", ")));
            }
            text.push_str(&format!("{} <{}|docs>\n", escape(&d.fix), d.docs));
        }
        if more > 0 {
            text.push_str(&format!(
                "... and {more} more finding(s): see the AUTOTUNE lines in the Flink logs.\n"
            ));
        }
        text
    }

    /// Posts what is queued if the interval allows and no post is under way. Never blocks.
    pub fn flush(&mut self, now_ms: i64, sink: &dyn Sink) {
        self.take_outcome(Duration::ZERO, sink);
        if self.in_flight.is_some()
            || self
                .last_post_ms
                .is_some_and(|last| now_ms.saturating_sub(last) < self.interval_ms)
        {
            return;
        }
        self.post(now_ms, sink);
    }

    /// Posts what is queued now, interval or not (the process is stopping), and waits for it
    /// (and for a post under way) at most the timeout each.
    pub fn flush_now(&mut self, now_ms: i64, sink: &dyn Sink) {
        self.take_outcome(self.timeout, sink);
        if self.in_flight.is_none() {
            self.post(now_ms, sink);
            self.take_outcome(self.timeout, sink);
        }
    }

    /// Hands the next batch to a thread that posts it.
    fn post(&mut self, now_ms: i64, sink: &dyn Sink) {
        if self.queue.is_empty() {
            return;
        }
        let take = self.queue.len().min(MAX_BATCH);
        let batch: Vec<(String, Finding)> = self.queue.drain(..take).collect();
        let more = self.queue.len() + self.dropped;
        let body = serde_json::json!({
            "text": Self::text(&batch, more),
            "username": "flink-autotune",
        });
        self.last_post_ms = Some(now_ms);
        let (done, outcome) = mpsc::sync_channel(1);
        let (agent, url, findings) = (self.agent.clone(), self.url.clone(), batch.len());
        let started = std::thread::Builder::new()
            .name("autotune-webhook".into())
            .spawn(move || {
                let posted = agent.post(&url).send_json(body);
                let _ = done.send(posted.map(|_| ()).map_err(|e| (describe(&e), findings)));
            });
        match started {
            Ok(_) => self.in_flight = Some(outcome),
            Err(e) => self.settle(
                Err((format!("cannot start a thread ({e})"), findings)),
                sink,
            ),
        }
    }

    /// The outcome of the post under way, if it came within `wait`.
    fn take_outcome(&mut self, wait: Duration, sink: &dyn Sink) {
        let Some(outcome) = &self.in_flight else {
            return;
        };
        match outcome.recv_timeout(wait) {
            Ok(result) => {
                self.in_flight = None;
                self.settle(result, sink);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => self.in_flight = None,
        }
    }

    /// A post's outcome: a failure is said once (until posting works again), without the URL.
    fn settle(&mut self, result: Result<(), (String, usize)>, sink: &dyn Sink) {
        match result {
            Ok(()) => {
                self.dropped = 0;
                if self.failing.take().is_some() {
                    sink.say(log::Level::Info, "AUTOTUNE WEBHOOK posting works again");
                }
            }
            Err((why, findings)) => {
                if self.failing.as_deref() != Some(why.as_str()) {
                    sink.say(
                        log::Level::Warn,
                        &format!(
                            "AUTOTUNE WEBHOOK {why}; {findings} finding(s) not posted, retrying with the next ones"
                        ),
                    );
                }
                self.failing = Some(why);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::LogSink;
    use std::sync::Arc;

    use autotune_model::diagnosis::logtext::records;
    use autotune_model::diagnosis::matcher::Origin;
    use autotune_model::diagnosis::{Catalogue, Context, Diagnoser};

    fn finding(text: &str) -> Finding {
        let mut d = Diagnoser::new(Arc::new(Catalogue::builtin()));
        for r in records(text) {
            d.observe(&r, Origin::JobFailure, None, &Context::default());
        }
        d.findings()[0].clone()
    }

    #[test]
    fn posts_are_rate_limited_batched_and_never_name_the_url() {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let url = format!(
            "http://{}/services/T000/B000/SECRETTOKEN",
            server.server_addr().to_ip().unwrap()
        );
        let mut hook = Webhook::new(url, Duration::from_secs(60), Duration::from_secs(3));
        let oom = finding(
            "java.lang.IllegalStateException: boom\n\tat com.example.Job.map(Job.java:3)\n",
        );
        hook.push("job=\"a\"", oom.clone());
        hook.flush(1_000, &LogSink);
        let mut request = server
            .recv_timeout(Duration::from_secs(5))
            .unwrap()
            .expect("a post");
        let mut body = String::new();
        request.as_reader().read_to_string(&mut body).unwrap();
        request
            .respond(tiny_http::Response::from_string("ok"))
            .unwrap();
        hook.take_outcome(Duration::from_secs(5), &LogSink);
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        let text = json["text"].as_str().unwrap();
        assert!(
            text.contains("AT390 USER_CODE_FAILURE") && text.contains("com.example.Job.map"),
            "{text}"
        );
        // Within the interval nothing goes out; the next post carries both.
        hook.push("job=\"a\"", oom.clone());
        hook.push("job=\"b\"", oom);
        hook.flush(30_000, &LogSink);
        assert!(
            server
                .recv_timeout(Duration::from_millis(300))
                .unwrap()
                .is_none(),
            "rate limited"
        );
        hook.flush(61_000, &LogSink);
        let mut request = server
            .recv_timeout(Duration::from_secs(5))
            .unwrap()
            .expect("a post");
        let mut body = String::new();
        request.as_reader().read_to_string(&mut body).unwrap();
        assert!(
            body.contains("job=\\\"a\\\"") && body.contains("job=\\\"b\\\""),
            "{body}"
        );
        request
            .respond(tiny_http::Response::from_string("ok"))
            .unwrap();
    }

    #[test]
    fn a_failing_webhook_is_described_without_its_url() {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let url = format!(
            "http://{}/hooks/SECRETTOKEN",
            server.server_addr().to_ip().unwrap()
        );
        let mut hook = Webhook::new(url.clone(), Duration::ZERO, Duration::from_secs(3));
        hook.push(
            "job",
            finding("java.lang.IllegalStateException: x\n\tat com.example.A.b(A.java:1)\n"),
        );
        let answer = std::thread::spawn(move || {
            let request = server.recv().unwrap();
            request
                .respond(tiny_http::Response::from_string("no").with_status_code(403))
                .unwrap();
        });
        hook.flush(0, &LogSink);
        answer.join().unwrap();
        hook.take_outcome(Duration::from_secs(5), &LogSink);
        let why = hook.failing.clone().unwrap();
        assert_eq!(why, "the webhook answered HTTP 403");
        assert!(!why.contains("SECRETTOKEN"));
        // Unreachable: the transport error is described by kind only.
        let mut dead = Webhook::new(
            "http://127.0.0.1:9/hooks/SECRETTOKEN".into(),
            Duration::ZERO,
            Duration::from_secs(1),
        );
        dead.push("job", hook_finding());
        dead.flush(0, &LogSink);
        dead.take_outcome(Duration::from_secs(5), &LogSink);
        let why = dead.failing.unwrap();
        assert!(
            !why.contains("SECRETTOKEN") && !why.contains("127.0.0.1"),
            "{why}"
        );
    }

    /// A webhook that takes the post and never answers, then one that closes the connection:
    /// flushing never waits for it, one post is under way at a time, the queue stays bounded,
    /// and the trouble is said without the URL.
    #[test]
    fn a_hanging_or_closing_webhook_never_holds_up_the_caller() {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let url = format!(
            "http://{}/hooks/SECRETTOKEN",
            server.server_addr().to_ip().unwrap()
        );
        let sink = crate::sink::MemorySink::new();
        let mut hook = Webhook::new(url, Duration::ZERO, Duration::from_secs(2));
        let finding = hook_finding();
        let mut flushing = Duration::ZERO;
        for i in 0..(3 * MAX_QUEUE) {
            hook.push("job", finding.clone());
            let started = std::time::Instant::now();
            hook.flush(i as i64, sink.as_ref());
            flushing += started.elapsed();
        }
        assert!(
            flushing < Duration::from_millis(500),
            "flushing waited {flushing:?}"
        );
        // The one post under way is held by the server, unanswered: nothing else went out.
        let held = server
            .recv_timeout(Duration::from_secs(5))
            .unwrap()
            .expect("a post");
        assert!(server
            .recv_timeout(Duration::from_millis(200))
            .unwrap()
            .is_none());
        assert_eq!(hook.queue.len(), MAX_QUEUE);
        assert!(hook.dropped > 0);
        // The client gives up after its timeout; the next flush says so, once.
        std::thread::sleep(Duration::from_millis(2_500));
        hook.flush(10_000, sink.as_ref());
        drop(held);
        // A connection closed without an answer.
        let closer = std::thread::spawn(move || {
            if let Ok(Some(request)) = server.recv_timeout(Duration::from_secs(5)) {
                drop(request);
            }
        });
        hook.take_outcome(Duration::from_secs(5), sink.as_ref());
        closer.join().unwrap();
        let lines = sink.lines();
        assert!(!lines.is_empty(), "the trouble is said");
        assert!(
            lines.iter().all(|l| !l.contains("SECRETTOKEN")),
            "{lines:?}"
        );
        assert!(lines.len() <= 3, "said once per kind of trouble: {lines:?}");
        assert!(
            lines
                .iter()
                .any(|l| l.contains("the webhook cannot be reached (timed out)")),
            "{lines:?}"
        );
    }

    #[test]
    fn message_text_cannot_ping_or_link() {
        let d = finding("java.lang.IllegalStateException: <!channel> see <http://evil|here> & more\n\tat com.example.A.b(A.java:1)\n");
        let text = Webhook::text(&[("job".into(), d)], 0);
        assert!(
            text.contains("&lt;!channel&gt; see &lt;http://evil|here&gt; &amp; more"),
            "{text}"
        );
        assert!(!text.contains("<!channel>"));
    }

    #[test]
    fn info_findings_stay_in_the_log() {
        let mut d = Diagnoser::new(Arc::new(Catalogue::builtin()));
        for r in records("java.lang.IllegalStateException: Buffer pool is destroyed.\n\tat org.apache.flink.runtime.io.network.buffer.LocalBufferPool.requestMemorySegment(LocalBufferPool.java:1)\n") {
            d.observe(&r, Origin::Log, None, &Context::default());
        }
        let info = d.findings()[0].clone();
        assert_eq!(info.severity, Severity::Info);
        let mut hook = Webhook::new(
            "http://127.0.0.1:9/x".into(),
            Duration::ZERO,
            Duration::from_secs(1),
        );
        hook.push("job", info);
        assert!(hook.queue.is_empty());
    }

    fn hook_finding() -> Finding {
        finding("java.lang.IllegalStateException: y\n\tat com.example.A.b(A.java:1)\n")
    }
}
