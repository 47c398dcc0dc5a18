//! Standard Webhooks v1 signatures: `webhook-signature: v1,<base64 HMAC-SHA256(id.timestamp.body)>`, keyed with
//! the base64 bytes of a `whsec_` secret. While a rotated-out secret still overlaps, both signatures are sent,
//! space-separated, so a receiver on either secret verifies the delivery.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The prefix of every signing secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// Bytes of key material in a new secret (Standard Webhooks asks for 24 to 64).
const SECRET_BYTES: usize = 32;

/// Why a secret could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("reading the system CSPRNG: {0}")]
    Random(String),
    #[error("a signing secret is `whsec_` followed by base64")]
    Malformed,
}

/// A new `whsec_` secret from the OS CSPRNG.
pub fn new_secret() -> Result<String, SecretError> {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes).map_err(|error| SecretError::Random(error.to_string()))?;
    Ok(format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes)))
}

/// `v1,<signature>` of `body` for message `id` at `timestamp` (Unix seconds) with `secret`.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Result<String, SecretError> {
    let key = secret.strip_prefix(SECRET_PREFIX).ok_or(SecretError::Malformed)?;
    let key = STANDARD.decode(key).map_err(|_| SecretError::Malformed)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| SecretError::Malformed)?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes())))
}

/// The `webhook-signature` header: one signature per secret, space-separated.
pub fn signature_header<'a>(
    secrets: impl IntoIterator<Item = &'a str>,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, SecretError> {
    let signatures: Result<Vec<String>, SecretError> =
        secrets.into_iter().map(|secret| sign(secret, id, timestamp, body)).collect();
    Ok(signatures?.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification (its README and reference test suites).
    #[test]
    fn the_specification_example_signs_to_its_published_signature() {
        let signature = sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        )
        .expect("sign");
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn new_secrets_differ_and_sign() {
        let (one, two) = (new_secret().expect("secret"), new_secret().expect("secret"));
        assert_ne!(one, two);
        assert!(one.starts_with(SECRET_PREFIX));
        let header = signature_header([one.as_str(), two.as_str()], "id", 1, b"{}").expect("sign");
        assert_eq!(header.split(' ').count(), 2);
        assert!(matches!(sign("nope", "id", 1, b""), Err(SecretError::Malformed)));
    }
}
