//! Display names: what users, groups and webhooks are called. A name is at most its limit of characters as
//! sent, has a character that is not white space, and holds no control character (C0, DEL or C1: NUL, tabs,
//! newlines, escapes), because names are shown to people and written into logs. It is stored trimmed.

use crate::ApiError;

/// Longest user or group name, in characters as sent.
pub const MAX_NAME_CHARS: usize = 100;

/// Why a name is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameProblem {
    Blank,
    TooLong,
    ControlCharacter,
}

/// `raw` trimmed, or why it is refused.
pub fn display_name(raw: &str, max_chars: usize) -> Result<&str, NameProblem> {
    if raw.chars().any(char::is_control) {
        return Err(NameProblem::ControlCharacter);
    }
    if raw.chars().count() > max_chars {
        return Err(NameProblem::TooLong);
    }
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(NameProblem::Blank);
    }
    Ok(trimmed)
}

/// A user's or a group's name, trimmed; 400 `ERR_NAME_INVALID` otherwise.
pub fn valid_name(raw: &str) -> Result<String, ApiError> {
    display_name(raw, MAX_NAME_CHARS).map(str::to_owned).map_err(|problem| {
        let message = match problem {
            NameProblem::ControlCharacter => "name may not contain control characters (NUL, tab, newline, …)",
            NameProblem::Blank | NameProblem::TooLong => "name must be 1 to 100 characters, not only white space",
        };
        ApiError::bad_request("ERR_NAME_INVALID", message)
    })
}

#[cfg(test)]
mod tests {
    use super::{NameProblem, display_name};

    #[test]
    fn names_are_trimmed_and_refused_for_control_characters_blankness_and_length() {
        let cases: [(&str, Result<&str, NameProblem>); 9] = [
            ("Alice", Ok("Alice")),
            ("  Alice Smith ", Ok("Alice Smith")),
            ("Zoë 🙂", Ok("Zoë 🙂")),
            ("", Err(NameProblem::Blank)),
            (" \u{3000} ", Err(NameProblem::Blank)),
            ("a\0b", Err(NameProblem::ControlCharacter)),
            ("a\tb", Err(NameProblem::ControlCharacter)),
            ("a\u{85}", Err(NameProblem::ControlCharacter)),
            ("\u{7f}", Err(NameProblem::ControlCharacter)),
        ];
        for (raw, expected) in cases {
            assert_eq!(display_name(raw, 100), expected, "{raw:?}");
        }
        assert_eq!(display_name(&"a".repeat(100), 100), Ok("a".repeat(100).as_str()));
        assert_eq!(display_name(&format!(" {}", "a".repeat(100)), 100), Err(NameProblem::TooLong));
    }
}
