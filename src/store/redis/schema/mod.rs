//! The key schema (v2): which Redis key holds which record, and why it is cut so.
//!
//! # Buckets
//!
//! Revocations are spread over `N` **buckets** (N = [`DEFAULT_BUCKETS`] unless
//! configured, and fixed for a deployment: every service sharing the blocklist uses the
//! same N). Every key of bucket `b` starts with the hash tag `{<prefix>:b<b>}` (`b` in
//! decimal, no leading zeros), so Redis Cluster keeps a whole bucket in one hash slot,
//! while the N buckets land on N slots spread over the cluster's masters.
//!
//! | key                      | value                      | TTL                             |
//! |--------------------------|----------------------------|---------------------------------|
//! | `{p:bB}:t:{hash}`        | `1`                        | until the token would expire    |
//! | `{p:bB}:x:{hash}`        | `1`                        | longest token lifetime + 2 × leeway |
//! | `{p:bB}:s:{hash}`        | watermark, decimal seconds | longest token lifetime + leeway |
//! | `{p:bB}:all`             | watermark, decimal seconds | longest token lifetime + leeway |
//! | `{p:bB}:feed`            | the bucket's change feed (a stream, by age)  | none (bounded) |
//! | `{p:bB}:feed:seq`        | the feed's sequence counter                  | none (a number) |
//! | `{p:bB}:index`           | the bucket's live records by expiry (what a mirror loads) | its longest record's |
//! | `{p:b0}:layout`          | `v2 buckets=<N>`: a store with another N refuses to connect | none (one key) |
//! | `{p:bB}:epoch`           | the bucket's epoch marker (data-loss detection) | none (a number) |
//! | `{p:bB}:lifted:t:{hash}` | `1`: a token marker lifted on purpose (`x` for a session's) | what the marker had left |
//!
//! `p` is the prefix, `{hash}` the lowercase hex [`RevocationKey`]. Writes also
//! `PUBLISH` the bucket's number on the channel `p:wake` (`*` once, after a write to
//! every bucket), best effort: a wake-up for mirrors, which read the feeds anyway.
//! Classic pub/sub, which a cluster forwards to every node, so one subscription on any
//! node hears every bucket.
//!
//! # Which bucket
//!
//! The bucket of a **subject** (or of any key) is the first four bytes of its hash, read
//! as a big-endian number, modulo N: `int(hash[0:8], 16) % N` on the hex form.
//!
//! A **check** reads one bucket, with one `MGET` to one node: the bucket of the token's
//! subject when it has a `sub`, else the bucket of the token's own hash. In it, it reads
//! the token marker, the token's marker for its subject (with a `sub`), the global
//! watermark, the session marker (with a `sid`) and the subject watermark (with a `sub`). So each record a check may need must be *in the
//! bucket the check reads*:
//!
//! - **token**: revoked from the token itself, so the writer knows its subject: it goes
//!   to the same bucket the check reads (the subject's, or the token's own without a
//!   `sub`), under the token's hash bound to its subject's
//!   ([`RevocationKey::for_subject`]), so that it refuses that subject's token only. A
//!   writer that knows only the token's hash writes that hash to every bucket: it refuses
//!   the token whatever its subject. Either way every store answers alike.
//! - **subject** watermark: in the subject's bucket. Log out everywhere is one write.
//! - **session**: the revoker often knows only the `sid` (OpenID back-channel logout),
//!   never which subject's bucket the session's tokens are checked in. The marker is
//!   therefore copied into **every** bucket: a session revocation is N small writes (one
//!   round trip per master, in parallel), and costs N records while it lives. The
//!   alternatives were worse: a check reading the session's own bucket too (two slots,
//!   often two nodes, on every request), or a session index the check would have to
//!   consult first (two round trips). Sessions are revoked far less often than tokens
//!   are checked, and their markers live only as long as tokens do.
//! - **global** watermark: read by every check, written almost never (a key
//!   compromise): copied into every bucket, N writes. Exact, with no cache and no
//!   staleness bound.
//!
//! A **write** touches one bucket per script: its record, the bucket's feed and the
//! bucket's sequence counter, all in one slot, so the write and its change-feed event
//! stay atomic on a cluster. Writes that go to every bucket are one script per bucket;
//! each bucket's copy is atomic with its own event, and a failure of any fails the call
//! (which may be repeated: every write is idempotent).
//!
//! N trades spread against the cost of the copied records: a bucket's slot lives on one
//! master, so N should be a few times the number of masters (16 spreads well over up to
//! 4–8 masters); each session and global revocation writes N records. Changing N moves
//! every subject to another bucket: it is a migration, not a setting to flip.
//!
//! The prefix must not contain `{` or `}` (it sits inside the hash tag).

//!
//! # In this folder
//!
//! The key names (`mod.rs`), the store's public names for them (`names.rs`), the layout
//! recorded beside a blocklist so that a store with another bucket count is refused
//! (`layout.rs`), and the version 1 schema kept for upgrades (`v1.rs`). May use:
//! `connect/` and `read/` (the v1 migration reads keys node by node). Used by: every
//! other part of the store, and the mirror.

pub(crate) mod layout;
mod names;
pub(crate) mod v1;

use crate::store::key::RevocationKey;

/// The number of buckets unless configured.
pub const DEFAULT_BUCKETS: u32 = 16;

/// The most buckets a store may be configured with.
pub const MAX_BUCKETS: u32 = 1024;

/// The key schema of one store: its prefix and bucket count.
#[derive(Debug, Clone)]
pub(crate) struct Schema {
    prefix: String,
    buckets: u32,
}

impl Schema {
    pub(crate) fn new(prefix: String, buckets: u32) -> Self {
        Self {
            prefix,
            buckets: buckets.clamp(1, MAX_BUCKETS),
        }
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    pub(crate) fn buckets(&self) -> u32 {
        self.buckets
    }

    /// The bucket of a subject, or of a token without one.
    pub(crate) fn bucket_of(&self, key: &RevocationKey) -> u32 {
        let bytes = key.as_bytes();
        u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) % self.buckets
    }

    /// `{prefix:bB}`.
    pub(crate) fn tag(&self, bucket: u32) -> String {
        let mut tag = String::with_capacity(self.prefix.len() + 16);
        self.push_tag(&mut tag, bucket);
        tag
    }

    /// Appends `{prefix:bB}` to `out`: a check writes its keys into one reused buffer.
    pub(crate) fn push_tag(&self, out: &mut String, bucket: u32) {
        out.push('{');
        out.push_str(&self.prefix);
        out.push_str(":b");
        out.push_str(itoa(bucket).as_str());
        out.push('}');
    }

    /// `{prefix:bB}:code:hash`, in one allocation.
    pub(crate) fn record(&self, bucket: u32, code: &str, hash: &RevocationKey) -> String {
        let mut key = String::with_capacity(self.prefix.len() + code.len() + 16 + 64);
        self.push_record(&mut key, bucket, code, hash);
        key
    }

    /// Appends `{prefix:bB}:code:hash` to `out`.
    pub(crate) fn push_record(&self, out: &mut String, bucket: u32, code: &str, hash: &RevocationKey) {
        self.push_tag(out, bucket);
        out.push(':');
        out.push_str(code);
        out.push(':');
        out.push_str(hash.hex().as_str());
    }

    pub(crate) fn global(&self, bucket: u32) -> String {
        let mut key = self.tag(bucket);
        key.push_str(":all");
        key
    }

    /// Appends `{prefix:bB}:all` to `out`.
    pub(crate) fn push_global(&self, out: &mut String, bucket: u32) {
        self.push_tag(out, bucket);
        out.push_str(":all");
    }

    pub(crate) fn feed(&self, bucket: u32) -> String {
        format!("{}:feed", self.tag(bucket))
    }

    pub(crate) fn feed_seq(&self, bucket: u32) -> String {
        format!("{}:feed:seq", self.tag(bucket))
    }

    /// The bucket's index of live records (a sorted set by expiry), what a mirror loads.
    pub(crate) fn index(&self, bucket: u32) -> String {
        format!("{}:index", self.tag(bucket))
    }

    /// The keys a write script touches in `bucket` (see `scripts.rs`): the record, the
    /// feed, its counter, the index, the epoch marker (created with the bucket's first
    /// write) and the record's tombstone (a marker's; a watermark's is never used).
    pub(crate) fn write_keys(&self, bucket: u32, kind: Kind, hash: &RevocationKey) -> Vec<String> {
        vec![
            self.key_of(bucket, kind, hash),
            self.feed(bucket),
            self.feed_seq(bucket),
            self.index(bucket),
            self.epoch(bucket),
            self.lifted(bucket, kind, hash),
        ]
    }

    /// `{prefix:bB}:lifted:code:hash`: the tombstone of a marker lifted on purpose
    /// (`unrevoke_token`, `unrevoke_session`), for as long as it had left to live, so a
    /// mirror writing back what Redis lost does not bring it back. Not a record: its
    /// code is not a kind's, so a scan passes it by.
    pub(crate) fn lifted(&self, bucket: u32, kind: Kind, hash: &RevocationKey) -> String {
        let mut key = String::with_capacity(self.prefix.len() + 96);
        self.push_tag(&mut key, bucket);
        key.push_str(":lifted");
        key.push(':');
        key.push_str(kind.code());
        key.push(':');
        key.push_str(hash.hex().as_str());
        key
    }

    /// The bucket's epoch marker: it only goes missing or changes when Redis lost data.
    pub(crate) fn epoch(&self, bucket: u32) -> String {
        format!("{}:epoch", self.tag(bucket))
    }

    pub(crate) fn wake(&self) -> String {
        format!("{}:wake", self.prefix)
    }

    /// The key of a record of `kind` in `bucket`.
    pub(crate) fn key_of(&self, bucket: u32, kind: Kind, hash: &RevocationKey) -> String {
        match kind {
            Kind::Global => self.global(bucket),
            _ => self.record(bucket, kind.code(), hash),
        }
    }

    /// Appends the key of a record of `kind` in `bucket` to `out`.
    pub(crate) fn push_key_of(&self, out: &mut String, bucket: u32, kind: Kind, hash: &RevocationKey) {
        match kind {
            Kind::Global => self.push_global(out, bucket),
            _ => self.push_record(out, bucket, kind.code(), hash),
        }
    }

    /// The `SCAN` pattern of every v2 key of the prefix (`bucket: None`) or of one bucket.
    pub(crate) fn pattern(&self, bucket: Option<u32>) -> String {
        let prefix = glob_escape(&self.prefix);
        match bucket {
            Some(bucket) => format!("{{{prefix}:b{bucket}}}:*"),
            None => format!("{{{prefix}:b*}}:*"),
        }
    }

    /// The bucket and record a v2 key of this prefix holds.
    pub(crate) fn parse(&self, key: &str) -> Option<(u32, Kind, RevocationKey)> {
        let rest = key.strip_prefix('{')?.strip_prefix(self.prefix.as_str())?;
        let (bucket, rest) = rest.strip_prefix(":b")?.split_once("}:")?;
        let bucket: u32 = bucket.parse().ok().filter(|b| *b < self.buckets)?;
        if rest == "all" {
            return Some((bucket, Kind::Global, RevocationKey::ZERO));
        }
        let (code, hash) = rest.split_once(':')?;
        Some((bucket, Kind::from_code(code)?, RevocationKey::from_hex(hash)?))
    }
}

/// A small number in decimal, without allocating.
struct Decimal {
    digits: [u8; 10],
    start: usize,
}

impl Decimal {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.digits[self.start..]).unwrap_or("0")
    }
}

fn itoa(mut n: u32) -> Decimal {
    let mut digits = [b'0'; 10];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + u8::try_from(n % 10).unwrap_or(0);
        n /= 10;
        if n == 0 {
            break;
        }
    }
    Decimal { digits, start }
}

/// Escapes the characters `SCAN MATCH` treats as a pattern.
pub(crate) fn glob_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// The kinds of record, with their codes in keys and in the change feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Token,
    Session,
    Subject,
    Global,
}

impl Kind {
    pub(crate) fn code(self) -> &'static str {
        match self {
            Self::Token => "t",
            Self::Session => "x",
            Self::Subject => "s",
            Self::Global => "all",
        }
    }

    pub(crate) fn from_code(code: &str) -> Option<Self> {
        match code {
            "t" => Some(Self::Token),
            "x" => Some(Self::Session),
            "s" => Some(Self::Subject),
            "all" => Some(Self::Global),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_the_bucket_tag_and_parse_back() {
        let schema = Schema::new("revoked".into(), 16);
        let key = RevocationKey::subject(None, "alice");
        let bucket = schema.bucket_of(&key);
        let text = schema.record(bucket, "s", &key);
        assert_eq!(text, format!("{{revoked:b{bucket}}}:s:{key}"));
        assert_eq!(schema.parse(&text), Some((bucket, Kind::Subject, key)));
        assert_eq!(
            schema.parse("{revoked:b3}:all"),
            Some((3, Kind::Global, RevocationKey::ZERO))
        );
        assert_eq!(schema.parse("{revoked:b16}:all"), None, "no such bucket");
        assert_eq!(schema.parse("{revoked:b3}:feed"), None);
        assert_eq!(schema.parse("{revoked:b3}:index"), None, "the index is no record");
        assert_eq!(schema.parse(&format!("revoked:s:{key}")), None, "v1");
    }

    #[test]
    fn the_bucket_is_the_first_four_bytes_modulo_n() {
        // 0x43618e78 = 1130466936 (the hash of the README's example `jti = "a"`).
        let key = RevocationKey::token(None, "a");
        assert_eq!(Schema::new("p".into(), 16).bucket_of(&key), 8);
        assert_eq!(Schema::new("p".into(), 1000).bucket_of(&key), 936);
    }

    #[test]
    fn decimals_and_patterns() {
        assert_eq!(itoa(0).as_str(), "0");
        assert_eq!(itoa(1023).as_str(), "1023");
        assert_eq!(itoa(u32::MAX).as_str(), "4294967295");
        let schema = Schema::new("a*b".into(), 4);
        assert_eq!(schema.pattern(None), "{a\\*b:b*}:*");
        assert_eq!(schema.pattern(Some(2)), "{a\\*b:b2}:*");
    }
}
