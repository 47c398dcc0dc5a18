//! Compact JWS (RFC 7515) as the providers ask for it: RS256 for Google's OAuth 2 service-account assertion,
//! ES256 (the raw 64-byte `r || s` form) for APNs provider tokens. Keys come as PEM PKCS#8 (`BEGIN PRIVATE
//! KEY`: Google's `private_key` field, Apple's `.p8` file). Signing is ring's.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, RSA_PKCS1_SHA256, RsaKeyPair};
use serde_json::Value;

/// Why a key could not be read or used. Never holds key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the key is not PEM (expected -----BEGIN PRIVATE KEY-----)")]
    NotPem,
    #[error("the key is not a PKCS#8 {0} private key")]
    NotKey(&'static str),
    #[error("signing failed")]
    Signing,
}

/// The DER bytes of a PEM `PRIVATE KEY` block.
pub fn pem_private_key(pem: &str) -> Result<Vec<u8>, KeyError> {
    let begin = "-----BEGIN PRIVATE KEY-----";
    let end = "-----END PRIVATE KEY-----";
    let start = pem.find(begin).ok_or(KeyError::NotPem)? + begin.len();
    let stop = pem[start..].find(end).ok_or(KeyError::NotPem)? + start;
    let body: String = pem[start..stop].chars().filter(|character| !character.is_whitespace()).collect();
    STANDARD.decode(body).map_err(|_| KeyError::NotPem)
}

/// An RS256 signer (Google service accounts).
#[derive(Debug)]
pub struct Rs256(RsaKeyPair);

impl Rs256 {
    pub fn from_pem(pem: &str) -> Result<Rs256, KeyError> {
        let der = pem_private_key(pem)?;
        RsaKeyPair::from_pkcs8(&der).map(Rs256).map_err(|_| KeyError::NotKey("RSA"))
    }

    pub fn sign(&self, header: &Value, claims: &Value) -> Result<String, KeyError> {
        compact(header, claims, |input| {
            let mut signature = vec![0; self.0.public().modulus_len()];
            self.0
                .sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), input, &mut signature)
                .map_err(|_| KeyError::Signing)?;
            Ok(signature)
        })
    }
}

/// An ES256 signer (APNs `.p8` keys).
#[derive(Debug)]
pub struct Es256(EcdsaKeyPair);

impl Es256 {
    pub fn from_pem(pem: &str) -> Result<Es256, KeyError> {
        let der = pem_private_key(pem)?;
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &SystemRandom::new())
            .map(Es256)
            .map_err(|_| KeyError::NotKey("P-256"))
    }

    pub fn sign(&self, header: &Value, claims: &Value) -> Result<String, KeyError> {
        compact(header, claims, |input| {
            let signature = self.0.sign(&SystemRandom::new(), input).map_err(|_| KeyError::Signing)?;
            Ok(signature.as_ref().to_vec())
        })
    }
}

fn compact(
    header: &Value,
    claims: &Value,
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, KeyError>,
) -> Result<String, KeyError> {
    let input =
        format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
    let signature = sign(input.as_bytes())?;
    Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
}
