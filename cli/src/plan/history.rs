//! One line of history.jsonl: what a deploy or upgrade did, with the time passed in.

use serde::{Deserialize, Serialize};

use crate::domain::Target;
use crate::spec::Spec;

/// One line of history.jsonl.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryRecord {
    /// RFC 3339, UTC.
    pub time: String,
    /// `deploy`, `upgrade`.
    pub action: String,
    pub target: String,
    /// The comet-server image before and after.
    pub from: String,
    pub to: String,
    /// `ok`, `no-changes`, `failed`, `rolled-back`.
    pub result: String,
    pub seconds: f64,
    #[serde(default)]
    pub detail: String,
}

/// What one attempt was: its action and target, and the specs it went from and to.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    pub action: &'a str,
    pub target: Target,
    pub from: &'a Spec,
    pub to: &'a Spec,
}

impl HistoryRecord {
    /// The record of `attempt`, finished at `now_unix_seconds` after `seconds`.
    pub fn new(attempt: Attempt<'_>, now_unix_seconds: u64, result: &str, seconds: f64, detail: &str) -> HistoryRecord {
        HistoryRecord {
            time: rfc3339(now_unix_seconds),
            action: attempt.action.to_owned(),
            target: attempt.target.as_str().to_owned(),
            from: attempt.from.images.comet.reference(),
            to: attempt.to.images.comet.reference(),
            result: result.to_owned(),
            seconds: (seconds * 10.0).round() / 10.0,
            detail: detail.to_owned(),
        }
    }
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (civil-from-days, no time-zone database needed).
pub fn rfc3339(seconds: u64) -> String {
    let days = i64::try_from(seconds / 86_400).unwrap_or(0);
    let rest = seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rest / 3600, rest % 3600 / 60, rest % 60)
}

/// The proleptic Gregorian date (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's
/// algorithm).
pub fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, u8::try_from(month).unwrap_or(1), u8::try_from(day).unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_796_515_199), "2026-12-05T23:59:59Z");
    }
}
