//! What a store says of its own state ([`StoreHealth`]): for readiness probes and
//! dashboards.

/// What a store says of its own state, for readiness probes and dashboards.
///
/// It serializes to the JSON [`crate::health`] answers with. No field carries a key,
/// a token or a subject.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct StoreHealth {
    /// `memory`, `redis`, `mirror`, or `custom`.
    pub store: &'static str,
    /// Whether checks can be answered now (a fail-closed layer answers 503 otherwise).
    pub ready: bool,
    /// Whether the backend answered (Redis's `PING`); `None` when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reachable: Option<bool>,
    /// A mirror: loaded and following the feed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_sync: Option<bool>,
    /// A mirror: milliseconds since it last heard from Redis.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag_ms: Option<u64>,
    /// Entries held locally (memory, mirror), expired ones not yet reclaimed included.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entries: Option<usize>,
    /// Why it is not ready, when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Redis: how many times the store noticed Redis lose revocations since it started
    /// (see `RedisStore::data_loss`); absent while it never has.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_losses: Option<u64>,
    /// A mirror: how many revocations it wrote back into Redis after a loss; absent
    /// while it never has.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub written_back: Option<u64>,
}

impl StoreHealth {
    /// A ready store with nothing more to say.
    pub fn ready(store: &'static str) -> Self {
        Self {
            store,
            ready: true,
            reachable: None,
            in_sync: None,
            lag_ms: None,
            entries: None,
            detail: None,
            data_losses: None,
            written_back: None,
        }
    }

    /// A store that cannot answer checks now, and why.
    pub fn not_ready(store: &'static str, detail: impl Into<String>) -> Self {
        Self {
            ready: false,
            detail: Some(detail.into()),
            ..Self::ready(store)
        }
    }
}
