//! [`TokenIssuerBuilder`]: the few settings a [`TokenIssuer`] takes beyond its
//! verifier's, each checked against it.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::Header;

use super::{IssueError, IssuerInner, SigningKey, TokenIssuer};
use crate::verify::{JwtVerifier, SessionClaim};

/// How long access tokens live unless configured, at most the verifier's maximum: 15
/// minutes (short: a refresh costs a store write, a long-lived leaked token costs more).
pub const DEFAULT_ACCESS_TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// Builds a [`TokenIssuer`]; see [`TokenIssuer::builder`].
#[derive(Debug)]
#[must_use]
pub struct TokenIssuerBuilder {
    verifier: JwtVerifier,
    key: Option<SigningKey>,
    lifetime: Option<Duration>,
    issuer: Option<String>,
    audience: Option<String>,
}

impl TokenIssuerBuilder {
    pub(super) fn new(verifier: &JwtVerifier) -> Self {
        Self {
            verifier: verifier.clone(),
            key: None,
            lifetime: None,
            issuer: None,
            audience: None,
        }
    }

    /// The key tokens are signed with (required).
    pub fn signing_key(mut self, key: SigningKey) -> Self {
        self.key = Some(key);
        self
    }

    /// How long each token lives (`exp - iat`): at least a second, at most the
    /// verifier's [`max_token_lifetime`](crate::JwtVerifierBuilder::max_token_lifetime);
    /// by default [`DEFAULT_ACCESS_TOKEN_LIFETIME`] or that maximum, whichever is
    /// shorter. Rounded up to whole seconds.
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = Some(lifetime);
        self
    }

    /// The `iss` tokens carry, among those the verifier accepts; needed only when it
    /// accepts several (with exactly one, that one is used).
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// The `aud` tokens carry, among those the verifier accepts; needed only when it
    /// accepts several (with exactly one, that one is used; with none, tokens carry
    /// no `aud`, as the verifier requires).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// Builds the issuer, after signing a probe token and having the verifier accept
    /// it: a key that is not the private half of one of the verifier's keys (or has
    /// another algorithm or `kid`) is [`IssueError::Refused`] here, not at the first
    /// sign-in.
    pub fn build(self) -> Result<TokenIssuer, IssueError> {
        let key = self.key.ok_or(IssueError::NoSigningKey)?;
        let max_secs = self.verifier.max_token_lifetime_secs();
        let max = Duration::from_secs(max_secs);
        let asked = self
            .lifetime
            .unwrap_or_else(|| DEFAULT_ACCESS_TOKEN_LIFETIME.min(max));
        // Rounded up as the verifier rounds its maximum: never shorter than asked.
        let lifetime_secs = asked.as_secs() + u64::from(asked.subsec_nanos() > 0);
        if lifetime_secs == 0 || lifetime_secs > max_secs {
            return Err(IssueError::Lifetime { asked, max });
        }
        let issuer = chosen(self.issuer, self.verifier.issuers(), true)
            .map_err(|accepted| IssueError::Issuer { accepted })?;
        let audience = chosen(self.audience, self.verifier.audiences(), false)
            .map_err(|accepted| IssueError::Audience { accepted })?;
        let mut header = Header::new(key.algorithm);
        header.kid = key.kid.clone();
        header.typ = Some(self.verifier.required_type().unwrap_or("JWT").to_owned());
        let session_claim = match self.verifier.session_claim() {
            SessionClaim::SessionState => "session_state",
            _ => "sid",
        };
        let issuer = TokenIssuer {
            inner: Arc::new(IssuerInner {
                verifier: self.verifier,
                key,
                header,
                lifetime_secs,
                issuer,
                audience,
                session_claim,
            }),
        };
        issuer.issue("probe", "probe")?;
        Ok(issuer)
    }
}

/// The value to put in a claim the verifier checks against `accepted`: the one chosen
/// if accepted, else the only one accepted; `Err(accepted)` otherwise. With nothing
/// accepted, the claim is left out, unless `free_when_unchecked` (the verifier then
/// does not look at it: `iss` is free, but a token with `aud` is refused).
fn chosen(
    chosen: Option<String>,
    accepted: &[String],
    free_when_unchecked: bool,
) -> Result<Option<String>, Vec<String>> {
    match (chosen, accepted) {
        (None, []) => Ok(None),
        (Some(chosen), []) if free_when_unchecked => Ok(Some(chosen)),
        (None, [only]) => Ok(Some(only.clone())),
        (Some(chosen), accepted) if accepted.contains(&chosen) => Ok(Some(chosen)),
        _ => Err(accepted.to_vec()),
    }
}
