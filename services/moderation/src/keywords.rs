//! Keyword and phrase lists, matched on whole words of the folded text (so `Scunthorpe` and `assistant` are
//! not `cunt` and `ass`). A word matches a keyword when it spells the keyword with letters held longer
//! (`fuuuck` is `fuck`, `as` is not `ass`). A phrase is consecutive words.
//!
//! The index is a hash map from a keyword's first word without repeated letters to the keywords starting
//! so: a message costs one lookup per word (and per joined word), whatever the list's size.

use std::collections::HashMap;
use std::ops::Range;

use crate::normalize::{Word, Words, fold_keyword};

/// A word as runs of one letter: `fuuck` → `[(f,1),(u,2),(c,1),(k,1)]`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Runs(Vec<(char, u32)>);

impl Runs {
    fn of(word: &str) -> Runs {
        let mut runs: Vec<(char, u32)> = Vec::with_capacity(word.len());
        for character in word.chars() {
            match runs.last_mut() {
                Some((last, count)) if *last == character => *count += 1,
                _ => runs.push((character, 1)),
            }
        }
        Runs(runs)
    }

    /// The word with every run shortened to one letter: the index key.
    fn skeleton(&self) -> String {
        self.0.iter().map(|(character, _)| *character).collect()
    }

    /// True when `self` (text) spells `keyword`, each letter held at least as long.
    fn spells(&self, keyword: &Runs) -> bool {
        self.0.len() == keyword.0.len()
            && self.0.iter().zip(&keyword.0).all(|((text, held), (wanted, least))| text == wanted && held >= least)
    }
}

#[derive(Debug)]
struct Keyword {
    /// The words of the keyword, folded.
    words: Vec<Runs>,
}

/// One compiled list of keywords or phrases.
#[derive(Debug, Default)]
pub(crate) struct KeywordSet {
    by_first: HashMap<String, Vec<Keyword>>,
    len: usize,
}

impl KeywordSet {
    /// Builds the index; entries that fold to no word at all (only punctuation) are skipped.
    pub(crate) fn new<'a>(entries: impl IntoIterator<Item = &'a str>) -> KeywordSet {
        let mut set = KeywordSet::default();
        for entry in entries {
            let words: Vec<Runs> = fold_keyword(entry).iter().map(|word| Runs::of(word)).collect();
            let Some(first) = words.first() else { continue };
            set.by_first.entry(first.skeleton()).or_default().push(Keyword { words });
            set.len += 1;
        }
        set
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The spans of the original text where a keyword is written.
    pub(crate) fn find(&self, words: &Words, found: &mut Vec<Range<usize>>) {
        if self.by_first.is_empty() {
            return;
        }
        for (index, word) in words.words.iter().enumerate() {
            let runs = Runs::of(&word.text);
            let Some(candidates) = self.by_first.get(&runs.skeleton()) else { continue };
            for keyword in candidates {
                if let Some(end) = phrase_at(&words.words, index, &runs, keyword) {
                    found.push(word.span.start..end);
                    break;
                }
            }
        }
        for word in &words.joined {
            let runs = Runs::of(&word.text);
            let Some(candidates) = self.by_first.get(&runs.skeleton()) else { continue };
            if candidates.iter().any(|keyword| keyword.words.len() == 1 && runs.spells(&keyword.words[0])) {
                found.push(word.span.clone());
            }
        }
    }
}

/// Where `keyword` ends in the original text when it is written from word `index` on.
fn phrase_at(words: &[Word], index: usize, first: &Runs, keyword: &Keyword) -> Option<usize> {
    if !first.spells(&keyword.words[0]) {
        return None;
    }
    let mut end = words[index].span.end;
    for (offset, wanted) in keyword.words.iter().enumerate().skip(1) {
        let word = words.get(index + offset)?;
        if !Runs::of(&word.text).spells(wanted) {
            return None;
        }
        end = word.span.end;
    }
    Some(end)
}
