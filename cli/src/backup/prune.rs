//! `backup prune`: which sets a retention policy keeps — the newest set of each of the last N days, ISO weeks
//! and months that have one (each rule counts only periods with a set, like restic's `forget`) and always
//! the newest complete set — and which go. Pure: ids in, a plan out; the command shows it and deletes only
//! with `--yes`. Incomplete sets (interrupted backups) always go.

use std::collections::BTreeSet;

use serde::Serialize;

/// How many periods of each kind keep their newest set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
}

impl Default for Policy {
    /// CometChat's guide: 30 daily database backups, monthly ones for 90 days; and 8 weekly between them.
    fn default() -> Policy {
        Policy { daily: 30, weekly: 8, monthly: 3 }
    }
}

/// One set's fate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub id: String,
    pub keep: bool,
    /// Why it stays (`newest`, `daily`, `weekly`, `monthly`) or goes (`incomplete`, `not kept by any rule`).
    pub why: Vec<String>,
}

/// The days since 1970-01-01 of a set id `YYYYMMDDTHHMMSSZ`, with its year and month.
fn date_of(id: &str) -> Option<(i64, i64, u32)> {
    let year: i64 = id.get(0..4)?.parse().ok()?;
    let month: u32 = id.get(4..6)?.parse().ok()?;
    let day: u32 = id.get(6..8)?.parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || id.as_bytes().get(8) != Some(&b'T') {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm), the inverse of plan::history::civil_from_days.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some((era * 146_097 + doe - 719_468, year, month))
}

/// Which of `sets` (id, complete) the policy keeps, newest first.
pub fn plan(sets: &[(String, bool)], policy: Policy) -> Vec<Decision> {
    let mut sorted: Vec<&(String, bool)> = sets.iter().collect();
    sorted.sort_by(|a, b| b.0.cmp(&a.0));
    let (mut days, mut weeks, mut months) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    let mut newest_done = false;
    sorted
        .into_iter()
        .map(|(id, complete)| {
            let mut why = Vec::new();
            match date_of(id) {
                _ if !complete => why.push("incomplete".to_owned()),
                None => why.push("not a set id: kept".to_owned()),
                Some((day, year, month)) => {
                    if !newest_done {
                        newest_done = true;
                        why.push("newest".to_owned());
                    }
                    // Monday of its ISO week: 1970-01-01 was a Thursday.
                    let week = day - (day + 3).rem_euclid(7);
                    let mut rule = |seen: &mut BTreeSet<i64>, key: i64, limit: u32, name: &str| {
                        if seen.len() < limit as usize && seen.insert(key) {
                            why.push(name.to_owned());
                        }
                    };
                    rule(&mut days, day, policy.daily, "daily");
                    rule(&mut weeks, week, policy.weekly, "weekly");
                    rule(&mut months, year * 12 + i64::from(month), policy.monthly, "monthly");
                }
            }
            let keep = *complete && !why.is_empty();
            if !keep && why.is_empty() {
                why.push("not kept by any rule".to_owned());
            }
            Decision { id: id.clone(), keep, why }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Vec<(String, bool)> {
        list.iter().map(|id| ((*id).to_owned(), true)).collect()
    }

    fn kept(decisions: &[Decision]) -> Vec<&str> {
        decisions.iter().filter(|decision| decision.keep).map(|decision| decision.id.as_str()).collect()
    }

    #[test]
    fn the_newest_of_each_period_is_kept_up_to_each_rule() {
        // Two sets a day for ten days in January 2026 (1 Jan was a Thursday), one in each of Nov and Dec 2025.
        let mut list = vec!["20251115T030000Z", "20251215T030000Z"];
        let days: Vec<String> =
            (1..=10).flat_map(|day| [format!("202601{day:02}T030000Z"), format!("202601{day:02}T150000Z")]).collect();
        list.extend(days.iter().map(String::as_str));
        let plan = plan(&ids(&list), Policy { daily: 3, weekly: 2, monthly: 2 });
        assert_eq!(
            kept(&plan),
            [
                "20260110T150000Z", // newest, daily, weekly (week of Mon 5 Jan), monthly (Jan)
                "20260109T150000Z", // daily
                "20260108T150000Z", // daily
                "20260104T150000Z", // weekly: the week of Mon 29 Dec
                "20251215T030000Z", // monthly: December
            ]
        );
        let newest = &plan[0];
        assert_eq!(newest.why, ["newest", "daily", "weekly", "monthly"]);
        assert_eq!(plan.iter().filter(|decision| !decision.keep).count(), list.len() - 5);
    }

    #[test]
    fn incomplete_sets_go_and_the_newest_complete_one_always_stays() {
        let mut sets = ids(&["20260101T000000Z", "20260102T000000Z"]);
        sets.push(("20260103T000000Z".to_owned(), false));
        let plan = plan(&sets, Policy { daily: 0, weekly: 0, monthly: 0 });
        assert_eq!(kept(&plan), ["20260102T000000Z"]);
        assert_eq!(plan[0].why, ["incomplete"]);
        assert_eq!(plan[2].why, ["not kept by any rule"]);
    }

    #[test]
    fn dates_read_back_from_ids() {
        assert_eq!(date_of("19700101T000000Z"), Some((0, 1970, 1)));
        assert_eq!(date_of("20000229T120000Z"), Some((11_016, 2000, 2)));
        assert_eq!(date_of("2000-02-29"), None);
        let (days, _, _) = date_of("20261207T063456Z").expect("a date");
        assert_eq!(crate::plan::history::civil_from_days(days), (2026, 12, 7));
    }
}
