//! Why a refresh, a sign-in or a logout failed, and the answer that fits.

use std::time::Duration;

use http::StatusCode;

use crate::revoke::RevokeError;
use crate::sessions::issue::IssueError;
use crate::store::StoreError;

/// Why a refresh token was refused: every one of them is the client's (401).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RefreshRefusal {
    /// Not a refresh token (an access token, say, or a truncated one).
    #[error("not a refresh token")]
    Malformed,
    /// A token no family issued (unknown, tampered, or its family is gone).
    #[error("unknown refresh token")]
    Unknown,
    /// Its family outlived its absolute lifetime or went idle too long.
    #[error("refresh token expired")]
    Expired,
    /// Its family was ended by a logout.
    #[error("the session of this refresh token has ended")]
    Ended,
}

/// Why [`Sessions`](crate::sessions::refresh::Sessions) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The refresh token is refused; nothing changed.
    #[error(transparent)]
    Refused(RefreshRefusal),
    /// The refresh token was used before: someone else holds a copy. Its family is
    /// ended and its session revoked, so the access tokens already out are refused
    /// too; the user signs in again.
    #[error("refresh token reused: the session has ended")]
    Reused,
    /// The refresh store failed; nothing is known to have changed. 503.
    #[error(transparent)]
    Store(StoreError),
    /// Recording a revocation failed (see [`RevokeError`]).
    #[error(transparent)]
    Revoke(RevokeError),
    /// No access token could be minted (see [`IssueError`]): the server's fault.
    #[error(transparent)]
    Issue(IssueError),
    /// The application's own claims given at sign-in take more than
    /// [`MAX_FAMILY_CLAIMS_LEN`](crate::refresh::MAX_FAMILY_CLAIMS_LEN) bytes as JSON;
    /// nothing was started. The server's fault (500): keep claims to what every access
    /// token needs.
    #[error("the sign-in's claims take {len} bytes as JSON, more than the {max} a refresh family keeps")]
    ClaimsTooLarge {
        /// Their length as JSON.
        len: usize,
        /// The most a family keeps.
        max: usize,
    },
}

impl From<StoreError> for SessionError {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

impl From<RevokeError> for SessionError {
    fn from(error: RevokeError) -> Self {
        Self::Revoke(error)
    }
}

impl From<IssueError> for SessionError {
    fn from(error: IssueError) -> Self {
        Self::Issue(error)
    }
}

impl SessionError {
    /// The HTTP status that fits: 401 for a refused or reused refresh token, 503 for a
    /// store failure (retry), 500 for a token that could not be minted.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Refused(_) | Self::Reused => StatusCode::UNAUTHORIZED,
            Self::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Revoke(error) => error.status(),
            Self::Issue(_) | Self::ClaimsTooLarge { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// When to try again, for the errors answered 503.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Store(_) => Some(Duration::from_secs(1)),
            Self::Revoke(error) => error.retry_after(),
            _ => None,
        }
    }
}
