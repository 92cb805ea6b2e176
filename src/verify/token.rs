//! What a verified request carries: the token's registered claims, and its payload for
//! the application's own.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer};

use crate::store::RevocationQuery;
use crate::store::key::RevocationKey;
use crate::store::watch::{Revoked, Watch};
use crate::verify::VerifyError;

/// A token that passed [`JwtVerifier`](crate::JwtVerifier): its registered claims, its
/// revocation key, and its payload, from which the application reads its own claims
/// with [`claims`](Self::claims).
///
/// [`RevocationLayer`](crate::RevocationLayer) puts one into the request extensions of
/// every request it lets through. With the `axum` feature, handlers take it (or
/// `Claims<C>`) as an extractor; with the `tonic` feature,
/// `tonic::RequestExt` reads it from a `tonic::Request`.
///
/// The token carries no claims type: every handler reads the claims it needs, so no
/// layer setting can disagree with a handler about them.
#[derive(Clone)]
pub struct VerifiedToken {
    pub(crate) registered: RegisteredClaims,
    pub(crate) key: RevocationKey,
    /// The decoded JSON payload; shared, so cloning the token does not copy it.
    pub(crate) payload: Bytes,
    /// The first Unix second in which the verifier refuses it: `exp + leeway + 1`.
    pub(crate) refused_from: u64,
    /// The store that checked it and the waiters' registry, attached by the layer.
    pub(crate) watch: Option<Arc<Watch>>,
}

impl fmt::Debug for VerifiedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Claim values (`sub` included) stay out of logs: the revocation key names the
        // token without saying whose it is.
        f.debug_struct("VerifiedToken")
            .field("key", &self.key)
            .field("expires_at", &self.registered.exp)
            .finish_non_exhaustive()
    }
}

impl VerifiedToken {
    /// The registered claims (`jti`, `sub`, `sid`, `iat`, `exp`, `iss`…).
    pub fn registered(&self) -> &RegisteredClaims {
        &self.registered
    }

    /// Reads the application's own claims from the payload.
    ///
    /// `C` is deserialized from the whole payload, so it may name registered claims
    /// (`sub`, say) as well as the application's own. A payload that does not fit `C`
    /// is [`VerifyError::CustomClaims`]: the token is genuine but not one this
    /// application can use (the `Claims` extractor of feature `axum` answers 401).
    ///
    /// ```
    /// # use tower_jwt_revoke::VerifiedToken;
    /// #[derive(serde::Deserialize)]
    /// struct Roles {
    ///     roles: Vec<String>,
    /// }
    ///
    /// fn is_admin(token: &VerifiedToken) -> bool {
    ///     token.claims::<Roles>().is_ok_and(|claims| claims.roles.iter().any(|role| role == "admin"))
    /// }
    /// ```
    pub fn claims<C: DeserializeOwned>(&self) -> Result<C, VerifyError> {
        serde_json::from_slice(&self.payload).map_err(|_| VerifyError::CustomClaims)
    }

    /// The `sub` claim, if any.
    pub fn subject(&self) -> Option<&str> {
        self.registered.sub.as_deref()
    }

    /// The `jti` claim, if any. An empty `jti` counts as none: it identifies nothing.
    pub fn token_id(&self) -> Option<&str> {
        self.registered.jti.as_deref()
    }

    /// The `sid` claim, if any.
    pub fn session_id(&self) -> Option<&str> {
        self.registered.sid.as_deref()
    }

    /// The `iss` claim, if any.
    pub fn issuer(&self) -> Option<&str> {
        self.registered.iss.as_deref()
    }

    /// The `exp` claim, in seconds since the Unix epoch.
    pub fn expires_at(&self) -> u64 {
        self.registered.exp
    }

    /// The `iat` claim, in seconds since the Unix epoch, if any.
    pub fn issued_at(&self) -> Option<u64> {
        self.registered.iat
    }

    /// The hashed identifier this token is revoked under: from `(iss, jti)`, or from
    /// its signing input when it has no (or an empty) `jti`.
    pub fn revocation_key(&self) -> RevocationKey {
        self.key
    }

    /// The hashed identifier of this token's subject, if it has a `sub`.
    pub fn subject_key(&self) -> Option<RevocationKey> {
        self.subject()
            .map(|sub| RevocationKey::subject(self.issuer(), sub))
    }

    /// The hashed identifier of this token's session, if it has a `sid`.
    pub fn session_key(&self) -> Option<RevocationKey> {
        self.session_id()
            .map(|sid| RevocationKey::session(self.issuer(), sid))
    }

    /// The first second (since the Unix epoch) in which the verifier refuses this token
    /// as expired: `exp` plus the verifier's leeway, plus one (the verifier accepts it
    /// during the whole second `exp + leeway`).
    pub fn refused_from(&self) -> u64 {
        self.refused_from
    }

    /// A future that resolves when this token becomes refused, and says why: revoked
    /// (the token itself, its session, its subject's watermark or the global one:
    /// [`Refusal::Revoked`](crate::Refusal::Revoked)) or expired
    /// ([`Refusal::Expired`](crate::Refusal::Expired), at [`refused_from`](Self::refused_from)).
    ///
    /// For a request that stays open (Server-Sent Events, a WebSocket, a gRPC server
    /// stream): the layer checked the token once, when the request started; `select!`
    /// on this future to end the stream when a logout, a "log out everywhere" or a
    /// global revocation happens meanwhile.
    ///
    /// How soon it resolves depends on the store that checked the token:
    /// `InMemoryStore` wakes it as the revocation is written, `MirrorStore` as its change
    /// feed brings the revocation (milliseconds after a write on any replica); for
    /// `RedisStore` and custom stores without
    /// [`watchers`](crate::store::RevocationStore::watchers), the layer asks the store
    /// about all its open streams in one batched call per
    /// [watch interval](crate::RevocationLayer::with_watch_interval) (1 s by default).
    /// A token that did not come through a [`RevocationLayer`](crate::RevocationLayer)
    /// (one from [`JwtVerifier::verify`](crate::JwtVerifier::verify) directly) knows no
    /// store: its future resolves only at expiry.
    ///
    /// Creating the future costs nothing; the first poll registers it (a small entry
    /// indexed by the token's, session's and subject's keys, no timer and no task) and
    /// checks the store once more, so a revocation made between the layer's check and
    /// that poll is not missed. Dropping it deregisters it. A store that fails to answer
    /// does not end the stream: it is asked again. Needs a Tokio runtime.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_jwt_revoke::{Refusal, VerifiedToken};
    ///
    /// /// Sends a tick every 200 ms until the token is refused (and says why), or until
    /// /// the client goes away (`None`).
    /// async fn ticks(token: VerifiedToken, send: tokio::sync::mpsc::Sender<u64>) -> Option<Refusal> {
    ///     let mut revoked = token.revoked();
    ///     let mut interval = tokio::time::interval(Duration::from_millis(200));
    ///     let mut n = 0;
    ///     loop {
    ///         tokio::select! {
    ///             refusal = &mut revoked => return Some(refusal),
    ///             _ = interval.tick() => {
    ///                 send.send(n).await.ok()?;
    ///                 n += 1;
    ///             }
    ///         }
    ///     }
    /// }
    /// ```
    pub fn revoked(&self) -> Revoked {
        Revoked::new(
            self.watch.clone(),
            RevocationQuery::for_token(self),
            self.refused_from,
        )
    }
}

/// The registered claims of RFC 7519 that revocation depends on, plus `sid`
/// (OpenID Connect's session id).
///
/// `exp` is required by [`JwtVerifier`](crate::JwtVerifier): a token that never
/// expires could never be forgotten by a revocation list.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct RegisteredClaims {
    /// `jti`: the token's unique id.
    #[serde(default)]
    pub jti: Option<String>,
    /// `sub`: whom the token is about.
    #[serde(default)]
    pub sub: Option<String>,
    /// `sid`: the session the token belongs to.
    #[serde(default)]
    pub sid: Option<String>,
    /// `iss`: who issued the token.
    #[serde(default)]
    pub iss: Option<String>,
    /// `iat`: when the token was issued, seconds since the Unix epoch (fractions
    /// dropped).
    #[serde(default, deserialize_with = "iat_date")]
    pub iat: Option<u64>,
    /// `nbf`: not valid before, seconds since the Unix epoch (fractions dropped).
    #[serde(default, deserialize_with = "nbf_date")]
    pub nbf: Option<u64>,
    /// `exp`: expiry, seconds since the Unix epoch (fractions rounded up, so a
    /// revocation never lapses early).
    #[serde(deserialize_with = "exp_date")]
    pub exp: u64,
}

/// RFC 7519 NumericDate: a JSON number of seconds, possibly fractional.
///
/// Errors name the claim (`` `exp` ``), so the verifier can say which one is off.
fn numeric_date<'de, D: Deserializer<'de>>(
    deserializer: D,
    claim: &str,
    round: fn(f64) -> f64,
) -> Result<Option<u64>, D::Error> {
    let invalid = || de::Error::custom(format!("`{claim}` must be a finite, non-negative NumericDate"));
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Number {
        Integer(u64),
        Float(f64),
    }
    // An absent claim never reaches here (`#[serde(default)]`); an explicit `null` is
    // no NumericDate, and is refused like any other non-number.
    match Number::deserialize(deserializer).map_err(|_: D::Error| invalid())? {
        Number::Integer(seconds) => Ok(Some(seconds)),
        Number::Float(seconds) if seconds.is_finite() && seconds >= 0.0 => {
            // `as` saturates at u64::MAX for out-of-range floats, which is what we want.
            Ok(Some(round(seconds) as u64))
        }
        Number::Float(_) => Err(invalid()),
    }
}

pub(crate) fn iat_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    numeric_date(d, "iat", f64::floor)
}

pub(crate) fn nbf_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    numeric_date(d, "nbf", f64::floor)
}

pub(crate) fn exp_date<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    numeric_date(d, "exp", f64::ceil)?.ok_or_else(|| de::Error::missing_field("exp"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_dates_accept_integers_and_round_fractions_safely() {
        let claims: RegisteredClaims =
            serde_json::from_str(r#"{"exp": 100.2, "iat": 50.9, "nbf": 7}"#).unwrap();
        assert_eq!(claims.exp, 101, "exp rounds up so revocations never lapse early");
        assert_eq!(claims.iat, Some(50));
        assert_eq!(claims.nbf, Some(7));
    }

    #[test]
    fn negative_or_textual_dates_are_rejected() {
        assert!(serde_json::from_str::<RegisteredClaims>(r#"{"exp": -1}"#).is_err());
        let textual = serde_json::from_str::<RegisteredClaims>(r#"{"exp": "soon"}"#).unwrap_err();
        assert!(textual.to_string().contains("`exp`"), "{textual}");
        assert!(serde_json::from_str::<RegisteredClaims>(r#"{}"#).is_err());
        // `null` is no NumericDate: absent and null are not the same thing.
        let null = serde_json::from_str::<RegisteredClaims>(r#"{"exp": 5, "nbf": null}"#).unwrap_err();
        assert!(null.to_string().contains("`nbf`"), "{null}");
    }
}
