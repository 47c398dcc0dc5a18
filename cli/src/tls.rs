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
