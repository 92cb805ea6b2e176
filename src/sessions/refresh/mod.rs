//! Refresh tokens rotated on every use, with reuse detection (OAuth 2.0 Security BCP,
//! RFC 9700 §4.14): the other half of a logout that works, for apps that sign in their
//! own users.
//!
//! [`Sessions`] (in `sessions.rs`) signs in, refreshes and logs out, with a
//! [`TokenIssuer`](crate::TokenIssuer) for the access tokens, a [`Revoker`](crate::Revoker)
//! for their revocations and a [`RefreshStore`] (`store.rs`) for the families of
//! refresh tokens; the token format (opaque: a family handle and a secret), what is
//! derived from it and its hash in `token.rs`; the sealing of what a family keeps
//! (subject, claims, a grace window's successor) in `seal.rs`; the in-memory store in
//! `memory.rs`. With feature `redis`, `RedisStore` (one server or a cluster: each
//! operation one Lua script in the subject's bucket) and `MirrorStore` (through its
//! `RedisStore`) are refresh stores too.
//!
//! May use: `issue/`, `revoke/`, `verify/`, `store/` (keys and errors). Used by: the
//! Redis store's `write/refresh.rs` and the mirror's `refresh.rs`, which implement
//! [`RefreshStore`].

mod error;
mod memory;
mod seal;
mod sessions;
mod store;
#[cfg(test)]
mod tests;
mod token;

pub use self::error::{RefreshRefusal, SessionError};
pub use self::memory::InMemoryRefreshStore;
pub use self::sessions::{
    DEFAULT_FAMILY_LIFETIME, DEFAULT_IDLE_TIMEOUT, MAX_FAMILY_CLAIMS_LEN, MAX_WATERMARK_WAIT, Sessions,
    TokenPair,
};
pub use self::store::{NewFamily, RefreshStore, Rotation, RotationOutcome};
pub use self::token::RefreshHash;
