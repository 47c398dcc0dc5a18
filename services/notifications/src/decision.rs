//! Whether one recipient gets a push for one event: a pure function of what is known about both, table-tested.
//!
//! In order: the sender never gets its own push; a recipient must take part in the conversation; a group above
//! [`Policy::max_group_members`] gets none (CometChat's rule: such groups are broadcast channels); a custom
//! message only with `data.sendNotification: true`; a recipient with a live socket anywhere is skipped unless
//! [`Policy::push_to_online`]; a muted conversation, DND and quiet hours silence it unless it is mentioned (or
//! `@all`) and lets mentions through; reactions only when it wants them.

use comet_model::Millis;

use crate::preferences::Effective;

/// CometChat's limit: no pushes to groups above this many members.
pub const MAX_GROUP_MEMBERS: u64 = 1000;

/// The operator's choices (`COMET_NOTIFICATIONS_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Push to recipients that have a live socket too (default: no, they see the message live).
    pub push_to_online: bool,
    pub max_group_members: u64,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy { push_to_online: false, max_group_members: MAX_GROUP_MEMBERS }
    }
}

/// What happened, as far as a push is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Happening {
    /// A new message; `custom` is a custom-category message, `flagged` its `data.sendNotification`.
    Message { custom: bool, flagged: bool },
    /// An edit or a delete, which replace or retract the message's push (same collapse id).
    Change,
    /// A reaction to the recipient's message.
    Reaction,
    /// The recipient was added to a group.
    Added,
}

/// What is known about one recipient of one event.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub happening: Happening,
    pub is_sender: bool,
    pub is_member: bool,
    /// Members of the group; `None` for a direct conversation.
    pub group_members: Option<u64>,
    /// A live socket on any node.
    pub online: bool,
    /// The recipient (or everyone, `@all`) is mentioned.
    pub mentioned: bool,
    /// The recipient muted the conversation until this time (ms).
    pub muted_until: Option<Millis>,
    pub preferences: &'a Effective,
    pub now: Millis,
}

/// Why a recipient got no push: the `reason` of the log's `skipped` entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    Sender,
    NotMember,
    GroupTooLarge,
    CustomWithoutFlag,
    Online,
    Muted,
    DoNotDisturb,
    QuietHours,
    ReactionsOff,
    NoToken,
}

impl Skip {
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::Sender => "sender",
            Skip::NotMember => "not_member",
            Skip::GroupTooLarge => "group_too_large",
            Skip::CustomWithoutFlag => "custom_without_flag",
            Skip::Online => "online",
            Skip::Muted => "muted",
            Skip::DoNotDisturb => "dnd",
            Skip::QuietHours => "quiet_hours",
            Skip::ReactionsOff => "reactions_off",
            Skip::NoToken => "no_token",
        }
    }
}

/// Whether [`decide`] reads a recipient's settings (preferences, mutes) for this happening: not for an online
/// recipient of anything but a reaction when online recipients get no push, because every check above
/// [`Skip::Online`] but the reactions switch reads only the event and the membership. The notifications role
/// reads no settings for such recipients, and no devices for anyone [`decide`] already refused.
pub fn needs_settings(policy: &Policy, happening: Happening, online: bool) -> bool {
    happening == Happening::Reaction || !online || policy.push_to_online
}

/// `Ok(())` when the recipient gets a push, or why not.
pub fn decide(policy: &Policy, facts: &Facts<'_>) -> Result<(), Skip> {
    if facts.is_sender {
        return Err(Skip::Sender);
    }
    if !facts.is_member {
        return Err(Skip::NotMember);
    }
    if facts.group_members.is_some_and(|members| members > policy.max_group_members) {
        return Err(Skip::GroupTooLarge);
    }
    match facts.happening {
        Happening::Message { custom: true, flagged: false } => return Err(Skip::CustomWithoutFlag),
        Happening::Reaction if !facts.preferences.reactions => return Err(Skip::ReactionsOff),
        _ => {}
    }
    if facts.online && !policy.push_to_online {
        return Err(Skip::Online);
    }
    let bypass = facts.mentioned && facts.preferences.mention_bypass;
    if bypass {
        return Ok(());
    }
    if facts.muted_until.is_some_and(|until| until > facts.now) {
        return Err(Skip::Muted);
    }
    if facts.preferences.dnd {
        return Err(Skip::DoNotDisturb);
    }
    if facts.preferences.quiet.as_ref().is_some_and(|quiet| quiet.is_quiet(facts.now)) {
        return Err(Skip::QuietHours);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preferences::{Defaults, Preferences, QuietHours, QuietSpan};

    /// Monday 2026-12-07 12:00 UTC.
    const NOON_UTC: Millis = 1_796_644_800_000;

    fn effective(change: impl FnOnce(&mut Preferences)) -> Effective {
        let mut preferences = Preferences::default();
        change(&mut preferences);
        Effective::of(&Defaults::default(), &preferences)
    }

    fn quiet_in(zone: &str, from: &str, to: &str) -> impl FnOnce(&mut Preferences) {
        let hours = QuietHours {
            time_zone: zone.to_owned(),
            spans: vec![QuietSpan { day: "monday".to_owned(), from: from.to_owned(), to: to.to_owned() }],
        };
        move |preferences: &mut Preferences| preferences.quiet_hours = Some(hours)
    }

    /// The settings `needs_settings` says may be left unread change no verdict: every combination of the facts
    /// that need none, decided with each of a set of very different settings, gets one answer.
    #[test]
    fn settings_left_unread_change_no_verdict() {
        let settings = [
            effective(|_| {}),
            effective(|preferences| preferences.dnd = Some(true)),
            effective(|preferences| preferences.reactions = Some(false)),
            effective(|preferences| preferences.mention_bypass = Some(false)),
            effective(quiet_in("UTC", "0000", "2359")),
        ];
        let happenings = [
            Happening::Message { custom: false, flagged: false },
            Happening::Message { custom: true, flagged: false },
            Happening::Message { custom: true, flagged: true },
            Happening::Change,
            Happening::Reaction,
            Happening::Added,
        ];
        let policies = [Policy::default(), Policy { push_to_online: true, ..Policy::default() }];
        let mut unread = 0;
        for policy in policies {
            for happening in happenings {
                for online in [false, true] {
                    if needs_settings(&policy, happening, online) {
                        continue;
                    }
                    for (is_sender, is_member, group_members, mentioned) in standings() {
                        let verdicts: Vec<Result<(), Skip>> = settings
                            .iter()
                            .flat_map(|preferences| {
                                [None, Some(i64::MAX)].map(|muted_until| {
                                    let facts = Facts {
                                        happening,
                                        is_sender,
                                        is_member,
                                        group_members,
                                        online,
                                        mentioned,
                                        muted_until,
                                        preferences,
                                        now: NOON_UTC,
                                    };
                                    decide(&policy, &facts)
                                })
                            })
                            .collect();
                        assert!(verdicts.windows(2).all(|pair| pair[0] == pair[1]), "{happening:?}: {verdicts:?}");
                        assert!(verdicts[0].is_err(), "{happening:?}: an online recipient left unread gets no push");
                        unread += 1;
                    }
                }
            }
        }
        assert!(unread > 0, "some facts need no settings");
    }

    /// Every (is_sender, is_member, group_members, mentioned) combination the table cares about.
    fn standings() -> Vec<(bool, bool, Option<u64>, bool)> {
        let mut all = Vec::new();
        for is_sender in [false, true] {
            for is_member in [false, true] {
                for group_members in [None, Some(3), Some(MAX_GROUP_MEMBERS + 1)] {
                    for mentioned in [false, true] {
                        all.push((is_sender, is_member, group_members, mentioned));
                    }
                }
            }
        }
        all
    }

    #[test]
    fn the_decision_table() {
        let plain = effective(|_| {});
        let dnd = effective(|preferences| preferences.dnd = Some(true));
        let dnd_no_bypass = effective(|preferences| {
            preferences.dnd = Some(true);
            preferences.mention_bypass = Some(false);
        });
        // 21:00 to 23:00 on Monday in Tokyo is 12:00 to 14:00 UTC; in New York it is hours later.
        let quiet_tokyo = effective(quiet_in("Asia/Tokyo", "2100", "2300"));
        let quiet_new_york = effective(quiet_in("America/New_York", "2100", "2300"));
        let no_reactions = effective(|preferences| preferences.reactions = Some(false));
        let message = Happening::Message { custom: false, flagged: false };
        let base = Facts {
            happening: message,
            is_sender: false,
            is_member: true,
            group_members: None,
            online: false,
            mentioned: false,
            muted_until: None,
            preferences: &plain,
            now: NOON_UTC,
        };
        let default = Policy::default();
        let online_too = Policy { push_to_online: true, ..Policy::default() };
        let cases: Vec<(&str, Policy, Facts<'_>, Result<(), Skip>)> = vec![
            ("offline recipient", default, base.clone(), Ok(())),
            ("online recipient", default, Facts { online: true, ..base.clone() }, Err(Skip::Online)),
            ("online, configured to push", online_too, Facts { online: true, ..base.clone() }, Ok(())),
            ("the sender", default, Facts { is_sender: true, ..base.clone() }, Err(Skip::Sender)),
            ("not a member", default, Facts { is_member: false, ..base.clone() }, Err(Skip::NotMember)),
            ("group of 1000", default, Facts { group_members: Some(1000), ..base.clone() }, Ok(())),
            ("group of 1001", default, Facts { group_members: Some(1001), ..base.clone() }, Err(Skip::GroupTooLarge)),
            (
                "mentioned in a group of 1001",
                default,
                Facts { group_members: Some(1001), mentioned: true, ..base.clone() },
                Err(Skip::GroupTooLarge),
            ),
            ("muted until later", default, Facts { muted_until: Some(NOON_UTC + 1), ..base.clone() }, Err(Skip::Muted)),
            ("mute ran out", default, Facts { muted_until: Some(NOON_UTC), ..base.clone() }, Ok(())),
            (
                "muted but mentioned",
                default,
                Facts { muted_until: Some(i64::MAX), mentioned: true, ..base.clone() },
                Ok(()),
            ),
            ("DND", default, Facts { preferences: &dnd, ..base.clone() }, Err(Skip::DoNotDisturb)),
            ("DND, mentioned", default, Facts { preferences: &dnd, mentioned: true, ..base.clone() }, Ok(())),
            (
                "DND, mentioned, bypass off",
                default,
                Facts { preferences: &dnd_no_bypass, mentioned: true, ..base.clone() },
                Err(Skip::DoNotDisturb),
            ),
            (
                "quiet hours in Tokyo",
                default,
                Facts { preferences: &quiet_tokyo, ..base.clone() },
                Err(Skip::QuietHours),
            ),
            ("same hours in New York", default, Facts { preferences: &quiet_new_york, ..base.clone() }, Ok(())),
            (
                "quiet hours, mentioned",
                default,
                Facts { preferences: &quiet_tokyo, mentioned: true, ..base.clone() },
                Ok(()),
            ),
            (
                "custom without the flag",
                default,
                Facts { happening: Happening::Message { custom: true, flagged: false }, ..base.clone() },
                Err(Skip::CustomWithoutFlag),
            ),
            (
                "custom with sendNotification",
                default,
                Facts { happening: Happening::Message { custom: true, flagged: true }, ..base.clone() },
                Ok(()),
            ),
            ("a reaction", default, Facts { happening: Happening::Reaction, ..base.clone() }, Ok(())),
            (
                "a reaction, reactions off",
                default,
                Facts { happening: Happening::Reaction, preferences: &no_reactions, ..base.clone() },
                Err(Skip::ReactionsOff),
            ),
            ("an edit, offline", default, Facts { happening: Happening::Change, ..base.clone() }, Ok(())),
            (
                "added to a group, DND",
                default,
                Facts { happening: Happening::Added, preferences: &dnd, ..base.clone() },
                Err(Skip::DoNotDisturb),
            ),
        ];
        for (name, policy, facts, expected) in cases {
            assert_eq!(decide(&policy, &facts), expected, "{name}");
        }
    }
}
