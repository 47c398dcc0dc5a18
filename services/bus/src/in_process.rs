use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use comet_model::Event;
use futures::future::BoxFuture;
use tokio::sync::broadcast;

use crate::{BusError, Publisher};

/// The event bus of the embedded single-process mode: one tokio broadcast channel carrying every topic.
///
/// Every subscriber receives every event published after it subscribed, in publish order (so in order per
/// key); a subscriber that wants one topic filters on `event.event_type.topic()`. The channel keeps the last
/// `capacity` events: a subscriber that falls further behind gets `RecvError::Lagged` and resyncs from the
/// database, as a reconnecting client would. Clones share the channel, and the consumer groups joined on it
/// ([`crate::GroupSubscription::in_process`]).
#[derive(Debug, Clone)]
pub struct InProcessBus {
    sender: broadcast::Sender<Event>,
    groups: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<GroupPlace>>>>>,
}

/// What an in-process consumer group keeps while no member runs: its place in the bus, and the event its last
/// member did not finish.
#[derive(Debug)]
pub(crate) struct GroupPlace {
    pub(crate) receiver: broadcast::Receiver<Event>,
    pub(crate) pending: Option<Event>,
    /// Events taken with [`crate::GroupSubscription::take`] and handed back undone, to be taken first, in order.
    pub(crate) returned: std::collections::VecDeque<Event>,
}

impl InProcessBus {
    /// Creates a bus that buffers up to `capacity` events for its slowest subscriber (at least one).
    pub fn new(capacity: usize) -> InProcessBus {
        let (sender, _) = broadcast::channel(capacity.max(1));
        InProcessBus { sender, groups: Arc::default() }
    }

    /// Returns a receiver of every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }

    /// The place of consumer group `name`, made at the present end of the bus when the group is first joined.
    pub(crate) fn group(&self, name: &str) -> Arc<tokio::sync::Mutex<GroupPlace>> {
        let mut groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        let place = groups.entry(name.to_owned()).or_insert_with(|| {
            Arc::new(tokio::sync::Mutex::new(GroupPlace {
                receiver: self.subscribe(),
                pending: None,
                returned: Default::default(),
            }))
        });
        place.clone()
    }
}

impl Publisher for InProcessBus {
    /// Hands every event to the current subscribers. With no subscriber the events are accepted and go
    /// nowhere: in the embedded mode nothing is durable beyond the database, which stays the source of truth.
    fn publish<'a>(&'a self, events: &'a [Event]) -> BoxFuture<'a, Result<(), BusError>> {
        Box::pin(async move {
            for event in events {
                if self.sender.send(event.clone()).is_err() {
                    tracing::trace!(event_id = %event.id, "in-process bus has no subscriber; event not delivered");
                }
            }
            Ok(())
        })
    }
}
