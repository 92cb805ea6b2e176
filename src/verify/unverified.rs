//! [`UnverifiedToken`]: a token's claims read without checking its signature, for
//! operators who hold a token but not the key that signed it.

use super::decode;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use crate::store::RevocationQuery;
use crate::store::key::RevocationKey;
use crate::verify::token::RegisteredClaims;
use crate::verify::{DEFAULT_MAX_TOKEN_LEN, SessionClaim, VerifyError};

/// A token's registered claims and revocation keys, read **without** checking its
/// signature, `iss`, `aud` or lifetime.
///
/// For tools that must name a token in the store without holding the key that signed
/// it: an operator revoking a leaked token ([`Revoker::revoke_unverified`](crate::Revoker::revoke_unverified)),
/// or asking whether one would be refused. Its keys are the ones
/// [`VerifiedToken`](crate::VerifiedToken) computes for the same token: from
/// `(iss, jti)`, or from the signing input when it has no (or an empty) `jti`.
///
/// Nothing in it is trusted: never let a request in on it. A forged token can only
/// name a revocation key, which is harmless to record.
///
/// ```
/// use tower_jwt_revoke::{RevocationKey, UnverifiedToken};
///
/// // {"alg":"HS256"} . {"iss":"https://auth","jti":"42","exp":4102444800} . (any signature)
/// let token = "eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJodHRwczovL2F1dGgiLCJqdGkiOiI0MiIsImV4cCI6NDEwMjQ0NDgwMH0.c2ln";
/// let unverified = UnverifiedToken::parse(token)?;
/// assert_eq!(unverified.revocation_key(), RevocationKey::token(Some("https://auth"), "42"));
/// assert_eq!(unverified.expires_at(), 4_102_444_800);
/// # Ok::<(), tower_jwt_revoke::VerifyError>(())
/// ```
#[derive(Clone)]
pub struct UnverifiedToken {
    registered: RegisteredClaims,
    key: RevocationKey,
}

impl fmt::Debug for UnverifiedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Claim values stay out of logs, as for `VerifiedToken`.
        f.debug_struct("UnverifiedToken")
            .field("key", &self.key)
            .field("expires_at", &self.registered.exp)
            .finish_non_exhaustive()
    }
}

/// The claims read, `session_state` beside `sid` for [`SessionClaim`].
#[derive(Deserialize)]
struct Payload {
    #[serde(flatten)]
    registered: RegisteredClaims,
    #[serde(default)]
    session_state: Option<String>,
}

impl UnverifiedToken {
    /// Reads a compact JWS (`header.payload.signature`), its session from `sid`.
    ///
    /// Fails with [`VerifyError::TooLarge`] past [`DEFAULT_MAX_TOKEN_LEN`] bytes,
    /// [`VerifyError::Malformed`] when it is not three base64url parts with JSON
    /// objects for header (with an `alg`) and payload, and
    /// [`VerifyError::MissingClaim`]/[`VerifyError::InvalidClaim`] when `exp` is
    /// missing or a date is not a NumericDate.
    pub fn parse(token: &str) -> Result<Self, VerifyError> {
        Self::parse_with(token, SessionClaim::Sid)
    }

    /// Like [`parse`](Self::parse), with the session read from `session_claim`, as the
    /// verifier configured with it reads it.
    pub fn parse_with(token: &str, session_claim: SessionClaim) -> Result<Self, VerifyError> {
        let token = token.trim();
        if token.len() > DEFAULT_MAX_TOKEN_LEN {
            return Err(VerifyError::TooLarge);
        }
        let (signing_input, _signature) = token.rsplit_once('.').ok_or(VerifyError::Malformed)?;
        let (header, payload) = signing_input.split_once('.').ok_or(VerifyError::Malformed)?;
        #[derive(Deserialize)]
        struct Header {
            #[allow(dead_code)] // required to be there, not read
            alg: String,
        }
        let header = decode(header)?;
        let payload = decode(payload)?;
        if !decode::is_object(&header) || !decode::is_object(&payload) {
            return Err(VerifyError::Malformed);
        }
        serde_json::from_slice::<Header>(&header).map_err(|_| VerifyError::Malformed)?;
        let payload: Payload =
            serde_json::from_slice(&payload).map_err(|error| decode::claim_error(&error))?;
        let mut registered = payload.registered;
        registered.jti = registered.jti.filter(|jti| !jti.is_empty());
        registered.sid = match session_claim {
            SessionClaim::Sid => registered.sid,
            SessionClaim::SessionState => payload.session_state,
            SessionClaim::SidOrSessionState => registered.sid.or(payload.session_state),
        };
        let key = match registered.jti.as_deref() {
            Some(jti) => RevocationKey::token(registered.iss.as_deref(), jti),
            None => RevocationKey::token_without_id(signing_input),
        };
        Ok(Self { registered, key })
    }

    /// The registered claims, as the token states them.
    pub fn registered(&self) -> &RegisteredClaims {
        &self.registered
    }

    /// The hashed identifier this token is revoked under.
    pub fn revocation_key(&self) -> RevocationKey {
        self.key
    }

    /// The hashed identifier of its subject, if it has a `sub`.
    pub fn subject_key(&self) -> Option<RevocationKey> {
        let sub = self.registered.sub.as_deref()?;
        Some(RevocationKey::subject(self.registered.iss.as_deref(), sub))
    }

    /// The hashed identifier of its session, if it has one.
    pub fn session_key(&self) -> Option<RevocationKey> {
        let sid = self.registered.sid.as_deref()?;
        Some(RevocationKey::session(self.registered.iss.as_deref(), sid))
    }

    /// `exp`, in seconds since the Unix epoch.
    pub fn expires_at(&self) -> u64 {
        self.registered.exp
    }

    /// `iat`, in seconds since the Unix epoch, if any.
    pub fn issued_at(&self) -> Option<u64> {
        self.registered.iat
    }

    /// What a store is asked about this token: the same query the layer makes for it.
    pub fn query(&self) -> RevocationQuery {
        RevocationQuery {
            token: self.key,
            subject: self.subject_key(),
            session: self.session_key(),
            issued_at: self.issued_at(),
        }
    }
}

fn decode(part: &str) -> Result<Vec<u8>, VerifyError> {
    URL_SAFE_NO_PAD.decode(part).map_err(|_| VerifyError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(header: &str, payload: &str) -> String {
        format!(
            "{}.{}.c2ln",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        )
    }

    #[test]
    fn keys_match_what_the_verifier_computes() {
        let with_id = token(
            r#"{"alg":"HS256"}"#,
            r#"{"iss":"i","jti":"j","sub":"s","sid":"x","iat":1,"exp":2}"#,
        );
        let parsed = UnverifiedToken::parse(&with_id).unwrap();
        assert_eq!(parsed.revocation_key(), RevocationKey::token(Some("i"), "j"));
        assert_eq!(parsed.subject_key(), Some(RevocationKey::subject(Some("i"), "s")));
        assert_eq!(parsed.session_key(), Some(RevocationKey::session(Some("i"), "x")));
        assert_eq!(parsed.query().issued_at, Some(1));

        let without_id = token(r#"{"alg":"HS256"}"#, r#"{"jti":"","exp":2}"#);
        let signing_input = without_id.rsplit_once('.').unwrap().0;
        assert_eq!(
            UnverifiedToken::parse(&without_id).unwrap().revocation_key(),
            RevocationKey::token_without_id(signing_input)
        );
    }

    #[test]
    fn session_state_is_read_when_asked() {
        let keycloak = token(r#"{"alg":"RS256"}"#, r#"{"session_state":"k","exp":2}"#);
        assert_eq!(UnverifiedToken::parse(&keycloak).unwrap().session_key(), None);
        let parsed = UnverifiedToken::parse_with(&keycloak, SessionClaim::SidOrSessionState).unwrap();
        assert_eq!(parsed.session_key(), Some(RevocationKey::session(None, "k")));
    }

    #[test]
    fn malformed_tokens_are_refused_with_a_reason() {
        for bad in ["", "a.b", "not a jwt", "e30.e30.", "W10.e30.x"] {
            assert_eq!(
                UnverifiedToken::parse(bad).unwrap_err(),
                VerifyError::Malformed,
                "{bad}"
            );
        }
        let no_exp = token(r#"{"alg":"HS256"}"#, r#"{"sub":"s"}"#);
        assert_eq!(
            UnverifiedToken::parse(&no_exp).unwrap_err(),
            VerifyError::MissingClaim("exp")
        );
        let no_alg = token(r#"{"typ":"JWT"}"#, r#"{"exp":1}"#);
        assert_eq!(
            UnverifiedToken::parse(&no_alg).unwrap_err(),
            VerifyError::Malformed
        );
        let bad_exp = token(r#"{"alg":"HS256"}"#, r#"{"exp":"soon"}"#);
        assert_eq!(
            UnverifiedToken::parse(&bad_exp).unwrap_err(),
            VerifyError::InvalidClaim("exp")
        );
        assert_eq!(
            UnverifiedToken::parse(&"a".repeat(DEFAULT_MAX_TOKEN_LEN + 1)).unwrap_err(),
            VerifyError::TooLarge
        );
    }
}
