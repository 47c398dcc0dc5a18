//! Edits a spec's text in place, so what an operator wrote around the values (comments, blank lines, order)
//! survives a command that changes a few keys (`upgrade`, issue #17). Pure: text in, text out.

use super::locate::locate;
use super::model::Spec;

/// `text` with the images that differ between `from` and `to` changed in place, every other line kept as it
/// was; `None` when the text does not spell those keys in block style. The caller checks that the result
/// reads back as `to` (`spec::with_images`).
pub fn images_in_place(text: &str, from: &Spec, to: &Spec) -> Option<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for ((key, old), (_, new)) in from.images.named().into_iter().zip(to.images.named()) {
        if old == new {
            continue;
        }
        for (field, value) in [("repository", &new.repository), ("tag", &new.tag)] {
            let (line, column) = locate(text, &format!("images.{key}.{field}"))?;
            let line = lines.get_mut(usize::try_from(line).ok()?.checked_sub(1)?)?;
            let value_at = usize::try_from(column).ok()?.checked_sub(1)? + field.len() + 1;
            *line = with_scalar(line, value_at, value)?;
        }
    }
    let mut edited = lines.join("\n");
    if text.ends_with('\n') {
        edited.push('\n');
    }
    Some(edited)
}

/// `line` with the scalar that starts after byte `value_at` (just past `key:`) replaced by `value`, double
/// quoted, and a trailing ` # comment` kept.
pub(super) fn with_scalar(line: &str, value_at: usize, value: &str) -> Option<String> {
    let (head, rest) = (line.get(..value_at)?, line.get(value_at..)?);
    // The comment with all the space before it, so its column stays where the operator put it.
    let comment = rest.find(" #").map_or("", |at| &rest[rest[..at].trim_end().len()..]);
    let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
    Some(format!("{head} \"{escaped}\"{comment}"))
}
