//! Typing indicators started on this node: which user types to whom, from which socket, until when. A start
//! that is not renewed or ended within the TTL ends by itself; so does every indicator of a socket that closes.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use comet_model::{ReceiverType, Uid};
use tokio::time::Instant;

use crate::protocol::Target;

/// A renewed start is re-announced at most this often; repeats in between only extend the deadline.
const REANNOUNCE: Duration = Duration::from_secs(2);

#[derive(Debug)]
struct Active {
    socket: u64,
    deadline: Instant,
    announced: Instant,
}

type Key = (Uid, String, ReceiverType);

/// The typing indicators this node's sockets started.
#[derive(Debug)]
pub struct Typing {
    active: Mutex<HashMap<Key, Active>>,
    ttl: Duration,
}

impl Typing {
    pub fn new(ttl: Duration) -> Typing {
        Typing { active: Mutex::new(HashMap::new()), ttl }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Key, Active>> {
        self.active.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `uid` types to `target` from `socket`. Returns whether to announce it (new, or last announced a while ago).
    pub fn start(&self, uid: &Uid, socket: u64, target: &Target, now: Instant) -> bool {
        let key = (uid.clone(), target.receiver.clone(), target.receiver_type);
        let mut active = self.lock();
        match active.get_mut(&key) {
            Some(existing) => {
                existing.deadline = now + self.ttl;
                existing.socket = socket;
                if now.duration_since(existing.announced) >= REANNOUNCE {
                    existing.announced = now;
                    true
                } else {
                    false
                }
            }
            None => {
                active.insert(key, Active { socket, deadline: now + self.ttl, announced: now });
                true
            }
        }
    }

    /// `uid` stopped typing to `target`. Returns whether it was typing (so the end is announced).
    pub fn end(&self, uid: &Uid, target: &Target) -> bool {
        self.lock().remove(&(uid.clone(), target.receiver.clone(), target.receiver_type)).is_some()
    }

    /// Removes and returns every indicator past its deadline.
    pub fn expired(&self, now: Instant) -> Vec<(Uid, Target)> {
        let mut ended = Vec::new();
        self.lock().retain(|(uid, receiver, receiver_type), active| {
            let keep = active.deadline > now;
            if !keep {
                ended.push((uid.clone(), Target { receiver: receiver.clone(), receiver_type: *receiver_type }));
            }
            keep
        });
        ended
    }

    /// Removes and returns every indicator `socket` started.
    pub fn socket_closed(&self, socket: u64) -> Vec<(Uid, Target)> {
        let mut ended = Vec::new();
        self.lock().retain(|(uid, receiver, receiver_type), active| {
            let keep = active.socket != socket;
            if !keep {
                ended.push((uid.clone(), Target { receiver: receiver.clone(), receiver_type: *receiver_type }));
            }
            keep
        });
        ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_indicator_expires_unless_renewed() {
        let typing = Typing::new(Duration::from_secs(5));
        let alice = Uid::parse("alice").expect("uid");
        let target = Target { receiver: "bob".into(), receiver_type: ReceiverType::User };
        let start = Instant::now();
        assert!(typing.start(&alice, 1, &target, start));
        assert!(!typing.start(&alice, 1, &target, start + Duration::from_secs(1)), "renewal is not re-announced");
        assert!(typing.expired(start + Duration::from_secs(5)).is_empty(), "renewed at 1 s: lives until 6 s");
        assert_eq!(typing.expired(start + Duration::from_secs(6)), vec![(alice.clone(), target.clone())]);
        assert!(!typing.end(&alice, &target), "already ended");
    }

    #[test]
    fn a_closing_socket_ends_its_indicators_only() {
        let typing = Typing::new(Duration::from_secs(5));
        let alice = Uid::parse("alice").expect("uid");
        let to_bob = Target { receiver: "bob".into(), receiver_type: ReceiverType::User };
        let to_group = Target { receiver: "g".into(), receiver_type: ReceiverType::Group };
        let now = Instant::now();
        typing.start(&alice, 1, &to_bob, now);
        typing.start(&alice, 2, &to_group, now);
        assert_eq!(typing.socket_closed(1), vec![(alice.clone(), to_bob)]);
        assert!(typing.end(&alice, &to_group));
    }
}
