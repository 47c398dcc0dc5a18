//! The synchronous engine: the rules and lists compiled once, then every message checked in time linear in
//! its length (one fold of the text, one hash lookup per word per keyword list, linear-time patterns).

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use comet_model::ReceiverType;
use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::contacts::ContactFinder;
use crate::keywords::KeywordSet;
use crate::normalize::{Words, words};
use crate::spec::{
    Action, Condition, FailurePolicy, FilterField, FilterOperator, ListKind, ListSpec, MAX_LISTS, MAX_RULES, RuleSpec,
    SenderAction, SpecError, Threshold,
};

/// Who sends a message, as the filters see them.
#[derive(Debug, Clone, Copy)]
pub struct Sender<'a> {
    pub uid: &'a str,
    pub role: &'a str,
    pub tags: &'a [String],
}

#[derive(Debug, Clone, Copy)]
pub struct Receiver<'a> {
    pub kind: ReceiverType,
    /// The receiving user's uid or the group's guid.
    pub id: &'a str,
    pub tags: &'a [String],
}

/// A message as the engine sees it.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub text: &'a str,
    pub sender: Sender<'a>,
    pub receiver: Receiver<'a>,
}

/// What kind of condition matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionKind {
    Keywords,
    Patterns,
    ContactDetails,
}

/// One rule that matched, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleMatch {
    pub rule_id: String,
    pub action: Action,
    pub sender_actions: Vec<SenderAction>,
    pub condition: ConditionKind,
    /// Byte ranges of the original text, in order, not overlapping.
    pub spans: Vec<Range<usize>>,
}

/// A rule whose filters hold and whose Custom API condition the moderation role must ask: the message is
/// held as `pending` until then. Stored with the held message, so the decision follows the rule as it was
/// at the send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ask {
    pub rule_id: String,
    pub action: Action,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sender_actions: Vec<SenderAction>,
    pub threshold: Threshold,
    pub on_failure: FailurePolicy,
    pub context_messages: u8,
}

/// The engine's answer for one message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verdict {
    /// Every rule that matched, in rule order.
    pub matches: Vec<RuleMatch>,
    /// The asynchronous conditions still to ask (none when a rule blocked the message already).
    pub asks: Vec<Ask>,
}

impl Verdict {
    /// The strongest action of the matching rules (`None`: the message passes untouched).
    pub fn action(&self) -> Option<Action> {
        self.matches.iter().map(|matched| matched.action).max()
    }

    pub fn blocked(&self) -> bool {
        self.action() == Some(Action::Block)
    }

    /// The sender actions of every rule that matched, each once, in rule order.
    pub fn sender_actions(&self) -> Vec<SenderAction> {
        let mut actions = Vec::new();
        for action in self.matches.iter().flat_map(|matched| matched.sender_actions.iter()) {
            if !actions.contains(action) {
                actions.push(*action);
            }
        }
        actions
    }

    /// True when the message must wait for the moderation role (a Custom API condition to ask).
    pub fn pending(&self) -> bool {
        !self.blocked() && !self.asks.is_empty()
    }

    /// True when a rule asked for review (delivered, and queued).
    pub fn flagged(&self) -> bool {
        self.matches.iter().any(|matched| matched.action == Action::Flag)
    }

    /// The text recipients see when a `mask` rule matched: every span of every masking rule's match replaced
    /// by as many `*` as it had characters (whitespace inside a phrase kept). `None` when nothing is masked.
    pub fn masked(&self, text: &str) -> Option<String> {
        let mut spans: Vec<Range<usize>> = self
            .matches
            .iter()
            .filter(|matched| matched.action == Action::Mask)
            .flat_map(|matched| matched.spans.iter().cloned())
            .collect();
        if spans.is_empty() {
            return None;
        }
        merge(&mut spans);
        let mut masked = String::with_capacity(text.len());
        let mut at = 0;
        for span in spans {
            masked.push_str(&text[at..span.start]);
            for character in text[span.clone()].chars() {
                masked.push(if character.is_whitespace() { character } else { '*' });
            }
            at = span.end;
        }
        masked.push_str(&text[at..]);
        Some(masked)
    }
}

/// Sorts spans and joins those that overlap or touch.
fn merge(spans: &mut Vec<Range<usize>>) {
    spans.sort_by_key(|span| (span.start, span.end));
    let mut merged: Vec<Range<usize>> = Vec::with_capacity(spans.len());
    for span in spans.drain(..) {
        match merged.last_mut() {
            Some(last) if span.start <= last.end => last.end = last.end.max(span.end),
            _ => merged.push(span),
        }
    }
    *spans = merged;
}

#[derive(Debug)]
enum CompiledList {
    Keywords(KeywordSet),
    Patterns(Vec<Regex>),
}

#[derive(Debug)]
enum CompiledCondition {
    Keywords(Vec<Arc<CompiledList>>),
    Patterns(Vec<Arc<CompiledList>>),
    Contacts(ContactFinder),
    /// Asked later, by the moderation role.
    CustomApi {
        threshold: Threshold,
        on_failure: FailurePolicy,
        context_messages: u8,
    },
}

#[derive(Debug)]
struct CompiledRule {
    spec: RuleSpec,
    conditions: Vec<CompiledCondition>,
}

/// The compiled rules of an app. Cheap to share (`Arc`) and never changed: a rule change compiles a new one.
#[derive(Debug, Default)]
pub struct Engine {
    rules: Vec<CompiledRule>,
    keywords: usize,
}

impl Engine {
    /// Checks and compiles `rules` over `lists`: limits, every list a rule names exists and has the kind its
    /// condition wants, every pattern accepted. Disabled rules are checked too, but never run.
    pub fn compile(rules: &[RuleSpec], lists: &[ListSpec]) -> Result<Engine, SpecError> {
        if rules.len() > MAX_RULES {
            return Err(SpecError::Limit { what: "rules".to_owned(), limit: MAX_RULES });
        }
        if lists.len() > MAX_LISTS {
            return Err(SpecError::Limit { what: "lists".to_owned(), limit: MAX_LISTS });
        }
        let mut compiled_lists: HashMap<&str, (ListKind, Arc<CompiledList>)> = HashMap::new();
        let mut keywords = 0;
        for list in lists {
            list.check()?;
            let compiled = match list.kind {
                ListKind::Keywords | ListKind::Phrases => {
                    let set = KeywordSet::new(list.entries.iter().map(String::as_str));
                    keywords += set.len();
                    CompiledList::Keywords(set)
                }
                ListKind::Patterns => CompiledList::Patterns(
                    list.entries.iter().map(|pattern| list.compile_pattern(pattern)).collect::<Result<_, _>>()?,
                ),
            };
            compiled_lists.insert(list.id.as_str(), (list.kind, Arc::new(compiled)));
        }
        let mut compiled_rules = Vec::with_capacity(rules.len());
        for rule in rules {
            rule.check()?;
            let lookup = |ids: &[String], patterns: bool| -> Result<Vec<Arc<CompiledList>>, SpecError> {
                ids.iter()
                    .map(|id| {
                        let (kind, list) = compiled_lists
                            .get(id.as_str())
                            .ok_or_else(|| SpecError::UnknownList { rule: rule.id.clone(), list: id.clone() })?;
                        if (*kind == ListKind::Patterns) != patterns {
                            return Err(SpecError::ListKind {
                                rule: rule.id.clone(),
                                list: id.clone(),
                                kind: kind.as_str(),
                                condition: if patterns { "patterns" } else { "keywords" },
                            });
                        }
                        Ok(Arc::clone(list))
                    })
                    .collect()
            };
            let conditions = rule
                .conditions
                .iter()
                .map(|condition| {
                    Ok(match condition {
                        Condition::Keywords { lists } => CompiledCondition::Keywords(lookup(lists, false)?),
                        Condition::Patterns { lists } => CompiledCondition::Patterns(lookup(lists, true)?),
                        Condition::CustomApi { threshold, on_failure, context_messages } => {
                            CompiledCondition::CustomApi {
                                threshold: *threshold,
                                on_failure: *on_failure,
                                context_messages: *context_messages,
                            }
                        }
                        Condition::ContactDetails { email, phone, url, allow } => {
                            crate::contacts::warm();
                            CompiledCondition::Contacts(ContactFinder {
                                email: *email,
                                phone: *phone,
                                link: *url,
                                allow: allow.iter().map(|domain| domain.to_ascii_lowercase()).collect(),
                            })
                        }
                    })
                })
                .collect::<Result<_, SpecError>>()?;
            compiled_rules.push(CompiledRule { spec: rule.clone(), conditions });
        }
        Ok(Engine { rules: compiled_rules, keywords })
    }

    /// How many rules run (enabled ones).
    pub fn enabled_rules(&self) -> usize {
        self.rules.iter().filter(|rule| rule.spec.enabled).count()
    }

    /// Whether an enabled rule filters on the sender's role (the send path then reads the sender's role).
    pub fn filters_on_role(&self) -> bool {
        self.rules.iter().any(|rule| {
            rule.spec.enabled && rule.spec.filters.iter().any(|filter| filter.field == FilterField::SenderRole)
        })
    }

    /// Keywords and phrases across the lists.
    pub fn keywords(&self) -> usize {
        self.keywords
    }

    /// Every enabled rule whose filters hold, checked against the message.
    pub fn moderate(&self, message: &Message<'_>) -> Verdict {
        let mut folded: Option<Words> = None;
        let mut verdict = Verdict::default();
        for rule in &self.rules {
            if !rule.spec.enabled || !filters_hold(&rule.spec, message) {
                continue;
            }
            for condition in &rule.conditions {
                let mut spans = Vec::new();
                let kind = match condition {
                    CompiledCondition::Keywords(lists) => {
                        let words = folded.get_or_insert_with(|| words(message.text));
                        for list in lists {
                            if let CompiledList::Keywords(set) = list.as_ref() {
                                set.find(words, &mut spans);
                            }
                        }
                        ConditionKind::Keywords
                    }
                    CompiledCondition::Patterns(lists) => {
                        for list in lists {
                            if let CompiledList::Patterns(patterns) = list.as_ref() {
                                for pattern in patterns {
                                    spans.extend(pattern.find_iter(message.text).map(|hit| hit.range()));
                                }
                            }
                        }
                        ConditionKind::Patterns
                    }
                    CompiledCondition::Contacts(finder) => {
                        finder.find(message.text, &mut spans);
                        ConditionKind::ContactDetails
                    }
                    CompiledCondition::CustomApi { threshold, on_failure, context_messages } => {
                        verdict.asks.push(Ask {
                            rule_id: rule.spec.id.clone(),
                            action: rule.spec.action,
                            sender_actions: rule.spec.sender_actions.clone(),
                            threshold: *threshold,
                            on_failure: *on_failure,
                            context_messages: *context_messages,
                        });
                        continue;
                    }
                };
                if !spans.is_empty() {
                    merge(&mut spans);
                    verdict.matches.push(RuleMatch {
                        rule_id: rule.spec.id.clone(),
                        action: rule.spec.action,
                        sender_actions: rule.spec.sender_actions.clone(),
                        condition: kind,
                        spans,
                    });
                }
            }
        }
        if verdict.blocked() {
            verdict.asks.clear();
        }
        verdict
    }

    /// Whether an enabled rule asks a Custom API (the moderation role is then needed).
    pub fn asks_custom_api(&self) -> bool {
        self.rules.iter().any(|rule| {
            rule.spec.enabled
                && rule.conditions.iter().any(|condition| matches!(condition, CompiledCondition::CustomApi { .. }))
        })
    }
}

fn filters_hold(rule: &RuleSpec, message: &Message<'_>) -> bool {
    rule.filters.iter().all(|filter| {
        let is = |candidate: &str| filter.values.iter().any(|value| value == candidate);
        let matched = match filter.field {
            FilterField::SenderUid => is(message.sender.uid),
            FilterField::SenderRole => is(message.sender.role),
            FilterField::SenderTags => message.sender.tags.iter().any(|tag| is(tag)),
            FilterField::ReceiverId => is(message.receiver.id),
            FilterField::ReceiverType => is(message.receiver.kind.as_str()),
            FilterField::ReceiverTags => message.receiver.tags.iter().any(|tag| is(tag)),
        };
        match filter.operator {
            FilterOperator::In => matched,
            FilterOperator::NotIn => !matched,
        }
    })
}
