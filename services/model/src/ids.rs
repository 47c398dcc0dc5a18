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

/// The conversation a message belongs to: `group_<guid>` for a group, `<lower uid>_user_<higher uid>` for two
/// users (the shape CometChat's API uses), so both sides name the same conversation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConversationId(String);

impl ConversationId {
    pub fn group(guid: &Guid) -> ConversationId {
        ConversationId(format!("group_{guid}"))
    }

    pub fn direct(a: &Uid, b: &Uid) -> ConversationId {
        let (low, high) = if a <= b { (a, b) } else { (b, a) };
        ConversationId(format!("{low}_user_{high}"))
    }

    /// Rebuilds a conversation id read back from storage.
    pub fn from_stored(value: String) -> ConversationId {
        ConversationId(value)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ConversationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
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

    #[test]
    fn direct_conversations_are_the_same_from_both_sides() {
        let alice = Uid::parse("alice").expect("uid");
        let bob = Uid::parse("bob").expect("uid");
        assert_eq!(ConversationId::direct(&alice, &bob), ConversationId::direct(&bob, &alice));
        assert_eq!(ConversationId::direct(&alice, &bob).as_str(), "alice_user_bob");
        assert_eq!(ConversationId::group(&Guid::parse("g1").expect("guid")).as_str(), "group_g1");
    }

    #[test]
    fn new_ids_are_time_ordered_and_unique() {
        let first = new_id();
        let second = new_id();
        assert_ne!(first, second);
        assert_eq!(first.len(), 32);
    }
}
