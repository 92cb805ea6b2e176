//! [`JwksBuilder`]: how keys are fetched and refreshed; the settings it shares with
//! [`OidcIssuerBuilder`](super::OidcIssuerBuilder).

use std::time::Duration;

use super::error::JwksError;
use super::source::{Jwks, Source};

/// Refresh interval when the provider's answer says nothing about caching: 5 minutes.
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// The shortest refresh interval a `Cache-Control: max-age` may ask for: 1 minute.
pub const DEFAULT_MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(60);
/// The longest refresh interval a `Cache-Control: max-age` may ask for: 24 hours.
pub const DEFAULT_MAX_REFRESH_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);
/// The least time between two fetches caused by tokens naming an unknown `kid`: 10 s.
pub const DEFAULT_UNKNOWN_KID_INTERVAL: Duration = Duration::from_secs(10);
/// How long one HTTP request may take, from connecting to the last byte: 5 s.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// The first retry after a failed fetch comes this soon (1 s), then twice as late each
/// time...
pub const DEFAULT_RETRY_INITIAL: Duration = Duration::from_secs(1);
/// ...up to this (1 minute).
pub const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(60);

/// What building keys does when the first fetch fails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum StartMode {
    /// Building fails with the fetch's error (the default): a service that cannot
    /// verify tokens does not start, and the deployment says why.
    #[default]
    Fail,
    /// Building succeeds at once with no keys, and the first fetch runs in the
    /// background, retried with backoff until it succeeds. Meanwhile tokens are
    /// answered **503** ("signing keys unavailable"), never 401: the client did
    /// nothing wrong. For services that must start while the provider is down.
    Degraded,
}

/// The settings of a key source, shared by both builders.
#[derive(Debug, Clone)]
pub(super) struct Settings {
    pub(super) refresh_interval: Duration,
    pub(super) min_refresh_interval: Duration,
    pub(super) max_refresh_interval: Duration,
    pub(super) unknown_kid_interval: Duration,
    pub(super) timeout: Duration,
    pub(super) retry_initial: Duration,
    pub(super) retry_max: Duration,
    pub(super) start_mode: StartMode,
    pub(super) max_key_age: Option<Duration>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            refresh_interval: DEFAULT_REFRESH_INTERVAL,
            min_refresh_interval: DEFAULT_MIN_REFRESH_INTERVAL,
            max_refresh_interval: DEFAULT_MAX_REFRESH_INTERVAL,
            unknown_kid_interval: DEFAULT_UNKNOWN_KID_INTERVAL,
            timeout: DEFAULT_TIMEOUT,
            retry_initial: DEFAULT_RETRY_INITIAL,
            retry_max: DEFAULT_RETRY_MAX,
            start_mode: StartMode::Fail,
            max_key_age: None,
        }
    }
}

impl Settings {
    /// How long keys fetched with this `max-age` are used before the next refresh.
    pub(super) fn refresh_after(&self, max_age: Option<Duration>) -> Duration {
        match max_age {
            // `max` first: a minimum configured above the maximum wins.
            Some(age) => age.min(self.max_refresh_interval).max(self.min_refresh_interval),
            None => self.refresh_interval,
        }
    }

    /// How long to wait before retrying after `failures` fetches in a row failed.
    pub(super) fn retry_after(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(16);
        self.retry_initial
            .saturating_mul(1 << doublings)
            .min(self.retry_max)
    }
}

/// The setters both builders share, written once so their docs cannot drift apart.
macro_rules! settings_setters {
    () => {
        /// How often keys are fetched again when the provider's answer carries no
        /// `Cache-Control: max-age` (default
        /// [`DEFAULT_REFRESH_INTERVAL`](crate::jwks::DEFAULT_REFRESH_INTERVAL), 5 min).
        pub fn refresh_interval(mut self, interval: std::time::Duration) -> Self {
            self.settings.refresh_interval = interval;
            self
        }

        /// The bounds put on a `Cache-Control: max-age` before it is used as the
        /// refresh interval (default 1 min to 24 h): a provider asking for a refresh
        /// every second, or once a year, gets one of these instead. `no-cache` and
        /// `no-store` count as a `max-age` of zero, so they mean the minimum.
        pub fn max_age_bounds(mut self, min: std::time::Duration, max: std::time::Duration) -> Self {
            self.settings.min_refresh_interval = min;
            self.settings.max_refresh_interval = max;
            self
        }

        /// The least time between two fetches caused by tokens naming a `kid` the
        /// current keys lack (default
        /// [`DEFAULT_UNKNOWN_KID_INTERVAL`](crate::jwks::DEFAULT_UNKNOWN_KID_INTERVAL), 10 s).
        ///
        /// Such a token is the first sign of a key rotation, so it triggers a fetch
        /// and is accepted on first sight if the provider has published its key.
        /// Anyone can send tokens with made-up `kid`s, though: however many arrive,
        /// they cause at most one fetch per interval (and keys named by known `kid`s
        /// verify as ever). Requests arriving while that fetch runs wait for it.
        /// A token whose `kid` is unknown while the interval allows no fetch is
        /// answered **503** with a `Retry-After` of the time left, and a fetch is
        /// made by itself then: a client that retries after it gets its answer from
        /// the keys fetched then (200 if the provider published its key, else 401).
        pub fn unknown_kid_interval(mut self, interval: std::time::Duration) -> Self {
            self.settings.unknown_kid_interval = interval;
            self
        }

        /// How long one HTTP request may take, from connecting to the last byte of
        /// the body (default [`DEFAULT_TIMEOUT`](crate::jwks::DEFAULT_TIMEOUT), 5 s).
        /// A request waiting for an unknown-`kid` fetch waits at most this long.
        pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
            self.settings.timeout = timeout;
            self
        }

        /// Backoff after failed fetches: the first retry comes after `initial`, each
        /// next one twice as late, up to `max` (default 1 s to 1 min, with up to 10 %
        /// random jitter so that replicas do not retry in step).
        pub fn retry_backoff(mut self, initial: std::time::Duration, max: std::time::Duration) -> Self {
            self.settings.retry_initial = initial;
            self.settings.retry_max = max;
            self
        }

        /// How long the last keys fetched are trusted while fetches fail (default: for
        /// ever). Past it, the keys are withdrawn and every token is answered **503**
        /// (`Retry-After`, "signing keys unavailable") until a fetch succeeds; the
        /// log says so at error level and [`JwksHealth::expired`](crate::jwks::JwksHealth::expired)
        /// turns true.
        ///
        /// The trade-off: without it, a provider that cannot be reached leaves the
        /// service up, verifying with the keys it last saw, for as long as the outage
        /// lasts, and so a key the provider withdrew (compromised, rotated out) in
        /// the meantime stays trusted. With it, tokens signed with a withdrawn key are
        /// refused at most this long after the last successful fetch, but an outage of
        /// the provider longer than this takes the service down with it. Pick it
        /// well above the refresh interval plus the outages to ride out (hours, not
        /// minutes).
        pub fn max_key_age(mut self, age: std::time::Duration) -> Self {
            self.settings.max_key_age = Some(age);
            self
        }

        /// What building does when the first fetch fails (default
        /// [`StartMode::Fail`](crate::jwks::StartMode::Fail)).
        pub fn start_mode(mut self, mode: crate::jwks::StartMode) -> Self {
            self.settings.start_mode = mode;
            self
        }
    };
}
pub(super) use settings_setters;

/// Configures and builds a [`Jwks`]; see [`Jwks::builder`].
///
/// ```no_run
/// use std::time::Duration;
/// use tower_jwt_revoke::jwks::{Jwks, StartMode};
///
/// # async fn run() -> Result<(), tower_jwt_revoke::jwks::JwksError> {
/// let jwks = Jwks::builder("https://idp.example/.well-known/jwks.json")
///     .refresh_interval(Duration::from_secs(600))
///     .unknown_kid_interval(Duration::from_secs(30))
///     .timeout(Duration::from_secs(3))
///     .start_mode(StartMode::Degraded)
///     .build()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
#[must_use]
pub struct JwksBuilder {
    url: String,
    settings: Settings,
}

impl std::fmt::Debug for JwksBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A builder may well be logged; a password in its URL must not be.
        f.debug_struct("JwksBuilder")
            .field("url", &super::fetch::redact_text(&self.url))
            .field("settings", &self.settings)
            .finish()
    }
}

impl JwksBuilder {
    pub(super) fn new(url: String) -> Self {
        Self {
            url,
            settings: Settings::default(),
        }
    }

    settings_setters!();

    /// Checks the URL, fetches the keys once (with [`StartMode::Fail`], the default)
    /// and starts the background refresh.
    ///
    /// Must run inside a Tokio runtime (with its time driver), which the background
    /// task runs on; it stops by itself once the [`Jwks`], and every [`KeyRing`](crate::KeyRing)
    /// and verifier holding its keys, are dropped.
    ///
    /// # Errors
    ///
    /// [`JwksError::InvalidUrl`] for a URL that is neither `https://` nor `http://`
    /// to a loopback host; with [`StartMode::Fail`], the first fetch's error.
    pub async fn build(self) -> Result<Jwks, JwksError> {
        let url = super::fetch::parse_url(&self.url)?;
        Jwks::start(Source::Url(url), self.settings).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_bounded_and_backoff_doubles() {
        let settings = Settings::default();
        let secs = Duration::from_secs;
        assert_eq!(settings.refresh_after(None), DEFAULT_REFRESH_INTERVAL);
        assert_eq!(settings.refresh_after(Some(secs(1))), secs(60));
        assert_eq!(settings.refresh_after(Some(secs(600))), secs(600));
        assert_eq!(settings.refresh_after(Some(secs(u64::MAX))), secs(24 * 3600));
        assert_eq!(settings.retry_after(1), secs(1));
        assert_eq!(settings.retry_after(2), secs(2));
        assert_eq!(settings.retry_after(4), secs(8));
        assert_eq!(settings.retry_after(u32::MAX), secs(60));
    }
}
