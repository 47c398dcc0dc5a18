//! Encryption of backup parts at rest: AES-256-GCM over 64 KiB chunks (the STREAM construction), and the
//! manifest's HMAC-SHA256 (docs/operations/backup.md, "Encryption").
//!
//! A part is `COMETBK1` (8 bytes), a random 7-byte nonce prefix, then chunks: each is its plaintext sealed
//! with the nonce `prefix || counter (u32, big-endian) || last (0 or 1)` and followed by its 16-byte tag. Every
//! chunk holds 64 KiB of plaintext but the last, which holds 0 to 64 KiB and is the only one sealed with
//! `last = 1`: a part cut at a chunk boundary, chunks swapped or dropped, or one changed byte fails to open.
//! The data key and the manifest key are derived from the deployment's backup key (`secrets/backup.key`, 32
//! random bytes in hex) with HMAC-SHA256, so one secret serves both and neither is used twice.

use std::io::{BufRead, Read, Write};

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hmac;

/// The first bytes of every encrypted part.
pub const MAGIC: &[u8; 8] = b"COMETBK1";
/// Plaintext bytes per chunk.
pub const CHUNK_BYTES: usize = 64 * 1024;
const TAG_BYTES: usize = 16;
const PREFIX_BYTES: usize = 7;

/// Why a part or a key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CryptError {
    #[error("the backup key is not 64 hexadecimal digits")]
    BadKey,
    #[error("not an encrypted backup part (no COMETBK1 header)")]
    NotAPart,
    /// A chunk did not open: another key, or the part was changed, cut or reordered.
    #[error("chunk {0} does not decrypt: the part was changed or cut, or this is not its key")]
    Chunk(u32),
    #[error("the part has more than 2^32 chunks")]
    TooLong,
    #[error("the system's random source failed")]
    Random,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The deployment's backup key.
#[derive(Clone)]
pub struct BackupKey([u8; 32]);

impl std::fmt::Debug for BackupKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("BackupKey(…)")
    }
}

impl BackupKey {
    pub fn generate() -> Result<BackupKey, CryptError> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|_| CryptError::Random)?;
        Ok(BackupKey(key))
    }

    pub fn from_hex(text: &str) -> Result<BackupKey, CryptError> {
        let text = text.trim();
        if text.len() != 64 {
            return Err(CryptError::BadKey);
        }
        let mut key = [0u8; 32];
        for (index, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[index * 2..index * 2 + 2], 16).map_err(|_| CryptError::BadKey)?;
        }
        Ok(BackupKey(key))
    }

    pub fn to_hex(&self) -> String {
        self.0.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    /// A short public name of the key (not reversible), recorded in manifests to tell keys apart.
    pub fn id(&self) -> String {
        let tag = self.derive(b"comet-backup key id v1");
        tag[..4].iter().map(|byte| format!("{byte:02x}")).collect()
    }

    fn derive(&self, purpose: &[u8]) -> [u8; 32] {
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &self.0), purpose);
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    fn data_key(&self) -> LessSafeKey {
        let derived = self.derive(b"comet-backup data v1");
        // 32 bytes is AES-256's key length: this cannot fail.
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &derived).unwrap_or_else(|_| unreachable!("a 32-byte key")))
    }

    /// The manifest's authentication tag (hex) over `bytes`.
    pub fn mac(&self, bytes: &[u8]) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.derive(b"comet-backup manifest v1"));
        hmac::sign(&key, bytes).as_ref().iter().map(|byte| format!("{byte:02x}")).collect()
    }

    /// Whether `mac` is `bytes`' tag (compared in constant time).
    pub fn mac_matches(&self, bytes: &[u8], mac: &str) -> bool {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.derive(b"comet-backup manifest v1"));
        let Ok(expected) = BackupKey::from_hex_bytes(mac) else { return false };
        hmac::verify(&key, bytes, &expected).is_ok()
    }

    fn from_hex_bytes(text: &str) -> Result<Vec<u8>, CryptError> {
        if !text.len().is_multiple_of(2) {
            return Err(CryptError::BadKey);
        }
        (0..text.len() / 2)
            .map(|index| u8::from_str_radix(&text[index * 2..index * 2 + 2], 16).map_err(|_| CryptError::BadKey))
            .collect()
    }
}

fn nonce(prefix: &[u8; PREFIX_BYTES], counter: u32, last: bool) -> Nonce {
    let mut bytes = [0u8; NONCE_LEN];
    bytes[..PREFIX_BYTES].copy_from_slice(prefix);
    bytes[PREFIX_BYTES..PREFIX_BYTES + 4].copy_from_slice(&counter.to_be_bytes());
    bytes[NONCE_LEN - 1] = u8::from(last);
    Nonce::assume_unique_for_key(bytes)
}

/// Encrypts what is written to it into `inner`; [`Encryptor::finish`] seals the last chunk.
pub struct Encryptor<W: Write> {
    inner: W,
    key: LessSafeKey,
    prefix: [u8; PREFIX_BYTES],
    counter: u32,
    buffer: Vec<u8>,
}

impl<W: Write> std::fmt::Debug for Encryptor<W> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Encryptor").field("chunk", &self.counter).finish_non_exhaustive()
    }
}

impl<W: Write> Encryptor<W> {
    pub fn new(mut inner: W, key: &BackupKey) -> Result<Encryptor<W>, CryptError> {
        let mut prefix = [0u8; PREFIX_BYTES];
        getrandom::fill(&mut prefix).map_err(|_| CryptError::Random)?;
        inner.write_all(MAGIC)?;
        inner.write_all(&prefix)?;
        Ok(Encryptor {
            inner,
            key: key.data_key(),
            prefix,
            counter: 0,
            buffer: Vec::with_capacity(CHUNK_BYTES + TAG_BYTES),
        })
    }

    fn seal(&mut self, last: bool) -> std::io::Result<()> {
        let nonce = nonce(&self.prefix, self.counter, last);
        self.key
            .seal_in_place_append_tag(nonce, Aad::empty(), &mut self.buffer)
            .map_err(|_| std::io::Error::other("sealing a chunk failed"))?;
        self.inner.write_all(&self.buffer)?;
        self.buffer.clear();
        self.counter = self.counter.checked_add(1).ok_or_else(|| std::io::Error::other(CryptError::TooLong))?;
        Ok(())
    }

    /// Seals the last chunk and returns the inner writer, flushed.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.seal(true)?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for Encryptor<W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        // A full chunk is sealed only once more bytes follow it: the last chunk is sealed by `finish`.
        if self.buffer.len() == CHUNK_BYTES && !bytes.is_empty() {
            self.seal(false)?;
        }
        let room = CHUNK_BYTES - self.buffer.len();
        let taken = room.min(bytes.len());
        self.buffer.extend_from_slice(&bytes[..taken]);
        Ok(taken)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Decrypts the part read from `input` into `out`; returns the plaintext's length. Fails on the first chunk
/// that does not open, before writing it.
pub fn decrypt(input: &mut impl BufRead, key: &BackupKey, out: &mut impl Write) -> Result<u64, CryptError> {
    let mut header = [0u8; MAGIC.len() + PREFIX_BYTES];
    input.read_exact(&mut header).map_err(|_| CryptError::NotAPart)?;
    if &header[..MAGIC.len()] != MAGIC {
        return Err(CryptError::NotAPart);
    }
    let mut prefix = [0u8; PREFIX_BYTES];
    prefix.copy_from_slice(&header[MAGIC.len()..]);
    let key = key.data_key();
    let mut chunk = vec![0u8; CHUNK_BYTES + TAG_BYTES];
    let mut counter = 0u32;
    let mut total = 0u64;
    loop {
        let filled = read_full(input, &mut chunk)?;
        let last = filled < chunk.len() || input.fill_buf()?.is_empty();
        let mut sealed = chunk[..filled].to_vec();
        let plain = key
            .open_in_place(nonce(&prefix, counter, last), Aad::empty(), &mut sealed)
            .map_err(|_| CryptError::Chunk(counter))?;
        out.write_all(plain)?;
        total += plain.len() as u64;
        if last {
            return Ok(total);
        }
        counter = counter.checked_add(1).ok_or(CryptError::TooLong)?;
    }
}

/// Reads until `buffer` is full or the input ends; the bytes read.
fn read_full(input: &mut impl Read, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match input.read(&mut buffer[filled..])? {
            0 => break,
            read => filled += read,
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use std::io::{BufReader, Write as _};

    use super::*;

    fn sealed(key: &BackupKey, plain: &[u8]) -> Vec<u8> {
        let mut encryptor = Encryptor::new(Vec::new(), key).expect("encryptor");
        // Odd-sized writes, so chunk boundaries fall inside writes.
        for piece in plain.chunks(7_777) {
            encryptor.write_all(piece).expect("write");
        }
        encryptor.finish().expect("finish")
    }

    fn opened(key: &BackupKey, part: &[u8]) -> Result<Vec<u8>, CryptError> {
        let mut out = Vec::new();
        decrypt(&mut BufReader::new(part), key, &mut out)?;
        Ok(out)
    }

    #[test]
    fn parts_of_every_size_round_trip() {
        let key = BackupKey::generate().expect("key");
        for size in [0, 1, CHUNK_BYTES - 1, CHUNK_BYTES, CHUNK_BYTES + 1, 3 * CHUNK_BYTES, 3 * CHUNK_BYTES + 5] {
            let plain: Vec<u8> = (0..size).map(|n| (n % 251) as u8).collect();
            let part = sealed(&key, &plain);
            assert_eq!(opened(&key, &part).expect("opens"), plain, "size {size}");
        }
    }

    #[test]
    fn a_changed_cut_or_reordered_part_and_another_key_are_refused() {
        let key = BackupKey::generate().expect("key");
        let plain: Vec<u8> = (0..3 * CHUNK_BYTES + 100).map(|n| (n % 13) as u8).collect();
        let part = sealed(&key, &plain);
        let chunk = CHUNK_BYTES + TAG_BYTES;
        let header = MAGIC.len() + PREFIX_BYTES;

        let mut changed = part.clone();
        changed[header + chunk + 10] ^= 1;
        assert!(matches!(opened(&key, &changed), Err(CryptError::Chunk(1))));

        let cut = &part[..header + 2 * chunk];
        assert!(matches!(opened(&key, cut), Err(CryptError::Chunk(1))), "cut at a chunk boundary");

        let mut swapped = part[..header].to_vec();
        swapped.extend_from_slice(&part[header + chunk..header + 2 * chunk]);
        swapped.extend_from_slice(&part[header..header + chunk]);
        swapped.extend_from_slice(&part[header + 2 * chunk..]);
        assert!(matches!(opened(&key, &swapped), Err(CryptError::Chunk(0))));

        let other = BackupKey::generate().expect("key");
        assert!(matches!(opened(&other, &part), Err(CryptError::Chunk(0))));
        assert!(matches!(opened(&key, b"plain text"), Err(CryptError::NotAPart)));
    }

    #[test]
    fn keys_read_back_and_macs_check() {
        let key = BackupKey::generate().expect("key");
        let again = BackupKey::from_hex(&format!("{}\n", key.to_hex())).expect("hex");
        assert_eq!(again.id(), key.id());
        let mac = key.mac(b"manifest");
        assert!(again.mac_matches(b"manifest", &mac));
        assert!(!again.mac_matches(b"manifest!", &mac));
        assert!(!BackupKey::generate().expect("key").mac_matches(b"manifest", &mac));
        assert!(matches!(BackupKey::from_hex("zz"), Err(CryptError::BadKey)));
    }
}
