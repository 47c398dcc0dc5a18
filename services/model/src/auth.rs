//! What identifies a caller on the wire: the header names and the token hash the store keeps.
//! Pure: the API resolves callers with these, and the gateway authenticates its sockets with the same ones.

use sha2::{Digest, Sha256};

/// The API key header (server to server).
pub const API_KEY_HEADER: &str = "apikey";
/// The header a full-access key acts on behalf of a user with.
pub const ON_BEHALF_OF_HEADER: &str = "onbehalfof";
/// An end user's auth token (REST requests and the WebSocket handshake).
pub const AUTH_TOKEN_HEADER: &str = "authtoken";

/// Why an identity header (`apikey`, `onBehalfOf`, `authtoken`) was refused. Such a header is never skipped:
/// skipping an unreadable `onBehalfOf` ran a request with the app's own rights, and skipping a second one let
/// whichever came first win (issue #17).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderProblem {
    #[error("is sent more than once; send it once")]
    Repeated,
    #[error("is not visible ASCII")]
    NotVisibleAscii,
    #[error("is empty; leave it out or give it a value")]
    Empty,
}

/// The one value of an identity header, given every value the request carried under its name: `None` when
/// there is none, trimmed text when there is exactly one of visible ASCII, else the problem.
pub fn identity_value<'a>(mut values: impl Iterator<Item = &'a [u8]>) -> Result<Option<&'a str>, HeaderProblem> {
    let Some(value) = values.next() else { return Ok(None) };
    if values.next().is_some() {
        return Err(HeaderProblem::Repeated);
    }
    if !value.iter().all(|byte| matches!(byte, b'\t' | 0x20..=0x7e)) {
        return Err(HeaderProblem::NotVisibleAscii);
    }
    let text = std::str::from_utf8(value).map_err(|_| HeaderProblem::NotVisibleAscii)?.trim();
    if text.is_empty() {
        return Err(HeaderProblem::Empty);
    }
    Ok(Some(text))
}

/// Hex SHA-256 of an auth token: only the hash is stored.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_values_are_one_readable_value_or_refused() {
        fn check<'a>(values: &[&'a [u8]]) -> Result<Option<&'a str>, HeaderProblem> {
            identity_value(values.iter().copied())
        }
        assert_eq!(check(&[]), Ok(None));
        assert_eq!(check(&[b" alice "]), Ok(Some("alice")));
        assert_eq!(check(&[b"alice", b"alice"]), Err(HeaderProblem::Repeated));
        assert_eq!(check(&[b"al\xffice"]), Err(HeaderProblem::NotVisibleAscii));
        assert_eq!(check(&[b"al\x01ice"]), Err(HeaderProblem::NotVisibleAscii));
        assert_eq!(check(&[b"  "]), Err(HeaderProblem::Empty));
        assert_eq!(check(&[b""]), Err(HeaderProblem::Empty));
    }

    #[test]
    fn the_token_hash_is_hex_sha256() {
        assert_eq!(token_hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
