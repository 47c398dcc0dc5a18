//! The worker's handler: an event becomes a decision per recipient, logged, and a push row per device of each
//! recipient that gets one, all written in one transaction; the rows are then offered to the providers' queues.
//! The event is done for the consumer group once the rows are committed; sending is the [`Sender`]'s.
//!
//! Events: `message.sent` (a push), `message.edited` and `message.deleted` (a push with the same collapse id, so
//! it replaces or retracts the first), `reaction.added` (to the message's sender), `group.member_added` (to the
//! added user). Mentions are a message's `<@uid:UID>` and `<@all:all>` tags in its text (CometChat's format).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use comet_cluster::Cluster;
use comet_model::{Category, ConversationId, Event, EventType, Guid, Message, Millis, ReceiverType, Uid};
use comet_store::{LogEntry, PushJob, PushToken, Store};
use comet_worker::{Handler, Outcome};
use futures::future::BoxFuture;

use crate::clock::Clock;
use crate::decision::{Facts, Happening, Policy, Skip, decide, needs_settings};
use crate::directory::PreferenceStore;
use crate::metrics::NotificationMetrics;
use crate::preferences::{Defaults, Effective, Preferences};
use crate::provider::Push;
use crate::registry::Registry;
use crate::sender::Sender;
use crate::template::{Context, Subject, render};

/// Members read per page when a group's recipients are listed.
const MEMBER_PAGE: u32 = 500;

/// Who is online: the cluster's presence, and for a process that holds sockets itself (`all` with in-memory
/// presence), its own registry.
#[derive(Clone)]
pub struct Presence {
    cluster: Arc<Cluster>,
    local: Arc<dyn Fn(&Uid) -> bool + Send + Sync>,
}

impl std::fmt::Debug for Presence {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Presence").field("node", &self.cluster.node()).finish_non_exhaustive()
    }
}

impl Presence {
    pub fn new(cluster: Arc<Cluster>, local: Arc<dyn Fn(&Uid) -> bool + Send + Sync>) -> Presence {
        Presence { cluster, local }
    }

    async fn online(&self, uids: &[Uid]) -> Result<Vec<bool>, comet_cluster::ClusterError> {
        let local = self.local.clone();
        self.cluster.online(uids, move |uid| local(uid)).await
    }
}

/// Turns events into decisions and pushes.
pub struct NotificationsHandler {
    pub(crate) store: Store,
    pub(crate) preferences: Arc<dyn PreferenceStore>,
    pub(crate) presence: Presence,
    pub(crate) registry: Arc<Registry>,
    pub(crate) sender: Sender,
    pub(crate) policy: Policy,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) metrics: Arc<NotificationMetrics>,
}

impl std::fmt::Debug for NotificationsHandler {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("NotificationsHandler").field("policy", &self.policy).finish_non_exhaustive()
    }
}

/// One event's recipients and what the push says.
struct Plan {
    happening: Happening,
    conversation: ConversationId,
    message_id: Option<String>,
    /// Who caused it (excluded from the recipients); `None` for the app.
    sender: Option<Uid>,
    recipients: Vec<Uid>,
    /// Recipients known to take part (for a reaction or an addition, checked per recipient).
    members: HashSet<Uid>,
    group: Option<(Guid, String, u64)>,
    mentioned: HashSet<Uid>,
    mentions_all: bool,
    collapse_id: String,
    subject: SubjectOwned,
    data: BTreeMap<String, String>,
}

enum SubjectOwned {
    Message { text: Option<String>, kind: String },
    Deleted,
    Reaction(String),
    Added,
}

/// `<@uid:UID>` tags and whether `<@all:all>` is in `text`.
pub fn mentions(text: &str) -> (HashSet<Uid>, bool) {
    let mut uids = HashSet::new();
    let mut all = false;
    let mut rest = text;
    while let Some(start) = rest.find("<@") {
        rest = &rest[start + 2..];
        let Some(end) = rest.find('>') else { break };
        let tag = &rest[..end];
        match tag.split_once(':') {
            Some(("all", "all")) => all = true,
            Some(("uid", uid)) => {
                if let Ok(uid) = Uid::parse(uid) {
                    uids.insert(uid);
                }
            }
            _ => {}
        }
        rest = &rest[end + 1..];
    }
    (uids, all)
}

fn retry(what: &str, error: impl std::fmt::Display) -> Outcome {
    Outcome::RetryLater(format!("{what}: {error}"))
}

impl NotificationsHandler {
    async fn handle_event(&self, event: &Event) -> Outcome {
        let plan = match event.event_type {
            EventType::MessageSent | EventType::MessageEdited | EventType::MessageDeleted => {
                self.message_plan(event).await
            }
            EventType::ReactionAdded => self.reaction_plan(event).await,
            EventType::GroupMemberAdded => self.added_plan(event).await,
            _ => return Outcome::Done,
        };
        match plan {
            Ok(Some(plan)) => self.fan_out(event, plan).await,
            Ok(None) => Outcome::Done,
            Err(outcome) => outcome,
        }
    }

    async fn group_facts(&self, guid: &Guid) -> Result<Option<(Guid, String, u64)>, Outcome> {
        let group = self.store.get_group(guid).await.map_err(|error| retry("reading the group", error))?;
        Ok(group.map(|group| (group.guid.clone(), group.name, u64::try_from(group.members_count).unwrap_or(0))))
    }

    async fn members(&self, guid: &Guid) -> Result<Vec<Uid>, Outcome> {
        let mut uids = Vec::new();
        let mut after: Option<Uid> = None;
        loop {
            let page = self
                .store
                .list_members(guid, after.as_ref(), MEMBER_PAGE)
                .await
                .map_err(|error| retry("listing the members", error))?;
            let full = page.len() == MEMBER_PAGE as usize;
            after = page.last().map(|member| member.uid.clone());
            uids.extend(page.into_iter().map(|member| member.uid));
            if !full {
                return Ok(uids);
            }
        }
    }

    async fn message_plan(&self, event: &Event) -> Result<Option<Plan>, Outcome> {
        let message: Message = match serde_json::from_value(event.data.clone()) {
            Ok(message) => message,
            Err(error) => return Err(Outcome::DeadLetter(format!("the message does not parse: {error}"))),
        };
        let text = message.data.get("text").and_then(serde_json::Value::as_str).map(str::to_owned);
        let (mentioned, mentions_all) = text.as_deref().map(mentions).unwrap_or_default();
        let flagged = message.data.get("sendNotification").and_then(serde_json::Value::as_bool) == Some(true);
        let happening = match event.event_type {
            EventType::MessageSent => Happening::Message { custom: message.category == Category::Custom, flagged },
            // A custom message was pushed only with the flag, so only then is there a push to replace or retract
            // (a deleted message's data is empty: a deleted custom message is retracted by nobody).
            _ if message.category == Category::Custom && !flagged => return Ok(None),
            _ => Happening::Change,
        };
        let subject = if event.event_type == EventType::MessageDeleted {
            SubjectOwned::Deleted
        } else {
            SubjectOwned::Message { text, kind: message.message_type.clone() }
        };
        let (recipients, group) = match message.receiver_type {
            ReceiverType::User => {
                let Ok(receiver) = Uid::parse(&message.receiver) else {
                    return Err(Outcome::DeadLetter("the receiver is not a uid".to_owned()));
                };
                (vec![receiver], None)
            }
            ReceiverType::Group => {
                let Some(guid) = message.conversation_id.guid().cloned() else {
                    return Err(Outcome::DeadLetter("a group message without a group".to_owned()));
                };
                let Some(group) = self.group_facts(&guid).await? else { return Ok(None) };
                // Above the limit nobody is pushed: one log entry says so, without listing the members.
                let recipients =
                    if group.2 > self.policy.max_group_members { Vec::new() } else { self.members(&guid).await? };
                (recipients, Some(group))
            }
        };
        let members = recipients.iter().cloned().collect();
        let mut data = BTreeMap::new();
        data.insert("type".to_owned(), event.event_type.as_str().to_owned());
        data.insert("messageId".to_owned(), message.id.clone());
        data.insert("conversationId".to_owned(), message.conversation_id.display_id());
        data.insert("sender".to_owned(), message.sender.as_str().to_owned());
        data.insert("receiver".to_owned(), message.receiver.clone());
        data.insert("receiverType".to_owned(), message.receiver_type.as_str().to_owned());
        Ok(Some(Plan {
            happening,
            conversation: message.conversation_id.clone(),
            message_id: Some(message.id.clone()),
            sender: Some(message.sender.clone()),
            recipients,
            members,
            group,
            mentioned,
            mentions_all,
            collapse_id: message.id.clone(),
            subject,
            data,
        }))
    }

    async fn reaction_plan(&self, event: &Event) -> Result<Option<Plan>, Outcome> {
        let field = |name: &str| event.data.get(name).and_then(serde_json::Value::as_str).map(str::to_owned);
        let (Some(message_id), Some(reactor), Some(reaction)) = (field("messageId"), field("uid"), field("reaction"))
        else {
            return Err(Outcome::DeadLetter("a reaction without messageId, uid or reaction".to_owned()));
        };
        let Ok(reactor) = Uid::parse(&reactor) else {
            return Err(Outcome::DeadLetter("the reacting user is not a uid".to_owned()));
        };
        let message = self.store.get_message(&message_id).await.map_err(|error| retry("reading the message", error))?;
        let Some(message) = message.filter(|message| message.deleted_at.is_none()) else { return Ok(None) };
        let author = message.sender.clone();
        let (group, members) = match message.conversation_id.guid() {
            Some(guid) => {
                let group = self.group_facts(guid).await?;
                let member =
                    self.store.member(guid, &author).await.map_err(|error| retry("reading the member", error))?;
                (group, member.into_iter().map(|member| member.uid).collect())
            }
            None => (None, HashSet::from([author.clone()])),
        };
        let mut data = BTreeMap::new();
        data.insert("type".to_owned(), event.event_type.as_str().to_owned());
        data.insert("messageId".to_owned(), message.id.clone());
        data.insert("conversationId".to_owned(), message.conversation_id.display_id());
        data.insert("reaction".to_owned(), reaction.clone());
        data.insert("sender".to_owned(), reactor.as_str().to_owned());
        Ok(Some(Plan {
            happening: Happening::Reaction,
            conversation: message.conversation_id.clone(),
            message_id: Some(message.id.clone()),
            sender: Some(reactor),
            recipients: vec![author],
            members,
            group,
            mentioned: HashSet::new(),
            mentions_all: false,
            // Its own collapse id: a reaction does not replace the message's push.
            collapse_id: format!("{}.reaction", message.id),
            subject: SubjectOwned::Reaction(reaction),
            data,
        }))
    }

    async fn added_plan(&self, event: &Event) -> Result<Option<Plan>, Outcome> {
        let field = |name: &str| event.data.get(name).and_then(serde_json::Value::as_str).map(str::to_owned);
        let (Some(guid), Some(uid)) = (field("guid"), field("uid")) else {
            return Err(Outcome::DeadLetter("a member event without guid or uid".to_owned()));
        };
        let (Ok(guid), Ok(uid)) = (Guid::parse(&guid), Uid::parse(&uid)) else {
            return Err(Outcome::DeadLetter("a member event with a bad guid or uid".to_owned()));
        };
        let Some(group) = self.group_facts(&guid).await? else { return Ok(None) };
        let member = self.store.member(&guid, &uid).await.map_err(|error| retry("reading the member", error))?;
        let mut data = BTreeMap::new();
        data.insert("type".to_owned(), event.event_type.as_str().to_owned());
        data.insert("guid".to_owned(), guid.as_str().to_owned());
        Ok(Some(Plan {
            happening: Happening::Added,
            conversation: ConversationId::group(&guid),
            message_id: None,
            sender: None,
            recipients: vec![uid.clone()],
            members: member.into_iter().map(|member| member.uid).collect(),
            // The group's size limit is for messages; being added to a big group is still news.
            group: Some((group.0, group.1, 0)),
            mentioned: HashSet::new(),
            mentions_all: false,
            collapse_id: format!("{}.added", event.id),
            subject: SubjectOwned::Added,
            data,
        }))
    }

    async fn fan_out(&self, event: &Event, plan: Plan) -> Outcome {
        let now = self.clock.now();
        let key = plan.conversation.key().to_owned();
        let log_entry = |uid: Option<&Uid>, skip: Skip| LogEntry {
            id: format!("{}_{}_{}", event.id, uid.map_or("*", Uid::as_str), skip.as_str()),
            event_id: event.id.clone(),
            message_id: plan.message_id.clone(),
            uid: uid.map(|uid| uid.as_str().to_owned()),
            conversation_key: Some(key.clone()),
            provider_id: None,
            outcome: "skipped".to_owned(),
            reason: skip.as_str().to_owned(),
            status: None,
            collapse_id: Some(plan.collapse_id.clone()),
            at: now,
        };
        if let Some((_, _, members)) = &plan.group
            && *members > self.policy.max_group_members
        {
            self.metrics.skipped(Skip::GroupTooLarge);
            let entry = log_entry(None, Skip::GroupTooLarge);
            return match self.store.enqueue_notifications(&[], &[entry]).await {
                Ok(_) => Outcome::Done,
                Err(error) => retry("logging", error),
            };
        }
        let recipients: Vec<Uid> =
            plan.recipients.iter().filter(|uid| plan.sender.as_ref() != Some(*uid)).cloned().collect();
        if recipients.is_empty() {
            return Outcome::Done;
        }
        let online = match self.presence.online(&recipients).await {
            Ok(online) => online,
            Err(error) => return retry("asking who is online", error),
        };
        // Settings are read only for the recipients whose verdict can depend on them (`needs_settings`): a
        // message to people who are all online costs no read beyond presence.
        let unsettled: Vec<Uid> = recipients
            .iter()
            .zip(&online)
            .filter(|(_, online)| needs_settings(&self.policy, plan.happening, **online))
            .map(|(uid, _)| uid.clone())
            .collect();
        let (defaults, preferences, mutes) = if unsettled.is_empty() {
            (Defaults::default(), HashMap::new(), HashMap::new())
        } else {
            let defaults = match self.preferences.defaults().await {
                Ok(defaults) => defaults.unwrap_or_default(),
                Err(error) => return retry("reading the defaults", error),
            };
            let preferences: HashMap<Uid, Preferences> = match self.preferences.preferences_of(&unsettled).await {
                Ok(found) => found.into_iter().collect(),
                Err(error) => return retry("reading preferences", error),
            };
            let mutes: HashMap<Uid, Millis> = match self.preferences.muted_among(&unsettled, &key, now).await {
                Ok(found) => found.into_iter().collect(),
                Err(error) => return retry("reading mutes", error),
            };
            (defaults, preferences, mutes)
        };
        let no_preferences = Preferences::default();
        let verdicts: Vec<(&Uid, Result<(), Skip>, bool)> = recipients
            .iter()
            .zip(online)
            .map(|(uid, online)| {
                let effective = Effective::of(&defaults, preferences.get(uid).unwrap_or(&no_preferences));
                let facts = Facts {
                    happening: plan.happening,
                    is_sender: false,
                    is_member: plan.members.contains(uid),
                    group_members: plan.group.as_ref().map(|(_, _, members)| *members),
                    online,
                    mentioned: plan.mentions_all || plan.mentioned.contains(uid),
                    muted_until: mutes.get(uid).copied(),
                    preferences: &effective,
                    now,
                };
                (uid, decide(&self.policy, &facts), effective.privacy)
            })
            .collect();
        // Devices only of the recipients a push may go to.
        let wanted: Vec<Uid> =
            verdicts.iter().filter(|(_, verdict, _)| verdict.is_ok()).map(|(uid, _, _)| (*uid).clone()).collect();
        let mut tokens: HashMap<Uid, Vec<PushToken>> = HashMap::new();
        if !wanted.is_empty() {
            match self.store.push_tokens_of(&wanted).await {
                Ok(found) => {
                    found.into_iter().for_each(|token| tokens.entry(token.uid.clone()).or_default().push(token))
                }
                Err(error) => return retry("reading push tokens", error),
            }
        }
        let mut log = Vec::new();
        // The recipients a push goes to, with their settings and devices; the rest are logged as skipped.
        let mut accepted = Vec::new();
        for (uid, mut verdict, privacy) in verdicts {
            let devices = tokens.get(uid).map(Vec::as_slice).unwrap_or_default();
            if verdict.is_ok() && devices.is_empty() {
                verdict = Err(Skip::NoToken);
            }
            if let Err(skip) = verdict {
                self.metrics.skipped(skip);
                log.push(log_entry(Some(uid), skip));
                continue;
            }
            accepted.push((uid, privacy, devices));
        }
        // What only a push needs (the badge's unread counts, the sender's name) is read only when one is made: a
        // message none of whose recipients has a device costs no more reads.
        let mut jobs = Vec::new();
        if !accepted.is_empty() {
            let to: Vec<Uid> = accepted.iter().map(|(uid, _, _)| (*uid).clone()).collect();
            let badges: HashMap<Uid, i64> = match self.store.unread_totals(&to).await {
                Ok(found) => found.into_iter().collect(),
                Err(error) => return retry("reading unread counts", error),
            };
            let sender_name = match &plan.sender {
                Some(sender) => match self.store.get_user(sender).await {
                    Ok(user) => user.map_or_else(|| sender.as_str().to_owned(), |user| user.name),
                    Err(error) => return retry("reading the sender", error),
                },
                None => String::new(),
            };
            let default_provider = self.registry.default_provider().await;
            let group_name = plan.group.as_ref().map(|(_, name, _)| name.as_str());
            let context = match plan.subject {
                SubjectOwned::Added => Context { sender: group_name.unwrap_or_default(), group: None },
                _ => Context { sender: &sender_name, group: group_name },
            };
            let subject = match &plan.subject {
                SubjectOwned::Message { text, kind } => Subject::Message { text: text.as_deref(), kind },
                SubjectOwned::Deleted => Subject::Deleted,
                SubjectOwned::Reaction(reaction) => Subject::Reaction { reaction },
                SubjectOwned::Added => Subject::AddedToGroup,
            };
            let claimed_until = self.sender.claim_until(now);
            for (uid, privacy, devices) in accepted {
                let rendered = render(&context, &subject, privacy);
                for device in devices {
                    let provider_id = match (&device.provider_id, &default_provider) {
                        (id, _) if !id.is_empty() => id.clone(),
                        (_, Some(default)) => default.clone(),
                        _ => continue,
                    };
                    let id = format!("{}_{}", event.id, device.id);
                    let push = Push {
                        id: id.clone(),
                        uid: uid.as_str().to_owned(),
                        token: device.token.clone(),
                        platform: device.platform.clone(),
                        title: rendered.title.clone(),
                        body: rendered.body.clone(),
                        badge: Some(badges.get(uid).copied().unwrap_or(0)),
                        collapse_id: plan.collapse_id.clone(),
                        data: plan.data.clone(),
                    };
                    let Ok(payload) = serde_json::to_string(&push) else { continue };
                    jobs.push(PushJob {
                        id,
                        event_id: event.id.clone(),
                        uid: uid.as_str().to_owned(),
                        token_id: device.id.clone(),
                        provider_id,
                        collapse_id: plan.collapse_id.clone(),
                        payload,
                        attempts: 0,
                        next_attempt_at: now,
                        claimed_until,
                        created_at: now,
                    });
                }
            }
        }
        let made = match self.store.enqueue_notifications(&jobs, &log).await {
            Ok(made) => made,
            Err(error) => return retry("writing the pushes", error),
        };
        // Pushes made by an earlier, interrupted handling of this event keep their claim and are sent by the
        // poller once it expires; only the new ones are offered now.
        let made: HashSet<String> = made.into_iter().collect();
        let fresh: Vec<PushJob> = jobs.into_iter().filter(|job| made.contains(&job.id)).collect();
        self.sender.offer(fresh).await;
        Outcome::Done
    }
}

impl Handler for NotificationsHandler {
    fn name(&self) -> &'static str {
        "notifications"
    }

    fn handle<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Outcome> {
        Box::pin(self.handle_event(event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_are_cometchat_tags() {
        let (uids, all) = mentions("hi <@uid:alice> and <@uid:bob>, not <@uid:> nor <@guid:g1>");
        let mut names: Vec<&str> = uids.iter().map(Uid::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["alice", "bob"]);
        assert!(!all);
        assert!(mentions("<@all:all> meeting").1);
        assert!(mentions("<@uid:alice").0.is_empty());
    }
}
