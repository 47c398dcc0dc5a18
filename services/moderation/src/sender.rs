//! A rule's sender actions carried out, after the message is decided: each through the store's own operation
//! (`remove_member`, `ban_member`, `block_users`), in its own transaction with its own event
//! (`group.member_kicked`, `group.member_banned`, `user.blocked`), so sockets, webhooks and the rules of later
//! sends see them like a moderator's. They follow the decision rather than share its transaction: a blocked
//! message has no transaction to join, and these stay the very operations a moderator's REST call runs.

use comet_model::{Departure, Guid, Millis, ReceiverType, Uid};
use comet_store::Store;

use crate::spec::SenderAction;

/// Who wrote to whom.
#[derive(Debug, Clone, Copy)]
pub struct Sent<'a> {
    pub sender: &'a Uid,
    pub receiver_type: ReceiverType,
    /// The receiving user's uid or the group's guid.
    pub receiver: &'a str,
}

/// Carries out `actions` against the sender of `sent`; returns the ones that changed something. A failure is
/// logged and the rest go on (the message is decided already).
pub async fn apply(store: &Store, actions: &[SenderAction], sent: Sent<'_>, now: Millis) -> Vec<SenderAction> {
    let mut done = Vec::new();
    for action in actions {
        let outcome = match (action, sent.receiver_type) {
            (SenderAction::KickFromGroup | SenderAction::BanFromGroup, ReceiverType::Group) => {
                let Ok(guid) = Guid::parse(sent.receiver) else { continue };
                match store.get_group(&guid).await {
                    // The owner stays: a group always has one.
                    Ok(Some(group)) if &group.owner == sent.sender => continue,
                    Ok(Some(_)) if *action == SenderAction::KickFromGroup => {
                        store.remove_member(&guid, sent.sender, Departure::Kicked, now).await
                    }
                    Ok(Some(_)) => store.ban_member(&guid, sent.sender, now).await,
                    Ok(None) => continue,
                    Err(error) => Err(error),
                }
            }
            (SenderAction::BlockSender, ReceiverType::User) => {
                let Ok(receiver) = Uid::parse(sent.receiver) else { continue };
                if &receiver == sent.sender {
                    continue;
                }
                store
                    .block_users(&receiver, std::slice::from_ref(sent.sender), now)
                    .await
                    .map(|blocked| !blocked.is_empty())
            }
            _ => continue,
        };
        match outcome {
            Ok(true) => done.push(*action),
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(?action, sender = %sent.sender, error = %error, "a moderation rule's sender action failed");
            }
        }
    }
    done
}
