//! What identifies a caller on the wire: the header names and the token hash the store keeps.
//! Pure: the API resolves callers with these, and the gateway authenticates its sockets with the same ones.

use sha2::{Digest, Sha256};

/// The API key header (server to server).
pub const API_KEY_HEADER: &str = "apikey";
/// The header a full-access key acts on behalf of a user with.
pub const ON_BEHALF_OF_HEADER: &str = "onbehalfof";
/// An end user's auth token (REST requests and the WebSocket handshake).
pub const AUTH_TOKEN_HEADER: &str = "authtoken";

/// Hex SHA-256 of an auth token: only the hash is stored.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_hash_is_hex_sha256() {
        assert_eq!(token_hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
