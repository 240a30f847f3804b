//! One reporter instance's native state and what it logs.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use autotune_model::catalogue::{CatalogueError, RawMetric};
use autotune_model::options::Options;
use autotune_model::tracker::{Registration, Tracker};

pub struct Reporter {
    options: Options,
    /// Flink's own `interval` option, shown in the START line.
    flink_interval: Option<String>,
    plugin_version: String,
    platform: String,
    tracker: Tracker,
    started: bool,
    last_status: Option<Instant>,
}

impl Reporter {
    pub fn open<'a>(
        options: impl IntoIterator<Item = (&'a str, &'a str)> + Clone,
        plugin_version: String,
        platform: String,
    ) -> Self {
        // Flink's own `interval`, in the compact spelling of the other durations when it parses.
        let flink_interval = options
            .clone()
            .into_iter()
            .find(|(k, _)| *k == "interval")
            .map(|(_, v)| {
                autotune_model::duration::parse(v)
                    .map(autotune_model::duration::format)
                    .unwrap_or_else(|_| v.to_string())
            });
        let parsed = Options::parse(options);
        for problem in &parsed.problems {
            log::warn!("AUTOTUNE CONFIG {problem}");
        }
        Reporter {
            tracker: Tracker::new(parsed.options.window_size),
            options: parsed.options,
            flink_interval,
            plugin_version,
            platform,
            started: false,
            last_status: None,
        }
    }

    pub fn register(&mut self, slot: usize, raw: RawMetric<'_>) -> Result<bool, CatalogueError> {
        let registration = self.tracker.register(slot, raw)?;
        Ok(registration == Registration::Tracked)
    }

    pub fn unregister(&mut self, slot: usize) {
        self.tracker.unregister(slot);
    }

    /// Where the shim's values for the next round are copied: straight into the windows,
    /// so the hot path costs one copy and no allocation.
    pub fn next_round(&mut self, count: usize) -> &mut [f64] {
        self.tracker.next_round(count)
    }

    /// Counts the round filled through [`Self::next_round`] and logs the periodic lines.
    pub fn report(&mut self, count: usize, last_read_nanos: i64, last_cost_nanos: i64) {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        self.tracker.commit_round(now_ms);
        if !self.started {
            // After the first round the role is known from what Flink registered.
            self.started = true;
            log::info!(
                "AUTOTUNE START plugin={} native={} role={} platform={} interval={} {}",
                self.plugin_version,
                autotune_model::VERSION,
                self.tracker.role(),
                self.platform,
                self.flink_interval.as_deref().unwrap_or("<flink default>"),
                self.options
            );
        }
        let now = Instant::now();
        if self.last_status.map_or(true, |t| {
            now.duration_since(t) >= self.options.summary_interval
        }) {
            self.last_status = Some(now);
            log::info!(
                "AUTOTUNE STATUS report-cost={}us read-cost={}us values={} native-heap={}KiB {}",
                last_cost_nanos.max(0) / 1_000,
                last_read_nanos.max(0) / 1_000,
                count,
                crate::alloc::allocated_bytes() / 1024,
                self.tracker.summary()
            );
        }
    }

    pub fn close(self) {
        log::info!(
            "AUTOTUNE STOP role={} rounds={} tracked={}",
            self.tracker.role(),
            self.tracker.rounds(),
            self.tracker.tracked()
        );
    }

    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }
}
