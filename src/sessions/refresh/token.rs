//! The refresh token itself: what it carries, and the only form stores keep (a hash).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::sessions::issue::random::{RandomError, random_id};

/// Marks the format, so a JWT or anything else is told apart at once.
const PREFIX: &str = "rt1.";
/// Refresh tokens longer than this are refused unparsed.
const MAX_REFRESH_TOKEN_LEN: usize = 1024;

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
        let mut hasher = Sha256::new();
        hasher.update(b"tower-jwt-revoke refresh token v1\0");
        hasher.update(token.as_bytes());
        Self(hasher.finalize().into())
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

/// A parsed refresh token: the session (family) and subject it renews, both covered by
/// its hash, so a token edited to name another is simply unknown.
pub(crate) struct RefreshToken {
    pub(crate) session: String,
    pub(crate) subject: String,
}

/// A new refresh token for `session` of `subject`: `rt1.` then the session id and the
/// subject (URL-safe base64) and 256 random bits. The holder can read the first two,
/// which its access tokens carry in the clear anyway.
pub(crate) fn new_token(session: &str, subject: &str) -> Result<String, RandomError> {
    let secret = random_id::<32>()?;
    Ok(format!(
        "{PREFIX}{}.{}.{secret}",
        URL_SAFE_NO_PAD.encode(session),
        URL_SAFE_NO_PAD.encode(subject)
    ))
}

/// Reads a refresh token; `None` for anything that is not one (an access token, a
/// truncated or edited one).
pub(crate) fn parse(token: &str) -> Option<RefreshToken> {
    if token.len() > MAX_REFRESH_TOKEN_LEN {
        return None;
    }
    let mut parts = token.strip_prefix(PREFIX)?.split('.');
    let (session, subject, secret) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || URL_SAFE_NO_PAD.decode(secret).ok()?.len() != 32 {
        return None;
    }
    let text = |part: &str| {
        String::from_utf8(URL_SAFE_NO_PAD.decode(part).ok()?)
            .ok()
            .filter(|s| !s.is_empty())
    };
    Some(RefreshToken {
        session: text(session)?,
        subject: text(subject)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_parses_back_and_anything_else_does_not() {
        let token = new_token("s1", "alice").unwrap();
        let parsed = parse(&token).unwrap();
        assert_eq!(
            (parsed.session.as_str(), parsed.subject.as_str()),
            ("s1", "alice")
        );
        assert_ne!(new_token("s1", "alice").unwrap(), token);
        for bad in [
            "",
            "rt1.",
            "rt1.czE.YWxpY2U",
            "eyJhbGciOiJIUzI1NiJ9.e30.sig",
            &token[..token.len() - 1],
            &format!("{token}.x"),
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
        assert!(parse(&"rt1.".repeat(1000)).is_none());
    }
}
