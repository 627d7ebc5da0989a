//! How far a long operation is, in bytes and files, shared between the thread doing it and
//! whoever reports on it (lock-free counters; a reader sees a consistent-enough snapshot).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Bytes and files, known and done, of one operation.
#[derive(Debug)]
pub struct Meter {
    started: Instant,
    bytes_total: AtomicU64,
    bytes_done: AtomicU64,
    files_total: AtomicU64,
    files_done: AtomicU64,
}

impl Default for Meter {
    fn default() -> Self {
        Meter {
            started: Instant::now(),
            bytes_total: AtomicU64::new(0),
            bytes_done: AtomicU64::new(0),
            files_total: AtomicU64::new(0),
            files_done: AtomicU64::new(0),
        }
    }
}

/// A meter's reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    /// Bytes known so far.
    pub bytes_total: u64,
    /// Bytes done.
    pub bytes_done: u64,
    /// Files known so far.
    pub files_total: u64,
    /// Files done.
    pub files_done: u64,
    /// Since the meter was made.
    pub elapsed: Duration,
}

impl Reading {
    /// Bytes per second since the start (0 before anything is done).
    pub fn rate(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            #[allow(clippy::cast_precision_loss)]
            let done = self.bytes_done as f64;
            done / s
        } else {
            0.0
        }
    }

    /// Seconds left at the rate so far, when there is a rate and something left.
    pub fn eta(&self) -> Option<f64> {
        let rate = self.rate();
        #[allow(clippy::cast_precision_loss)]
        let left = self.bytes_total.saturating_sub(self.bytes_done) as f64;
        (rate > 0.0 && self.bytes_total > 0).then(|| left / rate)
    }
}

impl Meter {
    /// A meter started now.
    pub fn new() -> Self {
        Self::default()
    }

    /// More work became known.
    pub fn add_total(&self, bytes: u64, files: u64) {
        self.bytes_total.fetch_add(bytes, Ordering::Relaxed);
        self.files_total.fetch_add(files, Ordering::Relaxed);
    }

    /// Work was done.
    pub fn advance(&self, bytes: u64, files: u64) {
        self.bytes_done.fetch_add(bytes, Ordering::Relaxed);
        self.files_done.fetch_add(files, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn read(&self) -> Reading {
        Reading {
            bytes_total: self.bytes_total.load(Ordering::Relaxed),
            bytes_done: self.bytes_done.load(Ordering::Relaxed),
            files_total: self.files_total.load(Ordering::Relaxed),
            files_done: self.files_done.load(Ordering::Relaxed),
            elapsed: self.started.elapsed(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_and_eta_follow_the_counters() {
        let r = Reading {
            bytes_total: 1000,
            bytes_done: 250,
            files_total: 4,
            files_done: 1,
            elapsed: Duration::from_secs(5),
        };
        assert!((r.rate() - 50.0).abs() < 1e-9);
        assert_eq!(r.eta(), Some(15.0));
        let fresh = Meter::new();
        fresh.add_total(10, 1);
        assert_eq!(fresh.read().eta(), None, "no rate yet");
        fresh.advance(10, 1);
        let done = fresh.read();
        assert_eq!((done.bytes_done, done.files_done), (10, 1));
    }
}
