//! The development certificate `init` makes when the operator brings none: self-signed, ECDSA P-256,
//! for the spec's domain and localhost.

use anyhow::{Context as _, Result};

/// A certificate and its private key, both PEM.
#[derive(Debug)]
pub struct DevCertificate {
    pub cert_pem: String,
    pub key_pem: String,
}

pub fn self_signed(domain: &str) -> Result<DevCertificate> {
    let names = vec![domain.to_owned(), "localhost".to_owned()];
    let certified = rcgen::generate_simple_self_signed(names).context("generating a self-signed certificate")?;
    Ok(DevCertificate { cert_pem: certified.cert.pem(), key_pem: certified.signing_key.serialize_pem() })
}

/// A certificate's `notAfter` as seconds since the Unix epoch, read from its DER: Certificate → tbsCertificate
/// → (version) serial, signature, issuer, validity → notAfter (UTCTime or GeneralizedTime). `None` when the
/// bytes are not such a certificate.
pub fn not_after(der: &[u8]) -> Option<i64> {
    let (certificate, _) = element(der, 0x30)?;
    let (tbs, _) = element(certificate, 0x30)?;
    let mut rest = tbs;
    if rest.first() == Some(&0xa0) {
        rest = element(rest, 0xa0)?.1;
    }
    for tag in [0x02, 0x30, 0x30] {
        rest = element(rest, tag)?.1;
    }
    let (validity, _) = element(rest, 0x30)?;
    let (_, after) = any_element(validity)?;
    let (tag, value) = (after.first().copied()?, any_element(after)?.0);
    let text = std::str::from_utf8(value).ok()?;
    let (year, rest) = match tag {
        0x17 => {
            let short: i64 = text.get(0..2)?.parse().ok()?;
            (if short >= 50 { 1900 + short } else { 2000 + short }, text.get(2..)?)
        }
        0x18 => (text.get(0..4)?.parse().ok()?, text.get(4..)?),
        _ => return None,
    };
    let field = |range: std::ops::Range<usize>| -> Option<i64> { rest.get(range)?.parse().ok() };
    let (month, day, hour, minute, second) = (field(0..2)?, field(2..4)?, field(4..6)?, field(6..8)?, field(8..10)?);
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// The content of the DER element at the start of `bytes` if its tag is `tag`, and what follows it.
fn element(bytes: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    if *bytes.first()? != tag {
        return None;
    }
    any_element(bytes)
}

fn any_element(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let first = usize::from(*bytes.get(1)?);
    let (length, start) = if first < 0x80 {
        (first, 2)
    } else {
        let count = first & 0x7f;
        if count == 0 || count > 4 {
            return None;
        }
        let length = bytes.get(2..2 + count)?.iter().fold(0usize, |sum, byte| (sum << 8) | usize::from(*byte));
        (length, 2 + count)
    };
    let end = start.checked_add(length)?;
    Some((bytes.get(start..end)?, bytes.get(end..)?))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let shifted_month = (month + 9) % 12;
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The DER of the first certificate in a PEM text.
pub fn first_certificate_der(pem: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let body: String = pem
        .lines()
        .skip_while(|line| !line.starts_with("-----BEGIN CERTIFICATE-----"))
        .skip(1)
        .take_while(|line| !line.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_after_is_read_from_a_generated_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["chat.example.com".to_owned()]).expect("params");
        params.not_after = rcgen::date_time_ymd(2031, 3, 9);
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("certificate");
        // 2031-03-09T00:00:00Z
        assert_eq!(not_after(cert.der()), Some(1_930_780_800));
        let der = first_certificate_der(&cert.pem()).expect("PEM");
        assert_eq!(der.as_slice(), cert.der().as_ref());
        assert_eq!(not_after(b"not a certificate"), None);
        assert_eq!(not_after(&[]), None);
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }
}
