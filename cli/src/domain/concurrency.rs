use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How many monthly active users are connected at the peak.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Concurrency {
    /// The profile's baseline ratio (5% of MAU by default).
    Baseline,
    /// The profile's high ratio (10% of MAU by default).
    High,
    /// An explicit percent of MAU, in (0, 100].
    Percent(f64),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "concurrency `{0}` is not understood; give `baseline`, `high` or a percent of MAU such as `7.5%` (more than 0, at most 100)"
)]
pub struct ConcurrencyError(String);

impl FromStr for Concurrency {
    type Err = ConcurrencyError;

    fn from_str(input: &str) -> Result<Concurrency, ConcurrencyError> {
        let trimmed = input.trim();
        match trimmed.to_ascii_lowercase().as_str() {
            "baseline" => return Ok(Concurrency::Baseline),
            "high" => return Ok(Concurrency::High),
            _ => {}
        }
        let number = trimmed.strip_suffix('%').unwrap_or(trimmed).trim();
        let is_plain_decimal = !number.is_empty() && number.chars().all(|c| c.is_ascii_digit() || c == '.');
        match number.parse::<f64>() {
            Ok(percent) if is_plain_decimal && percent > 0.0 && percent <= 100.0 => Ok(Concurrency::Percent(percent)),
            _ => Err(ConcurrencyError(trimmed.to_owned())),
        }
    }
}

impl fmt::Display for Concurrency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Concurrency::Baseline => f.write_str("baseline"),
            Concurrency::High => f.write_str("high"),
            Concurrency::Percent(percent) => write!(f, "{percent}%"),
        }
    }
}

impl Serialize for Concurrency {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Concurrency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Concurrency, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(f64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Number(n) => n.to_string().parse(),
            Raw::Text(text) => text.parse(),
        }
        .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_percents() {
        assert_eq!("baseline".parse(), Ok(Concurrency::Baseline));
        assert_eq!("HIGH".parse(), Ok(Concurrency::High));
        assert_eq!("7.5%".parse(), Ok(Concurrency::Percent(7.5)));
        assert_eq!("20".parse(), Ok(Concurrency::Percent(20.0)));
        assert_eq!("100%".parse(), Ok(Concurrency::Percent(100.0)));
        for bad in ["", "0", "0%", "-5%", "101%", "medium", "NaN", "inf", "1e1"] {
            assert!(bad.parse::<Concurrency>().is_err(), "{bad:?} must be refused");
        }
    }
}
