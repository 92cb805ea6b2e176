//! What the crate reports through the `metrics` facade (feature `metrics`): the
//! application picks the exporter (Prometheus, StatsD...), and without a recorder the
//! calls cost an atomic load each.
//!
//! | metric                                        | type      | labels                         |
//! |-----------------------------------------------|-----------|--------------------------------|
//! | `tower_jwt_revoke_checks_total`               | counter   | `outcome`, `reason`            |
//! | `tower_jwt_revoke_store_lookup_seconds`       | histogram | `store`                        |
//! | `tower_jwt_revoke_store_errors_total`         | counter   | `store`, `kind`                |
//! | `tower_jwt_revoke_revocations_total`          | counter   | `scope`, `result`              |
//! | `tower_jwt_revoke_data_loss_total`            | counter   | `store`                        |
//! | `tower_jwt_revoke_written_back_total`         | counter   |                                |
//!
//! - `outcome`: `allowed`, `refused`, `failed_open`; `reason`: `none`, `anonymous`, `missing_token`,
//!   `malformed_request`, `invalid_token`, `keys_unavailable`, `key_refresh_pending`
//!   (a `kid` the keys lack while a fetch of the provider's keys waits for its rate
//!   limit: answered 503, and likely a key rotation, or made-up `kid`s), `revoked_token`,
//!   `revoked_session`, `revoked_subject`, `revoked_all`, `store_unavailable`.
//! - `store`: `memory`, `redis`, `mirror`, or `custom`; `kind`: `error`, `timeout`.
//! - `scope`: `token`, `session`, `subject`, `all`; `result`: `recorded`,
//!   `already_expired`, `unacknowledged` (recorded, but not confirmed by the replicas or
//!   the append-only file in time), `failed`.
//! - `data_loss_total`: each time a store noticed Redis lose revocations (`store`:
//!   `redis` from the epoch markers, `mirror` from a change feed going backwards);
//!   `written_back_total`: records mirrors wrote back into Redis after one.
//!
//! The lookup histogram covers the checks that wait for a store (Redis, a mirror
//! falling back to it); checks answered in-process are not timed, so they stay free of
//! clock reads. No label ever carries a token, subject or session.

use std::time::Duration;

use tracing::Span;

use crate::layer::reject::Rejection;
use crate::store::RevokedBy;
use crate::verify::VerifyError;

/// How a check ended, for the `checks_total` counter and the request's span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Allowed,
    /// No token, on a layer that lets anonymous requests through.
    Anonymous,
    FailedOpen,
    Refused(&'static str),
}

impl Outcome {
    pub(crate) fn refused(rejection: &Rejection) -> Self {
        Self::Refused(match rejection {
            Rejection::MissingToken => "missing_token",
            Rejection::MalformedRequest(_) => "malformed_request",
            Rejection::InvalidToken(VerifyError::KeyRefreshPending { .. }) => "key_refresh_pending",
            Rejection::InvalidToken(error) if error.is_server_side() => "keys_unavailable",
            Rejection::InvalidToken(_) => "invalid_token",
            Rejection::Revoked(RevokedBy::Token) => "revoked_token",
            Rejection::Revoked(RevokedBy::Session) => "revoked_session",
            Rejection::Revoked(RevokedBy::Subject) => "revoked_subject",
            Rejection::Revoked(_) => "revoked_all",
            Rejection::StoreUnavailable => "store_unavailable",
        })
    }

    fn labels(self) -> (&'static str, &'static str) {
        match self {
            Self::Allowed => ("allowed", "none"),
            Self::Anonymous => ("allowed", "anonymous"),
            Self::FailedOpen => ("failed_open", "store_unavailable"),
            Self::Refused(reason) => ("refused", reason),
        }
    }
}

/// Counts a finished check and notes it on the request's span.
pub(crate) fn check(span: &Span, outcome: Outcome) {
    let (outcome, reason) = outcome.labels();
    span.record("outcome", outcome);
    span.record("reason", reason);
    #[cfg(feature = "metrics")]
    metrics::counter!("tower_jwt_revoke_checks_total", "outcome" => outcome, "reason" => reason).increment(1);
}

/// Times a store lookup that answered.
pub(crate) fn lookup(span: &Span, store: &'static str, took: Duration) {
    span.record(
        "store_latency_us",
        u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
    );
    #[cfg(feature = "metrics")]
    metrics::histogram!("tower_jwt_revoke_store_lookup_seconds", "store" => store).record(took.as_secs_f64());
    #[cfg(not(feature = "metrics"))]
    let _ = store;
}

/// Counts a store failure (`kind`: `error` or `timeout`).
pub(crate) fn store_error(store: &'static str, kind: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("tower_jwt_revoke_store_errors_total", "store" => store, "kind" => kind).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = (store, kind);
}

/// Counts a revocation written (or attempted) through a `Revoker`.
pub(crate) fn revocation(scope: &'static str, result: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("tower_jwt_revoke_revocations_total", "scope" => scope, "result" => result)
        .increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = (scope, result);
}

/// Counts a loss of data noticed in Redis (`store`: who noticed).
#[cfg(feature = "redis")]
pub(crate) fn data_loss(store: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("tower_jwt_revoke_data_loss_total", "store" => store).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = store;
}

/// Counts records a mirror wrote back into Redis after a loss.
#[cfg(feature = "redis")]
pub(crate) fn written_back(records: u64) {
    #[cfg(feature = "metrics")]
    metrics::counter!("tower_jwt_revoke_written_back_total").increment(records);
    #[cfg(not(feature = "metrics"))]
    let _ = records;
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    // A new key the keys lack yet (or made-up kids) must show apart from forged or
    // expired tokens on a dashboard: it is a 503 the client retries.
    #[test]
    fn a_pending_key_refresh_has_a_reason_of_its_own() {
        let pending = Rejection::InvalidToken(VerifyError::KeyRefreshPending {
            retry_after: Duration::from_secs(3),
        });
        assert_eq!(
            Outcome::refused(&pending),
            Outcome::Refused("key_refresh_pending")
        );
        assert_eq!(
            Outcome::refused(&Rejection::InvalidToken(VerifyError::UnknownKey)),
            Outcome::Refused("invalid_token")
        );
        assert_eq!(
            Outcome::refused(&Rejection::InvalidToken(VerifyError::KeysUnavailable)),
            Outcome::Refused("keys_unavailable")
        );
    }
}
