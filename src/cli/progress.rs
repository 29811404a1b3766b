//! Progress on stderr for the commands that write or read a lot.

use std::time::{Duration, Instant};

use qklab::units::human_bytes;

/// Progress on stderr, at most twice a second, only for work that lasts.
pub struct Progress {
    what: &'static str,
    bytes: bool,
    start: Instant,
    last: Instant,
    shown: bool,
}

impl Progress {
    /// `bytes`: the counts are bytes (else plain counts).
    pub fn new(what: &'static str, bytes: bool) -> Self {
        let now = Instant::now();
        Progress {
            what,
            bytes,
            start: now,
            last: now,
            shown: false,
        }
    }

    pub fn update(&mut self, done: u64, total: u64) {
        let now = Instant::now();
        if now.duration_since(self.start) < Duration::from_secs(1)
            || now.duration_since(self.last) < Duration::from_millis(500)
        {
            return;
        }
        self.last = now;
        self.shown = true;
        let pct = if total == 0 {
            100.0
        } else {
            done as f64 * 100.0 / total as f64
        };
        let show = |n: u64| {
            if self.bytes {
                human_bytes(n)
            } else {
                n.to_string()
            }
        };
        eprint!(
            "\r{}: {} of {} ({pct:.0}%)   ",
            self.what,
            show(done),
            show(total)
        );
    }

    pub fn finish(&self) {
        if self.shown {
            eprintln!();
        }
    }
}
