//! Finds the line and column of a dotted key path (`plan.stores.kafka.partitions`) in block-style YAML,
//! so that checks made after parsing can still point at the file.

/// 1-based `(line, column)` of the last key of `path`, or `None` when the text does not spell it in block
/// style.
pub fn locate(text: &str, path: &str) -> Option<(u64, u64)> {
    let mut lines = text.lines().enumerate().peekable();
    let mut parent_indent: Option<usize> = None;
    let mut found = None;
    for key in path.split('.') {
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
            let is_key = indent == child_indent && content.strip_prefix(key).is_some_and(|rest| rest.starts_with(':'));
            if is_key {
                found = Some((number as u64 + 1, indent as u64 + 1));
                parent_indent = Some(indent);
                break;
            }
        }
        found?;
    }
    found
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
}
