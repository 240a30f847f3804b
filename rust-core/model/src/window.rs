//! Bounded windows of recent samples.
//!
//! Every report samples all tracked metrics at the same instant, so the sample times
//! are kept once per tracker ([`SampleClock`]) and each metric keeps only its values
//! in a fixed-size ring ([`Window`]). Memory per metric is therefore fixed at
//! `capacity * 8` bytes no matter how long the TaskManager runs.

/// A fixed-capacity ring of the most recent values, oldest dropped first.
#[derive(Debug, Clone)]
pub struct Window {
    values: Box<[f64]>,
    next: usize,
    len: usize,
}

impl Window {
    pub fn new(capacity: usize) -> Self {
        assert!(capacity > 0, "a window needs room for at least one sample");
        Window { values: vec![f64::NAN; capacity].into_boxed_slice(), next: 0, len: 0 }
    }

    pub fn capacity(&self) -> usize {
        self.values.len()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Records a sample; NaN records "no value this round" and keeps the rounds aligned.
    #[inline]
    pub fn push(&mut self, value: f64) {
        self.values[self.next] = value;
        self.next = (self.next + 1) % self.values.len();
        self.len = (self.len + 1).min(self.values.len());
    }

    /// The newest sample, if any, even when it is NaN.
    pub fn last(&self) -> Option<f64> {
        (self.len > 0).then(|| self.values[(self.next + self.values.len() - 1) % self.values.len()])
    }

    /// Samples from oldest to newest.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = f64> + '_ {
        let cap = self.values.len();
        let start = (self.next + cap - self.len) % cap;
        (0..self.len).map(move |i| self.values[(start + i) % cap])
    }

    /// Summary of the finite samples; `None` when there is none (all NaN or empty).
    pub fn stats(&self) -> Option<WindowStats> {
        let mut stats = WindowStats { count: 0, min: f64::INFINITY, max: f64::NEG_INFINITY, mean: 0.0 };
        let mut sum = 0.0;
        for v in self.iter().filter(|v| v.is_finite()) {
            stats.count += 1;
            stats.min = stats.min.min(v);
            stats.max = stats.max.max(v);
            sum += v;
        }
        (stats.count > 0).then(|| WindowStats { mean: sum / stats.count as f64, ..stats })
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowStats {
    pub count: usize,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
}

/// The instants (milliseconds since the epoch) of the rounds a tracker has seen.
pub type SampleClock = Window;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_newest_samples_in_order() {
        let mut w = Window::new(3);
        assert!(w.is_empty());
        assert_eq!(w.last(), None);
        for v in 1..=5 {
            w.push(v as f64);
        }
        assert_eq!(w.len(), 3);
        assert_eq!(w.iter().collect::<Vec<_>>(), vec![3.0, 4.0, 5.0]);
        assert_eq!(w.last(), Some(5.0));
    }

    #[test]
    fn stats_skip_missing_samples() {
        let mut w = Window::new(4);
        w.push(2.0);
        w.push(f64::NAN);
        w.push(6.0);
        let s = w.stats().unwrap();
        assert_eq!((s.count, s.min, s.max, s.mean), (2, 2.0, 6.0, 4.0));

        let mut empty = Window::new(2);
        empty.push(f64::NAN);
        assert_eq!(empty.stats(), None);
    }

    #[test]
    fn partially_filled_window_iterates_from_the_first_sample() {
        let mut w = Window::new(5);
        w.push(7.0);
        w.push(8.0);
        assert_eq!(w.iter().collect::<Vec<_>>(), vec![7.0, 8.0]);
    }
}
