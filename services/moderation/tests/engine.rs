//! The engine at its boundary: a table of messages × one set of rules → the action and the masked text, and
//! a table of rules and lists the engine refuses with their codes.
#![allow(clippy::unwrap_used)]

use comet_moderation::spec::{MAX_CONDITIONS, MAX_RULES};
use comet_moderation::{
    Action, Condition, Engine, Filter, FilterField, FilterOperator, ListKind, ListSpec, Message, Receiver,
    ReceiverType, RuleSpec, Sender, SpecError,
};

fn list(id: &str, kind: ListKind, entries: &[&str]) -> ListSpec {
    ListSpec {
        id: id.to_owned(),
        name: format!("{id} list"),
        description: String::new(),
        kind,
        entries: entries.iter().map(|entry| (*entry).to_owned()).collect(),
    }
}

fn rule(id: &str, conditions: Vec<Condition>, action: Action) -> RuleSpec {
    RuleSpec {
        id: id.to_owned(),
        name: format!("{id} rule"),
        description: String::new(),
        enabled: true,
        filters: Vec::new(),
        conditions,
        action,
        sender_actions: Vec::new(),
    }
}

fn keywords(lists: &[&str]) -> Condition {
    Condition::Keywords { lists: lists.iter().map(|list| (*list).to_owned()).collect() }
}

fn lists() -> Vec<ListSpec> {
    vec![
        list("profanity", ListKind::Keywords, &["fuck", "shit", "ass", "cunt", "bitch"]),
        list("threats", ListKind::Phrases, &["kill yourself"]),
        list("scams", ListKind::Patterns, &[r"free\s{1,3}crypto", r"\bwire\s{1,3}me\s{1,3}\d{2,6}\b"]),
    ]
}

fn rules() -> Vec<RuleSpec> {
    let mut profanity = rule("profanity", vec![keywords(&["profanity"])], Action::Block);
    profanity.filters.push(Filter {
        field: FilterField::SenderRole,
        operator: FilterOperator::NotIn,
        values: vec!["moderator".to_owned()],
    });
    vec![
        profanity,
        rule(
            "contacts",
            vec![Condition::ContactDetails {
                email: true,
                phone: true,
                url: true,
                allow: vec!["example.com".to_owned()],
            }],
            Action::Mask,
        ),
        rule("threats", vec![keywords(&["threats"])], Action::Flag),
        rule("scams", vec![Condition::Patterns { lists: vec!["scams".to_owned()] }], Action::Flag),
        {
            let mut off = rule("disabled", vec![keywords(&["threats"])], Action::Block);
            off.enabled = false;
            off
        },
    ]
}

fn engine() -> Engine {
    Engine::compile(&rules(), &lists()).expect("the test rules compile")
}

fn message<'a>(text: &'a str, role: &'a str) -> Message<'a> {
    Message {
        text,
        sender: Sender { uid: "alice", role, tags: &[] },
        receiver: Receiver { kind: ReceiverType::Group, id: "lobby", tags: &[] },
    }
}

/// What the engine does with `text`: the action and, for `mask`, what recipients see.
fn outcome(engine: &Engine, text: &str, role: &str) -> (Option<Action>, Option<String>) {
    let verdict = engine.moderate(&message(text, role));
    (verdict.action(), verdict.masked(text))
}

#[test]
fn messages_against_the_rules() {
    let engine = engine();
    let block = Some(Action::Block);
    let flag = Some(Action::Flag);
    let cases: &[(&str, Option<Action>)] = &[
        // Profanity, plain and obfuscated.
        ("fuck", block),
        ("FUCK you", block),
        ("what the fuck!", block),
        ("ｆｕｃｋ", block),
        ("fück this", block),
        ("𝐟𝐮𝐜𝐤", block),
        ("ⓕⓤⓒⓚ", block),
        ("ѕһіt", block),
        ("f.u.c.k", block),
        ("f u c k off", block),
        ("f-u-c-k", block),
        ("fu-ck", block),
        ("fu.ck", block),
        ("fu\u{200B}ck", block),
        ("fuuuuuck", block),
        ("sh1t", block),
        ("$hit happens", block),
        ("@ss", block),
        ("b!tch", block),
        ("you b1tch.", block),
        // False-positive guards: the keyword inside a longer word, or a shorter word.
        ("Scunthorpe United won", None),
        ("my assistant will call", None),
        ("a classic class", None),
        ("as you wish", None),
        ("shiitake mushrooms", None),
        ("passage, bass, embassy", None),
        ("cocktail hour", None),
        ("hello there", None),
        ("I was there at 5", None),
        // Phrases and patterns flag.
        ("you should kill yourself", flag),
        ("KILL   YOURSELF", flag),
        ("k1ll yourself", flag),
        ("killing yourself is not a joke", None),
        ("get FREE  crypto now", flag),
        ("wire me 500", flag),
        ("wire me later", None),
        // Contact details are masked (below), unless allowed or not contact details at all.
        ("write to support@example.com", None),
        ("docs at https://help.example.com/faq", None),
        ("meeting on 2026-12-07 at 10", None),
        ("order #1234567 shipped", None),
        ("pi is 3.14159265", None),
        ("I have 3 cats and 2 dogs", None),
        ("scores 1 2 3 4 5 6 7", None),
        // The strongest action wins.
        ("fuck, mail john@gmail.com", block),
    ];
    let mut wrong = Vec::new();
    for (text, expected) in cases {
        let (action, _) = outcome(&engine, text, "default");
        if action != *expected {
            wrong.push(format!("{text:?}: expected {expected:?}, got {action:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn contact_details_are_masked_where_they_are() {
    let engine = engine();
    let cases: &[(&str, &str)] = &[
        ("mail me at john.doe@gmail.com", "mail me at ******************"),
        ("john (at) gmail (dot) com", "**** **** ***** ***** ***"),
        ("JOHN [at] GMAIL [dot] NET now", "**** **** ***** ***** *** now"),
        ("call +44 20 7946 0958", "call *** ** **** ****"),
        ("call 0044 20 7946 0958", "call **** ** **** ****"),
        ("ring (555) 123-4567 today", "ring ***** ******** today"),
        ("555.123.4567", "************"),
        ("mobile 07911 123456", "mobile ***** ******"),
        ("1-800-555-0199", "**************"),
        ("local 555-1234", "local ********"),
        ("+33 6 12 34 56 78", "*** * ** ** ** **"),
        ("visit www.spam.io", "visit ***********"),
        ("see https://evil.example.org/x?y=1", "see ******************************"),
        ("try cheap-pills.shop", "try ****************"),
        ("spam (dot) com", "**** ***** ***"),
    ];
    let mut wrong = Vec::new();
    for (text, expected) in cases {
        match outcome(&engine, text, "default") {
            (Some(Action::Mask), Some(masked)) if masked == *expected => {}
            other => wrong.push(format!("{text:?}: expected {expected:?}, got {other:?}")),
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn filters_choose_the_messages_a_rule_sees() {
    let engine = engine();
    assert_eq!(outcome(&engine, "fuck", "moderator").0, None, "moderators are outside the profanity rule");
    assert_eq!(outcome(&engine, "fuck", "default").0, Some(Action::Block));
    let mut rules = rules();
    rules[0].filters = vec![Filter {
        field: FilterField::ReceiverType,
        operator: FilterOperator::In,
        values: vec!["user".to_owned()],
    }];
    let engine = Engine::compile(&rules, &lists()).unwrap();
    assert_eq!(outcome(&engine, "fuck", "default").0, None, "the rule looks at one-to-one messages only");
}

#[test]
fn every_masked_span_is_replaced_and_flags_are_kept() {
    let mut rules = rules();
    rules[0].action = Action::Mask;
    rules[0].filters.clear();
    let engine = Engine::compile(&rules, &lists()).unwrap();
    let text = "shit, f.u.c.k and ass — mail a@b.io, kill yourself";
    let verdict = engine.moderate(&message(text, "default"));
    assert_eq!(verdict.action(), Some(Action::Mask));
    assert!(verdict.flagged(), "the phrase's flag is kept beside the mask");
    assert_eq!(verdict.masked(text).unwrap(), "****, ******* and *** — mail ******, kill yourself");
}

#[test]
fn a_large_message_is_checked_whole() {
    let engine = engine();
    let mut text = "lorem ipsum dolor sit amet ".repeat(4_000);
    text.push_str("and then f.u.c.k");
    assert!(text.len() > 100_000);
    assert_eq!(outcome(&engine, &text, "default").0, Some(Action::Block));
    let weird: String =
        (0..50_000).map(|index| char::from_u32(0x20 + (index * 7919) % 0x2FFF).unwrap_or('x')).collect();
    let _ = engine.moderate(&message(&weird, "default"));
}

fn refused(rules: &[RuleSpec], lists: &[ListSpec]) -> &'static str {
    match Engine::compile(rules, lists) {
        Ok(_) => "accepted",
        Err(error) => error.code(),
    }
}

#[test]
fn what_is_refused_at_upload() {
    let pattern = |pattern: &str| refused(&[], &[list("p", ListKind::Patterns, &[pattern])]);
    assert_eq!(pattern(r"free\s{1,3}crypto"), "accepted");
    for unbounded in [".*", "a+", "spam.*", r"(?:ab){2,}", "x*y"] {
        assert_eq!(pattern(unbounded), "ERR_MODERATION_PATTERN", "{unbounded}");
    }
    for oversized in ["(a{100}){100}", r"\w{300}", r"[\p{L}\p{N}]{200}"] {
        assert_eq!(pattern(oversized), "ERR_MODERATION_PATTERN", "{oversized}");
    }
    assert_eq!(pattern("a{0,3}"), "ERR_MODERATION_PATTERN", "matches the empty string");
    assert_eq!(pattern("(unclosed"), "ERR_MODERATION_PATTERN");
    assert_eq!(pattern(&"a".repeat(501)), "ERR_MODERATION_PATTERN", "too long");

    let too_many: Vec<RuleSpec> =
        (0..=MAX_RULES).map(|index| rule(&format!("r{index}"), vec![keywords(&["profanity"])], Action::Flag)).collect();
    assert_eq!(refused(&too_many, &lists()), "ERR_MODERATION_LIMIT");
    let conditions = vec![keywords(&["profanity"]); MAX_CONDITIONS + 1];
    assert_eq!(refused(&[rule("big", conditions, Action::Flag)], &lists()), "ERR_MODERATION_LIMIT");
    assert_eq!(refused(&[rule("r", vec![keywords(&["nope"])], Action::Flag)], &lists()), "ERR_MODERATION_UNKNOWN_LIST");
    assert_eq!(refused(&[rule("r", vec![keywords(&["scams"])], Action::Flag)], &lists()), "ERR_MODERATION_LIST_KIND");
    assert_eq!(
        refused(&[rule("bad id!", vec![keywords(&["profanity"])], Action::Flag)], &lists()),
        "ERR_MODERATION_INVALID"
    );
    assert_eq!(refused(&[rule("r", vec![], Action::Flag)], &lists()), "ERR_MODERATION_INVALID");
    assert_eq!(refused(&[], &[list("k", ListKind::Keywords, &["..."])]), "ERR_MODERATION_INVALID");
    let contacts = Condition::ContactDetails { email: false, phone: false, url: false, allow: vec![] };
    assert_eq!(refused(&[rule("r", vec![contacts], Action::Mask)], &[]), "ERR_MODERATION_INVALID");
    assert!(matches!(
        Engine::compile(&[], &[list("p", ListKind::Patterns, &["a+"])]),
        Err(SpecError::Pattern { list, .. }) if list == "p"
    ));
}

proptest::proptest! {
    /// Any text at all is checked without a panic, and masking keeps every character's place.
    #[test]
    fn any_text_is_checked_and_masking_keeps_its_length(text in "(?s).{0,200}", spelled in "[a-z .@1!$-]{0,60}") {
        let engine = engine();
        for text in [text.as_str(), spelled.as_str()] {
            let verdict = engine.moderate(&message(text, "default"));
            if let Some(masked) = verdict.masked(text) {
                proptest::prop_assert_eq!(masked.chars().count(), text.chars().count());
            }
        }
    }
}

/// A Custom API condition is not run by the engine: a rule whose filters hold is listed to ask (the message is
/// then pending), unless a synchronous rule blocks it; a rule that would mask with it is refused.
#[test]
fn custom_api_conditions_make_a_message_pending_unless_it_is_blocked() {
    use comet_moderation::{FailurePolicy, Threshold};
    let custom = Condition::CustomApi {
        threshold: Threshold::new(0.7).unwrap(),
        on_failure: FailurePolicy::DropMessage,
        context_messages: 3,
    };
    let mut ai = rule("ai", vec![custom.clone()], Action::Block);
    ai.filters.push(Filter {
        field: FilterField::ReceiverType,
        operator: FilterOperator::In,
        values: vec!["group".to_owned()],
    });
    let mut in_users = rule("ai-users", vec![custom.clone()], Action::Flag);
    in_users.filters.push(Filter {
        field: FilterField::ReceiverType,
        operator: FilterOperator::In,
        values: vec!["user".to_owned()],
    });
    let mut rules = rules();
    rules.extend([ai, in_users]);
    let engine = Engine::compile(&rules, &lists()).unwrap();

    let clean = engine.moderate(&message("hello there", "default"));
    assert!(clean.pending(), "{clean:?}");
    let asked: Vec<(&str, u8, FailurePolicy)> =
        clean.asks.iter().map(|ask| (ask.rule_id.as_str(), ask.context_messages, ask.on_failure)).collect();
    assert_eq!(asked, [("ai", 3, FailurePolicy::DropMessage)], "only the rule whose filters hold");
    let blocked = engine.moderate(&message("shit", "default"));
    assert!(blocked.blocked() && !blocked.pending() && blocked.asks.is_empty(), "{blocked:?}");
    let flagged = engine.moderate(&message("kill yourself", "default"));
    assert!(flagged.pending() && flagged.flagged(), "a flag is kept beside the pending check: {flagged:?}");

    let masking = rule("ai-mask", vec![custom.clone()], Action::Mask);
    let refused = Engine::compile(&[masking], &[]).unwrap_err();
    assert_eq!(refused.code(), "ERR_MODERATION_INVALID", "{refused}");
    let too_much = rule(
        "ai-context",
        vec![Condition::CustomApi {
            threshold: Threshold::default(),
            on_failure: FailurePolicy::ApproveMessage,
            context_messages: 11,
        }],
        Action::Block,
    );
    assert_eq!(Engine::compile(&[too_much], &[]).unwrap_err().code(), "ERR_MODERATION_INVALID");
    let above_one = serde_json::from_value::<RuleSpec>(serde_json::json!({
        "id": "x", "name": "x", "action": "block", "conditions": [{ "type": "customApi", "threshold": 1.5 }]
    }));
    assert!(
        above_one.is_err_and(|error| error.to_string().contains("threshold")),
        "a threshold above 1 does not parse"
    );
}
