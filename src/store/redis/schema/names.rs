//! The store's public names for its Redis keys (see the `schema` module for what
//! each holds), for operators and for services in other languages.

use crate::store::key::RevocationKey;
use crate::store::redis::RedisStore;

impl RedisStore {
    /// The key prefix.
    pub fn prefix(&self) -> &str {
        self.schema().prefix()
    }

    /// How many buckets revocations are spread over (see the key schema).
    pub fn buckets(&self) -> u32 {
        self.schema().buckets()
    }

    /// The bucket of a subject, or of a token that has no subject.
    pub fn bucket_of(&self, key: &RevocationKey) -> u32 {
        self.schema().bucket_of(key)
    }

    /// The bucket a check of a token reads: its subject's, or its own without a subject.
    pub fn bucket_for(&self, token: &RevocationKey, subject: Option<&RevocationKey>) -> u32 {
        self.bucket_of(subject.unwrap_or(token))
    }

    /// The hash tag of a bucket, `{prefix:bB}`: every key of the bucket starts with it.
    pub fn bucket_tag(&self, bucket: u32) -> String {
        self.schema().tag(bucket)
    }

    /// The Redis key of a token revocation in `bucket` (see [`bucket_for`](Self::bucket_for)).
    pub fn token_key(&self, bucket: u32, token: &RevocationKey) -> String {
        self.schema().record(bucket, "t", token)
    }

    /// The Redis key of a subject watermark (in the subject's bucket).
    pub fn subject_key(&self, subject: &RevocationKey) -> String {
        self.schema().record(self.bucket_of(subject), "s", subject)
    }

    /// The Redis key of a session revocation's copy in `bucket` (every bucket has one).
    pub fn session_key(&self, bucket: u32, session: &RevocationKey) -> String {
        self.schema().record(bucket, "x", session)
    }

    /// The Redis key of the global watermark's copy in `bucket` (every bucket has one).
    pub fn global_key(&self, bucket: u32) -> String {
        self.schema().global(bucket)
    }

    /// The Redis key of a bucket's change feed (a stream).
    pub fn feed_key(&self, bucket: u32) -> String {
        self.schema().feed(bucket)
    }

    /// The Redis key of a bucket's index of live records: a sorted set, member
    /// `kind:hash` (a marker) or `kind:hash:value` (a watermark), score its expiry in
    /// Unix milliseconds. Every write keeps it; a [`MirrorStore`](crate::store::MirrorStore)
    /// loads from it.
    pub fn index_key(&self, bucket: u32) -> String {
        self.schema().index(bucket)
    }

    /// The Redis key of a bucket's change-feed sequence counter.
    pub fn feed_seq_key(&self, bucket: u32) -> String {
        self.schema().feed_seq(bucket)
    }

    /// The key recording the blocklist's layout, `{prefix:b0}:layout` (value
    /// `v2 buckets=<N>`, no TTL): a store whose bucket count differs refuses to connect.
    pub fn layout_key(&self) -> String {
        self.shared.connection.layout().key().to_owned()
    }

    /// The channel every write publishes its bucket's number on (`{prefix}:wake`).
    pub fn wake_channel(&self) -> String {
        self.schema().wake()
    }
}
