//! Import rules of the services that a test keeps (ARCHITECTURE.md, "Invariants"): only `bus` uses rdkafka and no
//! rdkafka type is in its public signatures; only `cluster` uses redis. It reads every crate under `services/`:
//! sources, tests and benches, and the dependency tables of each Cargo.toml.

use std::path::{Path, PathBuf};

/// Which crate folder alone may use a library, and why.
const RULES: &[(&str, &str, &str)] = &[
    ("rdkafka", "bus", "the event bus is the one Kafka client"),
    ("redis", "cluster", "the state shared by gateway nodes is the one Redis client"),
];

/// Files that may break a rule, each with its reason.
const EXCEPTIONS: &[(&str, &str, &str)] = &[
    (
        "server/benches/ws_load.rs",
        "rdkafka",
        "the load generator injects events as an outside producer would, with producer settings of its own",
    ),
    ("server/Cargo.toml", "rdkafka", "a dev-dependency for that load generator alone"),
];

#[test]
fn only_the_owning_crate_uses_rdkafka_or_redis() {
    let services = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("services/").to_path_buf();
    let mut problems = Vec::new();
    for file in files(&services) {
        let relative = file.strip_prefix(&services).expect("under services/").to_string_lossy().replace('\\', "/");
        if relative == "testkit/tests/tidy.rs" {
            continue; // This file names the libraries it looks for.
        }
        let text = std::fs::read_to_string(&file).unwrap_or_else(|error| panic!("reading {relative}: {error}"));
        problems.extend(problems_of(&relative, &text));
    }
    assert!(problems.is_empty(), "import rules broken (ARCHITECTURE.md, Invariants):\n{}", problems.join("\n"));
}

#[test]
fn the_rules_catch_what_they_forbid() {
    assert_eq!(problems_of("gateway/src/lib.rs", "use std::sync::Arc;\nuse redis::Client;\n").len(), 1);
    assert_eq!(problems_of("api/tests/api.rs", "    let c: rdkafka::ClientConfig = make();\n").len(), 1);
    assert_eq!(problems_of("store/Cargo.toml", "[dev-dependencies]\nrdkafka.workspace = true\n").len(), 1);
    assert_eq!(problems_of("gateway/Cargo.toml", "[dependencies]\nredis = { version = \"1\" }\n").len(), 1);
    assert_eq!(problems_of("server/Cargo.toml", "[dependencies]\nredis.workspace = true\n").len(), 1);
    assert!(problems_of("cluster/src/lib.rs", "use redis::aio::ConnectionManager;\n").is_empty());
    assert!(problems_of("server/tests/gateway.rs", "let url = \"redis://127.0.0.1:6379\";\n").is_empty());
    assert!(problems_of("bus/Cargo.toml", "[dependencies]\nrdkafka.workspace = true\n").is_empty());
    assert!(problems_of("api/Cargo.toml", "[package]\nname = \"redis-free\"\n").is_empty());
    let leaky = "use rdkafka::consumer::{Consumer,\n    StreamConsumer};\npub fn consumer(\n    group: &str,\n) -> StreamConsumer {\n";
    assert_eq!(problems_of("bus/src/kafka.rs", leaky).len(), 1, "an rdkafka type in a public signature");
    assert_eq!(problems_of("bus/src/tail.rs", "pub struct Tail {\n    pub consumer: rdkafka::Offset,\n").len(), 1);
    let private = "use rdkafka::consumer::StreamConsumer;\nfn consumer() -> StreamConsumer {\npub(crate) fn x() {}\n";
    assert!(problems_of("bus/src/kafka.rs", private).is_empty());
}

/// Every `.rs` file and `Cargo.toml` of the crates under `services`, build output left out.
fn files(services: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut folders = vec![services.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let entries =
            std::fs::read_dir(&folder).unwrap_or_else(|error| panic!("listing {}: {error}", folder.display()));
        for entry in entries {
            let path = entry.expect("a folder entry").path();
            let name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default();
            if path.is_dir() {
                if name != "target" && !name.starts_with('.') {
                    folders.push(path);
                }
            } else if name.ends_with(".rs") || name == "Cargo.toml" {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// What `text`, the file at `relative` (a path under `services/`), does against the rules.
fn problems_of(relative: &str, text: &str) -> Vec<String> {
    let owner = relative.split('/').next().unwrap_or_default();
    let mut problems = Vec::new();
    for (library, allowed, why) in RULES {
        let excepted = EXCEPTIONS.iter().any(|(file, excepted, _)| *file == relative && excepted == library);
        if *allowed == owner || excepted {
            continue;
        }
        for (number, line) in uses(relative, text, library) {
            problems.push(format!(
                "services/{relative}:{number}: uses {library}; only services/{allowed} may ({why}): `{}`",
                line.trim()
            ));
        }
    }
    if owner == "bus" && relative.ends_with(".rs") {
        problems.extend(leaked_kafka_types(relative, text));
    }
    problems
}

/// The lines (numbered from 1) of `text` that use `library`: a path through it in Rust, a dependency on it in a
/// Cargo.toml.
fn uses<'t>(relative: &str, text: &'t str, library: &str) -> Vec<(usize, &'t str)> {
    let lines = text.lines().enumerate().map(|(index, line)| (index + 1, line));
    if relative.ends_with("Cargo.toml") {
        let mut section = "";
        lines
            .filter(|(_, line)| {
                if line.starts_with('[') {
                    section = line.trim();
                }
                section.ends_with("dependencies]")
                    && line.strip_prefix(library).is_some_and(|rest| rest.starts_with(['.', ' ', '=']))
            })
            .collect()
    } else {
        let path = format!("{library}::");
        let import = format!("use {library}");
        lines.filter(|(_, line)| starts_a_path(line, &path) || line.trim_start().starts_with(&import)).collect()
    }
}

/// Whether `path` occurs in `line` at the start of a path (not as the end of a longer name).
fn starts_a_path(line: &str, path: &str) -> bool {
    line.match_indices(path)
        .any(|(at, _)| !line[..at].ends_with(|before: char| before.is_alphanumeric() || before == '_' || before == ':'))
}

/// Public functions and fields in `bus` whose signature names an rdkafka type (imported by name, or by path).
fn leaked_kafka_types(relative: &str, text: &str) -> Vec<String> {
    let imported = names_imported_from_rdkafka(text);
    let names_kafka_type = |signature: &str| {
        starts_a_path(signature, "rdkafka::")
            || signature.split(|c: char| !(c.is_alphanumeric() || c == '_')).any(|word| imported.contains(&word))
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut problems = Vec::new();
    let mut index = 0;
    while index < lines.len() {
        let start = index;
        let trimmed = lines[index].trim_start();
        let signature = if ["pub fn ", "pub async fn ", "pub const fn "].iter().any(|item| trimmed.starts_with(item)) {
            // A signature ends at the body or the semicolon, possibly lines later.
            let mut signature = String::new();
            loop {
                let line = lines[index];
                let end = line.find(['{', ';']);
                signature.push_str(&line[..end.unwrap_or(line.len())]);
                signature.push(' ');
                if end.is_some() || index + 1 == lines.len() {
                    break;
                }
                index += 1;
            }
            Some(signature)
        } else if trimmed
            .strip_prefix("pub ")
            .and_then(|rest| rest.split_once(':'))
            .is_some_and(|(name, _)| !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_'))
        {
            Some(trimmed.to_owned())
        } else {
            None
        };
        if let Some(signature) = signature
            && names_kafka_type(&signature)
        {
            problems.push(format!(
                "services/{relative}:{}: a public signature names an rdkafka type: `{}`",
                start + 1,
                signature.trim()
            ));
        }
        index += 1;
    }
    problems
}

/// The type names `use rdkafka::…;` statements (one line or several) bring into `text`.
fn names_imported_from_rdkafka(text: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut in_statement = false;
    for line in text.lines() {
        in_statement |= line.trim_start().starts_with("use rdkafka");
        if in_statement {
            let words = line.split(|c: char| !(c.is_alphanumeric() || c == '_'));
            names.extend(words.filter(|word| word.starts_with(char::is_uppercase)));
            in_statement = !line.contains(';');
        }
    }
    names
}
