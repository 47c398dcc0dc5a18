//! What a user wants pushed, and what the app decides for everyone: a user's [`Preferences`] (every field
//! optional: unset means "the admin default"), the app's [`Defaults`] (values plus which of them a user may
//! override), and the [`Effective`] preferences the decision reads.
//!
//! Quiet hours are weekly: per weekday, spans `HHMM`–`HHMM` in the user's IANA time zone; a span whose end is
//! not after its start runs past midnight into the next day.

use std::collections::BTreeMap;

use comet_model::Millis;
use jiff::Timestamp;
use jiff::civil::Weekday;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

/// Most quiet-hour spans a user may keep.
pub const MAX_QUIET_SPANS: usize = 28;

/// A user's own choices; `None` leaves the admin default in force.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Preferences {
    /// Do not disturb: nothing is pushed (mentions may bypass it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dnd: Option<bool>,
    /// The privacy template: pushes say that a message came, not who sent it or what it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy: Option<bool>,
    /// Whether a mention (of the user, or `@all`) is pushed through DND and quiet hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mention_bypass: Option<bool>,
    /// Whether reactions to the user's messages are pushed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reactions: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_hours: Option<QuietHours>,
}

/// Weekly quiet hours in a time zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QuietHours {
    /// An IANA time zone name (`Europe/Paris`).
    pub time_zone: String,
    pub spans: Vec<QuietSpan>,
}

/// One quiet span: starts on `day` at `from` (`HHMM`), ends at `to` (the next day when `to <= from`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QuietSpan {
    /// `monday` … `sunday`.
    pub day: String,
    pub from: String,
    pub to: String,
}

/// Which preferences a user may set for itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Overrides {
    pub dnd: bool,
    pub privacy: bool,
    pub mention_bypass: bool,
    pub reactions: bool,
    pub quiet_hours: bool,
}

impl Default for Overrides {
    fn default() -> Overrides {
        Overrides { dnd: true, privacy: true, mention_bypass: true, reactions: true, quiet_hours: true }
    }
}

/// The app's defaults and which of them users may override.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Defaults {
    pub dnd: bool,
    pub privacy: bool,
    pub mention_bypass: bool,
    pub reactions: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_hours: Option<QuietHours>,
    #[serde(default)]
    pub user_may_override: Overrides,
}

impl Default for Defaults {
    fn default() -> Defaults {
        Defaults {
            dnd: false,
            privacy: false,
            mention_bypass: true,
            reactions: true,
            quiet_hours: None,
            user_may_override: Overrides::default(),
        }
    }
}

/// The preferences in force for one user: the defaults, with the user's choices where it may choose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effective {
    pub dnd: bool,
    pub privacy: bool,
    pub mention_bypass: bool,
    pub reactions: bool,
    pub quiet: Option<Quiet>,
}

impl Effective {
    pub fn of(defaults: &Defaults, user: &Preferences) -> Effective {
        let may = defaults.user_may_override;
        let pick =
            |allowed: bool, mine: Option<bool>, default: bool| if allowed { mine.unwrap_or(default) } else { default };
        let quiet_hours = match (&user.quiet_hours, may.quiet_hours) {
            (Some(mine), true) => Some(mine),
            _ => defaults.quiet_hours.as_ref(),
        };
        Effective {
            dnd: pick(may.dnd, user.dnd, defaults.dnd),
            privacy: pick(may.privacy, user.privacy, defaults.privacy),
            mention_bypass: pick(may.mention_bypass, user.mention_bypass, defaults.mention_bypass),
            reactions: pick(may.reactions, user.reactions, defaults.reactions),
            // A stored schedule was checked when saved; one that no longer parses (a zone removed from the
            // database) silences nothing.
            quiet: quiet_hours.and_then(|hours| Quiet::parse(hours).ok()),
        }
    }
}

/// Why quiet hours were refused. The API answers `ERR_BAD_QUIET_HOURS` with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuietError {
    #[error("`{0}` is not an IANA time zone")]
    Zone(String),
    #[error("`{0}` is not a weekday (monday … sunday)")]
    Day(String),
    #[error("`{0}` is not a time HHMM (0000 to 2359)")]
    Time(String),
    #[error("at most {MAX_QUIET_SPANS} quiet spans")]
    TooMany,
}

/// Quiet hours ready to be asked "is it quiet now?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quiet {
    zone: TimeZone,
    /// Per weekday (Monday = 0), spans in minutes of the day; `end <= start` runs past midnight.
    days: BTreeMap<i8, Vec<(u16, u16)>>,
}

impl Quiet {
    pub fn parse(hours: &QuietHours) -> Result<Quiet, QuietError> {
        if hours.spans.len() > MAX_QUIET_SPANS {
            return Err(QuietError::TooMany);
        }
        let zone = TimeZone::get(&hours.time_zone).map_err(|_| QuietError::Zone(hours.time_zone.clone()))?;
        let mut days: BTreeMap<i8, Vec<(u16, u16)>> = BTreeMap::new();
        for span in &hours.spans {
            let day = weekday(&span.day).ok_or_else(|| QuietError::Day(span.day.clone()))?;
            let span = (minutes(&span.from)?, minutes(&span.to)?);
            days.entry(day.to_monday_zero_offset()).or_default().push(span);
        }
        Ok(Quiet { zone, days })
    }

    /// Whether `at` (ms) falls in a quiet span, in the schedule's time zone.
    pub fn is_quiet(&self, at: Millis) -> bool {
        let Ok(timestamp) = Timestamp::from_millisecond(at) else { return false };
        let local = timestamp.to_zoned(self.zone.clone());
        let minute = u16::try_from(i32::from(local.hour()) * 60 + i32::from(local.minute())).unwrap_or(0);
        let today = local.weekday().to_monday_zero_offset();
        let yesterday = (today + 6) % 7;
        let in_today = self
            .days
            .get(&today)
            .into_iter()
            .flatten()
            .any(|&(start, end)| if start < end { (start..end).contains(&minute) } else { minute >= start });
        let from_yesterday =
            self.days.get(&yesterday).into_iter().flatten().any(|&(start, end)| end <= start && minute < end);
        in_today || from_yesterday
    }
}

fn weekday(name: &str) -> Option<Weekday> {
    Some(match name.to_ascii_lowercase().as_str() {
        "monday" => Weekday::Monday,
        "tuesday" => Weekday::Tuesday,
        "wednesday" => Weekday::Wednesday,
        "thursday" => Weekday::Thursday,
        "friday" => Weekday::Friday,
        "saturday" => Weekday::Saturday,
        "sunday" => Weekday::Sunday,
        _ => return None,
    })
}

/// `HHMM` as minutes of the day.
fn minutes(text: &str) -> Result<u16, QuietError> {
    let bad = || QuietError::Time(text.to_owned());
    if text.len() != 4 || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(bad());
    }
    let hours: u16 = text[..2].parse().map_err(|_| bad())?;
    let minutes: u16 = text[2..].parse().map_err(|_| bad())?;
    if hours > 23 || minutes > 59 {
        return Err(bad());
    }
    Ok(hours * 60 + minutes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hours(zone: &str, spans: &[(&str, &str, &str)]) -> QuietHours {
        QuietHours {
            time_zone: zone.to_owned(),
            spans: spans
                .iter()
                .map(|(day, from, to)| QuietSpan {
                    day: (*day).to_owned(),
                    from: (*from).to_owned(),
                    to: (*to).to_owned(),
                })
                .collect(),
        }
    }

    /// Milliseconds of an instant written in UTC.
    fn utc(text: &str) -> Millis {
        text.parse::<Timestamp>().expect("instant").as_millisecond()
    }

    #[test]
    fn quiet_hours_follow_the_zone_and_cross_midnight() {
        // 22:00 to 07:00 Monday night in Tokyo (UTC+9).
        let quiet = Quiet::parse(&hours("Asia/Tokyo", &[("monday", "2200", "0700")])).expect("schedule");
        for (instant, expected) in [
            ("2026-12-07T12:59:00Z", false), // Monday 21:59 in Tokyo
            ("2026-12-07T13:00:00Z", true),  // Monday 22:00
            ("2026-12-07T21:59:00Z", true),  // Tuesday 06:59, from Monday's span
            ("2026-12-07T22:00:00Z", false), // Tuesday 07:00
            ("2026-12-08T13:30:00Z", false), // Tuesday 22:30: no span on Tuesday
        ] {
            assert_eq!(quiet.is_quiet(utc(instant)), expected, "{instant}");
        }
        let day = Quiet::parse(&hours("Europe/Paris", &[("sunday", "0900", "1200")])).expect("schedule");
        assert!(day.is_quiet(utc("2026-12-06T08:00:00Z"))); // Sunday 09:00 in Paris (UTC+1)
        assert!(!day.is_quiet(utc("2026-12-06T11:00:00Z"))); // Sunday 12:00
    }

    #[test]
    fn bad_schedules_are_refused_by_name() {
        assert_eq!(
            Quiet::parse(&hours("Mars/Olympus", &[])).expect_err("refused"),
            QuietError::Zone("Mars/Olympus".into())
        );
        assert_eq!(
            Quiet::parse(&hours("UTC", &[("funday", "0000", "0100")])).expect_err("refused"),
            QuietError::Day("funday".into())
        );
        assert_eq!(
            Quiet::parse(&hours("UTC", &[("monday", "2400", "0100")])).expect_err("refused"),
            QuietError::Time("2400".into())
        );
        assert_eq!(
            Quiet::parse(&hours("UTC", &[("monday", "7:00", "0100")])).expect_err("refused"),
            QuietError::Time("7:00".into())
        );
        let many: Vec<_> = (0..=MAX_QUIET_SPANS).map(|_| ("monday", "0000", "0100")).collect();
        assert_eq!(Quiet::parse(&hours("UTC", &many)).expect_err("refused"), QuietError::TooMany);
    }

    #[test]
    fn a_user_overrides_only_what_the_admin_lets_it() {
        let user = Preferences { dnd: Some(true), privacy: Some(true), ..Preferences::default() };
        let open = Defaults::default();
        let effective = Effective::of(&open, &user);
        assert!(effective.dnd && effective.privacy && effective.mention_bypass);
        let locked = Defaults {
            privacy: false,
            user_may_override: Overrides { privacy: false, ..Overrides::default() },
            ..Defaults::default()
        };
        let effective = Effective::of(&locked, &user);
        assert!(effective.dnd);
        assert!(!effective.privacy, "the admin locked privacy off");
    }
}
