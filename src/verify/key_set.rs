//! [`KeySet`]: the keys a verifier chooses from by `kid`; [`KeyRing`]: a key set that
//! is replaced while the service runs (a rotation, a JWKS refresh).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use jsonwebtoken::jwk::Jwk;

use super::key::{KeyError, VerificationKey};

/// The keys a verifier chooses from: a token's header `kid` picks the key; at most one
/// key has no `kid`, and it verifies tokens whose `kid` matches no key.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    by_kid: HashMap<String, VerificationKey>,
    default_key: Option<VerificationKey>,
}

/// A key of a JWK Set that [`KeySet::from_jwks`] left out, and why.
#[derive(Debug)]
#[non_exhaustive]
pub struct SkippedKey {
    /// The key's `kid`, if it has one.
    pub kid: Option<String>,
    /// Why it cannot verify tokens here.
    pub reason: KeyError,
}

impl KeySet {
    /// A key set of these keys; two keys sharing a `kid`, or two without one, are an
    /// error.
    pub fn new(keys: impl IntoIterator<Item = VerificationKey>) -> Result<Self, KeyError> {
        let mut set = Self::default();
        for key in keys {
            set.insert(key)?;
        }
        Ok(set)
    }

    /// The usable keys of a JWK Set document (RFC 7517 §5), and the ones left out.
    ///
    /// A key that cannot verify signatures here (an unknown key type, an encryption
    /// key, an algorithm this crate does not verify, an `RSA` key without `alg`) is
    /// skipped, not fatal: providers publish such keys beside their signing keys. So is
    /// a key whose `kid` an earlier key has, and every key without a `kid` when there
    /// is more than one (a token without `kid` could not choose). Only a document that
    /// is not a JWK Set at all is an error.
    pub fn from_jwks(document: &[u8]) -> Result<(Self, Vec<SkippedKey>), KeyError> {
        #[derive(serde::Deserialize)]
        struct Document {
            keys: Vec<serde_json::Value>,
        }
        let document: Document = serde_json::from_slice(document).map_err(KeyError::NotAJwkSet)?;
        let mut set = Self::default();
        let mut skipped = Vec::new();
        // Keys are judged first: an unusable key without `kid` (an encryption key, say)
        // must not make a usable one ambiguous.
        let judged: Vec<(Option<String>, Result<VerificationKey, KeyError>)> = document
            .keys
            .into_iter()
            .map(|value| {
                let kid = value.get("kid").and_then(|kid| kid.as_str()).map(str::to_owned);
                let usable = match serde_json::from_value::<Jwk>(value) {
                    Ok(jwk) => VerificationKey::from_jwk(&jwk),
                    Err(error) => Err(KeyError::NotAJwk(error.to_string())),
                };
                (kid, usable)
            })
            .collect();
        let usable_without_kid = judged
            .iter()
            .filter(|(_, usable)| usable.as_ref().is_ok_and(|key| key.kid.is_none()))
            .count();
        for (kid, usable) in judged {
            let outcome = usable.and_then(|key| {
                if key.kid.is_none() && usable_without_kid > 1 {
                    return Err(KeyError::AmbiguousDefaultKey);
                }
                set.insert(key)
            });
            if let Err(reason) = outcome {
                skipped.push(SkippedKey { kid, reason });
            }
        }
        Ok((set, skipped))
    }

    /// How many keys the set holds.
    pub fn len(&self) -> usize {
        self.by_kid.len() + usize::from(self.default_key.is_some())
    }

    /// Whether the set holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a key has this `kid`.
    pub fn contains_kid(&self, kid: &str) -> bool {
        self.by_kid.contains_key(kid)
    }

    /// The key for a token whose header names `kid` (or none).
    pub(crate) fn select(&self, kid: Option<&str>) -> Option<&VerificationKey> {
        kid.and_then(|kid| self.by_kid.get(kid))
            .or(self.default_key.as_ref())
    }

    fn insert(&mut self, key: VerificationKey) -> Result<(), KeyError> {
        match key.kid.clone() {
            Some(kid) if self.by_kid.contains_key(&kid) => Err(KeyError::DuplicateKid { kid }),
            Some(kid) => {
                self.by_kid.insert(kid, key);
                Ok(())
            }
            None if self.default_key.is_some() => Err(KeyError::AmbiguousDefaultKey),
            None => {
                self.default_key = Some(key);
                Ok(())
            }
        }
    }
}

/// Asks a key source for fresh keys (a JWKS fetch); resolves when that fetch ended, or
/// at once when the source's rate limit refuses one now.
pub(crate) trait Refresh: Send + Sync + 'static {
    fn refresh(&self, asking: Asking) -> Pin<Box<dyn Future<Output = Refreshed> + Send + '_>>;
}

/// What a refresh is told of the token that asked for it (read from the token before
/// its signature could be checked: anyone can choose these, and they only decide
/// between a 401 and a 503 for that token).
#[derive(Debug, Clone, Default)]
#[cfg_attr(not(feature = "jwks"), allow(dead_code))] // read by the JWKS source
pub(crate) struct Asking {
    /// The header's `kid`.
    pub(crate) kid: Option<String>,
    /// Its `iat` plus the verifier's leeway (an issuer's clock may run behind ours):
    /// keys fetched after this were published after the token was signed, so a `kid`
    /// missing from them is not the provider's.
    pub(crate) issued_before: Option<SystemTime>,
}

/// What a [`Refresh`] achieved for the request that asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "jwks"), allow(dead_code))] // made by the JWKS source
pub(crate) enum Refreshed {
    /// A fetch that started after the request asked has succeeded: a `kid` the keys
    /// still lack is not the provider's.
    Fresh,
    /// No such fetch could be made now (the rate limit, or the provider failed): the
    /// keys are fetched again by themselves within this delay, whole seconds.
    Later(Duration),
}

/// A [`KeySet`] that can be replaced while the service runs: every verifier (and so
/// every layer and service) holding this ring sees the new keys on its next request,
/// with no setting rebuilt.
///
/// Reading the current keys on each request is a lock-free pointer load. A ring made
/// with [`KeyRing::empty`] holds no keys until the first [`replace`](Self::replace):
/// tokens are then refused as "keys unavailable", a **503**, not a 401, since the
/// client did nothing wrong.
///
/// ```
/// use jsonwebtoken::Algorithm;
/// use tower_jwt_revoke::{JwtVerifier, KeyRing, KeySet, VerificationKey};
///
/// # fn main() -> Result<(), tower_jwt_revoke::KeyError> {
/// let ring = KeyRing::new(KeySet::new([VerificationKey::hmac(Algorithm::HS256, b"old secret")?.with_kid("1")])?);
/// let verifier = JwtVerifier::builder().key_ring(ring.clone()).build()?;
///
/// // Rotation: tokens signed with kid 2 are accepted from now on, kid 1's are not.
/// ring.replace(KeySet::new([VerificationKey::hmac(Algorithm::HS256, b"new secret")?.with_kid("2")])?);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct KeyRing {
    shared: Arc<Shared>,
}

struct Shared {
    current: ArcSwapOption<KeySet>,
    refresher: OnceLock<Arc<dyn Refresh>>,
}

impl KeyRing {
    /// A ring holding `keys`.
    pub fn new(keys: KeySet) -> Self {
        let ring = Self::empty();
        ring.replace(keys);
        ring
    }

    /// A ring with no keys yet: tokens are refused with a 503 until the first
    /// [`replace`](Self::replace).
    pub fn empty() -> Self {
        Self {
            shared: Arc::new(Shared {
                current: ArcSwapOption::empty(),
                refresher: OnceLock::new(),
            }),
        }
    }

    /// Replaces the keys; requests verified from now on use the new ones.
    pub fn replace(&self, keys: KeySet) {
        self.shared.current.store(Some(Arc::new(keys)));
    }

    /// Withdraws the keys: tokens are refused with a 503 until the next
    /// [`replace`](Self::replace) (keys older than a JWKS source's maximum age).
    #[cfg_attr(not(feature = "jwks"), allow(dead_code))]
    pub(crate) fn clear(&self) {
        self.shared.current.store(None);
    }

    /// The current keys, or `None` before any were loaded (or once withdrawn).
    pub fn current(&self) -> Option<Arc<KeySet>> {
        self.shared.current.load_full()
    }

    /// Whether `self` and `other` are the same ring (clones of one another), whose
    /// keys are therefore always the same.
    #[cfg_attr(not(feature = "endpoints"), allow(dead_code))]
    pub(crate) fn same_ring(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// Whether keys are loaded: ever replaced, and not withdrawn since by a JWKS
    /// source's maximum key age (`max_key_age`).
    pub fn is_loaded(&self) -> bool {
        self.shared.current.load().is_some()
    }

    /// Runs `read` on the current keys without taking a reference count.
    pub(crate) fn with_keys<T>(&self, read: impl FnOnce(Option<&KeySet>) -> T) -> T {
        let guard = self.shared.current.load();
        read(guard.as_deref())
    }

    /// Makes `refresher` the source asked for fresh keys when a token names an
    /// unknown `kid`; the first one set stays.
    #[allow(dead_code)] // used by the JWKS source (feature `jwks`), landing separately
    pub(crate) fn set_refresher(&self, refresher: Arc<dyn Refresh>) {
        let _ = self.shared.refresher.set(refresher);
    }

    pub(crate) fn refresher(&self) -> Option<&Arc<dyn Refresh>> {
        self.shared.refresher.get()
    }

    /// A reference that does not keep the ring alive: a refresher held by the ring
    /// keeps only this, or ring and refresher would keep each other alive forever.
    #[cfg_attr(not(feature = "jwks"), allow(dead_code))]
    pub(crate) fn downgrade(&self) -> WeakKeyRing {
        WeakKeyRing {
            shared: Arc::downgrade(&self.shared),
        }
    }
}

/// A [`KeyRing`] that may have been dropped; see [`KeyRing::downgrade`].
#[cfg_attr(not(feature = "jwks"), allow(dead_code))]
pub(crate) struct WeakKeyRing {
    shared: Weak<Shared>,
}

#[cfg_attr(not(feature = "jwks"), allow(dead_code))]
impl WeakKeyRing {
    /// The ring, while anything still holds it.
    pub(crate) fn upgrade(&self) -> Option<KeyRing> {
        self.shared.upgrade().map(|shared| KeyRing { shared })
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("keys", &self.current().map(|keys| keys.len()))
            .field("refreshable", &self.refresher().is_some())
            .finish()
    }
}
