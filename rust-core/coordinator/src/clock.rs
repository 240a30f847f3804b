//! The loop's clock: every time the loop reads and every wait it makes go through one
//! [`Clock`], so a test steps time instead of sleeping (a decision window of a minute, a
//! stabilization and a delayed scale-down run in milliseconds on a [`ManualClock`]).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::stop::StopFlag;

pub trait Clock: Send + Sync {
    /// Now, in milliseconds since the epoch.
    fn now_ms(&self) -> i64;
    /// Waits `pause` unless stopping is asked for first; false once it was.
    fn sleep(&self, pause: Duration, stop: &StopFlag) -> bool;
}

/// The wall clock, and waits that stopping wakes at once.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        crate::epoch_ms()
    }

    fn sleep(&self, pause: Duration, stop: &StopFlag) -> bool {
        stop.sleep(pause)
    }
}

/// A clock that moves only when it is slept on or advanced: a wait returns at once, its
/// pause added to the time.
pub struct ManualClock {
    now_ms: AtomicI64,
}

impl ManualClock {
    pub fn starting_at(epoch_ms: i64) -> Arc<Self> {
        Arc::new(ManualClock {
            now_ms: AtomicI64::new(epoch_ms),
        })
    }

    pub fn advance(&self, by: Duration) {
        self.now_ms
            .fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now_ms.load(Ordering::SeqCst)
    }

    fn sleep(&self, pause: Duration, stop: &StopFlag) -> bool {
        if stop.is_stopped() {
            return false;
        }
        self.advance(pause);
        true
    }
}

/// Time since `since_ms` on `clock`, never negative.
pub fn elapsed(clock: &dyn Clock, since_ms: i64) -> Duration {
    Duration::from_millis((clock.now_ms() - since_ms).max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_by_what_is_slept_and_stops_with_the_flag() {
        let clock = ManualClock::starting_at(1_000);
        let stop = StopFlag::new();
        assert!(clock.sleep(Duration::from_secs(60), &stop));
        assert_eq!(clock.now_ms(), 61_000);
        assert_eq!(elapsed(clock.as_ref(), 1_000), Duration::from_secs(60));
        stop.stop();
        assert!(!clock.sleep(Duration::from_secs(60), &stop));
        assert_eq!(clock.now_ms(), 61_000);
    }
}
