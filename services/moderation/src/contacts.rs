//! Contact details in a message: email addresses (also written `name (at) host (dot) com`), phone numbers in
//! international (`+44 20 7946 0958`, `0044…`) and local forms (`(555) 123-4567`, `07911 123456`,
//! `555-1234`), and links (`https://…`, `www.…`, bare domains with a common top-level domain). An allow-list of
//! domains exempts addresses and links at them and their subdomains.
//!
//! The expressions are compiled once and are linear in the text, like the patterns; each candidate number is
//! then checked in code (digit count, leading `+`, `00` or `0`, not a date).

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

/// Top-level domains that make a bare `word.tld` (or a spelled-out `name at host dot tld`) a contact detail.
const TLDS: &str = "com|net|org|io|co|me|info|biz|app|dev|xyz|ru|uk|de|fr|es|it|nl|in|us|ca|au|br|cn|jp|ly|gg|tv|link|site|online|shop|live|club|top|email|chat";

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)[a-z0-9._%+\-]{1,64}@[a-z0-9\-]{1,63}(?:\.[a-z0-9\-]{1,63}){0,8}\.[a-z]{2,24}")
        .expect("the email expression compiles")
});

static SPELLED_EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    let at = r"(?:\s*[(\[{<]\s*at\s*[)\]}>]\s*|\s+at\s+)";
    let dot = r"(?:\s*\.\s*|\s*[(\[{<]\s*dot\s*[)\]}>]\s*|\s+dot\s+)";
    Regex::new(&format!(
        r"(?i)(?-u:\b)[a-z0-9._%+\-]{{1,64}}{at}[a-z0-9\-]{{1,63}}(?:{dot}[a-z0-9\-]{{1,63}}){{0,4}}{dot}(?:{TLDS})(?-u:\b)"
    ))
    .expect("the spelled email expression compiles")
});

static LINK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(?i)(?:https?://|www\.)[^\s<>]{{1,2048}}|(?-u:\b)[a-z0-9](?:[a-z0-9\-]{{0,61}}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9\-]{{0,61}}[a-z0-9])?){{0,8}}(?:\.|\s*[(\[]\s*dot\s*[)\]]\s*)(?:{TLDS})(?-u:\b)(?:/[^\s<>]{{0,2048}})?"
    ))
    .expect("the link expression compiles")
});

static PHONE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?:\+\s?)?\(?\d[\d\s().\-]{5,24}\d").expect("the phone expression compiles"));

static DATE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4})$")
        .expect("the date expression compiles")
});

/// Compiles the expressions now, so that the first message checked does not pay for it.
pub(crate) fn warm() {
    for expression in [&EMAIL, &SPELLED_EMAIL, &LINK, &PHONE, &DATE] {
        LazyLock::force(expression);
    }
}

/// Which kinds of contact detail a condition looks for, and the domains it lets through.
#[derive(Debug, Clone, Default)]
pub(crate) struct ContactFinder {
    pub(crate) email: bool,
    pub(crate) phone: bool,
    pub(crate) link: bool,
    /// Lower-case domains; `example.com` allows `example.com` and `*.example.com`.
    pub(crate) allow: Vec<String>,
}

impl ContactFinder {
    pub(crate) fn find(&self, text: &str, found: &mut Vec<Range<usize>>) {
        if self.email {
            for hit in EMAIL.find_iter(text).chain(SPELLED_EMAIL.find_iter(text)) {
                if !self.allowed(email_domain(hit.as_str())) {
                    found.push(hit.range());
                }
            }
        }
        if self.link {
            for hit in LINK.find_iter(text) {
                // Either side of an `@` is an email's business, not a link.
                if text[..hit.start()].ends_with('@') || text[hit.end()..].starts_with('@') {
                    continue;
                }
                if !self.allowed(link_host(hit.as_str())) {
                    found.push(hit.range());
                }
            }
        }
        if self.phone {
            for hit in PHONE.find_iter(text) {
                let before = text[..hit.start()].chars().next_back();
                let after = text[hit.end()..].chars().next();
                if before.is_some_and(char::is_alphanumeric) || after.is_some_and(char::is_alphanumeric) {
                    continue;
                }
                if is_phone_number(hit.as_str().trim()) {
                    found.push(hit.range());
                }
            }
        }
    }

    fn allowed(&self, domain: String) -> bool {
        self.allow.iter().any(|allowed| domain == *allowed || domain.ends_with(&format!(".{allowed}")))
    }
}

/// The domain of an address (plain or spelled out), lower case, dots restored.
fn email_domain(address: &str) -> String {
    let lower = address.to_lowercase();
    let host = match lower.rfind('@') {
        Some(at) => lower[at + 1..].to_owned(),
        None => lower.split_once("at").map(|(_, host)| host.to_owned()).unwrap_or_default(),
    };
    spelled_host(&host)
}

fn link_host(link: &str) -> String {
    let lower = link.to_lowercase();
    let rest = lower.strip_prefix("https://").or_else(|| lower.strip_prefix("http://")).unwrap_or(&lower);
    let host = rest.split(['/', '?', '#', ':']).next().unwrap_or_default();
    let host = host.rsplit('@').next().unwrap_or_default();
    spelled_host(host.strip_prefix("www.").unwrap_or(host))
}

/// `example (dot) com` → `example.com`.
fn spelled_host(host: &str) -> String {
    let mut out = String::with_capacity(host.len());
    for part in host.split(|character: char| character.is_whitespace() || "()[]{}<>".contains(character)) {
        match part {
            "" => {}
            "dot" => out.push('.'),
            _ => out.push_str(part),
        }
    }
    out.trim_start_matches(['.', ' ']).replace("..", ".")
}

/// Whether a run of digits and separators reads as a phone number.
fn is_phone_number(candidate: &str) -> bool {
    if DATE.is_match(candidate) {
        return false;
    }
    let digits: String = candidate.chars().filter(char::is_ascii_digit).collect();
    let count = digits.len();
    if candidate.starts_with('+') {
        return (8..=15).contains(&count);
    }
    if digits.starts_with("00") {
        return (10..=15).contains(&count);
    }
    if digits.starts_with('0') {
        return (10..=11).contains(&count);
    }
    if count == 10 {
        // North American numbers: the area code does not start with 0 or 1.
        return !digits.starts_with('1');
    }
    if count == 11 && digits.starts_with('1') {
        return true;
    }
    // A local number written as one: `555-1234`, `555 1234`.
    count == 7 && candidate.len() == 8 && matches!(candidate.as_bytes()[3], b'-' | b' ' | b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(email_domain("John@Mail.Example.com"), "mail.example.com");
        assert_eq!(email_domain("john (at) example (dot) com"), "example.com");
        assert_eq!(link_host("https://user@www.Example.com:8080/path"), "example.com");
        assert_eq!(link_host("shop [dot] io"), "shop.io");
    }

    #[test]
    fn numbers() {
        for number in
            ["+44 20 7946 0958", "0044 20 7946 0958", "(555) 123-4567", "07911 123456", "555-1234", "1-800-555-0199"]
        {
            assert!(is_phone_number(number), "{number}");
        }
        for not_a_number in ["2026-12-07", "12/07/2026", "1234567", "3.14159265", "1234567890123456"] {
            assert!(!is_phone_number(not_a_number), "{not_a_number}");
        }
    }
}
