//! [`Record`]: one revocation as it lives in Redis, in the JSON form backups use.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::store::key::RevocationKey;
use crate::store::redis::Kind;

/// The longest time to live a [`Record`] may have: 2³² − 1 seconds, the most any
/// revocation is ever kept (a token whose `exp` is beyond any clock). Longer ones are
/// refused by [`RedisStore::restore`](super::super::RedisStore::restore) rather than
/// handed to Redis, which would refuse them half-way through a restore.
pub const MAX_RECORD_TTL: Duration = Duration::from_secs(u32::MAX as u64);

/// The largest watermark a [`Record`] may carry: 2³² − 1 seconds since 1970 (the
/// year 2106). A watermark revokes the tokens issued until it, so a larger one would
/// only ever be a damaged or forged backup.
pub const MAX_WATERMARK: u64 = u32::MAX as u64;

/// Which kind of revocation a [`Record`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum RecordKind {
    /// A token marker.
    Token,
    /// A session marker.
    Session,
    /// A subject watermark ("log out everywhere").
    Subject,
    /// The global watermark.
    All,
}

impl RecordKind {
    /// Its name: `token`, `session`, `subject` or `all` (also its JSON form).
    pub fn name(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::Session => "session",
            Self::Subject => "subject",
            Self::All => "all",
        }
    }

    pub(crate) fn from_kind(kind: Kind) -> Self {
        match kind {
            Kind::Token => Self::Token,
            Kind::Session => Self::Session,
            Kind::Subject => Self::Subject,
            Kind::Global => Self::All,
        }
    }

    pub(crate) fn kind(self) -> Kind {
        match self {
            Self::Token => Kind::Token,
            Self::Session => Kind::Session,
            Self::Subject => Kind::Subject,
            Self::All => Kind::Global,
        }
    }
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One revocation read from Redis ([`RedisStore::scan_page`](super::super::RedisStore::scan_page)),
/// or to write back ([`RedisStore::restore`](super::super::RedisStore::restore)).
///
/// Its JSON form is one line of a backup (`tower-jwt-revoke export`):
/// `{"kind":"token","hash":"<64 hex>","value":"1","ttl_ms":81234,"expires_ms":1767225600000,"bucket":3,"buckets":16}`.
/// `hash` is `null` for the global watermark; `value` is `1` for markers and the
/// watermark (Unix seconds) for the others; `ttl_ms` is the time to live left when it
/// was read and `expires_ms` the same instant as Unix milliseconds, on the reader's
/// clock; `bucket` is the bucket the record was read from, out of `buckets` (both
/// absent for a record of the v1 schema). Nothing in it names a token, subject or
/// session: only hashes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Record {
    /// What is revoked.
    pub kind: RecordKind,
    /// The hashed identifier; `None` for the global watermark.
    #[serde(serialize_with = "hash_out", deserialize_with = "hash_in")]
    pub hash: Option<RevocationKey>,
    /// The stored value: `1` for markers, the watermark for the others.
    pub value: String,
    /// Milliseconds left to live when read; `None` when the key had no TTL (a writer
    /// broke the schema).
    pub ttl_ms: Option<u64>,
    /// When it expires, Unix milliseconds (reader's clock); `None` without a TTL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<u64>,
    /// The bucket this copy was read from (see the key schema); `None` for a record
    /// of the v1 schema. Records kept in every bucket come once per bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<u32>,
    /// How many buckets the store it was read from has: a bucket means something only
    /// in a deployment with as many. [`RedisStore::restore`](super::super::RedisStore::restore)
    /// into another bucket count writes a token to every bucket (its subject, which
    /// picks its bucket, is not known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buckets: Option<u32>,
}

impl Record {
    pub(crate) fn read(kind: Kind, hash: RevocationKey, value: String, pttl_ms: i64) -> Option<Self> {
        let kind = RecordKind::from_kind(kind);
        let hash = (kind != RecordKind::All).then_some(hash);
        let ttl_ms = match pttl_ms {
            -1 => None,
            ms => Some(u64::try_from(ms).ok()?),
        };
        Some(Self {
            kind,
            hash,
            value,
            ttl_ms,
            expires_ms: ttl_ms.map(|ttl| now_ms().saturating_add(ttl)),
            bucket: None,
            buckets: None,
        })
    }

    /// The same record, read from `bucket` of a store with `buckets` buckets (or from
    /// the v1 schema: `None`).
    pub(crate) fn in_bucket(self, bucket: Option<u32>, buckets: u32) -> Self {
        Self {
            bucket,
            buckets: bucket.map(|_| buckets),
            ..self
        }
    }

    /// How long it has left to live now: from `expires_ms` when it has one (a backup
    /// restored later does not outlive the original), else `ttl_ms`. `None` once
    /// expired, or without a TTL.
    pub fn remaining(&self) -> Option<Duration> {
        let left = match self.expires_ms {
            Some(expires) => expires.checked_sub(now_ms())?,
            None => self.ttl_ms?,
        };
        (left > 0).then(|| Duration::from_millis(left))
    }

    /// Why this record cannot be restored, if it cannot: no TTL, no hash (but the
    /// global watermark), a time to live beyond [`MAX_RECORD_TTL`], or a watermark
    /// that is not a number of seconds up to [`MAX_WATERMARK`]. What
    /// [`RedisStore::restore`](super::super::RedisStore::restore) refuses, for a tool
    /// that checks a whole backup before it writes any of it. An expired record is
    /// valid (restoring it is a no-op).
    pub fn problem(&self) -> Option<&'static str> {
        if self.ttl_ms.is_none() && self.expires_ms.is_none() {
            return Some("a record without a TTL");
        }
        if self.kind != RecordKind::All && self.hash.is_none() {
            return Some("a record without a hash");
        }
        if self.remaining().is_some_and(|left| left > MAX_RECORD_TTL) {
            return Some("a time to live longer than any revocation lasts");
        }
        let is_watermark = matches!(self.kind, RecordKind::Subject | RecordKind::All);
        if is_watermark && self.watermark().is_none_or(|mark| mark > MAX_WATERMARK) {
            return Some("a watermark that is not a number of seconds since 1970");
        }
        None
    }

    /// The watermark of a subject or global record.
    pub fn watermark(&self) -> Option<u64> {
        match self.kind {
            RecordKind::Subject | RecordKind::All => self.value.parse().ok(),
            _ => None,
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| {
        u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
    })
}

fn hash_out<S: Serializer>(hash: &Option<RevocationKey>, serializer: S) -> Result<S::Ok, S::Error> {
    match hash {
        Some(hash) => serializer.serialize_str(hash.hex().as_str()),
        None => serializer.serialize_none(),
    }
}

fn hash_in<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<RevocationKey>, D::Error> {
    Option::<String>::deserialize(deserializer)?
        .map(|hex| {
            RevocationKey::from_hex(&hex)
                .ok_or_else(|| serde::de::Error::custom("`hash` is not 64 hex digits"))
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_form_round_trips() {
        let hash = RevocationKey::token(None, "a");
        let record = Record::read(Kind::Token, hash, "1".into(), 5_000).unwrap();
        let line = serde_json::to_string(&record).unwrap();
        assert!(line.starts_with(&format!(
            r#"{{"kind":"token","hash":"{hash}","value":"1","ttl_ms":5000,"#
        )));
        assert_eq!(serde_json::from_str::<Record>(&line).unwrap(), record);
        let copy = record.clone().in_bucket(Some(3), 16);
        let line = serde_json::to_string(&copy).unwrap();
        assert!(line.ends_with(r#","bucket":3,"buckets":16}"#), "{line}");
        assert_eq!(serde_json::from_str::<Record>(&line).unwrap(), copy);
        let left = record.remaining().unwrap();
        assert!(
            left <= Duration::from_secs(5) && left > Duration::from_secs(4),
            "{left:?}"
        );

        let global = Record::read(Kind::Global, RevocationKey::ZERO, "17".into(), 1).unwrap();
        assert!(serde_json::to_string(&global).unwrap().contains(r#""hash":null"#));
        assert_eq!(global.watermark(), Some(17));
    }

    #[test]
    fn expired_and_malformed_records_say_so() {
        let old: Record =
            serde_json::from_str(r#"{"kind":"session","hash":null,"value":"1","ttl_ms":9,"expires_ms":1}"#)
                .unwrap();
        assert_eq!(old.remaining(), None);
        assert!(
            serde_json::from_str::<Record>(r#"{"kind":"token","hash":"xyz","value":"1","ttl_ms":1}"#)
                .is_err()
        );
        assert!(
            serde_json::from_str::<Record>(r#"{"kind":"other","hash":null,"value":"1","ttl_ms":1}"#).is_err()
        );
    }
}
