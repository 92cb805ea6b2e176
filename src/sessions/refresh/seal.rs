//! Sealing what a family keeps that is not a hash: its subject and the application's
//! claims (needed to mint the access tokens of later refreshes), and the successor a
//! grace window hands out again. ChaCha20-Poly1305 under a key derived from a refresh
//! token (see `token.rs`), so a store's content, dumped, says nothing without the
//! token; a random nonce in front of each sealed value.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::sessions::issue::random::{self, RandomError};

const NONCE_LEN: usize = 12;

/// Seals `plaintext` under `key`, bound to `context` (the family's key): a record
/// moved to another family does not open.
pub(crate) fn seal(key: &[u8; 32], context: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, RandomError> {
    let mut nonce = [0; NONCE_LEN];
    random::fill(&mut nonce)?;
    let cipher = ChaCha20Poly1305::new(&Key::from(*key));
    let sealed = cipher
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plaintext,
                aad: context,
            },
        )
        // Encryption fails only past 256 GiB.
        .unwrap_or_default();
    let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Opens what [`seal`] sealed; `None` if it was sealed under another key or context,
/// or altered.
pub(crate) fn open(key: &[u8; 32], context: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < NONCE_LEN {
        return None;
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
    ChaCha20Poly1305::new(&Key::from(*key))
        .decrypt(
            &Nonce::from(nonce),
            Payload {
                msg: ciphertext,
                aad: context,
            },
        )
        .ok()
}

/// What a family keeps, sealed, to mint the access tokens of its refreshes.
#[derive(Serialize, Deserialize)]
pub(crate) struct FamilyRecord {
    /// The subject (`sub`).
    pub(crate) sub: String,
    /// The application's own claims given at sign-in.
    #[serde(default)]
    pub(crate) claims: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_sealed_opens_only_with_its_key_and_context_and_unaltered() {
        let key = [7; 32];
        let sealed = seal(&key, b"family", b"alice").unwrap();
        assert!(!sealed.windows(5).any(|w| w == b"alice"));
        assert_eq!(open(&key, b"family", &sealed).unwrap(), b"alice");
        assert!(open(&[8; 32], b"family", &sealed).is_none());
        assert!(open(&key, b"other", &sealed).is_none());
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert!(open(&key, b"family", &altered).is_none());
        assert!(open(&key, b"family", &sealed[..5]).is_none());
        assert_ne!(
            seal(&key, b"family", b"alice").unwrap(),
            sealed,
            "a fresh nonce each time"
        );
    }
}
