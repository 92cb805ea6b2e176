//! Refresh-token families on Redis ([`RefreshStore`] for [`RedisStore`]).
//!
//! A family lives in its subject's bucket, so every operation is one script in one
//! slot: `{prefix:bB}:rf:{family}` (a hash: the subject's hash, the current token's
//! hash, last use, absolute end, idle timeout, whether and why it ended),
//! `{prefix:bB}:rc:{family}` (the consumed tokens' hash prefixes) and
//! `{prefix:bB}:rs:{subject}` (the subject's families). Hashes only, nothing raw; every
//! key expires with the family's absolute lifetime. These keys are not revocations:
//! the change feed, the index and a mirror's copy never see them.

use std::fmt::Write as _;
use std::sync::LazyLock;

use ::redis::Script;
use async_trait::async_trait;

use crate::RevocationKey;
use crate::sessions::refresh::{NewFamily, RefreshHash, RefreshStore, Rotation, RotationOutcome};
use crate::store::StoreError;
use crate::store::redis::RedisStore;
use crate::store::redis::connect::command::Budget;

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
    /// The Redis key of a refresh-token family (in its subject's bucket).
    pub fn refresh_family_key(&self, family: &RevocationKey, subject: &RevocationKey) -> String {
        self.schema().record(self.bucket_of(subject), "rf", family)
    }

    fn refresh_consumed_key(&self, family: &RevocationKey, subject: &RevocationKey) -> String {
        self.schema().record(self.bucket_of(subject), "rc", family)
    }

    fn refresh_subject_key(&self, subject: &RevocationKey) -> String {
        self.schema().record(self.bucket_of(subject), "rs", subject)
    }
}

#[async_trait]
impl RefreshStore for RedisStore {
    async fn start_family(&self, new: &NewFamily) -> Result<(), StoreError> {
        let ttl_ms = new.expires_at.saturating_sub(new.now).max(1).saturating_mul(1000);
        let mut invocation = START.prepare_invoke();
        invocation
            .key(self.refresh_family_key(&new.family, &new.subject))
            .key(self.refresh_consumed_key(&new.family, &new.subject))
            .key(self.refresh_subject_key(&new.subject))
            .arg(new.subject.to_string())
            .arg(hex(new.token.as_bytes()))
            .arg(new.now)
            .arg(new.expires_at)
            .arg(new.idle.as_secs())
            .arg(ttl_ms)
            .arg(new.family.to_string());
        let invocation = &invocation;
        self.run(
            "Redis refresh family write failed",
            Budget::Write,
            self.bucket_of(&new.subject),
            |mut connection| async move { invocation.invoke_async::<i64>(&mut connection).await },
        )
        .await?;
        Ok(())
    }

    async fn rotate(&self, rotation: &Rotation) -> Result<RotationOutcome, StoreError> {
        let mut invocation = ROTATE.prepare_invoke();
        invocation
            .key(self.refresh_family_key(&rotation.family, &rotation.subject))
            .key(self.refresh_consumed_key(&rotation.family, &rotation.subject))
            .arg(rotation.subject.to_string())
            .arg(hex(rotation.presented.as_bytes()))
            .arg(hex(rotation.next.as_bytes()))
            .arg(rotation.now)
            .arg(consumed_member(&rotation.presented));
        let invocation = &invocation;
        // Run again on a fresh connection when the first one died, maybe after the
        // script ran: the script knows its own `next` and answers `rotated` again.
        let outcome: String = self
            .run(
                "Redis refresh rotation failed",
                Budget::Write,
                self.bucket_of(&rotation.subject),
                |mut connection| async move { invocation.invoke_async::<String>(&mut connection).await },
            )
            .await?;
        Ok(match outcome.as_str() {
            "rotated" => RotationOutcome::Rotated,
            "reused" => RotationOutcome::Reused,
            "ended" => RotationOutcome::Ended,
            "expired" => RotationOutcome::Expired,
            _ => RotationOutcome::Unknown,
        })
    }

    async fn end_family(&self, family: &RevocationKey, subject: &RevocationKey) -> Result<(), StoreError> {
        self.end_families(subject, vec![self.refresh_family_key(family, subject)])
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
        let keys = members
            .iter()
            .filter_map(|member| RevocationKey::from_hex(member))
            .map(|family| self.refresh_family_key(&family, subject))
            .collect::<Vec<_>>();
        if keys.is_empty() {
            return Ok(());
        }
        self.end_families(subject, keys).await
    }
}

impl RedisStore {
    async fn end_families(&self, subject: &RevocationKey, keys: Vec<String>) -> Result<(), StoreError> {
        let mut invocation = END.prepare_invoke();
        for key in keys {
            invocation.key(key);
        }
        invocation.arg(subject.to_string());
        let invocation = &invocation;
        self.run(
            "Redis refresh family end failed",
            Budget::Write,
            self.bucket_of(subject),
            |mut connection| async move { invocation.invoke_async::<i64>(&mut connection).await },
        )
        .await?;
        Ok(())
    }
}
