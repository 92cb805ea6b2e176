//! Revoking a token by its unverified claims, for operators without its key.

use super::{Revocation, RevokeError, Revoker};
use crate::verify::unverified::UnverifiedToken;

impl Revoker {
    /// Revokes a token named by its **unverified** claims: for an operator who holds a
    /// leaked token but not the key that signed it (the command-line tool's
    /// `revoke token --no-verify`).
    ///
    /// The record lasts as [`revoke`](Self::revoke)'s would, from the token's `exp`
    /// and the verifier's leeway, but never longer than the longest a token this
    /// verifier accepts can live (maximum lifetime plus leeway on both sides): a forged
    /// `exp` far in the future cannot make a record outlive every real token. A token
    /// already expired is a successful no-op.
    pub async fn revoke_unverified(&self, token: &UnverifiedToken) -> Result<Revocation, RevokeError> {
        let Some(ttl) = self.token_ttl(token.expires_at()) else {
            return Ok(Revocation::AlreadyExpired);
        };
        let longest = self
            .verifier
            .watermark_ttl()
            .saturating_add(std::time::Duration::from_secs(self.verifier.leeway_secs()));
        let ttl = ttl.min(longest);
        let key = token.revocation_key();
        let subject = token.subject_key();
        self.bounded("token", self.store.revoke_token_of(&key, subject.as_ref(), ttl))
            .await?;
        tracing::debug!(token = %key, ?ttl, "revoked a token by its unverified claims");
        Ok(Revocation::Recorded { ttl })
    }
}
