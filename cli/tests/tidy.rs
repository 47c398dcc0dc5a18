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

/// The module path of a file below src/: `plan/swarm.rs` and `plan/swarm/mod.rs` are `plan::swarm`, lib.rs
/// is the crate root.
fn module_path(path: &str) -> Vec<String> {
    let without = path.strip_suffix(".rs").unwrap_or(path);
    let mut segments: Vec<String> = without.split('/').map(str::to_owned).collect();
    if matches!(segments.last().map(String::as_str), Some("mod" | "lib")) {
        segments.pop();
    }
    segments
}

/// Every path `code` names from `prefix` (`crate::`, `super::`, a child module's `name::`), as segments,
/// with groups (`a::{b, c::d}`) spread out.
fn paths_after(code: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    for (at, _) in code.match_indices(prefix) {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|character| character.is_alphanumeric() || character == '_' || character == ':') {
            continue;
        }
        spread(&code[at + prefix.len()..], Vec::new(), &mut paths);
    }
    paths
}

/// The paths of `text` (what follows `prefix::`) below `base`; returns how much of `text` it read.
fn spread(text: &str, base: Vec<String>, paths: &mut Vec<Vec<String>>) -> usize {
    let mut segments = base;
    let mut read = 0;
    loop {
        let rest = &text[read..];
        if let Some(group) = rest.strip_prefix('{') {
            read += 1;
            let mut inner = 0;
            loop {
                let item = &group[inner..];
                let skipped = item.len() - item.trim_start().len();
                inner += skipped;
                if group[inner..].starts_with('}') || inner >= group.len() {
                    return read + inner + 1;
                }
                inner += spread(&group[inner..], segments.clone(), paths);
                let after = &group[inner..];
                let skipped = after.len() - after.trim_start().len();
                inner += skipped;
                if group[inner..].starts_with(',') {
                    inner += 1;
                }
            }
        }
        let name: String =
            rest.chars().take_while(|character| character.is_alphanumeric() || *character == '_').collect();
        if name.is_empty() {
            break;
        }
        read += name.len();
        segments.push(name);
        if text[read..].starts_with("::") {
            read += 2;
        } else {
            break;
        }
    }
    paths.push(segments);
    read
}

/// The file of `sources` a path below `base` lands in: its longest prefix that is a module with a file.
fn resolve<'s>(sources: &'s [Source], base: &[String], path: &[String]) -> Option<&'s Source> {
    (0..=path.len()).rev().find_map(|length| {
        let mut module = base.to_vec();
        module.extend(path[..length].iter().cloned());
        sources.iter().find(|source| module_path(&source.path) == module)
    })
}

/// The files each file imports (through `crate::`, `super::`, `self::` and its child modules), by index.
fn import_graph(sources: &[Source]) -> Vec<Vec<usize>> {
    sources
        .iter()
        .map(|source| {
            let module = module_path(&source.path);
            let parent: Vec<String> = module[..module.len().saturating_sub(1)].to_vec();
            let mut bases: Vec<(Vec<String>, Vec<Vec<String>>)> = vec![
                (Vec::new(), paths_after(&source.code, "crate::")),
                (parent, paths_after(&source.code, "super::")),
                (module.clone(), paths_after(&source.code, "self::")),
            ];
            for line in source.code.lines() {
                let declared =
                    line.trim().trim_start_matches("pub ").strip_prefix("mod ").and_then(|rest| rest.strip_suffix(';'));
                if let Some(child) = declared {
                    let uses = paths_after(&source.code, &format!("{child}::"));
                    let uses = uses.into_iter().map(|path| [vec![child.to_owned()], path].concat()).collect();
                    bases.push((module.clone(), uses));
                }
            }
            let mut targets: Vec<usize> = bases
                .iter()
                .flat_map(|(base, paths)| paths.iter().filter_map(|path| resolve(sources, base, path)))
                .filter_map(|target| sources.iter().position(|other| std::ptr::eq(other, target)))
                .filter(|target| sources[*target].path != source.path)
                .collect();
            targets.sort_unstable();
            targets.dedup();
            targets
        })
        .collect()
}

/// Every import circle between files, each as the files it runs through.
fn circles(sources: &[Source]) -> Vec<String> {
    let graph = import_graph(sources);
    let mut found = Vec::new();
    // 0: not seen, 1: on the current path, 2: done.
    let mut state = vec![0u8; sources.len()];
    let mut path = Vec::new();
    fn visit(node: usize, graph: &[Vec<usize>], state: &mut [u8], path: &mut Vec<usize>, found: &mut Vec<Vec<usize>>) {
        state[node] = 1;
        path.push(node);
        for &next in &graph[node] {
            match state[next] {
                0 => visit(next, graph, state, path, found),
                1 => {
                    let start = path.iter().position(|&on| on == next).unwrap_or(0);
                    found.push(path[start..].to_vec());
                }
                _ => {}
            }
        }
        path.pop();
        state[node] = 2;
    }
    let mut loops = Vec::new();
    for node in 0..sources.len() {
        if state[node] == 0 {
            visit(node, &graph, &mut state, &mut path, &mut loops);
        }
    }
    for circle in loops {
        let names: Vec<&str> = circle.iter().map(|&node| sources[node].path.as_str()).collect();
        found.push(format!("import circle: {} → {}", names.join(" → "), names[0]));
    }
    found
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
    let mut found = violations(&sources);
    found.extend(circles(&sources));
    assert!(found.is_empty(), "the import rules of ARCHITECTURE.md are broken:\n  {}", found.join("\n  "));
}

/// A made-up source file for the tests of the rules.
fn source(path: &str, text: &str) -> Source {
    Source { path: path.to_owned(), code: code_of(text) }
}

#[test]
fn import_circles_are_found_through_crate_super_and_child_module_paths() {
    let circle = [
        source("manifest/mod.rs", "pub mod compose;\npub mod values;"),
        source("manifest/compose.rs", "use super::values::{Mount, parse_port};"),
        source("manifest/values.rs", "use super::compose::Mount;"),
        source("deploy/mod.rs", "mod compose;\npub use compose::deployed_images;"),
        source("deploy/compose.rs", "use crate::{domain::Target, manifest::compose::ComposeFile};"),
        source("domain/mod.rs", "pub enum Target {}"),
    ];
    assert_eq!(circles(&circle).len(), 1, "{:?}", circles(&circle));
    let parent_and_child = [
        source("deploy/mod.rs", "mod compose;\nuse compose::ComposeBackend;"),
        source("deploy/compose.rs", "use super::Jobs;"),
    ];
    assert_eq!(circles(&parent_and_child).len(), 1);
    let one_way = [source("deploy/mod.rs", "mod backend;\npub use backend::Backend;"), source("deploy/backend.rs", "")];
    assert_eq!(circles(&one_way), Vec::<String>::new());
}

#[test]
fn each_rule_catches_what_it_forbids() {
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
