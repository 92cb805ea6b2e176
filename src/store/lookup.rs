//! What one check asks a store ([`RevocationQuery`]) and what it answers ([`Lookup`]),
//! and what the answer means ([`Lookup::revoked_by`]): decided here, once, so that every
//! store refuses alike.

use crate::store::key::RevocationKey;

/// What one request asks a store: is this token, its subject or its session revoked,
/// or is everything issued before some moment?
///
/// A token is revoked under one of two keys: its own ([`token`](Self::token)), which
/// refuses every token with its `(iss, jti)` whatever the subject, or bound to its
/// subject ([`token_for_subject`](Self::token_for_subject)), which refuses that
/// subject's token only. On the built-in stores, [`Revoker`](crate::Revoker) revokes a
/// token that has a `sub` under the second, so that the revocation covers the token
/// revoked and not a token of another subject that an issuer gave the same `jti`; a
/// revocation by key alone
/// ([`RevocationStore::revoke_token`](crate::store::RevocationStore::revoke_token)) covers them
/// all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevocationQuery {
    /// The token's key.
    pub token: RevocationKey,
    /// The key of the token's subject, if it has a `sub`.
    pub subject: Option<RevocationKey>,
    /// The key of the token's session, if it has a `sid`.
    pub session: Option<RevocationKey>,
    /// The token's `iat`, for stores that decide locally whether a watermark covers
    /// it (a mirror that cannot reach Redis still refuses what it knows).
    pub issued_at: Option<u64>,
}

impl RevocationQuery {
    /// The query for a verified token: its key, its subject's and its session's.
    pub fn for_token(token: &crate::VerifiedToken) -> Self {
        Self {
            token: token.revocation_key(),
            subject: token.subject_key(),
            session: token.session_key(),
            issued_at: token.issued_at(),
        }
    }

    /// The token's key bound to its subject's ([`RevocationKey::for_subject`]), if it
    /// has a `sub`: the second key a token is revoked under. Hashed on each call (one
    /// SHA-256 block): a store reads it once per check.
    pub fn token_for_subject(&self) -> Option<RevocationKey> {
        self.subject
            .as_ref()
            .map(|subject| self.token.for_subject(subject))
    }
}

/// A store's answer to a [`RevocationQuery`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lookup {
    /// The token itself is revoked.
    pub token_revoked: bool,
    /// The session is revoked.
    pub session_revoked: bool,
    /// The subject's watermark, if one is live.
    pub subject_watermark: Option<u64>,
    /// The global watermark, if one is live.
    pub global_watermark: Option<u64>,
}

impl Lookup {
    /// What two answers about the same token say together: revoked in either is
    /// revoked (a mirror's copy and Redis, or the two key schemas of an upgrade).
    #[cfg(feature = "redis")]
    pub(crate) fn union(self, other: Lookup) -> Lookup {
        Lookup {
            token_revoked: self.token_revoked || other.token_revoked,
            session_revoked: self.session_revoked || other.session_revoked,
            subject_watermark: self.subject_watermark.max(other.subject_watermark),
            global_watermark: self.global_watermark.max(other.global_watermark),
        }
    }

    /// Why a token issued at `issued_at` is refused, if it is.
    ///
    /// A watermark refuses tokens issued at or before it; a token without `iat`
    /// cannot prove it was issued after, so any live watermark refuses it.
    pub fn revoked_by(&self, issued_at: Option<u64>) -> Option<RevokedBy> {
        let covers = |watermark: Option<u64>| match (watermark, issued_at) {
            (Some(mark), Some(iat)) => iat <= mark,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if self.token_revoked {
            Some(RevokedBy::Token)
        } else if self.session_revoked {
            Some(RevokedBy::Session)
        } else if covers(self.subject_watermark) {
            Some(RevokedBy::Subject)
        } else if covers(self.global_watermark) {
            Some(RevokedBy::All)
        } else {
            None
        }
    }
}

/// Which revocation refused a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RevokedBy {
    /// The token itself was revoked (logout).
    Token,
    /// Its session was revoked.
    Session,
    /// Every token of its subject issued until a moment was revoked (log out
    /// everywhere).
    Subject,
    /// Every token issued until a moment was revoked.
    All,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermarks_refuse_tokens_issued_at_or_before_them() {
        let lookup = Lookup {
            subject_watermark: Some(100),
            ..Lookup::default()
        };
        assert_eq!(lookup.revoked_by(Some(99)), Some(RevokedBy::Subject));
        assert_eq!(lookup.revoked_by(Some(100)), Some(RevokedBy::Subject));
        assert_eq!(lookup.revoked_by(Some(101)), None);
        assert_eq!(lookup.revoked_by(None), Some(RevokedBy::Subject));
    }

    #[test]
    fn nothing_recorded_refuses_nothing() {
        assert_eq!(Lookup::default().revoked_by(None), None);
        let global = Lookup {
            global_watermark: Some(5),
            ..Lookup::default()
        };
        assert_eq!(global.revoked_by(Some(6)), None);
        assert_eq!(global.revoked_by(Some(5)), Some(RevokedBy::All));
    }
}
