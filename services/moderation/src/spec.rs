//! Rules and lists as they are stored and sent (CometChat's shape, camelCase), their limits, and why one is
//! refused. [`crate::Engine::compile`] turns a checked set into the engine; nothing here runs on a message.

use serde::{Deserialize, Serialize};

/// The most rules an app may have.
pub const MAX_RULES: usize = 25;
/// The most lists an app may have.
pub const MAX_LISTS: usize = 25;
/// The most filters one rule may have.
pub const MAX_FILTERS: usize = 10;
/// The most conditions one rule may have.
pub const MAX_CONDITIONS: usize = 10;
/// The longest rule or list name, and the longest keyword or phrase, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// The longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 1000;
/// The most entries one list may hold.
pub const MAX_LIST_ENTRIES: usize = 20_000;
/// The most values one filter may list, and the most allowed domains of a contact condition.
pub const MAX_FILTER_VALUES: usize = 100;

/// One moderation rule: when its filters hold and any of its conditions matches, its action applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleSpec {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// Every filter must hold (an empty list: every message).
    #[serde(default)]
    pub filters: Vec<Filter>,
    /// Any condition matching is enough.
    pub conditions: Vec<Condition>,
    pub action: Action,
    /// What also happens to the sender when the rule applies (after the message is decided).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sender_actions: Vec<SenderAction>,
}

/// CometChat's group and user actions of a rule: the sender is kicked or banned from the group it wrote to, or
/// blocked by the user it wrote to. An action that does not fit the conversation (a kick in a one-on-one
/// conversation, a block in a group) does nothing; neither does a kick or ban of the group's owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SenderAction {
    KickFromGroup,
    BanFromGroup,
    /// The receiver of a one-on-one message blocks its sender.
    BlockSender,
}

fn enabled_by_default() -> bool {
    true
}

/// Which messages a rule looks at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Filter {
    pub field: FilterField,
    pub operator: FilterOperator,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FilterField {
    SenderUid,
    SenderRole,
    SenderTags,
    /// The receiving user's uid or group's guid.
    ReceiverId,
    /// `user` or `group`.
    ReceiverType,
    ReceiverTags,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FilterOperator {
    /// The field is one of the values (for tags: one of the tags is).
    In,
    /// The field is none of the values.
    NotIn,
}

/// What a rule looks for in the text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type", deny_unknown_fields)]
pub enum Condition {
    /// Words and phrases of these keyword or phrase lists.
    Keywords { lists: Vec<String> },
    /// The expressions of these pattern lists.
    Patterns { lists: Vec<String> },
    /// Contact details; addresses and links at `allow` domains (and their subdomains) pass.
    #[serde(rename_all = "camelCase")]
    ContactDetails {
        #[serde(default)]
        email: bool,
        #[serde(default)]
        phone: bool,
        #[serde(default)]
        url: bool,
        #[serde(default)]
        allow: Vec<String>,
    },
    /// The operator's Custom API (CometChat's contract), asked by the moderation role after the send: the
    /// message is `pending` until it answers. The endpoint and its basic-auth credentials are the operator's
    /// settings (`COMET_MODERATION_CUSTOM_API_*`), so no rule, revision, view or audit entry holds a password.
    #[serde(rename_all = "camelCase")]
    CustomApi {
        /// A matching answer applies the rule's action when its confidence is at least this.
        #[serde(default)]
        threshold: Threshold,
        /// What happens when the API fails (an error, a timeout, an answer that is not the contract).
        #[serde(default)]
        on_failure: FailurePolicy,
        /// How many earlier messages of the conversation go with the message, as context (0 to 10).
        #[serde(default)]
        context_messages: u8,
    },
}

/// The most earlier messages a Custom API request carries (CometChat's limit).
pub const MAX_CONTEXT_MESSAGES: u8 = 10;

/// A confidence from 0 to 1, kept in thousandths (so rules stay `Eq`); written as a JSON number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Threshold(u16);

impl Threshold {
    /// `value` (0 to 1), or `None` outside that range.
    pub fn new(value: f64) -> Option<Threshold> {
        (0.0..=1.0).contains(&value).then(|| Threshold((value * 1000.0).round() as u16))
    }

    pub fn value(self) -> f64 {
        f64::from(self.0) / 1000.0
    }

    /// Whether `confidence` reaches this threshold.
    pub fn reached_by(self, confidence: f64) -> bool {
        confidence * 1000.0 >= f64::from(self.0) - 1e-9
    }
}

impl Default for Threshold {
    /// 0.5, as CometChat's dashboard proposes.
    fn default() -> Threshold {
        Threshold(500)
    }
}

impl Serialize for Threshold {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.value())
    }
}

impl<'de> Deserialize<'de> for Threshold {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Threshold, D::Error> {
        let value = f64::deserialize(deserializer)?;
        Threshold::new(value).ok_or_else(|| serde::de::Error::custom("threshold must be from 0 to 1"))
    }
}

/// CometChat's "On Custom API Error".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum FailurePolicy {
    /// Delivered as if the API had not matched (CometChat's default).
    #[default]
    #[serde(rename = "approve-message")]
    ApproveMessage,
    /// Never delivered.
    #[serde(rename = "drop-message")]
    DropMessage,
}

/// What happens to a message a rule matches. When several rules match, `block` wins over `mask`, and a
/// `flag` is kept beside either.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    /// Delivered and queued for review.
    Flag,
    /// The matched spans are replaced with `*` for recipients and history; moderators see the original.
    Mask,
    /// Refused: never stored as delivered, never delivered.
    Block,
}

/// A list of keywords, phrases or patterns that conditions refer to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListSpec {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub kind: ListKind,
    pub entries: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ListKind {
    Keywords,
    Phrases,
    Patterns,
}

impl ListKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ListKind::Keywords => "keywords",
            ListKind::Phrases => "phrases",
            ListKind::Patterns => "patterns",
        }
    }
}

/// Why a rule or list is refused. Each has a stable code (the API's `error.code`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("{what} is over its limit of {limit}")]
    Limit { what: String, limit: usize },
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("rule `{rule}` refers to list `{list}`, which does not exist")]
    UnknownList { rule: String, list: String },
    #[error("rule `{rule}` uses list `{list}` ({kind}) in a {condition} condition")]
    ListKind { rule: String, list: String, kind: &'static str, condition: &'static str },
    #[error("list `{list}`: the pattern `{pattern}` is refused: {reason}")]
    Pattern { list: String, pattern: String, reason: String },
}

impl SpecError {
    pub fn code(&self) -> &'static str {
        match self {
            SpecError::Limit { .. } => "ERR_MODERATION_LIMIT",
            SpecError::Invalid { .. } => "ERR_MODERATION_INVALID",
            SpecError::UnknownList { .. } => "ERR_MODERATION_UNKNOWN_LIST",
            SpecError::ListKind { .. } => "ERR_MODERATION_LIST_KIND",
            SpecError::Pattern { .. } => "ERR_MODERATION_PATTERN",
        }
    }
}

/// An id of a rule or list: 1–100 of letters, digits, `-` and `_`.
pub fn check_id(field: &str, id: &str) -> Result<(), SpecError> {
    let valid = !id.is_empty()
        && id.len() <= MAX_NAME_CHARS
        && id.chars().all(|character| character.is_ascii_alphanumeric() || character == '-' || character == '_');
    if valid { Ok(()) } else { Err(invalid(field, "1 to 100 letters, digits, `-` or `_`")) }
}

fn invalid(field: &str, reason: &str) -> SpecError {
    SpecError::Invalid { field: field.to_owned(), reason: reason.to_owned() }
}

fn check_text(field: &str, text: &str, max: usize, required: bool) -> Result<(), SpecError> {
    if required && text.trim().is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if text.chars().count() > max {
        return Err(invalid(field, &format!("longer than {max} characters")));
    }
    if text.chars().any(char::is_control) {
        return Err(invalid(field, "holds a control character"));
    }
    Ok(())
}

impl RuleSpec {
    /// What can be checked without the lists (the lists' existence and kinds: [`crate::Engine::compile`]).
    pub fn check(&self) -> Result<(), SpecError> {
        check_id("id", &self.id)?;
        check_text("name", &self.name, MAX_NAME_CHARS, true)?;
        check_text("description", &self.description, MAX_DESCRIPTION_CHARS, false)?;
        if self.filters.len() > MAX_FILTERS {
            return Err(SpecError::Limit { what: format!("rule `{}`'s filters", self.id), limit: MAX_FILTERS });
        }
        if self.conditions.len() > MAX_CONDITIONS {
            return Err(SpecError::Limit { what: format!("rule `{}`'s conditions", self.id), limit: MAX_CONDITIONS });
        }
        if self.conditions.is_empty() {
            return Err(invalid("conditions", "a rule needs at least one condition"));
        }
        for (index, action) in self.sender_actions.iter().enumerate() {
            if self.sender_actions[..index].contains(action) {
                return Err(invalid("senderActions", "each action at most once"));
            }
        }
        for filter in &self.filters {
            if filter.values.is_empty() || filter.values.len() > MAX_FILTER_VALUES {
                return Err(invalid("filters.values", &format!("1 to {MAX_FILTER_VALUES} values")));
            }
            for value in &filter.values {
                check_text("filters.values", value, MAX_NAME_CHARS, true)?;
            }
        }
        for condition in &self.conditions {
            match condition {
                Condition::Keywords { lists } | Condition::Patterns { lists } => {
                    if lists.is_empty() || lists.len() > MAX_LISTS {
                        return Err(invalid("conditions.lists", &format!("1 to {MAX_LISTS} lists")));
                    }
                }
                Condition::CustomApi { context_messages, .. } => {
                    if *context_messages > MAX_CONTEXT_MESSAGES {
                        return Err(invalid(
                            "conditions.contextMessages",
                            &format!("0 to {MAX_CONTEXT_MESSAGES} messages"),
                        ));
                    }
                    if self.action == Action::Mask {
                        return Err(invalid(
                            "action",
                            "a customApi condition cannot mask (the API names no spans): block or flag",
                        ));
                    }
                }
                Condition::ContactDetails { email, phone, url, allow } => {
                    if !email && !phone && !url {
                        return Err(invalid("conditions", "a contact-details condition looks for email, phone or url"));
                    }
                    if allow.len() > MAX_FILTER_VALUES {
                        return Err(invalid("conditions.allow", &format!("at most {MAX_FILTER_VALUES} domains")));
                    }
                    for domain in allow {
                        let valid = !domain.is_empty()
                            && domain.len() <= 253
                            && domain.split('.').all(|label| {
                                !label.is_empty()
                                    && label.len() <= 63
                                    && label
                                        .chars()
                                        .all(|character| character.is_ascii_alphanumeric() || character == '-')
                            });
                        if !valid {
                            return Err(invalid("conditions.allow", "domain names only (`example.com`)"));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

impl ListSpec {
    /// One pattern of this list compiled, or refused naming the list and the pattern.
    pub(crate) fn compile_pattern(&self, pattern: &str) -> Result<regex::Regex, SpecError> {
        crate::patterns::compile(pattern).map_err(|reason| SpecError::Pattern {
            list: self.id.clone(),
            pattern: pattern.to_owned(),
            reason,
        })
    }

    /// Everything about a list on its own, patterns compiled (a refused pattern is named).
    pub fn check(&self) -> Result<(), SpecError> {
        check_id("id", &self.id)?;
        check_text("name", &self.name, MAX_NAME_CHARS, true)?;
        check_text("description", &self.description, MAX_DESCRIPTION_CHARS, false)?;
        if self.entries.len() > MAX_LIST_ENTRIES {
            return Err(SpecError::Limit { what: format!("list `{}`'s entries", self.id), limit: MAX_LIST_ENTRIES });
        }
        for entry in &self.entries {
            match self.kind {
                ListKind::Patterns => {
                    self.compile_pattern(entry)?;
                }
                ListKind::Keywords | ListKind::Phrases => {
                    check_text("entries", entry, MAX_NAME_CHARS, true)?;
                    if crate::normalize::fold_keyword(entry).is_empty() {
                        return Err(invalid("entries", &format!("`{entry}` has no letter or digit to match")));
                    }
                }
            }
        }
        Ok(())
    }
}
