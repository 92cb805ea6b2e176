//! What the benches share: the four token kinds, their verifiers, a Tokio runtime,
//! Redis helpers (a pipelined writer that follows the README's key schema) and RSS.
//!
//! Each bench uses a different subset of it.
#![allow(dead_code)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tower_jwt_revoke::jsonwebtoken::{self, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use tower_jwt_revoke::store::{RedisStore, RevocationQuery};
use tower_jwt_revoke::{JwtVerifier, RevocationKey, VerificationKey};

/// The issuer of every bench token.
pub const ISSUER: &str = "bench";
/// The HS256 secret.
pub const SECRET: &[u8] = b"benchmark-secret-0123456789abcdef-0123456789";
/// Lifetime of bench tokens (as in the axum_logout example).
pub const TOKEN_TTL: Duration = Duration::from_secs(900);

/// The token kinds the benches sign, with the keys in tests/keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    Hs256,
    Rs256,
    Es256,
    EdDsa,
}

impl Alg {
    pub const ALL: [Alg; 4] = [Alg::Hs256, Alg::Rs256, Alg::Es256, Alg::EdDsa];

    pub fn name(self) -> &'static str {
        match self {
            Alg::Hs256 => "HS256",
            Alg::Rs256 => "RS256",
            Alg::Es256 => "ES256",
            Alg::EdDsa => "EdDSA",
        }
    }

    pub fn algorithm(self) -> Algorithm {
        match self {
            Alg::Hs256 => Algorithm::HS256,
            Alg::Rs256 => Algorithm::RS256,
            Alg::Es256 => Algorithm::ES256,
            Alg::EdDsa => Algorithm::EdDSA,
        }
    }

    pub fn encoding_key(self) -> EncodingKey {
        match self {
            Alg::Hs256 => EncodingKey::from_secret(SECRET),
            Alg::Rs256 => EncodingKey::from_rsa_pem(&key_file("rsa_private.pem")).expect("rsa key"),
            Alg::Es256 => EncodingKey::from_ec_pem(&key_file("ec_private.pem")).expect("ec key"),
            Alg::EdDsa => EncodingKey::from_ed_pem(&key_file("ed25519_private.pem")).expect("ed key"),
        }
    }

    /// The key jsonwebtoken verifies with, on its own.
    pub fn decoding_key(self) -> DecodingKey {
        match self {
            Alg::Hs256 => DecodingKey::from_secret(SECRET),
            Alg::Rs256 => DecodingKey::from_rsa_pem(&key_file("rsa_public.pem")).expect("rsa key"),
            Alg::Es256 => DecodingKey::from_ec_pem(&key_file("ec_public.pem")).expect("ec key"),
            Alg::EdDsa => DecodingKey::from_ed_pem(&key_file("ed25519_public.pem")).expect("ed key"),
        }
    }

    /// The same key, as the layer's verifier takes it.
    pub fn verification_key(self) -> VerificationKey {
        match self {
            Alg::Hs256 => VerificationKey::hmac(Algorithm::HS256, SECRET),
            Alg::Rs256 => VerificationKey::rsa_pem(Algorithm::RS256, &key_file("rsa_public.pem")),
            Alg::Es256 => VerificationKey::ec_pem(Algorithm::ES256, &key_file("ec_public.pem")),
            Alg::EdDsa => VerificationKey::ed_pem(&key_file("ed25519_public.pem")),
        }
        .expect("verification key")
    }

    /// A fresh token of "alice", shaped like the axum_logout example's.
    pub fn token(self) -> String {
        let now = now_secs();
        let claims = Claims {
            sub: "alice".into(),
            jti: uuid::Uuid::new_v4().to_string(),
            iss: ISSUER.into(),
            iat: now,
            exp: now + TOKEN_TTL.as_secs(),
        };
        jsonwebtoken::encode(&Header::new(self.algorithm()), &claims, &self.encoding_key()).expect("sign")
    }

    /// The layer's verifier, configured like the axum_logout example's.
    pub fn verifier(self) -> JwtVerifier {
        JwtVerifier::builder()
            .key(self.verification_key())
            .issuer(ISSUER)
            .max_token_lifetime(TOKEN_TTL)
            .build()
            .expect("verifier")
    }

    /// jsonwebtoken's own validation, checking what the verifier checks.
    pub fn validation(self) -> Validation {
        let mut validation = Validation::new(self.algorithm());
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iat"]);
        validation.leeway = tower_jwt_revoke::DEFAULT_LEEWAY_SECS;
        validation
    }
}

/// The claims of a bench token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub jti: String,
    pub iss: String,
    pub iat: u64,
    pub exp: u64,
}

fn key_file(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/keys/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|error| {
        panic!("reading {path} ({error}): the test keys are not in the published package; run the benches from the repository")
    })
}

pub fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// A multi-thread runtime with one worker: `block_on` runs the measured loop on the
/// bench thread while background tasks (the mirror's feed follower, the Redis
/// connection's driver) run on the worker, as they would beside request handlers.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// The query of the bench token: not revoked, with a subject, as a request makes it.
pub fn live_query() -> RevocationQuery {
    RevocationQuery {
        token: RevocationKey::token(Some(ISSUER), "the-live-token"),
        subject: Some(RevocationKey::subject(Some(ISSUER), "alice")),
        session: None,
        issued_at: Some(now_secs()),
    }
}

/// The key of the `n`th filler revocation.
pub fn filler_key(n: u64) -> RevocationKey {
    RevocationKey::token(Some("bench-filler"), &n.to_string())
}

/// A Redis store on `url` under `prefix`.
pub fn redis_store(url: &str, prefix: &str) -> RedisStore {
    RedisStore::builder()
        .url(url)
        .prefix(prefix)
        .build()
        .expect("redis store")
}

/// A plain connection to `url`.
pub async fn connection(url: &str) -> tower_jwt_revoke::redis::aio::MultiplexedConnection {
    tower_jwt_revoke::redis::Client::open(url)
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection")
}

/// Writes `count` token revocations (`filler_key(0..count)`, tokens without a subject)
/// the way another service following the README's schema would:
/// `SET {prefix:bB}:t:{hex} 1 PXAT expiry` and its member in the bucket's index, with
/// `B` the bucket of the token's hash (16 buckets, the default), pipelined, without the
/// change feed (a mirror started afterwards loads them from the indexes).
///
/// Expiries are spread a millisecond apart from half of `ttl_secs` on (wrapping
/// within its second half), as revocations of tokens issued at different times are.
pub async fn write_revocations(url: &str, prefix: &str, count: u64, ttl_secs: u64) {
    const PIPELINE: u64 = 2_000;
    let mut connection = connection(url).await;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64;
    let half_ms = (ttl_secs * 1000 / 2).max(1);
    let mut start = 0;
    while start < count {
        let end = (start + PIPELINE).min(count);
        let mut pipe = tower_jwt_revoke::redis::pipe();
        for n in start..end {
            let key = filler_key(n);
            let bytes = key.as_bytes();
            let bucket = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) % 16;
            let expires_ms = now_ms + half_ms + n % half_ms;
            pipe.cmd("SET")
                .arg(format!("{{{prefix}:b{bucket}}}:t:{key}"))
                .arg("1")
                .arg("PXAT")
                .arg(expires_ms)
                .ignore()
                // The bucket's index, as every writer keeps it (a mirror loads from it).
                .cmd("ZADD")
                .arg(format!("{{{prefix}:b{bucket}}}:index"))
                .arg(expires_ms)
                .arg(format!("t:{key}"))
                .ignore();
        }
        let () = pipe.query_async(&mut connection).await.expect("pipelined SET");
        start = end;
    }
}

/// Writes `count` token revocations (tokens without a subject) as another writer would,
/// through `store`'s key names: record and index member, no feed event; one pipeline
/// per bucket and batch (a pipeline's keys must share a slot on a cluster). Token `n`
/// expires at `expiry_ms(n)` (Unix ms); each index lives as long as its longest record,
/// as the store keeps it.
pub async fn write_through(
    store: &RedisStore,
    connection: &mut impl tower_jwt_revoke::redis::aio::ConnectionLike,
    count: u64,
    expiry_ms: impl Fn(u64) -> u64,
) {
    const BATCH: u64 = 20_000;
    let longest = (0..count).map(&expiry_ms).max().unwrap_or(0);
    let mut start = 0;
    while start < count {
        let end = (start + BATCH).min(count);
        let mut pipes: Vec<tower_jwt_revoke::redis::Pipeline> = (0..store.buckets())
            .map(|_| tower_jwt_revoke::redis::pipe())
            .collect();
        for n in start..end {
            let key = filler_key(n);
            let bucket = store.bucket_of(&key);
            let expires_ms = expiry_ms(n);
            pipes[bucket as usize]
                .cmd("SET")
                .arg(store.token_key(bucket, &key))
                .arg("1")
                .arg("PXAT")
                .arg(expires_ms)
                .ignore()
                .cmd("ZADD")
                .arg(store.index_key(bucket))
                .arg(expires_ms)
                .arg(format!("t:{key}"))
                .ignore();
        }
        for (bucket, pipe) in pipes.iter_mut().enumerate() {
            if pipe.is_empty() {
                continue;
            }
            pipe.cmd("PEXPIREAT")
                .arg(store.index_key(bucket as u32))
                .arg(longest)
                .ignore();
            let () = pipe.query_async(connection).await.expect("pipelined SET");
        }
        start = end;
    }
}

/// Whether `cargo bench -- <filter>...` asks for `part` (no filter: every part).
pub fn wanted() -> impl Fn(&str) -> bool {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"))
        .collect();
    move |part| filters.is_empty() || filters.iter().any(|filter| part.contains(filter.as_str()))
}

/// A number from the environment, or `default`.
pub fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|value| {
            value
                .parse()
                .unwrap_or_else(|_| panic!("{name} must be a number"))
        })
        .unwrap_or(default)
}

/// How many times Redis ran `MGET` so far (INFO commandstats), to show which checks
/// went to Redis.
pub async fn mget_calls(url: &str) -> u64 {
    let mut connection = connection(url).await;
    let stats: String = tower_jwt_revoke::redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut connection)
        .await
        .expect("INFO commandstats");
    stats
        .lines()
        .find_map(|line| line.strip_prefix("cmdstat_mget:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|calls| calls.parse().ok())
        .unwrap_or(0)
}

/// A field of /proc/self/status in KiB (`VmRSS`, `VmHWM`); 0 where there is none.
pub fn proc_status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                line.strip_prefix(field)?
                    .strip_prefix(':')?
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse()
                    .ok()
            })
        })
        .unwrap_or(0)
}

/// The criterion configuration of every bench: short runs (the whole suite stays
/// within minutes); command-line options override it.
pub fn criterion() -> criterion::Criterion {
    criterion::Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args()
}
