use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} `{value}` is invalid: use 1 to 100 letters, digits, `_` or `-`")]
pub struct IdError {
    pub kind: &'static str,
    pub value: String,
}

fn valid(value: &str) -> bool {
    (1..=100).contains(&value.len()) && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

macro_rules! id_type {
    ($name:ident, $kind:literal) => {
        #[doc = concat!("A ", $kind, ": 1 to 100 letters, digits, `_` or `-`, compared case-sensitively.")]
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn parse(value: &str) -> Result<$name, IdError> {
                if valid(value) {
                    Ok($name(value.to_owned()))
                } else {
                    Err(IdError { kind: $kind, value: value.to_owned() })
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<$name, D::Error> {
                let raw = String::deserialize(deserializer)?;
                $name::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(Uid, "uid");
id_type!(Guid, "guid");

/// What a conversation is: the two users of a direct conversation (in order), or a group.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConversationKind {
    /// Two users, the lower uid first (a user may talk to themself: then both are the same).
    Direct {
        low: Uid,
        high: Uid,
    },
    Group(Guid),
}

/// A conversation, identified by what it is ([`ConversationKind`]), never by parsing a display string.
///
/// It has two spellings:
/// - the **key** (`u:<low uid>:<high uid>` or `g:<guid>`): what the store and the event bus use. `:` is not in
///   the uid and guid alphabet, so distinct conversations never share a key, and [`ConversationId::from_key`]
///   reads one back exactly.
/// - the **display id** (`<low>_user_<high>` or `group_<guid>`, CometChat's shape): an output only, in JSON
///   (`Serialize`) and messages (`Display`). Uids may contain `_user_` and start with `group_`, so two
///   conversations can share a display id: it is never used to decide who takes part. A client that names a
///   conversation by it is resolved with [`ConversationId::resolve_display`], which refuses what is ambiguous.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConversationId {
    kind: ConversationKind,
    key: String,
}

/// Why a conversation key could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a conversation key (`u:<uid>:<uid>` or `g:<guid>`)")]
pub struct ConversationKeyError(pub String);

impl ConversationId {
    pub fn group(guid: &Guid) -> ConversationId {
        ConversationId { key: format!("g:{guid}"), kind: ConversationKind::Group(guid.clone()) }
    }

    pub fn direct(a: &Uid, b: &Uid) -> ConversationId {
        let (low, high) = if a <= b { (a, b) } else { (b, a) };
        ConversationId {
            key: format!("u:{low}:{high}"),
            kind: ConversationKind::Direct { low: low.clone(), high: high.clone() },
        }
    }

    /// Reads back a key written by [`ConversationId::key`] (from the store or an event).
    pub fn from_key(key: &str) -> Result<ConversationId, ConversationKeyError> {
        let invalid = || ConversationKeyError(key.to_owned());
        if let Some(guid) = key.strip_prefix("g:") {
            return Guid::parse(guid).map(|guid| ConversationId::group(&guid)).map_err(|_| invalid());
        }
        let (low, high) = key.strip_prefix("u:").and_then(|pair| pair.split_once(':')).ok_or_else(invalid)?;
        let (low, high) = (Uid::parse(low).map_err(|_| invalid())?, Uid::parse(high).map_err(|_| invalid())?);
        if low > high {
            return Err(invalid());
        }
        Ok(ConversationId::direct(&low, &high))
    }

    /// Every conversation `caller` may mean by the display id `display`: the direct conversations with
    /// `caller` as one side that display so, and the group that does. Empty when none; the caller decides
    /// (with the store, for group membership) which it takes part in, and refuses more than one.
    pub fn resolve_display(caller: &Uid, display: &str) -> Vec<ConversationId> {
        let mut found = Vec::new();
        for (at, _) in display.match_indices("_user_") {
            let (low, high) = (&display[..at], &display[at + "_user_".len()..]);
            if let (Ok(low), Ok(high)) = (Uid::parse(low), Uid::parse(high))
                && low <= high
                && (&low == caller || &high == caller)
            {
                found.push(ConversationId::direct(&low, &high));
            }
        }
        if let Some(guid) = display.strip_prefix("group_").and_then(|guid| Guid::parse(guid).ok()) {
            found.push(ConversationId::group(&guid));
        }
        found.dedup();
        found
    }

    pub fn kind(&self) -> &ConversationKind {
        &self.kind
    }

    /// The store's and the bus's spelling: distinct conversations never share one.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The group of a group conversation.
    pub fn guid(&self) -> Option<&Guid> {
        match &self.kind {
            ConversationKind::Group(guid) => Some(guid),
            ConversationKind::Direct { .. } => None,
        }
    }

    /// The two users of a direct conversation, the lower uid first.
    pub fn users(&self) -> Option<(&Uid, &Uid)> {
        match &self.kind {
            ConversationKind::Direct { low, high } => Some((low, high)),
            ConversationKind::Group(_) => None,
        }
    }

    /// CometChat's spelling, for output only (see the type's documentation).
    pub fn display_id(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for ConversationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ConversationKind::Direct { low, high } => write!(f, "{low}_user_{high}"),
            ConversationKind::Group(guid) => write!(f, "group_{guid}"),
        }
    }
}

impl Serialize for ConversationId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A new time-ordered random id (UUIDv7, hyphenless): ids sort by creation time and spread across TiKV
/// regions without an AUTO_INCREMENT hot spot.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_the_documented_alphabet_only() {
        for good in ["a", "user_1", "Group-9", &"x".repeat(100)] {
            assert!(Uid::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "has space", "semi;colon", "ümlaut", &"x".repeat(101), "a/b"] {
            assert!(Uid::parse(bad).is_err(), "{bad}");
        }
    }

    fn uid(raw: &str) -> Uid {
        Uid::parse(raw).expect("uid")
    }

    #[test]
    fn direct_conversations_are_the_same_from_both_sides() {
        let (alice, bob) = (uid("alice"), uid("bob"));
        assert_eq!(ConversationId::direct(&alice, &bob), ConversationId::direct(&bob, &alice));
        assert_eq!(ConversationId::direct(&alice, &bob).key(), "u:alice:bob");
        assert_eq!(ConversationId::direct(&alice, &bob).to_string(), "alice_user_bob");
        let group = ConversationId::group(&Guid::parse("g1").expect("guid"));
        assert_eq!((group.key(), group.to_string().as_str()), ("g:g1", "group_g1"));
    }

    /// Issue #17: `a`→`x_user_z` and `a_user_x`→`z` displayed alike and shared one conversation; so did the
    /// direct conversation of `group` and `zz` and the group `user_zz`.
    #[test]
    fn conversations_that_display_alike_have_distinct_keys() {
        let first = ConversationId::direct(&uid("a"), &uid("x_user_z"));
        let second = ConversationId::direct(&uid("a_user_x"), &uid("z"));
        assert_eq!(first.to_string(), second.to_string());
        assert_ne!(first, second);
        assert_ne!(first.key(), second.key());
        let direct = ConversationId::direct(&uid("group"), &uid("zz"));
        let group = ConversationId::group(&Guid::parse("user_zz").expect("guid"));
        assert_eq!(direct.to_string(), group.to_string());
        assert_ne!(direct.key(), group.key());
    }

    #[test]
    fn display_ids_resolve_to_what_the_caller_may_mean() {
        let display = "a_user_x_user_z";
        assert_eq!(
            ConversationId::resolve_display(&uid("a"), display),
            [ConversationId::direct(&uid("a"), &uid("x_user_z"))]
        );
        assert_eq!(
            ConversationId::resolve_display(&uid("z"), display),
            [ConversationId::direct(&uid("a_user_x"), &uid("z"))]
        );
        assert!(ConversationId::resolve_display(&uid("x"), display).is_empty());
        let both = ConversationId::resolve_display(&uid("group"), "group_user_zz");
        assert_eq!(
            both,
            [
                ConversationId::direct(&uid("group"), &uid("zz")),
                ConversationId::group(&Guid::parse("user_zz").expect("guid")),
            ]
        );
    }

    #[test]
    fn malformed_keys_are_refused() {
        for bad in ["", "alice_user_bob", "group_g1", "u:alice", "u:bob:alice", "u:a:b:c", "g:", "g:a:b", "x:a"] {
            assert!(ConversationId::from_key(bad).is_err(), "{bad}");
        }
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::*;

        fn id() -> impl Strategy<Value = String> {
            // Short ids over a small alphabet with the separators that made display ids collide.
            prop::collection::vec(
                prop_oneof![Just("_user_"), Just("group_"), Just("_"), Just("-"), Just("a"), Just("Z"), Just("1")],
                1..6,
            )
            .prop_map(|parts| parts.concat())
            .prop_filter("at most 100 characters", |id| id.len() <= 100)
        }

        fn conversation() -> impl Strategy<Value = ConversationId> {
            prop_oneof![
                (id(), id()).prop_map(|(a, b)| ConversationId::direct(
                    &Uid::parse(&a).expect("uid"),
                    &Uid::parse(&b).expect("uid")
                )),
                id().prop_map(|g| ConversationId::group(&Guid::parse(&g).expect("guid"))),
            ]
        }

        proptest! {
            /// Distinct conversations (pairs of users, groups) never share a key, and a key reads back whole.
            #[test]
            fn keys_are_injective_and_read_back(first in conversation(), second in conversation()) {
                prop_assert_eq!(first == second, first.key() == second.key());
                prop_assert_eq!(ConversationId::from_key(first.key()).expect("key"), first.clone());
            }

            /// A display id resolves, for each side of a direct conversation, to that conversation among the
            /// candidates.
            #[test]
            fn display_ids_resolve_for_each_side(a in id(), b in id()) {
                let (a, b) = (Uid::parse(&a).expect("uid"), Uid::parse(&b).expect("uid"));
                let conversation = ConversationId::direct(&a, &b);
                for side in [&a, &b] {
                    let candidates = ConversationId::resolve_display(side, &conversation.to_string());
                    prop_assert!(candidates.contains(&conversation));
                    prop_assert!(candidates.iter().all(|candidate| candidate.guid().is_some()
                        || candidate.users().is_some_and(|(low, high)| low == side || high == side)));
                }
            }
        }
    }

    #[test]
    fn new_ids_are_time_ordered_and_unique() {
        let first = new_id();
        let second = new_id();
        assert_ne!(first, second);
        assert_eq!(first.len(), 32);
    }
}
