//! One change-feed event, and how a record lands in the local copy.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::store::key::RevocationKey;
use crate::store::memory::{InMemoryStore, Tag, Writes};
use crate::store::mirror::ledger::Ledger;
use crate::store::redis::Kind;

/// Records one revocation in the local copy, as `writes` (`value` as Redis holds it:
/// `1` for a marker, else the watermark). Idempotent: markers keep the longest TTL,
/// watermarks the highest value.
pub(crate) fn apply(writes: &Writes<'_>, kind: Kind, hash: &RevocationKey, value: &str, ttl: Duration) {
    match kind {
        Kind::Token | Kind::Session => apply_mark(writes, Tag::NONE, kind, hash, 1, ttl),
        Kind::Subject | Kind::Global => match value.parse::<u64>() {
            Ok(mark) => apply_mark(writes, Tag::NONE, kind, hash, mark, ttl),
            Err(_) => tracing::warn!(
                kind = kind.code(),
                "a watermark in Redis is not a number; ignored"
            ),
        },
    }
}

/// [`apply`], the value read already (ignored for a marker), the record tagged `tag`
/// (its kind and bucket, for write-back; kept by a copy of full records only).
pub(crate) fn apply_mark(
    writes: &Writes<'_>,
    tag: Tag,
    kind: Kind,
    hash: &RevocationKey,
    mark: u64,
    ttl: Duration,
) {
    if ttl.is_zero() {
        return;
    }
    match kind {
        Kind::Token | Kind::Session => writes.mark_as(tag, hash, ttl),
        Kind::Subject => writes.raise_subject_as(tag, hash, mark, ttl),
        Kind::Global => writes.raise_global_as(tag, mark, ttl),
    }
}

/// A feed entry as `XREAD` returns it: its id and its field/value list.
pub(crate) type FeedEntry = (String, Vec<String>);

/// The `kind` of an event that removes a marker (an operator's `unrevoke`); its
/// `value` is the kind of the marker removed, `t` or `x`.
const DELETE: &str = "del";

/// One change-feed event.
pub(crate) struct Event {
    pub(crate) seq: u64,
    pub(crate) kind: Kind,
    pub(crate) hash: RevocationKey,
    pub(crate) value: String,
    pub(crate) expires_ms: u64,
    /// A `del` event: the marker of `kind` under `hash` was removed.
    pub(crate) deleted: bool,
}

impl Event {
    pub(crate) fn parse(fields: &[String]) -> Option<Self> {
        let field = |name: &str| {
            fields
                .chunks_exact(2)
                .find(|pair| pair[0] == name)
                .map(|pair| pair[1].as_str())
        };
        let (kind, deleted) = match field("kind")? {
            // Only markers are ever removed; anything else is malformed (a reload).
            DELETE => match Kind::from_code(field("value")?)? {
                kind @ (Kind::Token | Kind::Session) => (kind, true),
                Kind::Subject | Kind::Global => return None,
            },
            code => (Kind::from_code(code)?, false),
        };
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
            deleted,
        })
    }

    /// Applies the event to the local copy: records a revocation still live, or
    /// forgets a removed marker.
    pub(crate) fn apply_to(&self, local: &InMemoryStore) {
        if self.deleted {
            local.forget_marker(&self.hash);
        } else if let Some(ttl) = self.remaining() {
            apply(&local.writes(), self.kind, &self.hash, &self.value, ttl);
        }
    }

    /// Notes the event in the ledger (write-back): the record in `bucket`, or its
    /// removal.
    pub(crate) fn note_in(&self, ledger: &Ledger, bucket: u32) {
        if self.deleted {
            ledger.forget(bucket, self.kind, self.hash);
        } else if let Ok(value) = self.value.parse::<u64>() {
            ledger.record(bucket, self.kind, self.hash, value, self.expires_ms);
        }
    }

    pub(crate) fn remaining(&self) -> Option<Duration> {
        let now_ms = u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_millis()).ok()?;
        let left = self.expires_ms.checked_sub(now_ms)?;
        (left > 0).then(|| Duration::from_millis(left))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::RevocationQuery;

    fn fields(kind: &str, hash: &RevocationKey, value: &str) -> Vec<String> {
        let expires_ms = (SystemTime::now() + Duration::from_secs(60))
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis();
        [
            ("seq", "7".to_owned()),
            ("kind", kind.into()),
            ("hash", hash.to_string()),
        ]
        .into_iter()
        .chain([("value", value.into()), ("expires_ms", expires_ms.to_string())])
        .flat_map(|(name, value)| [name.to_owned(), value])
        .collect()
    }

    fn query(token: RevocationKey, session: RevocationKey) -> RevocationQuery {
        RevocationQuery {
            token,
            subject: None,
            session: Some(session),
            issued_at: Some(1),
        }
    }

    #[tokio::test]
    async fn a_del_event_makes_the_copy_forget_the_marker() {
        let local = InMemoryStore::new();
        let token = RevocationKey::token(Some("i"), "j");
        let session = RevocationKey::session(Some("i"), "s");
        for (kind, hash) in [("t", &token), ("x", &session)] {
            Event::parse(&fields(kind, hash, "1")).unwrap().apply_to(&local);
        }
        let lookup = local.lookup_now(&query(token, session));
        assert!(lookup.token_revoked && lookup.session_revoked);

        let del = Event::parse(&fields("del", &token, "t")).unwrap();
        assert!(del.deleted && del.kind == Kind::Token && del.seq == 7);
        del.apply_to(&local);
        let lookup = local.lookup_now(&query(token, session));
        assert!(
            !lookup.token_revoked && lookup.session_revoked,
            "only the token is forgotten"
        );

        Event::parse(&fields("del", &session, "x"))
            .unwrap()
            .apply_to(&local);
        assert!(!local.lookup_now(&query(token, session)).session_revoked);
    }

    #[test]
    fn a_del_event_of_a_watermark_or_unknown_kind_is_malformed() {
        let hash = RevocationKey::subject(None, "s");
        for value in ["s", "all", "zz"] {
            assert!(Event::parse(&fields("del", &hash, value)).is_none(), "{value}");
        }
    }
}
