//! Edits a spec's text in place, so what an operator wrote around the values (comments, blank lines, order)
//! survives a command that changes a few of them (`upgrade` its images, `scale` its plan). Pure: text in,
//! text out.

use serde_json::Value;

use super::compare::differences;
use super::locate::locate;
use super::model::Spec;

/// `text` with every scalar that differs between `from` and `to` changed in place, every other line kept as
/// it was; `None` when the two differ in more than scalars (a key added or removed, a list changed) or the
/// text does not spell a changed key in block style. The caller checks that the result reads back as `to`
/// (`spec::edited`).
pub fn in_place(text: &str, from: &Spec, to: &Spec) -> Option<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for difference in differences(from, to) {
        let value = match (&difference.from, &difference.to) {
            (Some(_), Some(Value::String(text))) => quoted(text),
            (Some(_), Some(scalar @ (Value::Number(_) | Value::Bool(_)))) => scalar.to_string(),
            _ => return None,
        };
        let key = difference.path.rsplit('.').next()?;
        let (line, column) = locate(text, &difference.path)?;
        let line = lines.get_mut(usize::try_from(line).ok()?.checked_sub(1)?)?;
        let value_at = usize::try_from(column).ok()?.checked_sub(1)? + key.len() + 1;
        *line = with_scalar(line, value_at, &value)?;
    }
    let mut edited = lines.join("\n");
    if text.ends_with('\n') {
        edited.push('\n');
    }
    Some(edited)
}

fn quoted(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

/// `line` with the scalar that starts after byte `value_at` (just past `key:`) replaced by `value` (already
/// spelled as YAML), and a trailing ` # comment` kept.
pub(super) fn with_scalar(line: &str, value_at: usize, value: &str) -> Option<String> {
    let (head, rest) = (line.get(..value_at)?, line.get(value_at..)?);
    // The comment with all the space before it, so its column stays where the operator put it.
    let comment = rest.find(" #").map_or("", |at| &rest[rest[..at].trim_end().len()..]);
    Some(format!("{head} {value}{comment}"))
}
