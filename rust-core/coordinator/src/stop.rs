//! Stopping the loop's threads: a flag a thread can sleep on (stopping wakes it at once),
//! and a named thread that runs until it is stopped and is joined when it is.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

#[derive(Default)]
pub struct StopFlag {
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl StopFlag {
    pub fn new() -> Arc<Self> {
        Arc::new(StopFlag::default())
    }

    pub fn stop(&self) {
        *self.stopped.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.wake.notify_all();
    }

    /// Waits up to `pause`; false once stopping was asked for.
    pub fn sleep(&self, pause: Duration) -> bool {
        let guard = self.stopped.lock().unwrap_or_else(|p| p.into_inner());
        let (guard, _) = self
            .wake
            .wait_timeout_while(guard, pause, |stopped| !*stopped)
            .unwrap_or_else(|p| p.into_inner());
        !*guard
    }

    pub fn is_stopped(&self) -> bool {
        *self.stopped.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A thread of the plugin's own. Stopping (or dropping) it sets its flag and joins it, so a
/// closing reporter never leaves a thread behind.
pub struct Background {
    stop: Arc<StopFlag>,
    thread: Option<JoinHandle<()>>,
}

impl Background {
    pub fn spawn(
        name: &str,
        body: impl FnOnce(&StopFlag) + Send + 'static,
    ) -> std::io::Result<Self> {
        let stop = StopFlag::new();
        let for_thread = stop.clone();
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || body(&for_thread))?;
        Ok(Background {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the thread and waits for it.
    pub fn stop(self) {}
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn stopping_wakes_a_sleeping_thread_at_once() {
        let started = Instant::now();
        let background = Background::spawn(
            "sleeper",
            |stop| while stop.sleep(Duration::from_secs(60)) {},
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(50));
        background.stop();
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
