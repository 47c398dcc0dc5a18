//! Text as the keyword matcher sees it: words folded against obfuscation, each with the byte range of the
//! original text it came from (so a match can be masked where it was written).
//!
//! One character at a time, in one pass (linear in the text):
//! - compatibility decomposition (NFKD) turns full-width forms (`ｆｕｃｋ`), mathematical and circled letters
//!   into plain ones and splits accented letters, whose combining marks are then dropped (`fück` → `fuck`);
//! - lower case; a short table of confusables folds Cyrillic and Greek look-alikes (`ѕһіt` → `shit`) and a few
//!   letters without a decomposition (`ø`, `ł`, `đ`);
//! - zero-width characters and soft hyphens are dropped, so they join what they split;
//! - inside a word that has a letter, leetspeak digits and symbols become letters (`sh1t`, `@ss`, `b!tch`);
//!   a symbol at the end of a word stays punctuation (`shit!`);
//! - runs of single letters split by separators are one word (`f.u.c.k`, `f u c k`), and words joined by one
//!   in-word punctuation mark are also tried together (`fu-ck`, `fu.ck`), beside each part on its own.

use std::ops::Range;

use unicode_normalization::UnicodeNormalization as _;
use unicode_normalization::char::is_combining_mark;

/// A word as matched, and where it was in the original text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Word {
    pub(crate) text: String,
    pub(crate) span: Range<usize>,
}

/// What the text offers the matcher: its words in order (for phrases), and words joined across in-word
/// punctuation (tried as single words only).
#[derive(Debug, Default)]
pub(crate) struct Words {
    pub(crate) words: Vec<Word>,
    pub(crate) joined: Vec<Word>,
}

/// The longest gap of separators between single letters that still makes them one word (`f . u`).
const MAX_SPELLED_GAP: usize = 3;

/// Folds one character into what it reads as: nothing, one or a few plain lower-case characters.
pub(crate) fn fold(character: char, out: &mut String) {
    if character.is_ascii() {
        out.push(character.to_ascii_lowercase());
        return;
    }
    if is_invisible(character) {
        return;
    }
    for decomposed in std::iter::once(character).nfkd() {
        if is_combining_mark(decomposed) {
            continue;
        }
        for lower in decomposed.to_lowercase() {
            match confusable(lower) {
                Some(plain) => out.push_str(plain),
                None => out.push(lower),
            }
        }
    }
}

/// Folds a keyword into its words the way text is folded (`Sh1t` → `shit`).
pub(crate) fn fold_keyword(keyword: &str) -> Vec<String> {
    let mut folded = String::with_capacity(keyword.len());
    for character in keyword.chars() {
        fold(character, &mut folded);
    }
    folded
        .split(|character: char| !character.is_alphanumeric())
        .filter(|part| !part.is_empty())
        .map(|part| deleet(&part.chars().collect::<Vec<char>>()))
        .collect()
}

fn is_invisible(character: char) -> bool {
    matches!(character, '\u{00AD}' | '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}')
}

/// Look-alikes of Latin letters that no decomposition maps (Unicode's confusables, the common part).
fn confusable(character: char) -> Option<&'static str> {
    Some(match character {
        'а' | 'α' => "a",
        'в' | 'β' | 'ь' => "b",
        'с' | 'ϲ' => "c",
        'ԁ' | 'đ' => "d",
        'е' | 'ё' | 'ε' | 'є' => "e",
        'ɡ' => "g",
        'һ' | 'н' => "h",
        'і' | 'ї' | 'ι' | 'ı' => "i",
        'ј' => "j",
        'к' | 'κ' => "k",
        'ł' | 'ӏ' => "l",
        'м' => "m",
        'η' | 'п' => "n",
        'о' | 'ο' | 'σ' | 'ø' => "o",
        'р' | 'ρ' => "p",
        'ԛ' => "q",
        'г' => "r",
        'ѕ' => "s",
        'т' | 'τ' => "t",
        'υ' | 'μ' => "u",
        'ν' => "v",
        'ԝ' | 'ω' | 'ш' => "w",
        'х' | 'χ' => "x",
        'у' | 'γ' => "y",
        'ß' => "ss",
        'æ' => "ae",
        'œ' => "oe",
        _ => return None,
    })
}

/// A leetspeak character and the letter it stands for.
fn leet(character: char) -> Option<char> {
    Some(match character {
        '0' => 'o',
        '1' | '!' | '|' => 'i',
        '3' | '€' => 'e',
        '4' | '@' => 'a',
        '5' | '$' => 's',
        '7' | '+' => 't',
        '8' => 'b',
        '9' => 'g',
        _ => return None,
    })
}

fn is_leet_symbol(character: char) -> bool {
    !character.is_alphanumeric() && leet(character).is_some()
}

/// Punctuation that may sit inside an obfuscated word (`fu-ck`, `fu.ck`, `fu_ck`, `fu*ck`).
fn is_in_word_mark(character: char) -> bool {
    matches!(character, '.' | '-' | '_' | '*' | '\'' | '~' | '^')
}

/// A token before leetspeak: the folded characters, and where it was.
struct Token {
    folded: Vec<char>,
    span: Range<usize>,
}

/// Splits `text` into words (see the module's description).
pub(crate) fn words(text: &str) -> Words {
    let tokens = tokens(text);
    let mut words: Vec<Word> = Vec::with_capacity(tokens.len());
    let mut joined = Vec::new();
    // Runs of single letters separated by short separator gaps become one word.
    let mut index = 0;
    while index < tokens.len() {
        let mut end = index + 1;
        if tokens[index].folded.len() == 1 {
            while end < tokens.len()
                && tokens[end].folded.len() == 1
                && spelled_gap(gap(text, &tokens[end - 1].span, &tokens[end].span))
            {
                end += 1;
            }
        }
        if end - index >= 2 {
            let folded: Vec<char> = tokens[index..end].iter().flat_map(|token| token.folded.iter().copied()).collect();
            words.push(Word { text: deleet(&folded), span: tokens[index].span.start..tokens[end - 1].span.end });
        } else {
            words.push(Word { text: deleet(&tokens[index].folded), span: tokens[index].span.clone() });
        }
        index = end;
    }
    // Words joined by exactly one in-word mark are also tried as one word.
    let mut start = 0;
    while start < words.len() {
        let mut end = start + 1;
        while end < words.len() && one_in_word_mark(gap(text, &words[end - 1].span, &words[end].span)) {
            end += 1;
        }
        if end - start >= 2 {
            let text_joined: String = words[start..end].iter().map(|word| word.text.as_str()).collect();
            joined.push(Word { text: text_joined, span: words[start].span.start..words[end - 1].span.end });
        }
        start = end;
    }
    Words { words, joined }
}

/// The text between two words; empty when they came from one character (`⑶` folds to `(3)`).
fn gap<'a>(text: &'a str, before: &Range<usize>, after: &Range<usize>) -> &'a str {
    text.get(before.end..after.start).unwrap_or_default()
}

fn spelled_gap(gap: &str) -> bool {
    !gap.is_empty()
        && gap.chars().count() <= MAX_SPELLED_GAP
        && gap.chars().all(|character| !character.is_alphanumeric() && character != '\n')
}

fn one_in_word_mark(gap: &str) -> bool {
    let mut characters = gap.chars();
    matches!((characters.next(), characters.next()), (Some(mark), None) if is_in_word_mark(mark))
}

/// Leetspeak applies inside words that have a letter; numbers stay numbers.
fn deleet(folded: &[char]) -> String {
    let has_letter = folded.iter().any(|character| character.is_alphabetic());
    let has_symbol = folded.iter().any(|character| is_leet_symbol(*character));
    if !has_letter && !has_symbol {
        return folded.iter().collect();
    }
    folded
        .iter()
        .map(|character| if character.is_alphabetic() { *character } else { leet(*character).unwrap_or(*character) })
        .collect()
}

/// Maximal runs of word characters (letters, digits, leet symbols not at the end), folded.
fn tokens(text: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut current: Option<Token> = None;
    let mut buffer = String::new();
    for (offset, character) in text.char_indices() {
        let end = offset + character.len_utf8();
        buffer.clear();
        fold(character, &mut buffer);
        if buffer.is_empty() {
            // An invisible character or a lone combining mark: it belongs to the word it sits in.
            if let Some(token) = current.as_mut() {
                token.span.end = end;
            }
            continue;
        }
        for folded in buffer.chars() {
            let word_character = folded.is_alphanumeric() || is_leet_symbol(folded);
            match (word_character, current.as_mut()) {
                (true, Some(token)) => {
                    token.folded.push(folded);
                    token.span.end = end;
                }
                (true, None) => current = Some(Token { folded: vec![folded], span: offset..end }),
                (false, _) => {
                    if let Some(token) = current.take() {
                        push_token(&mut tokens, token, text);
                    }
                }
            }
        }
    }
    if let Some(token) = current.take() {
        push_token(&mut tokens, token, text);
    }
    tokens
}

/// Keeps a token without its trailing leet symbols (`shit!` is `shit`), and drops one made only of them.
fn push_token(tokens: &mut Vec<Token>, mut token: Token, text: &str) {
    while let Some(last) = token.folded.last() {
        if !is_leet_symbol(*last) {
            break;
        }
        token.folded.pop();
        // Trailing symbols are one byte each in the original when ASCII; otherwise keep the span as it is.
        if let Some(character) = text[token.span.clone()].chars().next_back()
            && is_leet_symbol(character)
        {
            token.span.end -= character.len_utf8();
        }
    }
    if !token.folded.is_empty() {
        tokens.push(token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(text: &str) -> (Vec<String>, Vec<String>) {
        let words = words(text);
        (
            words.words.into_iter().map(|word| word.text).collect(),
            words.joined.into_iter().map(|word| word.text).collect(),
        )
    }

    #[test]
    fn folds_obfuscation() {
        assert_eq!(texts("ＦＵＣＫ").0, ["fuck"]);
        assert_eq!(texts("fück ѕһіt").0, ["fuck", "shit"]);
        assert_eq!(texts("sh1t @ss b!tch shit!").0, ["shit", "ass", "bitch", "shit"]);
        assert_eq!(texts("f.u.c.k you").0, ["fuck", "you"]);
        assert_eq!(texts("f u c k").0, ["fuck"]);
        assert_eq!(texts("fu\u{200B}ck").0, ["fuck"]);
        assert_eq!(texts("fu-ck off"), (vec!["fu".into(), "ck".into(), "off".into()], vec!["fuck".into()]));
        assert_eq!(texts("call 555 1234").0, ["call", "555", "1234"], "numbers stay numbers");
    }

    #[test]
    fn spans_point_into_the_original() {
        let text = "oh f.u.c.k!";
        let words = words(text);
        assert_eq!(&text[words.words[1].span.clone()], "f.u.c.k");
        let text = "ｆｕｃｋ it";
        assert_eq!(&text[words_span(text, 0)], "ｆｕｃｋ");
    }

    fn words_span(text: &str, index: usize) -> Range<usize> {
        words(text).words[index].span.clone()
    }
}
