//! Finds the line and column of a dotted key path (`plan.stores.kafka.partitions`, `a.list[2]`) in
//! block-style YAML, so that checks made after parsing can still point at the file.

/// 1-based `(line, column)` of the last key of `path`, or `None` when the text does not spell it in block
/// style. A last key with an index (`allow_hosts[1]`) is that item of a block sequence, or the key itself
/// when the sequence is written in flow style (`[a, b]`) on its line.
pub fn locate(text: &str, path: &str) -> Option<(u64, u64)> {
    let mut lines = text.lines().enumerate().peekable();
    let mut parent_indent: Option<usize> = None;
    let mut found = None;
    let (keys, last) = path.rsplit_once('.').unwrap_or(("", path));
    let (last, index) = match last.strip_suffix(']').and_then(|rest| rest.split_once('[')) {
        Some((key, position)) => (key, Some(position.parse::<usize>().ok()?)),
        None => (last, None),
    };
    let segments = keys.split('.').filter(|key| !key.is_empty()).chain([last]);
    for (depth, key) in segments.enumerate() {
        let index = index.filter(|_| depth == path.matches('.').count());
        found = None;
        let mut child_indent: Option<usize> = None;
        for (number, line) in lines.by_ref() {
            let content = line.trim_start();
            if content.is_empty() || content.starts_with('#') {
                continue;
            }
            let indent = line.len() - content.len();
            if parent_indent.is_some_and(|parent| indent <= parent) {
                return None;
            }
            let child_indent = *child_indent.get_or_insert(indent);
            let value = content.strip_prefix(key).and_then(|rest| rest.strip_prefix(':'));
            if let Some(value) = value.filter(|_| indent == child_indent) {
                found = Some((number as u64 + 1, indent as u64 + 1));
                parent_indent = Some(indent);
                if index.is_some() && value.trim().is_empty() {
                    return index.and_then(|index| block_item(lines, indent, index)).or(found);
                }
                break;
            }
        }
        found?;
    }
    found
}

/// The `index`-th `- ` item of the block sequence that follows a key at `key_indent`.
fn block_item<'t>(
    lines: impl Iterator<Item = (usize, &'t str)>,
    key_indent: usize,
    index: usize,
) -> Option<(u64, u64)> {
    let mut item_indent = None;
    let mut seen = 0;
    for (number, line) in lines {
        let content = line.trim_start();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let indent = line.len() - content.len();
        if indent < key_indent || (indent == key_indent && !content.starts_with('-')) {
            return None;
        }
        if content.starts_with('-') && *item_indent.get_or_insert(indent) == indent {
            if seen == index {
                return Some((number as u64 + 1, indent as u64 + 1));
            }
            seen += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::locate;

    #[test]
    fn finds_nested_keys_and_only_inside_their_parent() {
        let text = "a:\n  b: 1\nplan:\n  # comment\n  stores:\n    b: 0\n    kafka:\n      partitions: 0\n  b: 2\n";
        assert_eq!(locate(text, "plan.stores.kafka.partitions"), Some((8, 7)));
        assert_eq!(locate(text, "plan.b"), Some((9, 3)));
        assert_eq!(locate(text, "a.b"), Some((2, 3)));
        assert_eq!(locate(text, "a.stores"), None);
        assert_eq!(locate(text, "missing"), None);
    }

    #[test]
    fn finds_sequence_items_in_block_and_flow_style() {
        let text = "a:
  list:
    - x
    # comment
    - y
  flow: [x, y]
  b: 1
";
        assert_eq!(locate(text, "a.list[0]"), Some((3, 5)));
        assert_eq!(locate(text, "a.list[1]"), Some((5, 5)));
        assert_eq!(locate(text, "a.flow[1]"), Some((6, 3)));
        // An index past the end points at the key.
        assert_eq!(locate(text, "a.list[5]"), Some((2, 3)));
    }
}
