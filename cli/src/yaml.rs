//! The one module that knows which YAML library we use (serde-saphyr: maintained, panic-free, with error
//! positions). Errors come out as `file:line:col: message`.

use serde::Serialize;
use serde::de::DeserializeOwned;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum YamlError {
    #[error("{file}:{line}:{column}: {message}")]
    Located { file: String, line: u64, column: u64, message: String },
    #[error("{file}: {message}")]
    Unlocated { file: String, message: String },
}

impl YamlError {
    /// An error found after parsing, placed at `position` when known.
    pub fn at(file: &str, position: Option<(u64, u64)>, message: String) -> YamlError {
        match position {
            Some((line, column)) => YamlError::Located { file: file.to_owned(), line, column, message },
            None => YamlError::Unlocated { file: file.to_owned(), message },
        }
    }
}

/// Parses `text` (read from `file`, named only in errors) into `T`.
pub fn from_str<T: DeserializeOwned>(file: &str, text: &str) -> Result<T, YamlError> {
    serde_saphyr::from_str(text).map_err(|error| {
        let position = error.location().filter(|location| location.line() > 0).map(|l| (l.line(), l.column()));
        YamlError::at(file, position, first_line_of(&error))
    })
}

pub fn to_string<T: Serialize>(value: &T) -> Result<String, String> {
    serde_saphyr::to_string(value).map_err(|error| error.to_string())
}

/// serde-saphyr renders a snippet under its message; the location is printed by us, so keep the message.
fn first_line_of(error: &serde_saphyr::Error) -> String {
    let rendered = error.to_string();
    let message = rendered.lines().find(|line| !line.trim().is_empty()).unwrap_or("invalid YAML").trim();
    let message = message.strip_prefix("error: ").unwrap_or(message);
    // The library spells the location as "line X column Y: "; we print it as file:line:col in front.
    let message = match message.strip_prefix("line ").and_then(|rest| rest.split_once(": ")) {
        Some((position, rest)) if position.contains("column") => rest,
        _ => message,
    };
    // Advice aimed at programmers using the library, not at the operator editing the file.
    let message = message.split(", set DuplicateKeyPolicy").next().unwrap_or(message);
    match message.find(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}
