//! The in-process bus of the embedded mode.

use comet_bus::{InProcessBus, Publisher};
use tokio::sync::broadcast::error::TryRecvError;

use crate::support::{event, recv_within};

#[tokio::test]
async fn every_subscriber_receives_every_later_event_in_order() {
    let bus = InProcessBus::new(16);
    let mut first = bus.subscribe();
    let mut second = bus.clone().subscribe();
    let events = vec![event("a", 1), event("b", 1), event("a", 2)];

    bus.publish(&events).await.expect("publish");

    for receiver in [&mut first, &mut second] {
        for expected in &events {
            assert_eq!(&recv_within(receiver).await, expected);
        }
    }
    let mut late = bus.subscribe();
    assert!(matches!(late.try_recv(), Err(TryRecvError::Empty)), "a new subscriber sees no earlier event");
}

#[tokio::test]
async fn publishing_with_no_subscriber_is_accepted() {
    let bus = InProcessBus::new(4);
    bus.publish(&[event("a", 1)]).await.expect("publish without subscribers");
}
