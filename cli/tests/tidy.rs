//! The import rules of ARCHITECTURE.md, kept by reading cli/src as text (the rust-analyzer habit): a rule
//! that breaks fails here, naming the file and what it uses. Only the code before a file's `#[cfg(test)]`
//! counts, without its comments; tests may reach across the layers to check them.

use std::path::{Path, PathBuf};

/// The modules that do no IO and read no clock or environment.
const PURE: &[&str] = &["manifest", "plan", "render", "sizing", "spec", "domain"];
/// What a pure module must not use: the modules that do IO, the filesystem, the clock, the environment.
const IMPURE_MODULES: &[&str] = &["engine", "folder", "printer", "env", "context"];
const IMPURE_PATHS: &[&str] = &["std::fs", "fs_err", "SystemTime", "Instant::now", "std::env", "env::var"];
/// The Engine client and the HTTP stack under it: `engine/` only.
const ENGINE_CRATES: &[&str] = &["bollard", "hyper", "hyper_util", "http_body_util"];

/// One source file: its path below src/ (with `/`) and its code.
struct Source {
    path: String,
    code: String,
}

impl Source {
    /// The top-level module the file belongs to: `plan` for plan/swarm.rs, `folder` for folder.rs.
    fn module(&self) -> &str {
        let first = self.path.split('/').next().unwrap_or_default();
        first.strip_suffix(".rs").unwrap_or(first)
    }
}

/// The code of a file that counts: before its `#[cfg(test)]`, line comments removed.
fn code_of(text: &str) -> String {
    let mut code = String::new();
    for line in text.lines() {
        if line.trim_start() == "#[cfg(test)]" {
            break;
        }
        let line = match line.find("//") {
            // `//` inside a string on the same line (a URL) cuts a string short, never an import.
            Some(at) => &line[..at],
            None => line,
        };
        code.push_str(line);
        code.push('\n');
    }
    code
}

/// The first segment of every `crate::` path in `code`, with `crate::{a, b::c}` as `a` and `b`.
fn crate_modules(code: &str) -> Vec<String> {
    let mut modules = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item = String::new();
            for character in group.chars() {
                match character {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        modules.push(first_segment(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(character);
            }
            modules.push(first_segment(&item));
        } else {
            modules.push(first_segment(rest));
        }
    }
    modules.retain(|module| !module.is_empty());
    modules
}

fn first_segment(path: &str) -> String {
    path.trim().chars().take_while(|character| character.is_alphanumeric() || *character == '_').collect()
}

/// Whether `code` names the crate `name` as a path root (`name::…`, `use name;`).
fn uses_crate(code: &str, name: &str) -> bool {
    code.match_indices(name).any(|(at, _)| {
        let before = code[..at].chars().next_back();
        let after = &code[at + name.len()..];
        let starts_a_word = before.is_none_or(|character| !(character.is_alphanumeric() || character == '_'));
        starts_a_word && (after.starts_with("::") || after.starts_with(';'))
    })
}

/// Every way `sources` break the rules, one line each.
fn violations(sources: &[Source]) -> Vec<String> {
    let mut found = Vec::new();
    for source in sources {
        let (path, code, module) = (&source.path, &source.code, source.module());
        if PURE.contains(&module) {
            for used in crate_modules(code) {
                if IMPURE_MODULES.contains(&used.as_str()) {
                    found.push(format!("{path}: `{module}` is pure and imports crate::{used}"));
                }
            }
            for pattern in IMPURE_PATHS {
                if code.contains(pattern) {
                    found.push(format!("{path}: `{module}` is pure and uses {pattern}"));
                }
            }
        }
        if module != "engine" {
            for name in ENGINE_CRATES {
                if uses_crate(code, name) {
                    found.push(format!("{path}: only engine/ may use {name}"));
                }
            }
        }
        if let Some(command) = path.strip_prefix("commands/")
            && command != "mod.rs"
            && (code.contains("super::") || crate_modules(code).iter().any(|used| used == "commands"))
        {
            found.push(format!("{path}: a command imports another command (or the dispatcher)"));
        }
        if path != "deploy/mod.rs" {
            // "Is this deployment on Swarm?" is asked by looking for its services on a swarm manager.
            let asks = code
                .split([';', '{', '}'])
                .any(|statement| statement.contains(".services(") && statement.contains(".is_empty()"));
            if asks || code.contains("SwarmBackend {") || code.contains("ComposeBackend {") {
                found.push(format!("{path}: only deploy::backend_for decides whether a deployment is on Swarm"));
            }
            if module != "engine" && path != "checks/swarm.rs" && code.contains("SwarmRole::Manager") {
                found.push(format!(
                    "{path}: asks for the swarm role itself; use Engine::manages_swarm, or deploy::backend_for for \
                     where a deployment runs"
                ));
            }
        }
    }
    found
}

fn read_tree(root: &Path) -> Vec<Source> {
    let mut sources = Vec::new();
    let mut pending: Vec<PathBuf> = vec![root.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("reading cli/src") {
            let path = entry.expect("reading cli/src").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|extension| extension == "rs") {
                let text = std::fs::read_to_string(&path).expect("reading a source file");
                let relative = path.strip_prefix(root).expect("below src").to_string_lossy().replace('\\', "/");
                sources.push(Source { path: relative, code: code_of(&text) });
            }
        }
    }
    sources.sort_by(|a, b| a.path.cmp(&b.path));
    sources
}

#[test]
fn the_source_tree_keeps_the_import_rules_of_architecture_md() {
    let sources = read_tree(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(sources.len() > 40, "cli/src has only {} files: is the path right?", sources.len());
    let found = violations(&sources);
    assert!(found.is_empty(), "the import rules of ARCHITECTURE.md are broken:\n  {}", found.join("\n  "));
}

#[test]
fn each_rule_catches_what_it_forbids() {
    let source = |path: &str, text: &str| Source { path: path.to_owned(), code: code_of(text) };
    let cases = [
        source("plan/swarm.rs", "use crate::{engine::Engine, domain::Target};"),
        source("render/mod.rs", "let text = std::fs::read_to_string(path)?;"),
        source("sizing/mod.rs", "let now = std::time::SystemTime::now();"),
        source("spec/mod.rs", "use crate::folder::DeploymentFolder;"),
        source("deploy/compose.rs", "use bollard::Docker;"),
        source("commands/status.rs", "use crate::commands::deploy;"),
        source("commands/init.rs", "use super::sizing::plan_from;"),
        source("commands/status.rs", "let swarm = engine.manages_swarm()? && !engine.services(name)?.is_empty();"),
        source("commands/destroy.rs", "let manager = matches!(engine.swarm_role()?, SwarmRole::Manager { .. });"),
    ];
    for case in &cases {
        assert_eq!(violations(std::slice::from_ref(case)).len(), 1, "{}: {}", case.path, case.code);
    }
    let allowed = [
        source("engine/mod.rs", "use bollard::Docker;"),
        source("deploy/mod.rs", "Ok(engine.manages_swarm()? && !engine.services(deployment)?.is_empty())"),
        source("plan/swarm.rs", "// the Engine (bollard) reads it\nuse crate::manifest::stack::StackFile;"),
        source("plan/compose.rs", "#[cfg(test)]\nmod tests { use crate::engine::Engine; }"),
        source("commands/mod.rs", "mod deploy;\nuse crate::context::Context;"),
    ];
    for case in &allowed {
        assert_eq!(violations(std::slice::from_ref(case)), Vec::<String>::new(), "{}", case.path);
    }
}
