//! The synchronous engine's cost per message, without the send path around it:
//!
//! 1. typical chat messages (20–200 bytes) against the default-like rules (profanity block, contact details
//!    mask, phrases and patterns flag) with 10,000 keywords: p50 / p99 / max per message;
//! 2. one 100 KB message against every rule and every pattern: the time of each run (bounded: linear in the
//!    text; reported, not asserted).
//!
//! `cargo bench -p comet-moderation --bench engine`; docs/benchmarks.md has the figures and the machine.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use comet_moderation::{
    Action, Condition, Engine, ListKind, ListSpec, Message, Receiver, ReceiverType, RuleSpec, Sender,
};

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

/// Keyword-like words that no message below contains by accident: `kw` + a base-26 counter.
fn keyword(index: usize) -> String {
    let mut word = String::from("kw");
    let mut rest = index;
    loop {
        word.push(char::from(b'a' + (rest % 26) as u8));
        rest /= 26;
        if rest == 0 {
            break;
        }
    }
    word
}

fn engine(keywords: usize) -> Engine {
    let mut words: Vec<String> = (0..keywords).map(keyword).collect();
    words.extend(["fuck", "shit", "bitch", "cunt", "ass"].map(str::to_owned));
    let patterns = [
        r"free\s{1,3}crypto",
        r"\bwire\s{1,3}me\s{1,3}\d{2,6}\b",
        r"(?:buy|cheap)\s{1,3}(?:pills|meds|followers)",
        r"\b[a-z]{2,10}\d{4,8}\b",
        r"(?:click|tap)\s{1,3}(?:here|this|now)",
        r"\b(?:dm|pm)\s{1,3}me\b",
        r"[$€£]\s{0,2}\d{3,7}",
        r"\b(?:whats\s{0,1}app|telegram|signal)\b",
    ];
    let lists = vec![
        ListSpec {
            id: "keywords".into(),
            name: "keywords".into(),
            description: String::new(),
            kind: ListKind::Keywords,
            entries: words,
        },
        ListSpec {
            id: "phrases".into(),
            name: "phrases".into(),
            description: String::new(),
            kind: ListKind::Phrases,
            entries: vec!["kill yourself".into(), "send nudes".into(), "meet me alone".into()],
        },
        ListSpec {
            id: "patterns".into(),
            name: "patterns".into(),
            description: String::new(),
            kind: ListKind::Patterns,
            entries: patterns.map(str::to_owned).to_vec(),
        },
    ];
    let rule = |id: &str, conditions: Vec<Condition>, action| RuleSpec {
        id: id.into(),
        name: id.into(),
        description: String::new(),
        enabled: true,
        filters: Vec::new(),
        conditions,
        action,
        sender_actions: Vec::new(),
    };
    let rules = vec![
        rule("profanity", vec![Condition::Keywords { lists: vec!["keywords".into()] }], Action::Block),
        rule(
            "contacts",
            vec![Condition::ContactDetails { email: true, phone: true, url: true, allow: vec!["example.com".into()] }],
            Action::Mask,
        ),
        rule("phrases", vec![Condition::Keywords { lists: vec!["phrases".into()] }], Action::Flag),
        rule("patterns", vec![Condition::Patterns { lists: vec!["patterns".into()] }], Action::Flag),
    ];
    Engine::compile(&rules, &lists).unwrap()
}

const MESSAGES: [&str; 8] = [
    "hey, are we still on for lunch tomorrow?",
    "I'll send the report by five, the numbers look good this quarter",
    "lol ok",
    "can you review my pull request when you get a chance? it touches the billing code and the tests",
    "the meeting moved to 3pm, room 4B, bring the slides and the printed handouts for everyone please",
    "call me at +44 20 7946 0958 or mail john@gmail.com",
    "f.u.c.k this build",
    "Ünïcödé ｗｉｄｅ 𝐛𝐨𝐥𝐝 text and emoji 🎉🎉 with numbers 2026-12-07",
];

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn main() {
    let keywords = env_number("BENCH_KEYWORDS", 10_000);
    let rounds = env_number("BENCH_ROUNDS", 20_000);
    let started = Instant::now();
    let engine = engine(keywords);
    println!("compiled {} rules, {} keywords in {:?}", engine.enabled_rules(), engine.keywords(), started.elapsed());

    let sender = Sender { uid: "alice", role: "default", tags: &[] };
    let receiver = Receiver { kind: ReceiverType::Group, id: "lobby", tags: &[] };
    let mut times = Vec::with_capacity(rounds);
    let mut blocked = 0;
    for round in 0..rounds {
        let text = MESSAGES[round % MESSAGES.len()];
        let began = Instant::now();
        let verdict = engine.moderate(&Message { text, sender, receiver });
        let masked = verdict.masked(text);
        times.push(began.elapsed());
        blocked += usize::from(verdict.blocked()) + usize::from(masked.is_some());
    }
    times.sort();
    println!(
        "typical messages: {rounds} checks, p50 {:?}, p99 {:?}, max {:?} (blocked or masked: {blocked})",
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        times[times.len() - 1]
    );

    let mut large = String::new();
    while large.len() < 100 * 1024 {
        large.push_str("lorem ipsum 1234 dolor sit amet, click  here wire me 55 +1 555 0100 a@b.co www.x.io ");
        large.push_str("ｗｉｄｅ ѕһіt f.u.c.k ");
    }
    let mut large_times = Vec::new();
    for _ in 0..10 {
        let began = Instant::now();
        let verdict = engine.moderate(&Message { text: &large, sender, receiver });
        let _ = verdict.masked(&large);
        large_times.push(began.elapsed());
    }
    large_times.sort();
    println!(
        "one {} KB message against every rule and pattern: median {:?}, max {:?}",
        large.len() / 1024,
        percentile(&large_times, 0.5),
        large_times[large_times.len() - 1]
    );
}
