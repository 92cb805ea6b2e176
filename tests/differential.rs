//! Differential test (issue #9): [`JwtVerifier`] is written by hand over jsonwebtoken's
//! primitives, for speed, so it is held to `jsonwebtoken::decode` itself. For thousands
//! of generated tokens, both must accept or refuse alike, unless the disagreement is one
//! of the [`Difference`]s listed below, each with the reason it exists.
//!
//! Generation is deterministic (a fixed seed and a small PRNG), so a failure names a case
//! that reproduces. `DIFFERENTIAL_SEED` and `DIFFERENTIAL_CASES` explore further without
//! editing the test.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::IgnoredAny;
use serde_json::Value;
use tower_jwt_revoke::jsonwebtoken::crypto::{CryptoProvider, JwtSigner};
use tower_jwt_revoke::jsonwebtoken::errors::ErrorKind;
use tower_jwt_revoke::jsonwebtoken::{self, Algorithm, DecodingKey, EncodingKey, Validation};
use tower_jwt_revoke::{
    DEFAULT_MAX_TOKEN_LEN, DEFAULT_MAX_TOKEN_LIFETIME, JwtVerifier, VerificationKey, VerifyError,
};

const SEED: u64 = 0x0009_d1ff_7e57_5eed;
const CASES: usize = 6000;

/// The one call into our verifier, so that a change of its signature is a change here.
fn ours(verifier: &JwtVerifier, token: &str) -> Result<(), VerifyError> {
    verifier.verify(token).map(drop)
}

/// Why the reference refused.
#[derive(Debug)]
enum Refusal {
    /// No key for the header's `kid` and no default key. jsonwebtoken has no key sets,
    /// so the reference picks the key by the rule the verifier documents.
    NoKey,
    Jwt(ErrorKind),
}

/// `jsonwebtoken::decode` with the `Validation` equivalent to the case's configuration.
fn reference(config: &Config, keys: &Keys, token: &str) -> Result<(), Refusal> {
    let header = jsonwebtoken::decode_header(token).map_err(|error| Refusal::Jwt(error.into_kind()))?;
    let alg = config.key_for(header.kid.as_deref()).ok_or(Refusal::NoKey)?;
    let mut validation = Validation::new(alg);
    validation.leeway = config.leeway;
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.validate_aud = true;
    validation.reject_tokens_expiring_in_less_than = 0;
    validation.required_spec_claims = ["exp".to_owned()].into();
    if !config.issuers.is_empty() {
        validation.set_issuer(config.issuers);
        validation.required_spec_claims.insert("iss".to_owned());
    }
    if !config.audiences.is_empty() {
        validation.set_audience(config.audiences);
        validation.required_spec_claims.insert("aud".to_owned());
    }
    jsonwebtoken::decode::<IgnoredAny>(token, &keys.get(alg).decoding, &validation)
        .map(drop)
        .map_err(|error| Refusal::Jwt(error.into_kind()))
}

// ---------------------------------------------------------------------------------------
// The known differences.
// ---------------------------------------------------------------------------------------

/// Every way the verifier and `jsonwebtoken::decode` are known to part. A disagreement
/// that none of these explains fails the test, and so does an entry that no case
/// exercises any more: the list cannot outlive the behaviour it excuses.
///
/// Each entry is checked against the facts of the case (the generated header and
/// claims, the configuration, the time), not merely against the verifier's error, so
/// that an entry cannot excuse an unrelated disagreement that happens to end in the
/// same error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Difference {
    // Deliberate: the verifier is stricter.
    /// `iat` is required (unless `allow_missing_iat`): subject, session and global
    /// revocations are watermarks on `iat`, and a token without one cannot be placed
    /// before or after them. jsonwebtoken never reads `iat`.
    IatRequired,
    /// `iat` later than now plus the leeway is refused: a token "issued" in the future
    /// would slip under every watermark set before that time.
    IatInTheFuture,
    /// `iat`, once read, must be a NumericDate; jsonwebtoken never reads it.
    IatNotANumericDate,
    /// `exp - iat` (or, without `iat`, `exp - now` beyond the leeway) may not exceed
    /// the maximum token lifetime: watermarks are kept that long, and a token that
    /// outlived them would come back to life. jsonwebtoken has no such bound.
    LifetimeTooLong,
    /// A `crit` header is refused (RFC 7515 §4.1.11: extensions the recipient does not
    /// understand must be refused, and the verifier understands none). jsonwebtoken
    /// ignores `crit`.
    CriticalHeader,
    /// Tokens longer than [`DEFAULT_MAX_TOKEN_LEN`] are refused before any parsing, to
    /// bound the work an unauthenticated request can cause. jsonwebtoken has no cap.
    TokenTooLarge,
    /// `iss`, `sub`, `jti` and `sid` must be strings and `aud` a string or an array of
    /// strings, whatever is configured: revocations are keyed on them, so the verifier
    /// reads them all, and a string must be one (not invalid UTF-8, no lone surrogate
    /// escape). jsonwebtoken skips a claim it cannot parse unless it must validate it, so
    /// it accepts, say, `"sub": 5`, `"sub": "\ud800"`, or `"aud": 5` when no audience
    /// is configured.
    MistypedClaim,
    /// `iss` must be one string (RFC 7519 §4.1.1). jsonwebtoken also takes an array and
    /// accepts it when any element is an accepted issuer; revocation keys are scoped to
    /// one issuer.
    IssuerArray,
    /// A claim the verifier reads may not appear twice: serde refuses duplicate fields,
    /// one of the two answers RFC 7519 §4 allows. jsonwebtoken refuses duplicates only
    /// of the claims it validates.
    DuplicateClaim,

    // Deliberate: the verifier is more lenient.
    /// Fractional NumericDates: the verifier rounds `exp` up (a revocation, whose TTL is
    /// computed from `exp`, then never lapses before the token does) and `nbf` down;
    /// jsonwebtoken rounds both to the nearest second. Within that second the verifier
    /// accepts what jsonwebtoken refuses.
    FractionalDate,
    /// The verifier reads only `alg`, `kid` and `crit` from the header, and never acts on
    /// the other members; jsonwebtoken deserializes every registered header parameter
    /// and refuses a token whose `typ`, `cty`, `zip`, `enc`, `jwk`, `x5c`… has the wrong
    /// JSON type. Checking members nothing uses would cost every request a full parse.
    UnreadHeaderMember,
}

impl Difference {
    const ALL: &[Difference] = &[
        Self::IatRequired,
        Self::IatInTheFuture,
        Self::IatNotANumericDate,
        Self::LifetimeTooLong,
        Self::CriticalHeader,
        Self::TokenTooLarge,
        Self::MistypedClaim,
        Self::IssuerArray,
        Self::DuplicateClaim,
        Self::FractionalDate,
        Self::UnreadHeaderMember,
    ];

    /// Whether this difference accounts for the verifiers disagreeing on `case`.
    fn explains(self, case: &Case, ours: &Result<(), VerifyError>, theirs: &Result<(), Refusal>) -> bool {
        if self != Self::TokenTooLarge && case.mangle.is_some() {
            // The facts below are read from the parts as generated, which a damaged
            // token no longer carries.
            return false;
        }
        let (now, leeway) = (case.now, case.config.leeway);
        let claims = &case.payload;
        let ours_refused = |error: VerifyError| theirs.is_ok() && *ours == Err(error);
        let theirs_refused = |kind: fn(&ErrorKind) -> bool| {
            ours.is_ok() && matches!(theirs, Err(Refusal::Jwt(error)) if kind(error))
        };
        let iat = claims.get("iat");
        let exp = claims.get("exp");
        match self {
            Self::IatRequired => {
                ours_refused(VerifyError::MissingClaim("iat"))
                    && !case.config.allow_missing_iat
                    && iat.is_none()
            }
            Self::IatInTheFuture => {
                ours_refused(VerifyError::InvalidClaim("iat"))
                    && ours_date(iat.as_ref(), f64::floor).is_some_and(|iat| iat > now + leeway)
            }
            Self::IatNotANumericDate => {
                let not_a_date = |raw: &[u8]| match serde_json::from_slice::<Value>(raw) {
                    Ok(iat) => ours_date(Some(&iat), f64::floor).is_none(),
                    Err(_) => true,
                };
                ours_refused(VerifyError::InvalidClaim("iat")) && claims.raw("iat").is_some_and(not_a_date)
            }
            Self::LifetimeTooLong => {
                let Some(exp) = ours_date(exp.as_ref(), f64::ceil) else {
                    return false;
                };
                let max = case.config.max_lifetime_secs();
                ours_refused(VerifyError::LifetimeTooLong)
                    && match ours_date(iat.as_ref(), f64::floor) {
                        Some(iat) => exp.saturating_sub(iat) > max,
                        None => case.config.allow_missing_iat && exp.saturating_sub(now) > max + leeway,
                    }
            }
            Self::CriticalHeader => {
                ours_refused(VerifyError::Malformed)
                    && case.header.get("crit").is_some_and(|crit| !crit.is_null())
            }
            Self::TokenTooLarge => {
                ours_refused(VerifyError::TooLarge) && case.token.len() > DEFAULT_MAX_TOKEN_LEN
            }
            Self::MistypedClaim => {
                let mistyped = |name: &str| {
                    claims
                        .raw(name)
                        .is_some_and(|raw| match serde_json::from_slice::<Value>(raw) {
                            // An array of issuers is `IssuerArray`.
                            Ok(value) if name == "aud" || name == "iss" => {
                                !(value.is_null() || value.is_string() || is_array_of_strings(&value))
                            }
                            Ok(value) => !(value.is_null() || value.is_string()),
                            Err(_) => true,
                        })
                };
                ours_refused(VerifyError::Malformed)
                    && ["iss", "sub", "jti", "sid", "aud"].into_iter().any(mistyped)
            }
            Self::IssuerArray => {
                ours_refused(VerifyError::Malformed)
                    && claims.get("iss").is_some_and(|iss| is_array_of_strings(&iss))
            }
            Self::DuplicateClaim => {
                let read = ["jti", "sub", "sid", "iss", "iat", "nbf", "exp", "aud"];
                claims
                    .duplicated()
                    .into_iter()
                    .any(|name| read.contains(&name) && ours_refused(VerifyError::InvalidClaim(name)))
            }
            Self::FractionalDate => {
                let fractional = |value: &Option<Value>| {
                    value
                        .as_ref()
                        .and_then(Value::as_f64)
                        .is_some_and(|date| date.fract() != 0.0)
                };
                let nbf = claims.get("nbf");
                let expired_by_rounding = fractional(&exp)
                    && theirs_refused(|error| matches!(error, ErrorKind::ExpiredSignature))
                    && jwt_date(exp.as_ref()).is_some_and(|exp| exp < now - leeway)
                    && ours_date(exp.as_ref(), f64::ceil).is_some_and(|exp| exp >= now - leeway);
                let immature_by_rounding = fractional(&nbf)
                    && theirs_refused(|error| matches!(error, ErrorKind::ImmatureSignature))
                    && jwt_date(nbf.as_ref()).is_some_and(|nbf| nbf > now + leeway)
                    && ours_date(nbf.as_ref(), f64::floor).is_some_and(|nbf| nbf <= now + leeway);
                expired_by_rounding || immature_by_rounding
            }
            Self::UnreadHeaderMember => {
                let Part::Object(members) = &case.header else {
                    return false;
                };
                // The header parses once the members the verifier does not read are
                // gone: they alone made jsonwebtoken refuse.
                let read: Vec<_> = members
                    .iter()
                    .filter(|(name, _)| ["alg", "kid", "crit"].contains(name))
                    .cloned()
                    .collect();
                theirs_refused(|error| matches!(error, ErrorKind::Json(_)))
                    && serde_json::from_slice::<jsonwebtoken::Header>(&case.header.bytes()).is_err()
                    && serde_json::from_slice::<jsonwebtoken::Header>(&Part::Object(read).bytes()).is_ok()
            }
        }
    }
}

/// A NumericDate as the verifier documents reading it: whole seconds, fractions rounded
/// by `round`; `None` when absent, null or no non-negative number.
fn ours_date(value: Option<&Value>, round: fn(f64) -> f64) -> Option<u64> {
    let value = value?;
    value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|date| date.is_finite() && *date >= 0.0)
            .map(|date| round(date) as u64)
    })
}

/// A NumericDate as jsonwebtoken reads it: rounded to the nearest second.
fn jwt_date(value: Option<&Value>) -> Option<u64> {
    let value = value?;
    value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|date| date.is_finite() && *date >= 0.0 && *date < u64::MAX as f64)
            .map(|date| date.round() as u64)
    })
}

fn is_array_of_strings(value: &Value) -> bool {
    value
        .as_array()
        .is_some_and(|items| items.iter().all(Value::is_string))
}

// ---------------------------------------------------------------------------------------
// Keys and configurations.
// ---------------------------------------------------------------------------------------

const ALGORITHMS: [Algorithm; 12] = [
    Algorithm::HS256,
    Algorithm::HS384,
    Algorithm::HS512,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

const ISSUER: &str = "https://issuer.example";
const OTHER_ISSUER: &str = "https://other-issuer.example";
const SECRET: &[u8] = b"differential-test-secret-0123456789abcdef";
const WRONG_SECRET: &[u8] = b"differential-test-secret-0123456789abcdeF";

fn pem(name: &str) -> Vec<u8> {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "keys", name]
        .iter()
        .collect();
    std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

struct AlgKeys {
    alg: Algorithm,
    signer: Box<dyn JwtSigner>,
    /// Same algorithm, another key: its signatures must not verify.
    wrong_signer: Box<dyn JwtSigner>,
    /// HMAC-SHA256 keyed with the public key's PEM: the algorithm-confusion attack.
    confused_signer: Box<dyn JwtSigner>,
    decoding: DecodingKey,
    verification: VerificationKey,
}

/// The backend jsonwebtoken signs with in this build (the crate's choice: aws-lc-rs
/// whenever it is compiled in). Signers are made once per key rather than per token
/// through `jsonwebtoken::crypto::sign`: making one checks the key, and for RSA that
/// costs more than the signature.
fn provider() -> &'static CryptoProvider {
    #[cfg(feature = "aws_lc_rs")]
    return &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER;
    #[cfg(not(feature = "aws_lc_rs"))]
    return &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
}

fn signer(alg: Algorithm, key: &EncodingKey) -> Box<dyn JwtSigner> {
    (provider().signer_factory)(&alg, key).unwrap()
}

struct Keys(Vec<AlgKeys>);

impl Keys {
    fn load() -> Self {
        Self(ALGORITHMS.iter().map(|&alg| Self::for_algorithm(alg)).collect())
    }

    fn for_algorithm(alg: Algorithm) -> AlgKeys {
        let (private, wrong, public) = match alg {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                return AlgKeys {
                    alg,
                    signer: signer(alg, &EncodingKey::from_secret(SECRET)),
                    wrong_signer: signer(alg, &EncodingKey::from_secret(WRONG_SECRET)),
                    confused_signer: signer(Algorithm::HS256, &EncodingKey::from_secret(SECRET)),
                    decoding: DecodingKey::from_secret(SECRET),
                    verification: VerificationKey::hmac(alg, SECRET).unwrap(),
                };
            }
            Algorithm::ES256 => ("ec_private.pem", "other_ec_private.pem", "ec_public.pem"),
            Algorithm::ES384 => ("ec384_private.pem", "other_ec384_private.pem", "ec384_public.pem"),
            Algorithm::EdDSA => (
                "ed25519_private.pem",
                "other_ed25519_private.pem",
                "ed25519_public.pem",
            ),
            _ => ("rsa_private.pem", "other_rsa_private.pem", "rsa_public.pem"),
        };
        let (private, wrong, public) = (pem(private), pem(wrong), pem(public));
        let (signing, wrong, decoding, verification) = match alg {
            Algorithm::ES256 | Algorithm::ES384 => (
                EncodingKey::from_ec_pem(&private).unwrap(),
                EncodingKey::from_ec_pem(&wrong).unwrap(),
                DecodingKey::from_ec_pem(&public).unwrap(),
                VerificationKey::ec_pem(alg, &public).unwrap(),
            ),
            Algorithm::EdDSA => (
                EncodingKey::from_ed_pem(&private).unwrap(),
                EncodingKey::from_ed_pem(&wrong).unwrap(),
                DecodingKey::from_ed_pem(&public).unwrap(),
                VerificationKey::ed_pem(&public).unwrap(),
            ),
            _ => (
                EncodingKey::from_rsa_pem(&private).unwrap(),
                EncodingKey::from_rsa_pem(&wrong).unwrap(),
                DecodingKey::from_rsa_pem(&public).unwrap(),
                VerificationKey::rsa_pem(alg, &public).unwrap(),
            ),
        };
        AlgKeys {
            alg,
            signer: signer(alg, &signing),
            wrong_signer: signer(alg, &wrong),
            confused_signer: signer(Algorithm::HS256, &EncodingKey::from_secret(&public)),
            decoding,
            verification,
        }
    }

    fn get(&self, alg: Algorithm) -> &AlgKeys {
        self.0.iter().find(|keys| keys.alg == alg).unwrap()
    }
}

/// What a verifier is built with; the reference gets the equivalent `Validation`.
#[derive(Debug, Clone)]
struct Config {
    leeway: u64,
    issuers: &'static [&'static str],
    audiences: &'static [&'static str],
    /// `None`: the verifier's default.
    max_lifetime: Option<Duration>,
    allow_missing_iat: bool,
    /// The verifier's keys: algorithm and `kid`.
    keys: Vec<(Algorithm, Option<&'static str>)>,
}

impl Config {
    fn verifier(&self, keys: &Keys) -> JwtVerifier {
        let mut builder = JwtVerifier::builder().leeway_secs(self.leeway);
        for &(alg, kid) in &self.keys {
            let key = keys.get(alg).verification.clone();
            builder = builder.key(match kid {
                Some(kid) => key.with_kid(kid),
                None => key,
            });
        }
        for issuer in self.issuers {
            builder = builder.issuer(*issuer);
        }
        for audience in self.audiences {
            builder = builder.audience(*audience);
        }
        if let Some(lifetime) = self.max_lifetime {
            builder = builder.max_token_lifetime(lifetime);
        }
        if self.allow_missing_iat {
            builder = builder.allow_missing_iat();
        }
        builder.build().unwrap()
    }

    /// The key the verifier documents choosing: the one with the header's `kid`, else
    /// the one without a `kid`.
    fn key_for(&self, kid: Option<&str>) -> Option<Algorithm> {
        let by_kid = kid.and_then(|kid| self.keys.iter().find(|(_, k)| *k == Some(kid)));
        by_kid
            .or_else(|| self.keys.iter().find(|(_, k)| k.is_none()))
            .map(|&(alg, _)| alg)
    }

    /// The maximum lifetime in whole seconds, rounded up as the verifier documents.
    fn max_lifetime_secs(&self) -> u64 {
        let lifetime = self.max_lifetime.unwrap_or(DEFAULT_MAX_TOKEN_LIFETIME);
        lifetime.as_secs() + u64::from(lifetime.subsec_nanos() > 0)
    }
}

// ---------------------------------------------------------------------------------------
// Generated cases.
// ---------------------------------------------------------------------------------------

/// SplitMix64: deterministic, dependency-free, and plenty for spreading cases.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn for_case(seed: u64, index: usize) -> Self {
        let mut rng = Self(seed ^ (index as u64).wrapping_mul(0xA076_1D64_78BD_642F));
        rng.next_u64();
        rng
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    fn percent(&mut self, p: u64) -> bool {
        self.next_u64() % 100 < p
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

/// A JOSE header or claims set as generated: members in order, duplicates allowed, each
/// value raw JSON text (bytes, so that it need not even be UTF-8); or raw bytes that are
/// not a JSON object at all.
#[derive(Debug, Clone)]
enum Part {
    Object(Vec<(&'static str, Vec<u8>)>),
    Raw(Vec<u8>),
}

impl Part {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Self::Object(members) => {
                let mut bytes = b"{".to_vec();
                for (i, (name, value)) in members.iter().enumerate() {
                    if i > 0 {
                        bytes.push(b',');
                    }
                    bytes.extend_from_slice(format!("\"{name}\":").as_bytes());
                    bytes.extend_from_slice(value);
                }
                bytes.push(b'}');
                bytes
            }
            Self::Raw(raw) => raw.clone(),
        }
    }

    /// For reading: bytes that are not UTF-8 show as replacement characters.
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }

    /// The member's first value as generated; `None` when absent (or not an object).
    fn raw(&self, name: &str) -> Option<&[u8]> {
        match self {
            Self::Object(members) => members
                .iter()
                .find(|(member, _)| *member == name)
                .map(|(_, raw)| raw.as_slice()),
            Self::Raw(_) => None,
        }
    }

    /// The member's first value, parsed; `None` when absent, or when it is not valid
    /// JSON on its own (`1e400` is out of range).
    fn get(&self, name: &str) -> Option<Value> {
        self.raw(name).and_then(|raw| serde_json::from_slice(raw).ok())
    }

    fn duplicated(&self) -> Vec<&'static str> {
        let Self::Object(members) = self else {
            return Vec::new();
        };
        let mut names: Vec<&'static str> = members.iter().map(|(name, _)| *name).collect();
        names.sort_unstable();
        let mut duplicated: Vec<&'static str> =
            names.windows(2).filter(|w| w[0] == w[1]).map(|w| w[0]).collect();
        duplicated.dedup();
        duplicated
    }
}

/// How a signed token is damaged afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mangle {
    FlipSignatureBit,
    TruncateSignature,
    EmptySignature,
    ForeignPayload,
    DropSignature,
    ExtraPart,
    TrailingDot,
    LeadingSpace,
    TrailingNewline,
    PaddedPayload,
    StandardAlphabet,
    NonAscii,
    Empty,
}

const MANGLES: [Mangle; 13] = [
    Mangle::FlipSignatureBit,
    Mangle::TruncateSignature,
    Mangle::EmptySignature,
    Mangle::ForeignPayload,
    Mangle::DropSignature,
    Mangle::ExtraPart,
    Mangle::TrailingDot,
    Mangle::LeadingSpace,
    Mangle::TrailingNewline,
    Mangle::PaddedPayload,
    Mangle::StandardAlphabet,
    Mangle::NonAscii,
    Mangle::Empty,
];

/// How the signature is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signing {
    Genuine,
    WrongKey,
    /// HMAC with the verifier's public key as the secret: the algorithm-confusion attack.
    PublicKeyAsSecret,
    /// No signature, as `alg: none` has.
    Unsigned,
}

#[derive(Debug)]
struct Case {
    index: usize,
    now: u64,
    config: Config,
    alg: Algorithm,
    signing: Signing,
    header: Part,
    payload: Part,
    mangle: Option<Mangle>,
    token: String,
}

/// Values that are not NumericDates, or are extreme ones.
const ODD_DATES: &[&str] = &[
    "\"soon\"",
    "\"1700000000\"",
    "true",
    "null",
    "[]",
    "[1700000000]",
    "{}",
    "-1",
    "-1.5",
    "-0",
    "-0.0",
    "0",
    "1",
    "18446744073709551615",
    "18446744073709551616",
    "1e19",
    "1.7976931348623157e308",
    "1e400",
];

/// A NumericDate near `anchor`, as JSON, at and around every boundary the verifiers
/// compare it against, sometimes fractional or spelt unusually; when `odd`, something
/// that is no NumericDate or an extreme one. Also returns the whole seconds it was built
/// from, when it was built from `anchor`.
fn date_near(rng: &mut Rng, anchor: i64, leeway: i64, odd: bool) -> (String, Option<i64>) {
    if odd {
        // `null` deserves more than its share: it is where "absent" and "invalid" meet.
        let odd = if rng.percent(25) {
            "null"
        } else {
            rng.pick(ODD_DATES)
        };
        return (odd.to_owned(), None);
    }
    let near = [
        0,
        1,
        -1,
        2,
        -2,
        leeway,
        -leeway,
        leeway + 1,
        -leeway - 1,
        leeway - 1,
        1 - leeway,
        leeway + 2,
        -leeway - 2,
    ];
    let far = [
        3 * leeway + 7,
        -3 * leeway - 7,
        1_000_000,
        -1_000_000,
        4_000_000_000,
        -anchor,
    ];
    let offsets = if rng.percent(15) { &far[..] } else { &near[..] };
    let seconds = anchor + rng.pick(offsets);
    let tenths = if rng.percent(20) {
        seconds * 10 + rng.pick(&[-9, -5, -1, 1, 4, 5, 6, 9])
    } else {
        seconds * 10
    };
    let sign = if tenths < 0 { "-" } else { "" };
    let (whole, tenth) = (tenths.abs() / 10, tenths.abs() % 10);
    let raw = match rng.below(10) {
        0 => format!("{sign}{whole}.{tenth}"),
        1 => format!("{tenths}e-1"),
        _ if tenth == 0 => format!("{sign}{whole}"),
        _ => format!("{sign}{whole}.{tenth}"),
    };
    (raw, Some(seconds))
}

/// Values where a string claim belongs that are no string, among them strings a strict
/// parser refuses: one escaping half a UTF-16 surrogate pair, one that is not UTF-8.
const NOT_STRINGS: &[&[u8]] = &[
    b"5",
    b"null",
    b"true",
    b"[\"x\"]",
    b"{}",
    b"1e400",
    br#""\ud800""#,
    b"\"\xff\"",
];

/// Values only a parser that skips them gets past.
const UNREADABLE: &[&[u8]] = &[b"1e400", br#""\ud800""#, b"\"\xff\""];

/// A JSON string.
fn string(text: &str) -> String {
    Value::from(text).to_string()
}

/// Draws the odd (invalid, unusual or hostile) variant of each part of a case with a
/// probability that varies from case to case, so that some cases are clean tokens near
/// the time boundaries and others are damaged in one or several ways at once.
struct Draw {
    rng: Rng,
    hostility: u64,
}

impl Draw {
    /// Whether this part of the case is odd, at the case's hostility scaled by `weight`
    /// percent.
    fn odd(&mut self, weight: u64) -> bool {
        self.rng.next_u64() % 10_000 < self.hostility * weight
    }
}

fn generate(index: usize, rng: Rng, now: u64, keys: &Keys) -> Case {
    let mut draw = Draw { rng, hostility: 0 };
    draw.hostility = draw.rng.pick(&[0, 0, 2, 5, 10, 20, 40]);
    let rng = &mut draw.rng;
    let leeway = rng.pick(&[0, 1, 2, 5, 30, 60]);
    let mut config = Config {
        leeway,
        issuers: rng.pick(&[&[][..], &[ISSUER][..], &[OTHER_ISSUER, ISSUER][..]]),
        audiences: rng.pick(&[&[][..], &["api"][..], &["api", "admin"][..]]),
        max_lifetime: rng.pick(&[
            None,
            None,
            Some(Duration::from_secs(3600)),
            Some(Duration::from_millis(600_500)),
        ]),
        allow_missing_iat: rng.percent(20),
        keys: Vec::new(),
    };
    // Claims do not depend on the algorithm, so the slow RSA signatures are drawn less.
    let alg = if rng.percent(20) {
        rng.pick(&ALGORITHMS)
    } else {
        rng.pick(&[
            Algorithm::HS256,
            Algorithm::HS384,
            Algorithm::HS512,
            Algorithm::ES256,
            Algorithm::EdDSA,
        ])
    };

    // The verifier's keys, and the `kid` the header names.
    let mut kid = None;
    if rng.percent(60) {
        config.keys.push((alg, None));
        if rng.percent(15) {
            // Matches no key, so the default key verifies.
            kid = Some(string("no-such-kid"));
        }
    } else {
        config.keys.push((alg, Some("k0")));
        for name in ["k1", "k2", "k3"].into_iter().take(1 + rng.below(3)) {
            config.keys.push((rng.pick(&ALGORITHMS), Some(name)));
        }
        if rng.percent(40) {
            config.keys.push((rng.pick(&ALGORITHMS), None));
        }
        // Escaped or not, it is the same `kid` once parsed.
        kid = Some(if rng.percent(90) {
            string("k0")
        } else {
            r#""k\u0030""#.to_owned()
        });
    }
    if draw.odd(30) {
        let rng = &mut draw.rng;
        match rng.below(4) {
            0 => config.keys = vec![(rng.pick(&ALGORITHMS), None)],
            1 => kid = Some(string(rng.pick(&["k1", "no-such-kid"]))),
            2 => kid = None,
            _ => kid = Some(rng.pick(&["5", "null", "[\"k0\"]"]).to_owned()),
        }
    }

    let mut signing = if draw.odd(20) {
        Signing::WrongKey
    } else {
        Signing::Genuine
    };
    let mut alg_json = string(&format!("{alg:?}"));
    if draw.rng.percent(3) {
        // The same name, escaped.
        alg_json = alg_json.replacen('S', "\\u0053", 1);
    }
    if draw.odd(30) {
        let rng = &mut draw.rng;
        match rng.below(3) {
            0 => {
                alg_json = string("none");
                if rng.percent(50) {
                    signing = Signing::Unsigned;
                }
            }
            1 => {
                alg_json = rng
                    .pick(&["\"hs256\"", "\"XS256\"", "\"\"", "256", "null", "[\"HS256\"]"])
                    .to_owned()
            }
            _ => {
                // HMAC over the public key, with either algorithm named in the header.
                let public_key_alg = rng.pick(&ALGORITHMS[3..]);
                config.keys = vec![(public_key_alg, None)];
                kid = None;
                signing = Signing::PublicKeyAsSecret;
                let named = if rng.percent(50) {
                    Algorithm::HS256
                } else {
                    public_key_alg
                };
                alg_json = string(&format!("{named:?}"));
            }
        }
    }

    let header = if draw.odd(5) {
        Part::Raw(Vec::from(match draw.rng.below(5) {
            // The members the verifier reads, in its declaration order: alg, kid, crit.
            0 => format!("[{alg_json}]"),
            1 => format!("[{alg_json},\"k0\"]"),
            2 => "null".to_owned(),
            3 => format!("{{\"alg\":{alg_json}"),
            _ => alg_json.clone(),
        }))
    } else {
        let mut members = Vec::new();
        if !draw.odd(5) {
            members.push(("alg", alg_json.clone()));
        }
        if let Some(kid) = kid {
            members.push(("kid", kid));
        }
        if draw.odd(15) {
            members.push(("typ", draw.rng.pick(&["123", "null", "[\"JWT\"]"]).to_owned()));
        } else {
            match draw.rng.below(10) {
                0..7 => members.push(("typ", string("JWT"))),
                7 => members.push(("typ", string("at+jwt"))),
                _ => {}
            }
        }
        if draw.odd(15) {
            members.push((
                "crit",
                draw.rng.pick(&["[\"exp\"]", "[]", "\"b64\"", "null"]).to_owned(),
            ));
        }
        if draw.odd(15) {
            let (name, value) = draw.rng.pick(&[
                ("cty", "5"),
                ("x5c", "\"not-a-list\""),
                ("jwk", "{}"),
                ("x5t#S256", "7"),
                ("zip", "0"),
                ("enc", "{}"),
                ("b64", "false"),
            ]);
            members.push((name, value.to_owned()));
        } else if draw.rng.percent(10) {
            let (name, value) = draw.rng.pick(&[
                ("cty", "\"JWT\""),
                ("x5c", "[\"MIIB\"]"),
                ("jwk", "{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}"),
                ("zip", "\"DEF\""),
                ("nonce", "\"n\""),
                ("extra", "{\"nested\":[1,2,3]}"),
            ]);
            members.push((name, value.to_owned()));
        }
        if draw.odd(5) {
            members.push(("alg", alg_json.clone()));
        }
        shuffle(&mut draw.rng, &mut members);
        Part::Object(
            members
                .into_iter()
                .map(|(name, value)| (name, value.into_bytes()))
                .collect(),
        )
    };

    let payload = if draw.odd(5) {
        Part::Raw(odd_payload(&mut draw.rng, now, &config))
    } else {
        Part::Object(claims(&mut draw, now, &config))
    };

    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.bytes()),
        URL_SAFE_NO_PAD.encode(payload.bytes())
    );
    let signature = sign(keys, alg, signing, &signing_input);
    let mut token = format!("{signing_input}.{signature}");
    let mut mangle = draw.odd(25).then(|| draw.rng.pick(&MANGLES));
    if let Some(kind) = mangle {
        let damaged = mangled(&token, kind, now);
        // Some damage needs something to act on (a `-` to turn into `+`, say).
        mangle = mangle.filter(|_| damaged != token);
        token = damaged;
    }
    Case {
        index,
        now,
        config,
        alg,
        signing,
        header,
        payload,
        mangle,
        token,
    }
}

fn shuffle<T>(rng: &mut Rng, items: &mut [T]) {
    for i in (1..items.len()).rev() {
        items.swap(i, rng.below(i + 1));
    }
}

/// A claims set around the boundaries of `config`, relative to `now`.
fn claims(draw: &mut Draw, now: u64, config: &Config) -> Vec<(&'static str, Vec<u8>)> {
    let now = now as i64;
    let leeway = config.leeway as i64;
    let lifetime = config.max_lifetime_secs() as i64;
    let mut members: Vec<(&'static str, Vec<u8>)> = Vec::new();

    // Near now, and near the longest lifetime from now (with and without the leeway
    // that the verifier grants tokens without `iat`).
    let exp_anchor = now + draw.rng.pick(&[0, 0, 0, 0, lifetime, lifetime + leeway]);
    let mut exp_seconds = None;
    if !draw.odd(10) {
        let odd = draw.odd(15);
        let (raw, seconds) = date_near(&mut draw.rng, exp_anchor, leeway, odd);
        exp_seconds = seconds;
        members.push(("exp", raw.into_bytes()));
    }
    if draw.rng.percent(40) {
        let odd = draw.odd(25);
        members.push(("nbf", date_near(&mut draw.rng, now, leeway, odd).0.into_bytes()));
    }
    if !draw.odd(15) {
        // Near now, or near the end of the longest lifetime before `exp`.
        let iat_anchor = match exp_seconds {
            Some(exp) if draw.rng.percent(30) => exp - lifetime,
            _ => now,
        };
        let odd = draw.odd(15);
        members.push((
            "iat",
            date_near(&mut draw.rng, iat_anchor, leeway, odd).0.into_bytes(),
        ));
    }

    if draw.odd(20) {
        let odd_issuers = [
            string(OTHER_ISSUER),
            string(""),
            string("https://issuer.example/"),
            format!("[{}]", string(ISSUER)),
            format!("[{},{}]", string(OTHER_ISSUER), string(ISSUER)),
            "[]".to_owned(),
            "5".to_owned(),
            "null".to_owned(),
            "{\"iss\":\"x\"}".to_owned(),
        ];
        members.push((
            "iss",
            odd_issuers[draw.rng.below(odd_issuers.len())]
                .clone()
                .into_bytes(),
        ));
    } else if !config.issuers.is_empty() {
        let issuer = draw.rng.pick(config.issuers);
        // The escaped solidus is the same string to a JSON parser.
        let value = if draw.rng.percent(80) {
            string(issuer)
        } else {
            format!("\"{}\"", issuer.replace('/', "\\/"))
        };
        members.push(("iss", value.into_bytes()));
    } else if draw.rng.percent(50) {
        members.push(("iss", string(draw.rng.pick(&[ISSUER, OTHER_ISSUER])).into_bytes()));
    }

    if draw.odd(20) {
        let audience = draw.rng.pick(&[
            "\"other\"",
            "\"API\"",
            "[\"other\"]",
            "[]",
            "5",
            "null",
            "[\"api\",5]",
            "{\"aud\":\"api\"}",
            "\"api\"",
            "[\"other\",\"api\"]",
        ]);
        members.push(("aud", audience.as_bytes().to_vec()));
    } else if !config.audiences.is_empty() {
        let audience = draw.rng.pick(config.audiences);
        let value = match draw.rng.below(3) {
            0 => string(audience),
            1 => format!("[{}]", string(audience)),
            _ => format!("[\"other\",{}]", string(audience)),
        };
        members.push(("aud", value.into_bytes()));
    }

    for (name, percent, values) in [
        ("sub", 70, &["alice", "bob", "", "ünïcødé", "tab\there"][..]),
        ("jti", 50, &["id-1", "id-2", "a\"quote"][..]),
        ("sid", 20, &["session-1"][..]),
    ] {
        if draw.odd(10) {
            members.push((name, draw.rng.pick(NOT_STRINGS).to_vec()));
        } else if draw.rng.percent(percent) {
            members.push((name, string(draw.rng.pick(values)).into_bytes()));
        }
    }
    if draw.rng.percent(30) {
        members.push(("role", string("admin").into_bytes()));
    }
    if draw.rng.percent(5) {
        // Only a parser that skips the value gets past these.
        members.push(("note", draw.rng.pick(UNREADABLE).to_vec()));
    }
    if draw.odd(3) {
        // Deeper than serde_json's recursion limit.
        members.push((
            "deep",
            format!("{}{}", "[".repeat(200), "]".repeat(200)).into_bytes(),
        ));
    }
    if draw.rng.percent(10) {
        members.push(("nested", br#"{"a":[1,2,{"b":null}],"exp":"inner"}"#.to_vec()));
    }
    if draw.odd(5) {
        // Around the verifier's size cap once encoded.
        let length = 5900 + draw.rng.below(400);
        members.push(("pad", string(&"x".repeat(length)).into_bytes()));
    }
    if draw.odd(10) && !members.is_empty() {
        let (name, raw) = members[draw.rng.below(members.len())].clone();
        let again = match name {
            "exp" | "nbf" | "iat" => date_near(&mut draw.rng, now, leeway, false).0.into(),
            _ => raw,
        };
        members.push((name, again));
    }
    shuffle(&mut draw.rng, &mut members);
    members
}

/// Claims sets that are not a JSON object, or not valid JSON, some of them shaped to get
/// through a parser that reads a JSON array as a struct.
fn odd_payload(rng: &mut Rng, now: u64, config: &Config) -> Vec<u8> {
    let issuer = config
        .issuers
        .first()
        .map_or("null".to_owned(), |iss| string(iss));
    let audience = config
        .audiences
        .first()
        .map_or("null".to_owned(), |aud| string(aud));
    let exp = now + 60;
    // Acceptable claims, then `end`.
    let object =
        |end: &str| format!("{{\"exp\":{exp},\"iat\":{now},\"iss\":{issuer},\"aud\":{audience}{end}");
    match rng.below(9) {
        // In the order the verifier declares its claims: jti, sub, sid, iss, iat, nbf,
        // exp, aud.
        0 | 1 => format!("[null,null,null,{issuer},{now},null,{exp},{audience}]").into_bytes(),
        // In the order jsonwebtoken declares them: exp, nbf, sub, iss, aud.
        2 => format!("[{exp},null,null,{issuer},{audience}]").into_bytes(),
        3 => b"[]".to_vec(),
        4 => b"null".to_vec(),
        5 => b"\"claims\"".to_vec(),
        6 => object("} trailing").into_bytes(),
        7 => format!("\u{feff}{}", object("}")).into_bytes(),
        _ => object("").into_bytes(),
    }
}

fn sign(keys: &Keys, alg: Algorithm, signing: Signing, signing_input: &str) -> String {
    let keys = keys.get(alg);
    let signer = match signing {
        Signing::Genuine => &keys.signer,
        Signing::WrongKey => &keys.wrong_signer,
        Signing::PublicKeyAsSecret => &keys.confused_signer,
        Signing::Unsigned => return String::new(),
    };
    URL_SAFE_NO_PAD.encode(signer.try_sign(signing_input.as_bytes()).unwrap())
}

fn mangled(token: &str, mangle: Mangle, now: u64) -> String {
    let (signing_input, signature) = token.rsplit_once('.').unwrap();
    let (header, payload) = signing_input.split_once('.').unwrap();
    match mangle {
        Mangle::FlipSignatureBit => {
            let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
            let middle = bytes.len() / 2;
            if let Some(byte) = bytes.get_mut(middle) {
                *byte ^= 0x10;
            }
            format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(bytes))
        }
        Mangle::TruncateSignature => format!("{signing_input}.{}", &signature[..signature.len() * 3 / 4]),
        Mangle::EmptySignature => format!("{signing_input}."),
        Mangle::ForeignPayload => {
            // Acceptable claims, but not the ones signed.
            let claims = format!("{{\"exp\":{},\"iat\":{now},\"sub\":\"mallory\"}}", now + 60);
            format!("{header}.{}.{signature}", URL_SAFE_NO_PAD.encode(claims))
        }
        Mangle::DropSignature => signing_input.to_owned(),
        Mangle::ExtraPart => format!("{token}.{signature}"),
        Mangle::TrailingDot => format!("{token}."),
        Mangle::LeadingSpace => format!(" {token}"),
        Mangle::TrailingNewline => format!("{token}\n"),
        Mangle::PaddedPayload => format!("{header}.{payload}=.{signature}"),
        // Not in the signature: ECDSA and PSS signatures are random, and whether this
        // damage applies must not be.
        Mangle::StandardAlphabet => {
            format!(
                "{}.{signature}",
                signing_input.replace('-', "+").replace('_', "/")
            )
        }
        Mangle::NonAscii => format!("{token}é"),
        Mangle::Empty => String::new(),
    }
}

// ---------------------------------------------------------------------------------------
// The test.
// ---------------------------------------------------------------------------------------

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

#[derive(Default)]
struct Tally {
    both_accepted: usize,
    both_refused: usize,
    /// Per algorithm: tokens both accepted, and tokens both refused.
    by_algorithm: HashMap<Algorithm, (usize, usize)>,
    explained: BTreeMap<Difference, usize>,
    unexplained: usize,
    /// The first case of each kind of unexplained disagreement, and how many there were.
    examples: BTreeMap<String, (usize, String)>,
    reruns: usize,
}

#[test]
fn the_verifier_accepts_and_refuses_what_jsonwebtoken_does_or_differs_on_purpose() {
    tower_jwt_revoke::install_crypto_provider();
    let seed = env_or("DIFFERENTIAL_SEED", SEED);
    let cases = env_or("DIFFERENTIAL_CASES", CASES);
    let keys = Keys::load();
    let started = Instant::now();
    let mut tally = Tally::default();
    for index in 0..cases {
        // Both verifiers read the clock themselves, so a case during which the second
        // ticked may have been judged at two different times: it is run again, from the
        // same seed.
        let (case, ours, theirs) = loop {
            let now = now_secs();
            let case = generate(index, Rng::for_case(seed, index), now, &keys);
            let verifier = case.config.verifier(&keys);
            let ours = ours(&verifier, &case.token);
            let theirs = reference(&case.config, &keys, &case.token);
            if now_secs() == now {
                break (case, ours, theirs);
            }
            tally.reruns += 1;
        };
        let by_algorithm = tally.by_algorithm.entry(case.alg).or_default();
        match (&ours, &theirs) {
            (Ok(()), Ok(())) => {
                tally.both_accepted += 1;
                by_algorithm.0 += 1;
            }
            (Err(_), Err(_)) => {
                tally.both_refused += 1;
                by_algorithm.1 += 1;
            }
            _ => match Difference::ALL.iter().find(|d| d.explains(&case, &ours, &theirs)) {
                Some(&difference) => *tally.explained.entry(difference).or_default() += 1,
                None => {
                    tally.unexplained += 1;
                    let kind = format!("ours {ours:?}, jsonwebtoken {theirs:?}");
                    let example = tally.examples.entry(kind).or_insert_with(|| (0, describe(&case)));
                    example.0 += 1;
                }
            },
        }
    }
    let deliberate = &tally.explained;
    println!(
        "{cases} cases (seed {seed:#x}) in {elapsed:?}, {reruns} rerun across a second tick: \
         {accepted} accepted by both, {refused} refused by both; deliberate differences \
         {deliberate:?}",
        elapsed = started.elapsed(),
        reruns = tally.reruns,
        accepted = tally.both_accepted,
        refused = tally.both_refused,
    );

    let mut report = String::new();
    for (kind, (count, example)) in &tally.examples {
        report.push_str(&format!("\n{count} x {kind}, first:\n{example}\n"));
    }
    assert!(
        tally.unexplained == 0,
        "{} disagreements that no listed Difference explains (seed {seed:#x}):{report}",
        tally.unexplained
    );
    assert!(tally.both_accepted >= cases / 10 && tally.both_refused >= cases / 10);
    // What the default run covers is fixed by its seed, so it can be held to it; other
    // seeds and counts only look for disagreements.
    if seed == SEED && cases == CASES {
        let unseen: Vec<_> = Difference::ALL
            .iter()
            .filter(|d| !tally.explained.contains_key(d))
            .collect();
        assert!(
            unseen.is_empty(),
            "no case shows {unseen:?} any more: fixed, or no longer generated? \
             Remove the entry, or restore the cases"
        );
        // Against a generator, or a key, that makes one algorithm's tokens refused by
        // both sides whatever they hold: every comparison would then be vacuous.
        for alg in ALGORITHMS {
            let (accepted, refused) = tally.by_algorithm.get(&alg).copied().unwrap_or_default();
            assert!(
                accepted > 0 && refused > 0,
                "{alg:?}: {accepted} accepted and {refused} refused by both"
            );
        }
    }
}

fn describe(case: &Case) -> String {
    format!(
        "  case {index}, now {now}, {alg:?} {signing:?}, damage {mangle:?}\n  config  {config:?}\n  \
         header  {header}\n  payload {payload}\n  token   {token}",
        index = case.index,
        now = case.now,
        alg = case.alg,
        signing = case.signing,
        mangle = case.mangle,
        config = case.config,
        header = case.header.text(),
        payload = abridged(&case.payload.text()),
        token = abridged(&case.token),
    )
}

/// Whole, unless it is one of the tokens padded to the size cap.
fn abridged(text: &str) -> String {
    match text.char_indices().nth(2000) {
        Some((end, _)) => format!("{}… ({} bytes)", &text[..end], text.len()),
        None => text.to_owned(),
    }
}
