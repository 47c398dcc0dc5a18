//! Two specs compared value by value: the dotted path of every value that differs (`plan.services.api.replicas`),
//! for `scale`'s plan diff and for editing cometctl.yaml in place. Pure.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::model::Spec;

/// One value that differs between two specs; `None` where one of them has no such key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    pub path: String,
    pub from: Option<Value>,
    pub to: Option<Value>,
}

impl Difference {
    /// The value before, as an operator reads it (`-` when there was none).
    pub fn from_text(&self) -> String {
        text(self.from.as_ref())
    }

    /// The value after, as an operator reads it (`-` when there is none).
    pub fn to_text(&self) -> String {
        text(self.to.as_ref())
    }
}

/// A value as an operator reads it: strings without their quotes.
fn text(value: Option<&Value>) -> String {
    match value {
        None => "-".to_owned(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    }
}

/// Every value that differs between `from` and `to`, in path order. A list is one value.
pub fn differences(from: &Spec, to: &Spec) -> Vec<Difference> {
    let (before, after) = (leaves(from), leaves(to));
    let mut paths: Vec<&String> = before.keys().chain(after.keys()).collect();
    paths.sort();
    paths.dedup();
    paths
        .into_iter()
        .filter(|path| before.get(*path) != after.get(*path))
        .map(|path| Difference { path: path.clone(), from: before.get(path).cloned(), to: after.get(path).cloned() })
        .collect()
}

/// The spec as `path → value` for every value that is not a map.
fn leaves(spec: &Spec) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    // A spec always serializes (the writer relies on it too); an error leaves nothing to compare.
    if let Ok(value) = serde_json::to_value(spec) {
        walk(&value, String::new(), &mut out);
    }
    out
}

fn walk(value: &Value, path: String, out: &mut BTreeMap<String, Value>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let child_path = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                walk(child, child_path, out);
            }
        }
        leaf => {
            out.insert(path, leaf.clone());
        }
    }
}
