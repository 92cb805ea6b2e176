//! [`JwksHealth`]: how a key source is doing, and the bookkeeping (and logging) of
//! each fetch's outcome behind it.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::error::JwksError;
use crate::SkippedKey;

/// A snapshot of a key source's state, for readiness probes and dashboards; see
/// [`Jwks::health`](super::Jwks::health).
///
/// A source that failed to refresh keeps verifying with the last keys it fetched:
/// `loaded` stays true while `consecutive_failures` counts up.
///
/// ```no_run
/// # async fn run(jwks: tower_jwt_revoke::jwks::Jwks) {
/// let health = jwks.health();
/// if !health.loaded {
///     // Every token is answered 503 until the first fetch succeeds.
/// } else if health.consecutive_failures > 0 {
///     // Serving the last good keys; the provider is unreachable.
///     eprintln!("keys stale since {:?}: {:?}", health.last_success, health.last_error);
/// }
/// # }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct JwksHealth {
    /// Whether keys were ever fetched: without them every token is answered 503.
    pub loaded: bool,
    /// How many keys are in use.
    pub key_count: usize,
    /// How many keys of the last document fetched were skipped as unusable.
    pub skipped_keys: usize,
    /// When keys were last fetched successfully.
    pub last_success: Option<SystemTime>,
    /// When the last fetch, successful or not, ended.
    pub last_attempt: Option<SystemTime>,
    /// The error of the last failed fetch, with its causes; kept after a recovery
    /// (then `consecutive_failures` is 0).
    pub last_error: Option<String>,
    /// How many fetches in a row failed; 0 once one succeeds.
    pub consecutive_failures: u32,
    /// Whether the last good keys were withdrawn for being older than the
    /// [maximum key age](super::JwksBuilder::max_key_age): every token is answered 503
    /// until a fetch succeeds.
    pub expired: bool,
}

impl JwksHealth {
    /// Whether the keys in use are those of the last fetch: loaded, and no fetch has
    /// failed since.
    pub fn is_current(&self) -> bool {
        self.loaded && self.consecutive_failures == 0 && !self.expired
    }
}

/// What a key source remembers between fetches.
pub(super) struct State {
    pub(super) health: JwksHealth,
    /// When the last fetch caused by an unknown `kid` started (the rate limit).
    pub(super) last_unknown_kid_fetch: Option<Instant>,
    /// When the fetch scheduled for tokens refused by that rate limit runs, if one is.
    pub(super) scheduled_fetch: Option<Instant>,
    /// When the last successful fetch started: a token issued before it names no key
    /// the provider published later.
    pub(super) last_success_started: Option<SystemTime>,
    /// The skipped keys already warned about, as (kid, reason), so that a provider
    /// publishing an encryption key beside its signing keys (Keycloak does) is
    /// reported once, not at every refresh.
    warned_skipped: HashSet<(Option<String>, String)>,
}

impl State {
    pub(super) fn new() -> Self {
        Self {
            health: JwksHealth::default(),
            last_unknown_kid_fetch: None,
            scheduled_fetch: None,
            last_success_started: None,
            warned_skipped: HashSet::new(),
        }
    }

    /// Whether the last document fetched had a key with this `kid` that cannot be
    /// used here (so a token naming it is refused, however fresh the keys).
    pub(super) fn skipped(&self, kid: &str) -> bool {
        self.warned_skipped
            .iter()
            .any(|(skipped, _)| skipped.as_deref() == Some(kid))
    }

    /// Logs the keys a document had that cannot be used: at warn the first time each
    /// is seen, at debug afterwards.
    pub(super) fn report_skipped(&mut self, url: &str, skipped: &[SkippedKey]) {
        let mut seen = HashSet::with_capacity(skipped.len());
        for key in skipped {
            let reason = key.reason.to_string();
            let kid = key.kid.as_deref().unwrap_or("<none>");
            let entry = (key.kid.clone(), reason);
            if self.warned_skipped.contains(&entry) {
                tracing::debug!(%url, kid, reason = %entry.1, "JWKS key skipped again");
            } else {
                tracing::warn!(%url, kid, reason = %entry.1, "JWKS key skipped: it cannot verify tokens here");
            }
            seen.insert(entry);
        }
        // A key that leaves the document and comes back is warned about again.
        self.warned_skipped = seen;
        self.health.skipped_keys = skipped.len();
    }

    pub(super) fn record_success(&mut self, url: &str, key_count: usize, next_in: Duration) {
        let now = SystemTime::now();
        let health = &mut self.health;
        if !health.loaded {
            tracing::info!(%url, keys = key_count, "JWKS loaded");
        } else if health.expired {
            tracing::warn!(%url, keys = key_count, "JWKS fetched again: tokens are verified again");
        } else if health.consecutive_failures > 0 {
            tracing::info!(
                %url,
                keys = key_count,
                failures = health.consecutive_failures,
                "JWKS fetched again: the provider is reachable"
            );
        } else {
            tracing::debug!(%url, keys = key_count, next_in = ?next_in, "JWKS refreshed");
        }
        health.loaded = true;
        health.key_count = key_count;
        health.last_success = Some(now);
        health.last_attempt = Some(now);
        health.consecutive_failures = 0;
        health.expired = false;
    }

    /// Records that the keys were withdrawn, `max_age` after the last success.
    pub(super) fn record_expiry(&mut self, url: &str, max_age: Duration) {
        let health = &mut self.health;
        health.expired = true;
        health.key_count = 0;
        tracing::error!(
            %url,
            ?max_age,
            failures = health.consecutive_failures,
            last_error = health.last_error.as_deref().unwrap_or("none"),
            "JWKS keys withdrawn: no fetch succeeded within the maximum key age; every token is answered 503 until one does"
        );
    }

    /// Records a failed fetch; returns how many failed in a row.
    pub(super) fn record_failure(&mut self, url: &str, error: &JwksError) -> u32 {
        let health = &mut self.health;
        health.consecutive_failures = health.consecutive_failures.saturating_add(1);
        health.last_attempt = Some(SystemTime::now());
        let text = error.chain();
        if health.loaded {
            tracing::warn!(
                %url,
                error = %text,
                failures = health.consecutive_failures,
                keys = health.key_count,
                "JWKS refresh failed; verifying with the last good keys"
            );
        } else {
            tracing::warn!(
                %url,
                error = %text,
                failures = health.consecutive_failures,
                "JWKS fetch failed; no keys loaded yet"
            );
        }
        health.last_error = Some(text);
        health.consecutive_failures
    }
}
