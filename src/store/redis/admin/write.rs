//! Writes an operator makes: removing a revocation (with its change-feed event), and
//! restoring one from a backup through the store's normal write path.

use std::sync::LazyLock;

use ::redis::Script;

use super::Record;
use crate::key::RevocationKey;
use crate::store::StoreError;
use crate::store::redis::command::Budget;
use crate::store::redis::{Kind, RedisStore};

/// `feed.lua`, then the removal that ends with its `feed` call.
static UNMARK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{}{}",
        include_str!("../scripts/feed.lua"),
        include_str!("unmark.lua")
    ))
});

impl RedisStore {
    /// Lifts a token revocation: deletes its marker and, in the same Lua script,
    /// appends a `del` event to the change feed, so every
    /// [`MirrorStore`](crate::store::MirrorStore) forgets it too. Returns whether there
    /// was one.
    ///
    /// Only for mistakes (a token revoked by error): a subject or global watermark
    /// still refuses the token when one covers it.
    pub async fn unrevoke_token(&self, token: &RevocationKey) -> Result<bool, StoreError> {
        self.unmark(Kind::Token, token).await
    }

    /// Lifts a session revocation, like [`unrevoke_token`](Self::unrevoke_token).
    pub async fn unrevoke_session(&self, session: &RevocationKey) -> Result<bool, StoreError> {
        self.unmark(Kind::Session, session).await
    }

    async fn unmark(&self, kind: Kind, hash: &RevocationKey) -> Result<bool, StoreError> {
        let mut invocation = UNMARK.prepare_invoke();
        invocation
            .key(self.key_of(kind, hash))
            .key(self.feed_key())
            .key(self.feed_seq_key())
            .arg(self.shared.feed_max_len)
            .arg(kind.code())
            .arg(hash.hex().as_str());
        let invocation = &invocation;
        let removed: i64 = self
            .run(
                "Redis revocation removal failed",
                Budget::Write,
                |mut connection| async move { invocation.invoke_async(&mut connection).await },
            )
            .await?;
        if removed > 0 {
            tracing::info!(kind = kind.code(), hash = %hash, "lifted a revocation");
        }
        Ok(removed > 0)
    }

    /// Writes `record` back (an import), through the same scripts as every revocation,
    /// so the change feed carries it to mirrors: a marker is kept at least for its
    /// remaining time, a watermark raised to at least its value. Idempotent. Returns
    /// `false`, writing nothing, when the record has expired meanwhile.
    ///
    /// Fails on a record without a TTL (nothing says how long to keep it), a watermark
    /// that is not a number, or a token, session or subject without a hash.
    pub async fn restore(&self, record: &Record) -> Result<bool, StoreError> {
        if record.ttl_ms.is_none() && record.expires_ms.is_none() {
            return Err(StoreError::msg("a record without a TTL cannot be restored"));
        }
        let Some(ttl) = record.remaining() else {
            return Ok(false);
        };
        let kind = record.kind.kind();
        let hash = match (kind, record.hash) {
            (Kind::Global, _) => RevocationKey::ZERO,
            (_, Some(hash)) => hash,
            (_, None) => return Err(StoreError::msg("a record without a hash cannot be restored")),
        };
        match kind {
            Kind::Token | Kind::Session => self.mark(kind, &hash, ttl).await?,
            Kind::Subject | Kind::Global => {
                let mark = record
                    .watermark()
                    .ok_or_else(|| StoreError::msg("a watermark to restore is not a number of seconds"))?;
                self.raise(kind, &hash, mark, ttl).await?;
            }
        }
        Ok(true)
    }

    /// Whether anything was ever recorded under this store's prefix: its change feed's
    /// counter exists (every write creates it, and it never expires), or a record
    /// does. `false` on a server that never saw this prefix, which is how a tool tells
    /// a mistyped prefix from an empty blocklist.
    pub async fn in_use(&self) -> Result<bool, StoreError> {
        let mut exists = ::redis::cmd("EXISTS");
        exists
            .arg(self.feed_seq_key())
            .arg(self.feed_key())
            .arg(self.global_key());
        let exists = &exists;
        let found: u64 = self
            .run(
                "Redis EXISTS failed",
                Budget::Write,
                |mut connection| async move { exists.query_async(&mut connection).await },
            )
            .await?;
        if found > 0 {
            return Ok(true);
        }
        // Records written by a writer that skipped the feed (against the schema).
        let mut cursor = 0;
        loop {
            let page = self.scan_page(cursor, 1000).await?;
            if !page.records.is_empty() {
                return Ok(true);
            }
            cursor = page.cursor;
            if cursor == 0 {
                return Ok(false);
            }
        }
    }
}
