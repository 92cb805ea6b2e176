//! The writes: each one Lua script (in `scripts/`), atomic on the server, that records
//! the revocation and appends its change-feed event.

use std::time::Duration;

use ::redis::Script;

use super::RedisStore;
use super::command::Budget;
use super::keys::Kind;
use crate::key::RevocationKey;
use crate::store::StoreError;

/// `feed.lua` defines the `feed` function the others end with.
const FEED: &str = include_str!("scripts/feed.lua");
const MARK: &str = include_str!("scripts/mark.lua");
const RAISE: &str = include_str!("scripts/raise.lua");

pub(super) struct Scripts {
    mark: Script,
    raise: Script,
}

impl Scripts {
    pub(super) fn new() -> Self {
        Self {
            mark: Script::new(&format!("{FEED}{MARK}")),
            raise: Script::new(&format!("{FEED}{RAISE}")),
        }
    }
}

impl RedisStore {
    /// Records a marker (token, session) for at least `ttl`.
    pub(super) async fn mark(
        &self,
        kind: Kind,
        hash: &RevocationKey,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let args = [
            self.shared.feed_max_len.to_string(),
            ttl_ms(ttl).to_string(),
            kind.code().into(),
            hash.to_string(),
        ];
        self.script(
            &self.shared.scripts.mark,
            "Redis revocation write failed",
            kind,
            hash,
            &args,
        )
        .await
    }

    /// Raises a watermark (subject, global) to at least `issued_until`, kept at least
    /// `ttl`.
    pub(super) async fn raise(
        &self,
        kind: Kind,
        hash: &RevocationKey,
        issued_until: u64,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let args = [
            self.shared.feed_max_len.to_string(),
            issued_until.to_string(),
            ttl_ms(ttl).to_string(),
            kind.code().into(),
            hash.to_string(),
        ];
        self.script(
            &self.shared.scripts.raise,
            "Redis watermark write failed",
            kind,
            hash,
            &args,
        )
        .await
    }

    async fn script(
        &self,
        script: &Script,
        what: &'static str,
        kind: Kind,
        hash: &RevocationKey,
        args: &[String],
    ) -> Result<(), StoreError> {
        let mut invocation = script.prepare_invoke();
        invocation.key(self.key_of(kind, hash));
        invocation.key(self.feed_key());
        invocation.key(self.feed_seq_key());
        for arg in args {
            invocation.arg(arg);
        }
        let invocation = &invocation;
        self.run(what, Budget::Write, |mut connection| async move {
            invocation.invoke_async::<i64>(&mut connection).await
        })
        .await
        .map(drop)
    }
}

/// Whole milliseconds, rounded up, at least one (`PX 0` is an error).
fn ttl_ms(ttl: Duration) -> u64 {
    let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    ms.saturating_add(u64::from(!ttl.subsec_nanos().is_multiple_of(1_000_000)))
        .max(1)
}
