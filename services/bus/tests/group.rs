//! Consumer groups, on the in-process bus and on Kafka (tansu): an event is committed only after its handler
//! succeeded, a refused event comes again, and a member that restarts resumes after the group's last commit.

use comet_bus::{GroupError, GroupSubscription, InProcessBus, Publisher};
use comet_model::Event;

use crate::support::{EVENT_DEADLINE, Sink, collect_from_group, event, fresh_group, next_from_group, unique};

#[tokio::test]
async fn in_process_groups_commit_after_the_handler_and_resume_after_the_last_commit() {
    commits_after_the_handler_and_resumes_after_the_last_commit(Sink::in_process()).await;
}

#[tokio::test]
async fn kafka_groups_commit_after_the_handler_and_resume_after_the_last_commit() {
    commits_after_the_handler_and_resumes_after_the_last_commit(Sink::kafka().await).await;
}

async fn commits_after_the_handler_and_resumes_after_the_last_commit(sink: Sink) {
    let group = fresh_group();
    let key = unique("group");
    let mut first = sink.join(&group).await;
    let events: Vec<Event> = (1..=5).map(|seq| event(&key, seq)).collect();
    sink.publisher().publish(&events).await.expect("publish");

    let ours = |event: &Event| event.key == key;
    let handled = collect_from_group(&mut first, ours, 2).await;
    assert_eq!(ids(&handled), ids(&events[..2]), "the first member handles the first two events");
    let refused = refuse_next_of(&mut first, &key).await;
    assert_eq!(refused.id, events[2].id, "the third event reaches the handler, which refuses it");
    let again = refuse_next_of(&mut first, &key).await;
    assert_eq!(again.id, events[2].id, "a refused event is handed over again, before any later one");
    drop(first);

    let mut second = sink.join(&group).await;
    let resumed = collect_from_group(&mut second, ours, 3).await;
    assert_eq!(ids(&resumed), ids(&events[2..]), "a new member resumes after the last commit: no gap, no repeat");
}

#[tokio::test]
async fn every_in_process_group_gets_every_event_and_its_members_share_them() {
    let bus = InProcessBus::new(64);
    let mut webhooks =
        [GroupSubscription::in_process(&bus, "webhooks"), GroupSubscription::in_process(&bus, "webhooks")];
    let mut moderation = GroupSubscription::in_process(&bus, "moderation");
    let events: Vec<Event> = (1..=4).map(|seq| event("k", seq)).collect();
    bus.publish(&events).await.expect("publish");

    let mut shared = Vec::new();
    for index in 0..events.len() {
        shared.push(next_from_group(&mut webhooks[index % 2]).await);
    }
    assert_eq!(ids(&shared), ids(&events), "the members of one group take turns: each event once, in order");
    let alone = collect_from_group(&mut moderation, |_| true, events.len()).await;
    assert_eq!(ids(&alone), ids(&events), "another group gets every event too");
}

/// Waits for the next event with `key` (accepting the others, which other tests published) and refuses it.
async fn refuse_next_of(subscription: &mut GroupSubscription, key: &str) -> Event {
    let refusing = async {
        loop {
            let mut refused = None;
            let outcome = subscription
                .handle(async |event| {
                    if event.key != key {
                        return Ok(());
                    }
                    refused = Some(event.clone());
                    Err("refused by the test")
                })
                .await;
            if let Some(event) = refused {
                assert!(matches!(outcome, Err(GroupError::Handler { error: "refused by the test", .. })));
                return event;
            }
            outcome.expect("consuming through the group");
        }
    };
    tokio::time::timeout(EVENT_DEADLINE, refusing).await.expect("no event within the deadline")
}

fn ids(events: &[Event]) -> Vec<&str> {
    events.iter().map(|event| event.id.as_str()).collect()
}
