//! One change-feed event, and how a record lands in the local copy.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::key::RevocationKey;
use crate::store::RevocationStore;
use crate::store::memory::InMemoryStore;
use crate::store::redis::Kind;

/// Records one revocation in the local copy. Idempotent: markers keep the longest
/// TTL, watermarks the highest value.
pub(super) async fn apply(
    local: &InMemoryStore,
    kind: Kind,
    hash: &RevocationKey,
    value: &str,
    ttl: Duration,
) {
    if ttl.is_zero() {
        return;
    }
    // The in-memory store never fails.
    let _ = match kind {
        Kind::Token => local.revoke_token(hash, ttl).await,
        Kind::Session => local.revoke_session(hash, ttl).await,
        Kind::Subject | Kind::Global => {
            let Ok(mark) = value.parse::<u64>() else {
                tracing::warn!(
                    kind = kind.code(),
                    "a watermark in Redis is not a number; ignored"
                );
                return;
            };
            if kind == Kind::Subject {
                local.raise_subject_watermark(hash, mark, ttl).await
            } else {
                local.raise_global_watermark(mark, ttl).await
            }
        }
    };
}

/// A feed entry as `XREAD` returns it: its id and its field/value list.
pub(super) type FeedEntry = (String, Vec<String>);

/// One change-feed event.
pub(super) struct Event {
    pub(super) seq: u64,
    pub(super) kind: Kind,
    pub(super) hash: RevocationKey,
    pub(super) value: String,
    pub(super) expires_ms: u64,
}

impl Event {
    pub(super) fn parse(fields: &[String]) -> Option<Self> {
        let field = |name: &str| {
            fields
                .chunks_exact(2)
                .find(|pair| pair[0] == name)
                .map(|pair| pair[1].as_str())
        };
        let kind = Kind::from_code(field("kind")?)?;
        let hash = match kind {
            Kind::Global => RevocationKey::ZERO,
            _ => RevocationKey::from_hex(field("hash")?)?,
        };
        Some(Self {
            seq: field("seq")?.parse().ok()?,
            kind,
            hash,
            value: field("value")?.to_owned(),
            expires_ms: field("expires_ms")?.parse().ok()?,
        })
    }

    pub(super) fn remaining(&self) -> Option<Duration> {
        let now_ms = u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_millis()).ok()?;
        let left = self.expires_ms.checked_sub(now_ms)?;
        (left > 0).then(|| Duration::from_millis(left))
    }
}
