//! Rate limits for repeated log lines: a fault that repeats per line or per write (an unwritable quarantine
//! file under a flood of bad lines) logs once per interval with the number of repeats suppressed, instead of
//! once per occurrence.

use std::time::{Duration, Instant};

/// One limiter per kind of repeated error.
#[derive(Debug)]
pub struct LogLimit {
    every: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl LogLimit {
    pub const fn new(every: Duration) -> LogLimit {
        LogLimit {
            every,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(n)` when this occurrence may be logged, `n` being how many were held back since the last one
    /// logged; `None` to stay quiet.
    pub fn allow(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < self.every)
        {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_logs_once_and_counts_the_rest() {
        let mut limit = LogLimit::new(Duration::from_secs(3_600));
        assert_eq!(limit.allow(), Some(0));
        let quiet = (0..2_133).filter(|_| limit.allow().is_some()).count();
        assert_eq!(quiet, 0, "one line for the whole burst");
        assert_eq!(limit.suppressed, 2_133);
    }
}
