//! Word patterns: regular expressions run by the `regex` crate, whose engines take time linear in the text
//! (no backtracking, so no catastrophic pattern exists). What is refused at upload, so that a rule cannot
//! make the send path slow or match everything: a pattern longer than [`MAX_PATTERN_CHARS`], one whose
//! compiled program is over [`COMPILED_SIZE_LIMIT`] (`(a{100}){100}`), one that can match an unbounded or
//! longer than [`MAX_MATCH_BYTES`] stretch of text (`.*`, `a+`: write `a{1,20}`), and one that matches the
//! empty string. Patterns match the original text, case-insensitively.

use regex::{Regex, RegexBuilder};

/// The longest pattern accepted, in characters.
pub const MAX_PATTERN_CHARS: usize = 500;
/// The most memory one compiled pattern may take (the `regex` crate's size limit).
pub const COMPILED_SIZE_LIMIT: usize = 256 * 1024;
/// The longest stretch of text one pattern may match, in bytes.
pub const MAX_MATCH_BYTES: usize = 1024;
/// How deeply groups and repetitions may nest.
const NEST_LIMIT: u32 = 32;

/// Compiles one pattern or says why it is refused.
pub(crate) fn compile(pattern: &str) -> Result<Regex, String> {
    if pattern.chars().count() > MAX_PATTERN_CHARS {
        return Err(format!("longer than {MAX_PATTERN_CHARS} characters"));
    }
    let hir = regex_syntax::ParserBuilder::new()
        .case_insensitive(true)
        .nest_limit(NEST_LIMIT)
        .build()
        .parse(pattern)
        .map_err(|error| first_line(&error.to_string()))?;
    match hir.properties().maximum_len() {
        Some(longest) if longest <= MAX_MATCH_BYTES => {}
        Some(_) | None => {
            return Err(format!(
                "it can match more than {MAX_MATCH_BYTES} bytes (unbounded repetitions such as `+`, `*` or `{{n,}}` \
                 are refused: give a bound, `{{1,20}}`)"
            ));
        }
    }
    if hir.properties().minimum_len() == Some(0) {
        return Err("it matches the empty string".to_owned());
    }
    RegexBuilder::new(pattern)
        .case_insensitive(true)
        .nest_limit(NEST_LIMIT)
        .size_limit(COMPILED_SIZE_LIMIT)
        .dfa_size_limit(COMPILED_SIZE_LIMIT * 4)
        .build()
        .map_err(|error| first_line(&error.to_string()))
}

/// The regex crate's messages draw the pattern over several lines; the last line says what is wrong.
fn first_line(message: &str) -> String {
    message.lines().rev().find(|line| !line.trim().is_empty()).unwrap_or(message).trim().to_owned()
}
