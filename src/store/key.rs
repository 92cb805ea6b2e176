//! Hashed identifiers: what a store records instead of tokens, subjects and sessions.
//!
//! Nothing secret or personal reaches a store. Every identifier is
//! `SHA-256(domain || 0x00 || len(part₁) || part₁ || len(part₂) || part₂ …)`, where
//! `len` is the part's length in bytes as a 4-byte big-endian integer and `domain` names
//! what is hashed, so that a subject can never collide with a token or a session. A
//! missing `iss` is hashed as the empty string. The README spells the scheme out for
//! services in other languages.

use std::fmt;
use std::hash::{Hash, Hasher};

use sha2::{Digest, Sha256};

const TOKEN_BY_ID: &[u8] = b"tower-jwt-revoke/v1/token";
const TOKEN_BY_SIGNING_INPUT: &[u8] = b"tower-jwt-revoke/v1/token-signing-input";
const SUBJECT: &[u8] = b"tower-jwt-revoke/v1/subject";
const SESSION: &[u8] = b"tower-jwt-revoke/v1/session";
/// A token revoked for its subject only: the token's key and its subject's, hashed
/// together (see [`RevocationKey::for_subject`]).
const TOKEN_FOR_SUBJECT: &[u8] = b"tower-jwt-revoke/v1/token-for-subject";
/// The back-channel receiver's record of a logout token it acted on: a domain of its
/// own, so that it never names an access token with the same `iss` and `jti`.
#[cfg(feature = "endpoints")]
const LOGOUT_TOKEN: &[u8] = b"tower-jwt-revoke/v1/logout-token";

/// A hashed identifier of a token, a subject or a session, as stored.
///
/// Obtain one from [`VerifiedToken`](crate::VerifiedToken) or from the constructors
/// below; its [`Display`](fmt::Display) form is the lowercase hex used in store keys.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RevocationKey([u8; 32]);

impl RevocationKey {
    /// All zero bits; no hash ever equals it in practice. Used as a placeholder key.
    #[cfg(feature = "redis")]
    pub(crate) const ZERO: Self = Self([0; 32]);

    /// The key of a token, from its issuer and its `jti`.
    pub fn token(issuer: Option<&str>, jti: &str) -> Self {
        Self::derive(TOKEN_BY_ID, &[issuer.unwrap_or("").as_bytes(), jti.as_bytes()])
    }

    /// The key of a token that has no `jti`, from its signing input
    /// (`base64url(header) "." base64url(payload)`).
    ///
    /// The signature is left out on purpose: ECDSA signatures are malleable, so one
    /// token can carry several valid signatures, and each must hit the same key.
    pub fn token_without_id(signing_input: &str) -> Self {
        Self::derive(TOKEN_BY_SIGNING_INPUT, &[signing_input.as_bytes()])
    }

    /// This token's key bound to its subject's: what the built-in stores record when a
    /// token is revoked knowing its subject
    /// ([`revoke_token_of`](crate::store::RevocationStore::revoke_token_of)), so that the
    /// revocation refuses this `(iss, sub, jti)` and not a token of another subject
    /// that carries the same `jti` (an issuer that reuses them). Hashed as
    /// the scheme above with the two keys' 32 bytes as its parts, with the domain `tower-jwt-revoke/v1/token-for-subject`.
    pub fn for_subject(&self, subject: &RevocationKey) -> Self {
        Self::derive(TOKEN_FOR_SUBJECT, &[&self.0, &subject.0])
    }

    /// The key under which the back-channel logout receiver remembers a logout token
    /// (`iss`, `jti`) it acted on, to refuse its replays. Stored like a token
    /// revocation, but hashed in its own domain: a logout token and an access token
    /// with the same `jti` are different tokens, and neither may stand for the other.
    #[cfg(feature = "endpoints")]
    pub(crate) fn logout_token(issuer: &str, jti: &str) -> Self {
        Self::derive(LOGOUT_TOKEN, &[issuer.as_bytes(), jti.as_bytes()])
    }

    /// The key of a subject (`sub`) of an issuer.
    pub fn subject(issuer: Option<&str>, subject: &str) -> Self {
        Self::derive(SUBJECT, &[issuer.unwrap_or("").as_bytes(), subject.as_bytes()])
    }

    /// The key of a session (`sid`) of an issuer.
    pub fn session(issuer: Option<&str>, session: &str) -> Self {
        Self::derive(SESSION, &[issuer.unwrap_or("").as_bytes(), session.as_bytes()])
    }

    /// Parses the lowercase or uppercase hex form (64 digits).
    pub fn from_hex(hex: &str) -> Option<Self> {
        let hex = hex.as_bytes();
        if hex.len() != 64 {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(hex.chunks_exact(2)) {
            let digit = |c: u8| char::from(c).to_digit(16);
            *byte = u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).ok()?;
        }
        Some(Self(bytes))
    }

    /// The key whose hash is `bytes` (as [`as_bytes`](Self::as_bytes) gave them).
    #[cfg(feature = "redis")]
    pub(crate) fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 bytes of the hash.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn derive(domain: &[u8], parts: &[&[u8]]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(domain);
        hasher.update([0]);
        for part in parts {
            // Identifiers are claims of a token that passed a size limit, so they
            // always fit; saturating keeps this total anyway.
            let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
            hasher.update(len.to_be_bytes());
            hasher.update(part);
        }
        Self(hasher.finalize().into())
    }
}

/// The key a built-in store records a token revocation under, knowing the token's
/// subject or that it has none: bound to the subject
/// ([`RevocationKey::for_subject`]), or the token's own.
pub(crate) fn token_record(token: &RevocationKey, subject: Option<&RevocationKey>) -> RevocationKey {
    subject.map_or(*token, |subject| token.for_subject(subject))
}

impl Hash for RevocationKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // The key is a SHA-256 output: any 8 of its bytes are already uniform.
        let mut first = [0u8; 8];
        first.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(first));
    }
}

impl RevocationKey {
    /// The lowercase hex form, without allocating (store keys are built per request).
    pub(crate) fn hex(&self) -> HexKey {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut hex = [0u8; 64];
        for (pair, byte) in hex.chunks_exact_mut(2).zip(self.0) {
            pair[0] = DIGITS[usize::from(byte >> 4)];
            pair[1] = DIGITS[usize::from(byte & 0x0f)];
        }
        HexKey(hex)
    }
}

/// The 64 hex digits of a [`RevocationKey`].
pub(crate) struct HexKey([u8; 64]);

impl HexKey {
    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever written.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for RevocationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.hex().as_str())
    }
}

impl fmt::Debug for RevocationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RevocationKey({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_separate_scopes_with_equal_inputs() {
        let token = RevocationKey::token(Some("iss"), "x");
        let subject = RevocationKey::subject(Some("iss"), "x");
        let session = RevocationKey::session(Some("iss"), "x");
        assert_ne!(token, subject);
        assert_ne!(subject, session);
        assert_ne!(token, session);
    }

    #[cfg(feature = "endpoints")]
    #[test]
    fn a_logout_token_record_is_no_token_revocation() {
        assert_ne!(
            RevocationKey::logout_token("iss", "x"),
            RevocationKey::token(Some("iss"), "x")
        );
    }

    #[test]
    fn a_token_bound_to_its_subject_is_neither_the_token_nor_another_subjects() {
        let token = RevocationKey::token(Some("iss"), "x");
        let alice = RevocationKey::subject(Some("iss"), "alice");
        let bob = RevocationKey::subject(Some("iss"), "bob");
        assert_ne!(token.for_subject(&alice), token);
        assert_ne!(token.for_subject(&alice), token.for_subject(&bob));
        assert_eq!(token.for_subject(&alice), token.for_subject(&alice));
    }

    #[test]
    fn length_prefix_keeps_part_boundaries() {
        assert_ne!(
            RevocationKey::token(Some("ab"), "c"),
            RevocationKey::token(Some("a"), "bc")
        );
    }

    #[test]
    fn hex_form_round_trips() {
        let key = RevocationKey::session(Some("iss"), "sid");
        assert_eq!(RevocationKey::from_hex(&key.to_string()), Some(key));
        assert_eq!(
            RevocationKey::from_hex(&key.to_string().to_uppercase()),
            Some(key)
        );
        assert_eq!(RevocationKey::from_hex("abc"), None);
        assert_eq!(RevocationKey::from_hex(&"g".repeat(64)), None);
    }

    #[test]
    fn hex_form_matches_the_documented_scheme() {
        // SHA-256("tower-jwt-revoke/v1/token" 00 00000000 00000001 "a"), computed
        // independently with Python's hashlib (see README, "Redis key schema").
        let key = RevocationKey::token(None, "a");
        assert_eq!(
            key.to_string(),
            "43618e786f2c3395889484114a38f8127c348ba9368831e0999d0abb189f2c33"
        );
    }
}
