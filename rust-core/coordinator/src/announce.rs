//! The one place a finding is said: its line (to the host's [`Sink`]), its webhook post, and
//! the notice that a diagnoser is full.

use std::sync::Arc;

use autotune_model::diagnosis::{Finding, Severity};
use log::Level;

use crate::sink::Sink;
use crate::webhook::Webhook;

/// Says lines and findings for the loop.
pub struct Announcer {
    sink: Arc<dyn Sink>,
    webhook: Option<Webhook>,
}

impl Announcer {
    pub fn new(sink: Arc<dyn Sink>, webhook: Option<Webhook>) -> Self {
        Announcer { sink, webhook }
    }

    pub fn info(&self, line: &str) {
        self.sink.say(Level::Info, line);
    }

    pub fn warn(&self, line: &str) {
        self.sink.say(Level::Warn, line);
    }

    /// One finding about `scope` (a job, a process): its line (a warning when it is an error
    /// or worse), and a post to the webhook when one is configured.
    pub fn finding(&mut self, scope: &str, finding: &Finding) {
        let level = if finding.severity >= Severity::Error {
            Level::Warn
        } else {
            Level::Info
        };
        self.sink.say(level, &finding.log_line(scope));
        if let Some(webhook) = self.webhook.as_mut() {
            webhook.push(scope, finding.clone());
        }
    }

    /// Said once per diagnoser, when it is full.
    pub fn overflow(&self, scope: &str) {
        self.warn(&format!(
            "AUTOTUNE DIAGNOSIS {scope}: more than {} distinct findings; new ones are counted, not said",
            autotune_model::diagnosis::findings::MAX_FINDINGS
        ));
    }

    /// Posts what the webhook holds, if its interval allows.
    pub fn flush(&mut self, now_ms: i64) {
        if let Some(webhook) = self.webhook.as_mut() {
            webhook.flush(now_ms, self.sink.as_ref());
        }
    }

    /// Posts what the webhook holds now (the loop is stopping).
    pub fn flush_now(&mut self, now_ms: i64) {
        if let Some(webhook) = self.webhook.as_mut() {
            webhook.flush_now(now_ms, self.sink.as_ref());
        }
    }
}
