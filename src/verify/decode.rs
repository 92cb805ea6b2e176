//! Decoding and validating one token: [`JwtVerifier::decode`] and the JSON shapes it
//! reads.

use std::borrow::Cow;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde::de::IgnoredAny;

use super::error::VerifyError;
use super::key_set::KeyRing;
use super::{JwtVerifier, SessionClaim};
use crate::store::key::RevocationKey;
use crate::verify::token::{RegisteredClaims, VerifiedToken};

impl JwtVerifier {
    /// One pass over the token: split, check the header, pick the key, verify the
    /// signature, then read and validate the claims. Signature verification comes
    /// before any claim is trusted, so "expired" is only ever said of a genuine token
    /// (the issuer may be read first, to choose among tenants' keys, never trusted).
    pub(super) fn decode(&self, token: &str, purpose: Purpose) -> Result<VerifiedToken, Failure> {
        let inner = &*self.inner;
        if token.len() > inner.max_token_len {
            return Err(VerifyError::TooLarge.into());
        }
        let (signing_input, signature) = token.rsplit_once('.').ok_or(VerifyError::Malformed)?;
        let (header, payload) = signing_input.split_once('.').ok_or(VerifyError::Malformed)?;

        let header = b64(header)?;
        // serde would also fill a struct from a JSON array, by position; RFC 7515 §4
        // wants an object.
        if !is_object(&header) {
            return Err(VerifyError::Malformed.into());
        }
        let header: JoseHeader<'_> = serde_json::from_slice(&header).map_err(|_| VerifyError::Malformed)?;
        if header.crit.is_some() {
            // RFC 7515 §4.1.11: critical extensions we do not understand mean "refuse".
            return Err(VerifyError::Malformed.into());
        }
        if let Some(required) = &inner.required_type
            && !header
                .typ
                .as_deref()
                .is_some_and(|typ| same_media_type(typ, required))
        {
            return Err(VerifyError::WrongType.into());
        }
        let payload = b64(payload)?;
        // With keys per issuer, the claims are read before the signature is checked (only
        // `iss` is used then, to pick the keys; nothing is trusted before the check), so
        // that the payload is parsed once either way.
        let (early, ring) = if inner.issuer_keys.is_empty() {
            (None, &inner.keys)
        } else {
            let claims = parse_claims(&payload)?;
            let ring = claims
                .iss
                .as_deref()
                .and_then(|iss| inner.issuer_keys.get(iss))
                .unwrap_or(&inner.keys);
            (Some(claims), ring)
        };
        ring.with_keys(|keys| {
            let key = keys
                .ok_or(VerifyError::KeysUnavailable)?
                .select(header.kid.as_deref())
                .ok_or(VerifyError::UnknownKey)?;
            // `none`, unknown names and other algorithms than the key's all end here.
            if header.alg.parse::<Algorithm>().ok() != Some(key.algorithm) {
                return Err(VerifyError::AlgorithmNotAllowed);
            }
            let signature = b64(signature)?;
            if let Some(hmac) = &key.hmac {
                return match hmac.verify(signing_input.as_bytes(), &signature) {
                    true => Ok(()),
                    false => Err(VerifyError::BadSignature),
                };
            }
            let verifier = (crate::verify::crypto::provider().verifier_factory)(&key.algorithm, &key.key)
                .map_err(|_| VerifyError::AlgorithmNotAllowed)?;
            verifier
                .verify(signing_input.as_bytes(), &signature)
                .map_err(|_| VerifyError::BadSignature)
        })?;

        let claims = match early {
            Some(claims) => claims,
            None => parse_claims(&payload)?,
        };
        let sid = match inner.session_claim {
            SessionClaim::Sid => claims.sid,
            SessionClaim::SessionState => claims.session_state,
            SessionClaim::SidOrSessionState => claims.sid.or(claims.session_state),
        };
        let registered = RegisteredClaims {
            // An empty `jti` names no token: were it an id, every token carrying one
            // would be revoked with the first.
            jti: claims.jti.filter(|jti| !jti.is_empty()),
            sub: claims.sub,
            sid,
            iss: claims.iss,
            iat: claims.iat,
            nbf: claims.nbf,
            exp: claims.exp,
        };
        self.validate(&registered, claims.aud.as_ref(), purpose)?;
        let key = match registered.jti.as_deref() {
            Some(jti) => RevocationKey::token(registered.iss.as_deref(), jti),
            None => RevocationKey::token_without_id(signing_input),
        };
        // Refused once `exp < floor(now) - leeway` (see `validate`): from this second on.
        let refused_from = registered.exp.saturating_add(inner.leeway_secs).saturating_add(1);
        Ok(VerifiedToken {
            registered,
            key,
            payload: payload.into(),
            refused_from,
            watch: None,
        })
    }

    /// The key ring for a token with this (decoded, unverified) payload: its issuer's
    /// own, when the verifier has keys per issuer, else the verifier's.
    pub(super) fn ring_for(&self, payload: &[u8]) -> &KeyRing {
        let inner = &*self.inner;
        if inner.issuer_keys.is_empty() {
            return &inner.keys;
        }
        #[derive(Deserialize)]
        struct Issuer<'a> {
            #[serde(default, borrow)]
            iss: Option<Cow<'a, str>>,
        }
        serde_json::from_slice::<Issuer<'_>>(payload)
            .ok()
            .and_then(|claims| claims.iss)
            .and_then(|iss| inner.issuer_keys.get(iss.as_ref()))
            .unwrap_or(&inner.keys)
    }

    fn validate(
        &self,
        claims: &RegisteredClaims,
        audience: Option<&Audience>,
        purpose: Purpose,
    ) -> Result<(), Failure> {
        let not_yet_valid_counts = purpose == Purpose::Request;
        let inner = &*self.inner;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        if claims.exp < now.saturating_sub(inner.leeway_secs) {
            return Err(Failure::ExpiredButGenuine);
        }
        if not_yet_valid_counts
            && claims
                .nbf
                .is_some_and(|nbf| nbf > now.saturating_add(inner.leeway_secs))
        {
            return Err(VerifyError::NotYetValid.into());
        }
        if !inner.issuers.is_empty() {
            let issuer = claims.iss.as_deref().ok_or(VerifyError::MissingClaim("iss"))?;
            if !inner.issuers.iter().any(|accepted| accepted == issuer) {
                return Err(VerifyError::WrongIssuer.into());
            }
        }
        match (audience, inner.audiences.is_empty()) {
            (None, true) => {}
            (None, false) => return Err(VerifyError::MissingClaim("aud").into()),
            // A token meant for a named audience is not meant for a service that has none.
            (Some(_), true) => return Err(VerifyError::WrongAudience.into()),
            (Some(audience), false) => {
                if !audience
                    .iter()
                    .any(|aud| inner.audiences.iter().any(|accepted| accepted == aud))
                {
                    return Err(VerifyError::WrongAudience.into());
                }
            }
        }
        // Watermarks and session revocations are kept for the maximum lifetime, so no
        // token may live longer than that after its `iat`. Both come from the issuer's
        // clock, so no leeway applies to their difference.
        match claims.iat {
            Some(iat) if not_yet_valid_counts && iat > now.saturating_add(inner.leeway_secs) => {
                return Err(VerifyError::InvalidClaim("iat").into());
            }
            Some(iat) if claims.exp.saturating_sub(iat) > inner.max_lifetime_secs => {
                return Err(VerifyError::LifetimeTooLong.into());
            }
            Some(_) => {}
            None if inner.require_iat => return Err(VerifyError::MissingClaim("iat").into()),
            None => {
                // Issuance is unknown: bound what is left, allowing for clock skew.
                let allowed = inner.max_lifetime_secs.saturating_add(inner.leeway_secs);
                if claims.exp.saturating_sub(now) > allowed {
                    return Err(VerifyError::LifetimeTooLong.into());
                }
            }
        }
        Ok(())
    }
}

/// Reads the claims verification needs, naming the claim when serde can tell which one
/// is off.
fn parse_claims(payload: &[u8]) -> Result<Payload<'_>, VerifyError> {
    if !is_object(payload) {
        // RFC 7519 §7.2: the claims set is a JSON object.
        return Err(VerifyError::Malformed);
    }
    serde_json::from_slice(payload).map_err(|error| claim_error(&error))
}

/// Names the claim serde complains about, when it can tell which one is off.
pub(crate) fn claim_error(error: &serde_json::Error) -> VerifyError {
    let message = error.to_string();
    let claim = [
        "exp",
        "nbf",
        "iat",
        "iss",
        "aud",
        "sub",
        "jti",
        "sid",
        "session_state",
    ]
    .into_iter()
    .find(|claim| message.contains(&format!("`{claim}`")));
    match claim {
        Some(claim) if message.starts_with("missing field") => VerifyError::MissingClaim(claim),
        Some(claim) => VerifyError::InvalidClaim(claim),
        None => VerifyError::Malformed,
    }
}

/// Whether a JSON text is an object (its first non-blank byte is `{`); the parser then
/// checks the rest.
pub(crate) fn is_object(json: &[u8]) -> bool {
    json.iter().find(|byte| !byte.is_ascii_whitespace()) == Some(&b'{')
}

pub(super) fn b64(part: &str) -> Result<Vec<u8>, VerifyError> {
    URL_SAFE_NO_PAD.decode(part).map_err(|_| VerifyError::Malformed)
}

/// The JOSE header fields verification depends on.
#[derive(Deserialize)]
struct JoseHeader<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(default, borrow)]
    kid: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    typ: Option<Cow<'a, str>>,
    #[serde(default)]
    crit: Option<IgnoredAny>,
}

/// Whether a `typ` header names `required` (RFC 7515 §4.1.9: compared without
/// case, the `application/` prefix optional).
pub(crate) fn same_media_type(typ: &str, required: &str) -> bool {
    fn bare(value: &str) -> &str {
        match value.get(..12) {
            Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &value[12..],
            _ => value,
        }
    }
    bare(typ).eq_ignore_ascii_case(bare(required))
}

/// The payload as verification reads it: the registered claims, and `aud`. Spelled
/// out rather than `#[serde(flatten)]`ing [`RegisteredClaims`], which would buffer the
/// whole payload on every request.
#[derive(Deserialize)]
struct Payload<'a> {
    #[serde(default)]
    jti: Option<String>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    sid: Option<String>,
    #[serde(default)]
    session_state: Option<String>,
    #[serde(default)]
    iss: Option<String>,
    #[serde(default, deserialize_with = "crate::verify::token::iat_date")]
    iat: Option<u64>,
    #[serde(default, deserialize_with = "crate::verify::token::nbf_date")]
    nbf: Option<u64>,
    #[serde(deserialize_with = "crate::verify::token::exp_date")]
    exp: u64,
    #[serde(default, borrow)]
    aud: Option<Audience<'a>>,
}

/// `aud`: one audience or several (RFC 7519 §4.1.3).
#[derive(Deserialize)]
#[serde(untagged)]
enum Audience<'a> {
    One(#[serde(borrow)] Cow<'a, str>),
    Many(#[serde(borrow)] Vec<Cow<'a, str>>),
}

impl Audience<'_> {
    fn iter(&self) -> impl Iterator<Item = &str> {
        let (one, many) = match self {
            Self::One(aud) => (Some(aud.as_ref()), &[][..]),
            Self::Many(auds) => (None, auds.as_slice()),
        };
        one.into_iter().chain(many.iter().map(AsRef::as_ref))
    }
}

/// What a token is verified for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Purpose {
    /// Letting a request in.
    Request,
    /// Revoking it: a token that is not valid yet is still worth revoking.
    Revocation,
}

pub(super) enum Failure {
    Verify(VerifyError),
    ExpiredButGenuine,
}

impl From<VerifyError> for Failure {
    fn from(error: VerifyError) -> Self {
        Self::Verify(error)
    }
}
