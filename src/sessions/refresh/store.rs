//! [`RefreshStore`]: what a backend keeps of refresh-token families, by hash only.

use std::time::Duration;

use async_trait::async_trait;

use super::token::RefreshHash;
use crate::RevocationKey;
use crate::store::StoreError;

/// A family to start: one sign-in's refresh tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewFamily {
    /// The family's key: its session's [`RevocationKey::session`].
    pub family: RevocationKey,
    /// Its subject's key, for [`end_families_of`](RefreshStore::end_families_of).
    pub subject: RevocationKey,
    /// The hash of its first refresh token.
    pub token: RefreshHash,
    /// What the family needs to mint its access tokens (subject, the application's
    /// claims), sealed: the store keeps these bytes and hands them back with each
    /// rotation, and cannot read them.
    pub sealed: Vec<u8>,
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
        sealed: Vec<u8>,
        now: u64,
        expires_at: u64,
        idle: Duration,
    ) -> Self {
        Self {
            family,
            subject,
            token,
            sealed,
            now,
            expires_at,
            idle,
        }
    }
}

/// One presentation of a refresh token, to be exchanged for `next`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rotation {
    /// The family the token names.
    pub family: RevocationKey,
    /// The hash of the token presented.
    pub presented: RefreshHash,
    /// The hash of the token that replaces it.
    pub next: RefreshHash,
    /// Now, seconds since the epoch.
    pub now: u64,
    /// The grace window: for this long after the rotation, the token presented now
    /// presented again is [`Repeated`](RotationOutcome::Repeated), not a reuse. Zero:
    /// off.
    pub grace: Duration,
    /// `next` sealed under a key derived from the presented token, kept for the grace
    /// window (empty with the window off).
    pub successor: Vec<u8>,
}

impl Rotation {
    /// A rotation without grace window (see the fields).
    pub fn new(family: RevocationKey, presented: RefreshHash, next: RefreshHash, now: u64) -> Self {
        Self {
            family,
            presented,
            next,
            now,
            grace: Duration::ZERO,
            successor: Vec::new(),
        }
    }

    /// With a grace window of `grace`, keeping `successor` (`next`, sealed) for it.
    pub fn with_grace(mut self, grace: Duration, successor: Vec<u8>) -> Self {
        self.grace = grace;
        self.successor = successor;
        self
    }
}

/// What a store did with a [`Rotation`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RotationOutcome {
    /// The token was the family's current one: consumed, `next` is current now.
    Rotated {
        /// The family's sealed record ([`NewFamily::sealed`]).
        sealed: Vec<u8>,
    },
    /// The token was consumed by the family's last rotation, within its grace window:
    /// nothing changed, and the successor that rotation kept is handed back.
    Repeated {
        /// The family's sealed record ([`NewFamily::sealed`]).
        sealed: Vec<u8>,
        /// The successor kept by the last rotation ([`Rotation::successor`]).
        successor: Vec<u8>,
    },
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
/// under its session's key with its record sealed, everything with a time to live no
/// longer than the family's lifetime.
///
/// Every rotation is atomic with respect to the others on its family: of two
/// rotations presenting the same token, exactly one is
/// [`Rotated`](RotationOutcome::Rotated) (the other, within a grace window,
/// [`Repeated`](RotationOutcome::Repeated)). A rotation knows only the family's key
/// (from the token's handle), not its subject.
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
