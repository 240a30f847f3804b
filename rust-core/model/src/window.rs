//! Bounded windows of recent samples, laid out for the hot path.
//!
//! Every report round samples all tracked metrics at the same instant, so the rounds are
//! kept as rows of one ring-shaped matrix ([`SampleRing`]): a round is a single contiguous
//! row, which the JNI layer fills straight from the Java array with one copy. A metric's
//! window ([`Samples`]) is its column over the rows it has been registered for. Memory is
//! fixed at `capacity * slots * 8` bytes, no matter how long the process runs.

/// The last `capacity` rounds of every slot.
#[derive(Debug, Clone)]
pub struct SampleRing {
    capacity: usize,
    width: usize,
    /// Row-major: `data[row * width + slot]`.
    data: Vec<f64>,
    /// Wall-clock time of each row, milliseconds since the epoch.
    times: Vec<i64>,
    /// Rounds recorded so far; the newest is row `(rounds - 1) % capacity`.
    rounds: u64,
    /// Cells past this slot were never written in any row (they are still NaN).
    written_width: usize,
}

impl SampleRing {
    pub fn new(capacity: usize) -> Self {
        assert!(capacity > 0, "a window needs room for at least one round");
        SampleRing {
            capacity,
            width: 0,
            data: Vec::new(),
            times: vec![0; capacity],
            rounds: 0,
            written_width: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn rounds(&self) -> u64 {
        self.rounds
    }

    /// Makes room for slots `0..slots`; new cells read as missing (NaN).
    pub fn ensure_width(&mut self, slots: usize) {
        if slots <= self.width {
            return;
        }
        let width = slots.max(self.width * 2).max(16);
        let mut data = vec![f64::NAN; self.capacity * width];
        for row in 0..self.capacity.min(self.rounds as usize) {
            let old = &self.data[row * self.width..(row + 1) * self.width];
            data[row * width..row * width + self.width].copy_from_slice(old);
        }
        self.data = data;
        self.width = width;
    }

    /// The row the next round goes into, `count` cells long; cells past `count` are set
    /// to missing. Nothing is recorded until [`Self::commit_round`].
    #[inline]
    pub fn next_row(&mut self, count: usize) -> &mut [f64] {
        self.ensure_width(count);
        let row = (self.rounds % self.capacity as u64) as usize;
        let cells = &mut self.data[row * self.width..(row + 1) * self.width];
        // Only cells an earlier, wider round wrote can hold stale values; the shim's count
        // never shrinks, so on the hot path this fills nothing.
        if count < self.written_width {
            cells[count..self.written_width].fill(f64::NAN);
        }
        self.written_width = self.written_width.max(count);
        &mut cells[..count]
    }

    /// Records the row filled through [`Self::next_row`] as the newest round.
    #[inline]
    pub fn commit_round(&mut self, epoch_millis: i64) {
        let row = (self.rounds % self.capacity as u64) as usize;
        self.times[row] = epoch_millis;
        self.rounds += 1;
    }

    /// Records one round from a slice: `values[slot]` (missing past its end).
    pub fn record(&mut self, epoch_millis: i64, values: &[f64]) {
        self.next_row(values.len()).copy_from_slice(values);
        self.commit_round(epoch_millis);
    }

    /// The window of `slot` over the rounds since round `since` (when it was registered).
    pub fn samples(&self, slot: usize, since: u64) -> Samples<'_> {
        let oldest_kept = self.rounds.saturating_sub(self.capacity as u64);
        let first = since.max(oldest_kept);
        let len = if slot < self.width {
            self.rounds.saturating_sub(first) as usize
        } else {
            0
        };
        Samples {
            ring: self,
            slot,
            first,
            len,
        }
    }
}

/// One metric's recent samples, oldest first.
#[derive(Debug, Clone, Copy)]
pub struct Samples<'a> {
    ring: &'a SampleRing,
    slot: usize,
    first: u64,
    len: usize,
}

impl<'a> Samples<'a> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn at(&self, round: u64) -> (i64, f64) {
        let row = (round % self.ring.capacity as u64) as usize;
        (
            self.ring.times[row],
            self.ring.data[row * self.ring.width + self.slot],
        )
    }

    /// `(epoch millis, value)` pairs from oldest to newest; NaN marks a round without a value.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (i64, f64)> + 'a {
        let this = *self;
        (this.first..this.first + this.len as u64).map(move |round| this.at(round))
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = f64> + 'a {
        self.iter().map(|(_, v)| v)
    }

    /// The newest sample, even when it is NaN.
    pub fn last(&self) -> Option<f64> {
        (self.len > 0).then(|| self.at(self.first + self.len as u64 - 1).1)
    }

    /// Summary of the finite samples; `None` when there is none.
    pub fn stats(&self) -> Option<WindowStats> {
        let mut stats = WindowStats {
            count: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            mean: 0.0,
        };
        let mut sum = 0.0;
        for v in self.values().filter(|v| v.is_finite()) {
            stats.count += 1;
            stats.min = stats.min.min(v);
            stats.max = stats.max.max(v);
            sum += v;
        }
        (stats.count > 0).then(|| WindowStats {
            mean: sum / stats.count as f64,
            ..stats
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowStats {
    pub count: usize,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_newest_rounds_in_order() {
        let mut ring = SampleRing::new(3);
        assert!(ring.samples(0, 0).is_empty());
        assert_eq!(ring.samples(0, 0).last(), None);
        for round in 1..=5 {
            ring.record(round * 1000, &[round as f64, -(round as f64)]);
        }
        let first = ring.samples(0, 0);
        assert_eq!(first.values().collect::<Vec<_>>(), vec![3.0, 4.0, 5.0]);
        assert_eq!(
            first.iter().map(|(t, _)| t).collect::<Vec<_>>(),
            vec![3000, 4000, 5000]
        );
        assert_eq!(ring.samples(1, 0).last(), Some(-5.0));
    }

    #[test]
    fn a_metric_sees_only_rounds_since_it_was_registered() {
        let mut ring = SampleRing::new(10);
        ring.record(0, &[1.0]);
        ring.record(1, &[2.0]);
        // Slot 0 was reused by a new metric at round 2.
        ring.record(2, &[7.0]);
        assert_eq!(ring.samples(0, 2).values().collect::<Vec<_>>(), vec![7.0]);
    }

    #[test]
    fn growing_keeps_history_and_missing_cells_are_nan() {
        let mut ring = SampleRing::new(4);
        ring.record(0, &[1.0]);
        ring.record(1, &[2.0, 20.0]);
        ring.record(2, &[3.0]);
        assert_eq!(
            ring.samples(0, 0).values().collect::<Vec<_>>(),
            vec![1.0, 2.0, 3.0]
        );
        let second: Vec<f64> = ring.samples(1, 0).values().collect();
        assert!(second[0].is_nan() && second[1] == 20.0 && second[2].is_nan());
        assert!(ring.samples(500, 0).is_empty());
    }

    #[test]
    fn stats_skip_missing_samples() {
        let mut ring = SampleRing::new(4);
        for v in [2.0, f64::NAN, 6.0] {
            ring.record(0, &[v]);
        }
        let s = ring.samples(0, 0).stats().unwrap();
        assert_eq!((s.count, s.min, s.max, s.mean), (2, 2.0, 6.0, 4.0));
        let mut empty = SampleRing::new(2);
        empty.record(0, &[f64::NAN]);
        assert_eq!(empty.samples(0, 0).stats(), None);
    }
}
