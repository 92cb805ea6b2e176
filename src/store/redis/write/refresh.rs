//! Refresh-token families on Redis ([`RefreshStore`] for [`RedisStore`]).
//!
//! A family lives in its own bucket (its session key's), which a rotation finds from
//! the refresh token alone, so a rotation is one script in one slot:
//! `{prefix:bB}:rf:{family}` (a hash: the subject's hash, the current token's hash,
//! last use, absolute end, idle timeout, whether and why it ended, the sealed record,
//! and for a grace window the last consumed token's hash and its sealed successor) and
//! `{prefix:bB}:rc:{family}` (the consumed tokens' hash prefixes). The subject's
//! families, `{prefix:bS}:rs:{subject}`, live in the subject's bucket: a sign-in adds
//! to it first and then starts the family, and a log-out-everywhere ends its families
//! with one script per bucket they are in. Hashes and sealed values only, nothing raw;
//! every key expires when the family does (absolute end, or idle; the subject's
//! set with its longest family). These keys are not
//! revocations: the change feed, the index and a mirror's copy never see them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::LazyLock;

use ::redis::Script;
use async_trait::async_trait;

use crate::RevocationKey;
use crate::sessions::refresh::{NewFamily, RefreshHash, RefreshStore, Rotation, RotationOutcome};
use crate::store::StoreError;
use crate::store::redis::RedisStore;
use crate::store::redis::connect::command::Budget;

static INDEX: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("scripts/refresh_index.lua")));
static START: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("scripts/refresh_start.lua")));
static ROTATE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("scripts/refresh_rotate.lua")));
static END: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("scripts/refresh_end.lua")));

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// The consumed-set member of a token: its hash's first 16 bytes.
fn consumed_member(hash: &RefreshHash) -> String {
    hex(&hash.as_bytes()[..16])
}

impl RedisStore {
    /// The Redis key of a refresh-token family (in its own bucket).
    pub fn refresh_family_key(&self, family: &RevocationKey) -> String {
        self.schema().record(self.bucket_of(family), "rf", family)
    }

    fn refresh_consumed_key(&self, family: &RevocationKey) -> String {
        self.schema().record(self.bucket_of(family), "rc", family)
    }

    fn refresh_subject_key(&self, subject: &RevocationKey) -> String {
        self.schema().record(self.bucket_of(subject), "rs", subject)
    }
}

#[async_trait]
impl RefreshStore for RedisStore {
    async fn start_family(&self, new: &NewFamily) -> Result<(), StoreError> {
        let lifetime = new.expires_at.saturating_sub(new.now).max(1);
        // The subject's set outlives each of its families; a family lives until its
        // absolute end or its idle timeout, whichever comes first.
        let index_ttl_ms = lifetime.saturating_mul(1000);
        let family_ttl_ms = lifetime.min(new.idle.as_secs().max(1)).saturating_mul(1000);
        // The subject's set first: a log-out-everywhere that reads it after this sees
        // the family (and ends it once it exists).
        let mut index = INDEX.prepare_invoke();
        index
            .key(self.refresh_subject_key(&new.subject))
            .arg(new.family.to_string())
            .arg(index_ttl_ms);
        let index = &index;
        self.run(
            "Redis refresh family write failed",
            Budget::Write,
            self.bucket_of(&new.subject),
            |mut connection| async move { index.invoke_async::<i64>(&mut connection).await },
        )
        .await?;
        let mut invocation = START.prepare_invoke();
        invocation
            .key(self.refresh_family_key(&new.family))
            .key(self.refresh_consumed_key(&new.family))
            .arg(new.subject.to_string())
            .arg(hex(new.token.as_bytes()))
            .arg(new.now)
            .arg(new.expires_at)
            .arg(new.idle.as_secs())
            .arg(family_ttl_ms)
            .arg(&new.sealed[..]);
        let invocation = &invocation;
        self.run(
            "Redis refresh family write failed",
            Budget::Write,
            self.bucket_of(&new.family),
            |mut connection| async move { invocation.invoke_async::<i64>(&mut connection).await },
        )
        .await?;
        Ok(())
    }

    async fn rotate(&self, rotation: &Rotation) -> Result<RotationOutcome, StoreError> {
        let mut invocation = ROTATE.prepare_invoke();
        invocation
            .key(self.refresh_family_key(&rotation.family))
            .key(self.refresh_consumed_key(&rotation.family))
            .arg(hex(rotation.presented.as_bytes()))
            .arg(hex(rotation.next.as_bytes()))
            .arg(rotation.now)
            .arg(consumed_member(&rotation.presented))
            .arg(rotation.grace.as_secs())
            .arg(&rotation.successor[..]);
        let invocation = &invocation;
        // Run again on a fresh connection when the first one died, maybe after the
        // script ran: the script knows its own `next` and answers `rotated` again.
        let mut reply: Vec<Vec<u8>> = self
            .run(
                "Redis refresh rotation failed",
                Budget::Write,
                self.bucket_of(&rotation.family),
                |mut connection| async move { invocation.invoke_async::<Vec<Vec<u8>>>(&mut connection).await },
            )
            .await?;
        let mut field = |n: usize| reply.get_mut(n).map(std::mem::take).unwrap_or_default();
        let outcome = field(0);
        Ok(match &outcome[..] {
            b"rotated" => RotationOutcome::Rotated { sealed: field(1) },
            b"repeated" => RotationOutcome::Repeated {
                sealed: field(1),
                successor: field(2),
            },
            b"reused" => RotationOutcome::Reused,
            b"ended" => RotationOutcome::Ended,
            b"expired" => RotationOutcome::Expired,
            _ => RotationOutcome::Unknown,
        })
    }

    async fn end_family(&self, family: &RevocationKey, subject: &RevocationKey) -> Result<(), StoreError> {
        self.end_families(
            subject,
            self.bucket_of(family),
            vec![self.refresh_family_key(family)],
        )
        .await
    }

    async fn end_families_of(&self, subject: &RevocationKey) -> Result<(), StoreError> {
        let set = self.refresh_subject_key(subject);
        let set = &set;
        let members: Vec<String> = self
            .run(
                "Redis refresh families read failed",
                Budget::Write,
                self.bucket_of(subject),
                |mut connection| async move {
                    ::redis::cmd("SMEMBERS")
                        .arg(set)
                        .query_async::<Vec<String>>(&mut connection)
                        .await
                },
            )
            .await?;
        // One script per bucket the families are in (a subject has a few).
        let mut by_bucket: BTreeMap<u32, Vec<String>> = BTreeMap::new();
        for family in members
            .iter()
            .filter_map(|member| RevocationKey::from_hex(member))
        {
            by_bucket
                .entry(self.bucket_of(&family))
                .or_default()
                .push(self.refresh_family_key(&family));
        }
        for (bucket, keys) in by_bucket {
            self.end_families(subject, bucket, keys).await?;
        }
        Ok(())
    }
}

impl RedisStore {
    /// Ends the families at `keys`, all in `bucket`, if they are `subject`'s.
    async fn end_families(
        &self,
        subject: &RevocationKey,
        bucket: u32,
        keys: Vec<String>,
    ) -> Result<(), StoreError> {
        let mut invocation = END.prepare_invoke();
        for key in keys {
            invocation.key(key);
        }
        invocation.arg(subject.to_string());
        let invocation = &invocation;
        self.run(
            "Redis refresh family end failed",
            Budget::Write,
            bucket,
            |mut connection| async move { invocation.invoke_async::<i64>(&mut connection).await },
        )
        .await?;
        Ok(())
    }
}
