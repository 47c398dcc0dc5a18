use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Monthly active users: a positive whole number, parsed from `10k`, `250k`, `1.5m` or `100000`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mau(u64);

/// The largest MAU the parser accepts at all; the sizing model has its own, lower, limit with a reason.
const ABSURD_MAU: u64 = 10_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MauError {
    #[error("MAU is empty; give a number such as 10k, 250k, 1.5m or 100000")]
    Empty,
    #[error("MAU `{0}` is not a number; give a number such as 10k, 250k, 1.5m or 100000")]
    NotANumber(String),
    #[error("MAU `{0}` is negative; monthly active users are counted from 1")]
    Negative(String),
    #[error("MAU `{0}` is zero; a deployment needs at least one monthly active user")]
    Zero(String),
    #[error("MAU `{0}` is not a whole number of users")]
    Fraction(String),
    #[error("MAU `{0}` is absurd (more than {ABSURD_MAU} users)")]
    Absurd(String),
}

impl Mau {
    pub fn new(users: u64) -> Result<Mau, MauError> {
        if users == 0 {
            return Err(MauError::Zero(users.to_string()));
        }
        if users > ABSURD_MAU {
            return Err(MauError::Absurd(users.to_string()));
        }
        Ok(Mau(users))
    }

    pub fn get(self) -> u64 {
        self.0
    }
}

impl FromStr for Mau {
    type Err = MauError;

    fn from_str(input: &str) -> Result<Mau, MauError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(MauError::Empty);
        }
        if trimmed.starts_with('-') {
            return Err(MauError::Negative(trimmed.to_owned()));
        }
        let (digits, multiplier) = match trimmed.char_indices().last() {
            Some((at, 'k' | 'K')) => (&trimmed[..at], 1_000u64),
            Some((at, 'm' | 'M')) => (&trimmed[..at], 1_000_000u64),
            _ => (trimmed, 1u64),
        };
        let digits = digits.replace('_', "");
        let well_formed = !digits.is_empty()
            && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
            && digits.chars().filter(|&c| c == '.').count() <= 1
            && digits.chars().any(|c| c.is_ascii_digit());
        if !well_formed {
            return Err(MauError::NotANumber(trimmed.to_owned()));
        }
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits.as_str(), ""));
        // Exact decimal arithmetic: `1.5m` is 1,500,000 without a float in between.
        let scale = 10u64.pow(u32::try_from(fraction.len()).unwrap_or(u32::MAX).min(19));
        let too_long = whole.len() > 12 || fraction.len() > 6;
        if too_long {
            return Err(MauError::Absurd(trimmed.to_owned()));
        }
        let whole: u64 =
            if whole.is_empty() { 0 } else { whole.parse().map_err(|_| MauError::NotANumber(trimmed.to_owned()))? };
        let fraction_value: u64 = if fraction.is_empty() {
            0
        } else {
            fraction.parse().map_err(|_| MauError::NotANumber(trimmed.to_owned()))?
        };
        let scaled_fraction = fraction_value * multiplier;
        if !scaled_fraction.is_multiple_of(scale) {
            return Err(MauError::Fraction(trimmed.to_owned()));
        }
        let users = whole
            .checked_mul(multiplier)
            .and_then(|users| users.checked_add(scaled_fraction / scale))
            .ok_or_else(|| MauError::Absurd(trimmed.to_owned()))?;
        match Mau::new(users) {
            Err(MauError::Zero(_)) => Err(MauError::Zero(trimmed.to_owned())),
            Err(MauError::Absurd(_)) => Err(MauError::Absurd(trimmed.to_owned())),
            other => other,
        }
    }
}

impl fmt::Display for Mau {
    /// Short form for tables: `100k`, `1.5m`, `12345`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let users = self.0;
        if users >= 1_000_000 && users.is_multiple_of(100_000) {
            let tenths = users / 100_000;
            if tenths.is_multiple_of(10) {
                write!(f, "{}m", tenths / 10)
            } else {
                write!(f, "{}.{}m", tenths / 10, tenths % 10)
            }
        } else if users >= 1_000 && users.is_multiple_of(1_000) {
            write!(f, "{}k", users / 1_000)
        } else {
            write!(f, "{users}")
        }
    }
}

impl Serialize for Mau {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for Mau {
    /// Accepts a plain integer or the same short forms as the command line (`100k`).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Mau, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(i64),
            Text(String),
        }
        let parsed = match Raw::deserialize(deserializer)? {
            Raw::Number(n) if n < 0 => Err(MauError::Negative(n.to_string())),
            Raw::Number(n) => Mau::new(n.unsigned_abs()),
            Raw::Text(text) => text.parse(),
        };
        parsed.map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(input: &str, expected: Result<u64, &str>) {
        let got = input.parse::<Mau>().map(Mau::get).map_err(|e| e.to_string());
        match (got, expected) {
            (Ok(users), Ok(want)) => assert_eq!(users, want, "input {input:?}"),
            (Err(message), Err(fragment)) => assert!(message.contains(fragment), "input {input:?}: {message}"),
            (got, want) => panic!("input {input:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn parses_the_documented_forms() {
        check("10k", Ok(10_000));
        check("250k", Ok(250_000));
        check("250K", Ok(250_000));
        check("1.5m", Ok(1_500_000));
        check("100000", Ok(100_000));
        check("100_000", Ok(100_000));
        check(" 2m ", Ok(2_000_000));
        check("0.5k", Ok(500));
        check(".5m", Ok(500_000));
    }

    #[test]
    fn refuses_what_is_not_a_user_count() {
        check("", Err("empty"));
        check("abc", Err("not a number"));
        check("10x", Err("not a number"));
        check("k", Err("not a number"));
        check("1.2.3", Err("not a number"));
        check("-5", Err("negative"));
        check("-10k", Err("negative"));
        check("0", Err("zero"));
        check("0k", Err("zero"));
        check("1.5", Err("whole number"));
        check("1.0001k", Err("whole number"));
        check("99999999999999999999", Err("absurd"));
        check("20000m", Err("absurd"));
        check("1e6", Err("not a number"));
        check("NaN", Err("not a number"));
    }

    #[test]
    fn displays_short_forms() {
        for (users, shown) in [(10_000, "10k"), (1_500_000, "1.5m"), (2_000_000, "2m"), (12_345, "12345")] {
            assert_eq!(Mau::new(users).map(|m| m.to_string()), Ok(shown.to_owned()));
        }
    }
}
