//! This node's sockets and who they can hear from: users → their open sockets, and the two indexes that route
//! group traffic and presence without asking the database (guid → local members, uid → local users who
//! talk to it directly).
//!
//! **Invariant:** the hub never awaits and never blocks on a socket. Delivery is `try_send` into each socket's
//! bounded queue; a full queue marks the socket for closing (slow consumer) instead of growing memory.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::extract::ws::Utf8Bytes;
use comet_model::{Guid, Millis, Uid};
use comet_store::Reach;
use tokio::sync::mpsc;

use crate::metrics::{ErrorReason, Metrics};
use crate::protocol::close;

/// A frame ready to write, shared by every socket it goes to (serialised once).
#[derive(Debug)]
pub struct Frame {
    pub text: Utf8Bytes,
    /// For `message.new`: the conversation and seq, so a socket can skip what its resync already replayed.
    pub order: Option<(Box<str>, i64)>,
    /// Commit time of the event behind the frame (ms), for the delivery latency histogram; 0 when none.
    pub event_time: Millis,
}

/// The hub's side of a socket: its queue and the flag that asks it to close.
#[derive(Debug, Clone)]
pub struct SocketHandle {
    pub id: u64,
    /// The id of the auth token the socket signed in with: revoking it closes the socket.
    token: Box<str>,
    queue: mpsc::Sender<Arc<Frame>>,
    /// A close code the socket must close with as soon as it looks (0: none).
    kick: Arc<AtomicU16>,
}

impl SocketHandle {
    pub fn new(id: u64, token: &str, queue: mpsc::Sender<Arc<Frame>>, kick: Arc<AtomicU16>) -> SocketHandle {
        SocketHandle { id, token: token.into(), queue, kick }
    }

    /// Queues `frame`; on a full queue asks the socket to close as a slow consumer. Returns whether it was queued.
    fn offer(&self, frame: &Arc<Frame>, metrics: &Metrics) -> bool {
        match self.queue.try_send(frame.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                if self.kick.compare_exchange(0, close::SLOW_CONSUMER, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                    metrics.error(ErrorReason::SlowConsumer);
                }
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Asks the socket to close with `code` and wakes it.
    pub(crate) fn close_with(&self, code: u16) {
        let _ = self.kick.compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire);
        let _ = self.queue.try_send(Arc::new(Frame { text: Utf8Bytes::from_static(""), order: None, event_time: 0 }));
    }
}

#[derive(Debug, Default)]
struct UserEntry {
    sockets: Vec<SocketHandle>,
    groups: HashSet<Guid>,
    peers: HashSet<Uid>,
    /// Bumped whenever the user goes from no socket to some; an offline timer only fires for its generation.
    generation: u64,
}

#[derive(Debug, Default)]
struct Inner {
    users: HashMap<Uid, UserEntry>,
    /// guid → local users that are members.
    groups: HashMap<Guid, HashSet<Uid>>,
    /// uid → local users that have a direct conversation with uid.
    peers: HashMap<Uid, HashSet<Uid>>,
}

/// What attaching a socket changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attached {
    /// The user had no socket here (and no offline timer running): it comes online on this node.
    FirstSocket,
    /// The user already had sockets here, or reconnected within the offline grace period.
    Another,
}

/// Why a socket was not attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManySockets(pub usize);

#[derive(Debug)]
pub struct Hub {
    inner: Mutex<Inner>,
    metrics: Arc<Metrics>,
}

impl Hub {
    pub fn new(metrics: Arc<Metrics>) -> Hub {
        Hub { inner: Mutex::new(Inner::default()), metrics }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the hub already knows `uid` (so its reach need not be read again).
    pub fn knows(&self, uid: &Uid) -> bool {
        self.lock().users.contains_key(uid)
    }

    /// How many sockets `uid` has on this node.
    pub fn socket_count(&self, uid: &Uid) -> usize {
        self.lock().users.get(uid).map_or(0, |entry| entry.sockets.len())
    }

    /// Adds a socket of `uid`. `reach` fills the routing indexes when the user is new here.
    pub fn attach(
        &self,
        uid: &Uid,
        socket: SocketHandle,
        reach: Option<Reach>,
        cap: usize,
    ) -> Result<Attached, TooManySockets> {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let existed = inner.users.contains_key(uid);
        let entry = inner.users.entry(uid.clone()).or_default();
        if entry.sockets.len() >= cap {
            return Err(TooManySockets(cap));
        }
        let lingering = existed && entry.sockets.is_empty();
        if !existed && let Some(reach) = reach {
            for guid in reach.groups {
                inner.groups.entry(guid.clone()).or_default().insert(uid.clone());
                entry.groups.insert(guid);
            }
            for peer in reach.peers {
                inner.peers.entry(peer.clone()).or_default().insert(uid.clone());
                entry.peers.insert(peer);
            }
        }
        let first = entry.sockets.is_empty();
        if first {
            entry.generation += 1;
        }
        entry.sockets.push(socket);
        Ok(if first && !lingering { Attached::FirstSocket } else { Attached::Another })
    }

    /// Removes a socket. When it was the user's last, returns the generation an offline timer should carry;
    /// the entry stays (with its indexes) until [`Hub::expire`] confirms the user is still gone.
    pub fn detach(&self, uid: &Uid, socket_id: u64) -> Option<u64> {
        let mut inner = self.lock();
        let entry = inner.users.get_mut(uid)?;
        entry.sockets.retain(|socket| socket.id != socket_id);
        entry.sockets.is_empty().then_some(entry.generation)
    }

    /// After the grace period: forgets `uid` if it still has no socket and did not come back since
    /// `generation`. Returns its groups (the audience of its offline presence) when it was forgotten.
    pub fn expire(&self, uid: &Uid, generation: u64) -> Option<Vec<Guid>> {
        let mut inner = self.lock();
        let entry = inner.users.get(uid)?;
        if !entry.sockets.is_empty() || entry.generation != generation {
            return None;
        }
        let entry = inner.users.remove(uid)?;
        for guid in &entry.groups {
            if let Some(members) = inner.groups.get_mut(guid) {
                members.remove(uid);
                if members.is_empty() {
                    inner.groups.remove(guid);
                }
            }
        }
        for peer in &entry.peers {
            if let Some(listeners) = inner.peers.get_mut(peer) {
                listeners.remove(uid);
                if listeners.is_empty() {
                    inner.peers.remove(peer);
                }
            }
        }
        Some(entry.groups.into_iter().collect())
    }

    /// Queues `frame` on every socket of every listed user, except `skip_socket`. Returns how many took it.
    pub fn deliver<'a>(
        &self,
        users: impl IntoIterator<Item = &'a Uid>,
        frame: &Arc<Frame>,
        skip_socket: Option<u64>,
    ) -> usize {
        let inner = self.lock();
        let mut queued = 0;
        for uid in users {
            if let Some(entry) = inner.users.get(uid) {
                for socket in &entry.sockets {
                    if Some(socket.id) != skip_socket && socket.offer(frame, &self.metrics) {
                        queued += 1;
                    }
                }
            }
        }
        queued
    }

    /// Local members of a group.
    pub fn group_members(&self, guid: &Guid) -> Vec<Uid> {
        self.lock().groups.get(guid).map(|members| members.iter().cloned().collect()).unwrap_or_default()
    }

    /// Whether `uid` is a member of `guid`, as far as this node knows (the user must be connected here).
    pub fn is_member(&self, uid: &Uid, guid: &Guid) -> bool {
        self.lock().users.get(uid).is_some_and(|entry| entry.groups.contains(guid))
    }

    /// `uid` joined `guid`: route the group to it from now on, if it is here.
    pub fn joined(&self, uid: &Uid, guid: &Guid) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        if let Some(entry) = inner.users.get_mut(uid) {
            entry.groups.insert(guid.clone());
            inner.groups.entry(guid.clone()).or_default().insert(uid.clone());
        }
    }

    /// `uid` is no longer a member of `guid`.
    pub fn left(&self, uid: &Uid, guid: &Guid) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        if let Some(entry) = inner.users.get_mut(uid) {
            entry.groups.remove(guid);
        }
        if let Some(members) = inner.groups.get_mut(guid) {
            members.remove(uid);
            if members.is_empty() {
                inner.groups.remove(guid);
            }
        }
    }

    /// The group is gone: forget it for every local member.
    pub fn group_deleted(&self, guid: &Guid) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        for uid in inner.groups.remove(guid).unwrap_or_default() {
            if let Some(entry) = inner.users.get_mut(&uid) {
                entry.groups.remove(guid);
            }
        }
    }

    /// `a` and `b` exchanged a direct message: each one's presence now reaches the other, where they are here.
    pub fn talked(&self, a: &Uid, b: &Uid) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        for (me, other) in [(a, b), (b, a)] {
            if let Some(entry) = inner.users.get_mut(me)
                && entry.peers.insert(other.clone())
            {
                inner.peers.entry(other.clone()).or_default().insert(me.clone());
            }
        }
    }

    /// The groups of a local user (the audience of its presence), empty when it is not here.
    pub fn groups_of(&self, uid: &Uid) -> Vec<Guid> {
        self.lock().users.get(uid).map(|entry| entry.groups.iter().cloned().collect()).unwrap_or_default()
    }

    /// Local users who share a group with `uid` (one of `groups`) or talk to it directly, without `uid` itself.
    pub fn audience(&self, uid: &Uid, groups: &[Guid]) -> Vec<Uid> {
        let inner = self.lock();
        let mut audience: HashSet<&Uid> = HashSet::new();
        for guid in groups {
            if let Some(members) = inner.groups.get(guid) {
                audience.extend(members);
            }
        }
        if let Some(listeners) = inner.peers.get(uid) {
            audience.extend(listeners);
        }
        audience.remove(uid);
        audience.into_iter().cloned().collect()
    }

    /// Users with at least one socket here: whose presence this node keeps alive.
    pub fn online_users(&self) -> Vec<Uid> {
        self.lock().users.iter().filter(|(_, entry)| !entry.sockets.is_empty()).map(|(uid, _)| uid.clone()).collect()
    }

    /// Closes with `code` every socket of `uid`, or only those signed in with the token `token`.
    pub fn close_user(&self, uid: &Uid, token: Option<&str>, code: u16) {
        if let Some(entry) = self.lock().users.get(uid) {
            entry
                .sockets
                .iter()
                .filter(|socket| token.is_none_or(|token| &*socket.token == token))
                .for_each(|socket| socket.close_with(code));
        }
    }

    /// Every socket of this node (a drain closes them batch by batch).
    pub fn sockets(&self) -> Vec<SocketHandle> {
        self.lock().users.values().flat_map(|entry| entry.sockets.iter().cloned()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uid(name: &str) -> Uid {
        Uid::parse(name).expect("uid")
    }

    fn socket(id: u64, capacity: usize) -> (SocketHandle, mpsc::Receiver<Arc<Frame>>, Arc<AtomicU16>) {
        let (sender, receiver) = mpsc::channel(capacity);
        let kick = Arc::new(AtomicU16::new(0));
        (SocketHandle::new(id, "token", sender, kick.clone()), receiver, kick)
    }

    fn frame(text: &str) -> Arc<Frame> {
        Arc::new(Frame { text: Utf8Bytes::from(text.to_owned()), order: None, event_time: 0 })
    }

    #[test]
    fn a_full_queue_marks_the_socket_slow_instead_of_growing() {
        let hub = Hub::new(Arc::new(Metrics::default()));
        let alice = uid("alice");
        let (handle, mut receiver, kick) = socket(1, 2);
        assert_eq!(hub.attach(&alice, handle, None, 5), Ok(Attached::FirstSocket));
        for _ in 0..2 {
            assert_eq!(hub.deliver([&alice], &frame("x"), None), 1);
        }
        assert_eq!(hub.deliver([&alice], &frame("x"), None), 0);
        assert_eq!(kick.load(Ordering::Acquire), close::SLOW_CONSUMER);
        assert!(receiver.try_recv().is_ok());
    }

    #[test]
    fn the_socket_cap_is_per_user() {
        let hub = Hub::new(Arc::new(Metrics::default()));
        let alice = uid("alice");
        for id in 0..2 {
            assert!(hub.attach(&alice, socket(id, 1).0, None, 2).is_ok());
        }
        assert_eq!(hub.attach(&alice, socket(9, 1).0, None, 2), Err(TooManySockets(2)));
        assert!(hub.attach(&uid("bob"), socket(10, 1).0, None, 2).is_ok());
    }

    #[test]
    fn a_reconnect_within_grace_is_not_a_new_online() {
        let hub = Hub::new(Arc::new(Metrics::default()));
        let alice = uid("alice");
        let reach = Reach { groups: vec![Guid::parse("g").expect("guid")], peers: vec![uid("bob")] };
        assert_eq!(hub.attach(&alice, socket(1, 1).0, Some(reach), 5), Ok(Attached::FirstSocket));
        let generation = hub.detach(&alice, 1).expect("last socket");
        assert_eq!(hub.attach(&alice, socket(2, 1).0, None, 5), Ok(Attached::Another));
        assert_eq!(hub.expire(&alice, generation), None, "came back: not expired");
        let generation = hub.detach(&alice, 2).expect("last socket");
        assert_eq!(hub.expire(&alice, generation), Some(vec![Guid::parse("g").expect("guid")]));
        assert!(hub.group_members(&Guid::parse("g").expect("guid")).is_empty());
        assert!(hub.audience(&uid("bob"), &[]).is_empty());
    }

    #[test]
    fn presence_audience_is_group_members_and_direct_peers() {
        let hub = Hub::new(Arc::new(Metrics::default()));
        let g = Guid::parse("g").expect("guid");
        let reach = |groups: Vec<Guid>, peers: Vec<Uid>| Some(Reach { groups, peers });
        hub.attach(&uid("alice"), socket(1, 1).0, reach(vec![g.clone()], vec![]), 5).expect("attach");
        hub.attach(&uid("bob"), socket(2, 1).0, reach(vec![], vec![uid("carol")]), 5).expect("attach");
        hub.attach(&uid("dave"), socket(3, 1).0, reach(vec![], vec![]), 5).expect("attach");
        let mut audience = hub.audience(&uid("carol"), std::slice::from_ref(&g));
        audience.sort();
        assert_eq!(audience, vec![uid("alice"), uid("bob")]);
        hub.talked(&uid("dave"), &uid("carol"));
        assert_eq!(hub.audience(&uid("carol"), &[]).len(), 2);
    }
}
