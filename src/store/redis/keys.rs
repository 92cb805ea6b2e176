//! The key schema: which Redis key holds which record (see the module docs).

use super::RedisStore;
use crate::key::RevocationKey;

impl RedisStore {
    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.shared.prefix
    }

    /// The Redis key of a token revocation.
    pub fn token_key(&self, token: &RevocationKey) -> String {
        self.key("t", token)
    }

    /// The Redis key of a subject watermark.
    pub fn subject_key(&self, subject: &RevocationKey) -> String {
        self.key("s", subject)
    }

    /// The Redis key of a session revocation.
    pub fn session_key(&self, session: &RevocationKey) -> String {
        self.key("x", session)
    }

    /// The Redis key of the global watermark.
    pub fn global_key(&self) -> String {
        format!("{}:all", self.shared.prefix)
    }

    /// The Redis key of the change feed (a stream).
    pub fn feed_key(&self) -> String {
        format!("{}:feed", self.shared.prefix)
    }

    /// The Redis key of the change feed's sequence counter.
    pub fn feed_seq_key(&self) -> String {
        format!("{}:feed:seq", self.shared.prefix)
    }

    fn key(&self, code: &str, hash: &RevocationKey) -> String {
        // Built in one allocation: a check builds up to four of these per request.
        let prefix = &self.shared.prefix;
        let mut key = String::with_capacity(prefix.len() + code.len() + 2 + 64);
        key.push_str(prefix);
        key.push(':');
        key.push_str(code);
        key.push(':');
        key.push_str(hash.hex().as_str());
        key
    }

    pub(crate) fn key_of(&self, kind: Kind, hash: &RevocationKey) -> String {
        match kind {
            Kind::Token => self.token_key(hash),
            Kind::Session => self.session_key(hash),
            Kind::Subject => self.subject_key(hash),
            Kind::Global => self.global_key(),
        }
    }

    /// Which kind of record a key of this store's prefix holds.
    pub(crate) fn parse_key(&self, key: &str) -> Option<(Kind, RevocationKey)> {
        let rest = key.strip_prefix(self.shared.prefix.as_str())?.strip_prefix(':')?;
        if rest == "all" {
            return Some((Kind::Global, RevocationKey::ZERO));
        }
        let (code, hash) = rest.split_once(':')?;
        Some((Kind::from_code(code)?, RevocationKey::from_hex(hash)?))
    }
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
