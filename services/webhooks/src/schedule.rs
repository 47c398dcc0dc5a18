//! When a failed delivery is tried again: a fixed schedule (over a day by default) with jitter, and never
//! sooner than a receiver's `Retry-After` asks.

use std::time::Duration;

/// The default waits after each failed attempt: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (about 27.6 h in all,
/// 8 attempts counting the first, immediate one).
pub const DEFAULT_SCHEDULE: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];

/// Jitter: each wait is moved by up to this fraction either way, so receivers that failed together are not
/// retried together.
const JITTER: f64 = 0.1;

/// The longest `Retry-After` honoured; a receiver asking for more is tried again after this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(10 * 3600);

/// The waits between attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule {
    waits: Vec<Duration>,
}

impl Default for RetrySchedule {
    fn default() -> RetrySchedule {
        RetrySchedule { waits: DEFAULT_SCHEDULE.to_vec() }
    }
}

impl RetrySchedule {
    /// A schedule of `waits` (after the 1st, 2nd, … failed attempt); at least one.
    pub fn new(waits: Vec<Duration>) -> Option<RetrySchedule> {
        (!waits.is_empty()).then_some(RetrySchedule { waits })
    }

    /// Parses comma-separated milliseconds (`5000,300000,…`).
    pub fn parse_millis(text: &str) -> Result<RetrySchedule, String> {
        let waits: Result<Vec<Duration>, String> = text
            .split(',')
            .map(str::trim)
            .map(|part| {
                part.parse::<u64>().map(Duration::from_millis).map_err(|_| format!("`{part}` is not milliseconds"))
            })
            .collect();
        RetrySchedule::new(waits?).ok_or_else(|| "the schedule needs at least one wait".to_owned())
    }

    /// Attempts in all, the first included.
    pub fn attempts(&self) -> usize {
        self.waits.len() + 1
    }

    /// The whole span from the first attempt to the last, without jitter.
    pub fn span(&self) -> Duration {
        self.waits.iter().sum()
    }

    /// The wait after `failed` attempts of this round (1 after the first), or `None` when that was the last.
    /// `jitter` is a number in [0, 1) from the caller; `retry_after` is the receiver's ask, honoured up to
    /// [`MAX_RETRY_AFTER`] when it is longer than the scheduled wait.
    pub fn wait_after(&self, failed: usize, jitter: f64, retry_after: Option<Duration>) -> Option<Duration> {
        let wait = *self.waits.get(failed.checked_sub(1)?)?;
        let factor = 1.0 + JITTER * (2.0 * jitter.clamp(0.0, 1.0) - 1.0);
        let jittered = wait.mul_f64(factor);
        Some(match retry_after {
            Some(asked) => jittered.max(asked.min(MAX_RETRY_AFTER)),
            None => jittered,
        })
    }
}

/// A `Retry-After` header's value in seconds (the HTTP-date form is not honoured).
pub fn retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_schedule_spans_more_than_a_day() {
        let schedule = RetrySchedule::default();
        assert!(schedule.span() >= Duration::from_secs(24 * 3600));
        assert_eq!(schedule.attempts(), 8);
        assert_eq!(schedule.wait_after(1, 0.5, None), Some(Duration::from_secs(5)));
        assert_eq!(schedule.wait_after(7, 0.5, None), Some(Duration::from_secs(10 * 3600)));
        assert_eq!(schedule.wait_after(8, 0.5, None), None);
        assert_eq!(schedule.wait_after(0, 0.5, None), None);
    }

    #[test]
    fn jitter_stays_within_ten_percent_and_retry_after_wins_when_longer() {
        let schedule = RetrySchedule::default();
        let low = schedule.wait_after(2, 0.0, None).expect("wait");
        let high = schedule.wait_after(2, 0.999, None).expect("wait");
        assert!(low >= Duration::from_secs(270) && high <= Duration::from_secs(330), "{low:?} {high:?}");
        let asked = schedule.wait_after(1, 0.5, Some(Duration::from_secs(60))).expect("wait");
        assert_eq!(asked, Duration::from_secs(60));
        let capped = schedule.wait_after(1, 0.5, Some(Duration::from_secs(999_999))).expect("wait");
        assert_eq!(capped, Duration::from_secs(10 * 3600));
    }

    #[test]
    fn schedules_parse_from_milliseconds() {
        let schedule = RetrySchedule::parse_millis("10, 20,40").expect("schedule");
        assert_eq!(schedule.attempts(), 4);
        assert!(RetrySchedule::parse_millis("").is_err());
        assert!(RetrySchedule::parse_millis("5s").is_err());
        assert_eq!(retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
