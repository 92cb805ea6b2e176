//! Why a [`TokenIssuer`](crate::TokenIssuer) is not built, or a token not minted.

use std::time::Duration;

use crate::sessions::issue::random::RandomError;
use crate::verify::VerifyError;

/// Why a [`TokenIssuer`](crate::TokenIssuer) refused: its configuration would mint
/// tokens its verifier refuses, or this token would be refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// [`TokenIssuerBuilder::signing_key`](crate::TokenIssuerBuilder::signing_key)
    /// was never called.
    #[error("no signing key: call `signing_key` on the builder")]
    NoSigningKey,
    /// The lifetime asked for is zero, or longer than the verifier accepts
    /// ([`JwtVerifierBuilder::max_token_lifetime`](crate::JwtVerifierBuilder::max_token_lifetime)).
    #[error("token lifetime {asked:?} is not within 1 s and the verifier's maximum, {max:?}")]
    Lifetime {
        /// The lifetime asked for.
        asked: Duration,
        /// The longest the verifier accepts.
        max: Duration,
    },
    /// The verifier accepts several issuers and none was chosen, or the one chosen is
    /// not among them.
    #[error("choose the issuer (`iss`) among those the verifier accepts: {accepted:?}")]
    Issuer {
        /// The issuers the verifier accepts.
        accepted: Vec<String>,
    },
    /// The verifier accepts several audiences and none was chosen, or the one chosen
    /// is not among them (a verifier with no audience refuses tokens that carry one).
    #[error("choose the audience (`aud`) among those the verifier accepts: {accepted:?}")]
    Audience {
        /// The audiences the verifier accepts.
        accepted: Vec<String>,
    },
    /// A probe token signed with the key is refused by the verifier: the key is not
    /// the private half of one of its keys, its algorithm or `kid` differ, or the
    /// verifier refuses such tokens for another reason (this one).
    #[error("the verifier refuses tokens this issuer signs: {0}")]
    Refused(#[source] VerifyError),
    /// The subject (`sub`) or the session id (`sid`) is empty.
    #[error("the {0} claim must not be empty")]
    EmptyClaim(&'static str),
    /// The application's own claims name a claim the issuer sets itself (`sub`,
    /// `exp`, `jti`…), or are not a JSON object.
    #[error("the application's claims {0}")]
    Claims(String),
    /// jsonwebtoken could not sign.
    #[error("signing failed")]
    Sign(#[source] jsonwebtoken::errors::Error),
    /// No random identifier could be made.
    #[error(transparent)]
    Random(#[from] RandomError),
}
