//! The refresh token itself: opaque (a random family handle and a random secret, no
//! personal data), what the server derives from its handle, and the only form stores
//! keep (a hash).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::sessions::issue::random::{self, RandomError};

/// Marks the format, so a JWT or anything else is told apart at once.
const PREFIX: &str = "rt1.";
/// Bytes of the family handle: the same in every token of a family.
const HANDLE_LEN: usize = 16;
/// Bytes of the secret: new in every token.
const SECRET_LEN: usize = 32;
/// `rt1.` and the base64 of the handle and the secret: every refresh token's length.
const TOKEN_LEN: usize = PREFIX.len() + (HANDLE_LEN + SECRET_LEN) * 4 / 3;

/// A refresh token as stores keep it: SHA-256 of the whole token under its own domain,
/// never the token.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RefreshHash(pub(crate) [u8; 32]);

impl std::fmt::Debug for RefreshHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshHash(…)")
    }
}

impl RefreshHash {
    pub(crate) fn of(token: &str) -> Self {
        Self(derive(b"tower-jwt-revoke refresh token v1\0", token.as_bytes()))
    }

    /// A hash from its bytes (a store reading back what it kept).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The hash's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// SHA-256 of `input` under `domain`: each thing derived from a token has its own.
fn derive(domain: &[u8], input: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(domain);
    hasher.update(input);
    hasher.finalize().into()
}

/// A family's handle, read from one of its refresh tokens: what the server derives
/// the family's session id and the key of its sealed record from. Random, so it says
/// nothing about the session or the subject; never stored.
#[derive(Clone, Copy)]
pub(crate) struct Handle([u8; HANDLE_LEN]);

impl Handle {
    /// A new family's handle.
    pub(crate) fn new() -> Result<Self, RandomError> {
        let mut handle = [0; HANDLE_LEN];
        random::fill(&mut handle)?;
        Ok(Self(handle))
    }

    /// The session id of the family's access tokens (128 bits, URL-safe base64): one
    /// way from the handle, so an access token tells nothing of its refresh tokens.
    pub(crate) fn session_id(&self) -> String {
        let derived = derive(b"tower-jwt-revoke refresh session v1\0", &self.0);
        URL_SAFE_NO_PAD.encode(&derived[..16])
    }

    /// The key the family's record (its subject and claims) is sealed with: only a
    /// holder of one of its tokens can derive it.
    pub(crate) fn sealing_key(&self) -> [u8; 32] {
        derive(b"tower-jwt-revoke refresh family key v1\0", &self.0)
    }

    /// A new token of this family: the handle and 256 fresh random bits.
    pub(crate) fn new_token(&self) -> Result<String, RandomError> {
        let mut bytes = [0; HANDLE_LEN + SECRET_LEN];
        bytes[..HANDLE_LEN].copy_from_slice(&self.0);
        random::fill(&mut bytes[HANDLE_LEN..])?;
        let mut token = String::with_capacity(TOKEN_LEN);
        token.push_str(PREFIX);
        URL_SAFE_NO_PAD.encode_string(bytes, &mut token);
        Ok(token)
    }
}

/// The key a successor kept for the grace window is sealed with: derived from the
/// token it succeeds, so only a holder of that token can open it.
pub(crate) fn successor_key(presented: &str) -> [u8; 32] {
    derive(
        b"tower-jwt-revoke refresh successor key v1\0",
        presented.as_bytes(),
    )
}

/// Reads a refresh token's handle; `None` for anything that is not a refresh token (an
/// access token, a truncated or lengthened one), decided by its length first.
pub(crate) fn parse(token: &str) -> Option<Handle> {
    if token.len() != TOKEN_LEN {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(token.strip_prefix(PREFIX)?).ok()?;
    let mut handle = [0; HANDLE_LEN];
    handle.copy_from_slice(bytes.get(..HANDLE_LEN)?);
    Some(Handle(handle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_of_a_family_share_its_handle_and_nothing_else_parses() {
        let handle = Handle::new().unwrap();
        let token = handle.new_token().unwrap();
        assert_eq!(token.len(), TOKEN_LEN);
        let parsed = parse(&token).unwrap();
        assert_eq!(parsed.session_id(), handle.session_id());
        assert_eq!(parsed.sealing_key(), handle.sealing_key());
        let next = handle.new_token().unwrap();
        assert_ne!(next, token);
        assert_eq!(parse(&next).unwrap().session_id(), handle.session_id());
        assert_ne!(Handle::new().unwrap().session_id(), handle.session_id());
        for bad in [
            "",
            "rt1.",
            "eyJhbGciOiJIUzI1NiJ9.e30.sig",
            &token[..token.len() - 1],
            &format!("{token}x"),
            &format!("rt2.{}", &token[4..]),
            &format!("{}!", &token[..token.len() - 1]),
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
        assert!(parse(&"rt1.".repeat(1000)).is_none());
    }

    #[test]
    fn a_token_says_nothing_of_its_session() {
        let handle = Handle::new().unwrap();
        let token = handle.new_token().unwrap();
        let session = handle.session_id();
        assert!(!token.contains(&session));
        let decoded = URL_SAFE_NO_PAD.decode(&token[PREFIX.len()..]).unwrap();
        let session_bytes = URL_SAFE_NO_PAD.decode(&session).unwrap();
        assert!(!decoded.windows(session_bytes.len()).any(|w| w == session_bytes));
    }
}
