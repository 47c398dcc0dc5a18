//! What a push says: the default template names the sender (and the group) and shows the text; the privacy
//! variant says only that something came. Bodies are cut at [`MAX_BODY_CHARS`] characters.

/// Longest body a push carries (APNs payloads are at most 4 KiB with everything else).
pub const MAX_BODY_CHARS: usize = 200;

/// What the push is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject<'a> {
    /// A new or edited message: its text, or its type (`image`, `file`, …) when it has none.
    Message {
        text: Option<&'a str>,
        kind: &'a str,
    },
    /// The message was deleted: the push that announced it is replaced by this.
    Deleted,
    Reaction {
        reaction: &'a str,
    },
    AddedToGroup,
}

/// Who and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context<'a> {
    pub sender: &'a str,
    pub group: Option<&'a str>,
}

/// A rendered push text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub title: String,
    pub body: String,
}

pub fn render(context: &Context<'_>, subject: &Subject<'_>, privacy: bool) -> Rendered {
    if privacy {
        let body = match subject {
            Subject::Message { .. } => "New message",
            Subject::Deleted => "A message was deleted",
            Subject::Reaction { .. } => "New reaction",
            Subject::AddedToGroup => "You were added to a group",
        };
        return Rendered { title: "New notification".to_owned(), body: body.to_owned() };
    }
    let title = match context.group {
        Some(group) => format!("{} @ {group}", context.sender),
        None => context.sender.to_owned(),
    };
    let body = match subject {
        Subject::Message { text: Some(text), .. } if !text.trim().is_empty() => cut(text.trim()),
        Subject::Message { kind, .. } => format!("Sent {}", article(kind)),
        Subject::Deleted => "This message was deleted".to_owned(),
        Subject::Reaction { reaction } => cut(&format!("Reacted {reaction} to your message")),
        Subject::AddedToGroup => match context.group {
            Some(group) => format!("Added you to {group}"),
            None => "Added you to a group".to_owned(),
        },
    };
    Rendered { title, body }
}

fn article(kind: &str) -> String {
    match kind.chars().next() {
        Some(first) if "aeiou".contains(first) => format!("an {kind}"),
        _ => format!("a {kind}"),
    }
}

fn cut(text: &str) -> String {
    if text.chars().count() <= MAX_BODY_CHARS {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(MAX_BODY_CHARS - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_and_privacy_templates() {
        let direct = Context { sender: "Alice", group: None };
        let group = Context { sender: "Alice", group: Some("Hikers") };
        let hello = Subject::Message { text: Some(" hello "), kind: "text" };
        for (context, subject, privacy, title, body) in [
            (&direct, &hello, false, "Alice", "hello"),
            (&group, &hello, false, "Alice @ Hikers", "hello"),
            (&group, &hello, true, "New notification", "New message"),
            (&direct, &Subject::Message { text: None, kind: "image" }, false, "Alice", "Sent an image"),
            (&direct, &Subject::Message { text: None, kind: "file" }, false, "Alice", "Sent a file"),
            (&direct, &Subject::Deleted, false, "Alice", "This message was deleted"),
            (&direct, &Subject::Reaction { reaction: "👍" }, false, "Alice", "Reacted 👍 to your message"),
            (&group, &Subject::AddedToGroup, false, "Alice @ Hikers", "Added you to Hikers"),
            (&group, &Subject::AddedToGroup, true, "New notification", "You were added to a group"),
        ] {
            let rendered = render(context, subject, privacy);
            assert_eq!((rendered.title.as_str(), rendered.body.as_str()), (title, body));
        }
        let long = "é".repeat(500);
        let rendered = render(&direct, &Subject::Message { text: Some(&long), kind: "text" }, false);
        assert_eq!(rendered.body.chars().count(), MAX_BODY_CHARS);
        assert!(rendered.body.ends_with('…'));
    }
}
