//! [`RefreshStore`]: what a backend keeps of refresh-token families, by hash only.

use std::time::Duration;

use async_trait::async_trait;

use super::token::RefreshHash;
use crate::RevocationKey;
use crate::store::StoreError;

/// A family to start: one sign-in's refresh tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewFamily {
    /// The family's key: its session's [`RevocationKey::session`].
    pub family: RevocationKey,
    /// Its subject's key, for [`end_families_of`](RefreshStore::end_families_of).
    pub subject: RevocationKey,
    /// The hash of its first refresh token.
    pub token: RefreshHash,
    /// Now, seconds since the epoch.
    pub now: u64,
    /// When the family ends whatever happens (seconds since the epoch): its absolute
    /// lifetime. Nothing of it is kept past this second.
    pub expires_at: u64,
    /// How long it may go unused: it ends once `now >= last use + idle`.
    pub idle: Duration,
}

impl NewFamily {
    /// A family to start (see the fields).
    pub fn new(
        family: RevocationKey,
        subject: RevocationKey,
        token: RefreshHash,
        now: u64,
        expires_at: u64,
        idle: Duration,
    ) -> Self {
        Self {
            family,
            subject,
            token,
            now,
            expires_at,
            idle,
        }
    }
}

/// One presentation of a refresh token, to be exchanged for `next`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rotation {
    /// The family the token names.
    pub family: RevocationKey,
    /// The subject the token names.
    pub subject: RevocationKey,
    /// The hash of the token presented.
    pub presented: RefreshHash,
    /// The hash of the token that replaces it.
    pub next: RefreshHash,
    /// Now, seconds since the epoch.
    pub now: u64,
}

impl Rotation {
    /// A rotation (see the fields).
    pub fn new(
        family: RevocationKey,
        subject: RevocationKey,
        presented: RefreshHash,
        next: RefreshHash,
        now: u64,
    ) -> Self {
        Self {
            family,
            subject,
            presented,
            next,
            now,
        }
    }
}

/// What a store did with a [`Rotation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RotationOutcome {
    /// The token was the family's current one: consumed, `next` is current now.
    Rotated,
    /// The token was consumed before: reuse. The family is ended (and stays ended,
    /// so presenting it again says `Reused` again).
    Reused,
    /// The family was ended (logout), or ended by a reuse and this is not one of its
    /// tokens.
    Ended,
    /// The family outlived its absolute lifetime or went idle too long.
    Expired,
    /// No such family, or a token it never issued: changed nothing.
    Unknown,
}

/// Keeps refresh-token families: each token only as a [`RefreshHash`], each family
/// under its session's key, everything with a time to live no longer than the
/// family's lifetime.
///
/// Every operation is atomic with respect to the others: of two rotations presenting
/// the same token, exactly one is [`Rotated`](RotationOutcome::Rotated).
#[async_trait]
pub trait RefreshStore: Send + Sync + 'static {
    /// Starts a family.
    async fn start_family(&self, family: &NewFamily) -> Result<(), StoreError>;

    /// Consumes the presented token and makes `next` current, or says why not.
    async fn rotate(&self, rotation: &Rotation) -> Result<RotationOutcome, StoreError>;

    /// Ends a family (logout): its tokens are refused from now on.
    async fn end_family(&self, family: &RevocationKey, subject: &RevocationKey) -> Result<(), StoreError>;

    /// Ends every family of a subject (log out everywhere).
    async fn end_families_of(&self, subject: &RevocationKey) -> Result<(), StoreError>;
}

#[async_trait]
impl<S: RefreshStore + ?Sized> RefreshStore for std::sync::Arc<S> {
    async fn start_family(&self, family: &NewFamily) -> Result<(), StoreError> {
        (**self).start_family(family).await
    }

    async fn rotate(&self, rotation: &Rotation) -> Result<RotationOutcome, StoreError> {
        (**self).rotate(rotation).await
    }

    async fn end_family(&self, family: &RevocationKey, subject: &RevocationKey) -> Result<(), StoreError> {
        (**self).end_family(family, subject).await
    }

    async fn end_families_of(&self, subject: &RevocationKey) -> Result<(), StoreError> {
        (**self).end_families_of(subject).await
    }
}
