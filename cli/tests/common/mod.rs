//! What the CLI tests share: running the built binary against a private redis-server,
//! minting tokens, and a layer in front of a service, as the services run it.

#![allow(dead_code)] // each test file uses part of it

use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{Request, Response, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;
use tower_jwt_revoke::jsonwebtoken::{self, Algorithm, EncodingKey, Header};
use tower_jwt_revoke::store::RevocationStore;
use tower_jwt_revoke::{JwtVerifier, RevocationLayer, VerificationKey};

pub const SECRET: &str = "cli-test-secret-0123456789abcdefghij";
pub const ISSUER: &str = "https://auth.example.test";
/// The services' leeway and maximum lifetime, given to the CLI through its
/// environment variables.
pub const LEEWAY: u64 = 5;
pub const MAX_LIFETIME: Duration = Duration::from_secs(3600);

/// What one run of the binary did.
#[derive(Debug)]
pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    /// Stdout as one JSON document.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|error| panic!("not JSON ({error}): {self:?}"))
    }

    /// Asserts a failure said in one line, with no panic or backtrace.
    pub fn assert_one_line_error(&self, code: i32) {
        assert_eq!(self.code, code, "{self:?}");
        assert_eq!(self.stderr.lines().count(), 1, "one line: {self:?}");
        assert!(self.stderr.starts_with("error: "), "{self:?}");
        for word in ["panicked", "backtrace", "RUST_BACKTRACE"] {
            assert!(!self.stderr.contains(word), "{self:?}");
        }
    }
}

/// The binary, pointed at one Redis and prefix.
pub struct Cli {
    pub url: String,
    pub prefix: String,
}

impl Cli {
    pub fn new(url: &str, prefix: &str) -> Self {
        Self {
            url: url.to_owned(),
            prefix: prefix.to_owned(),
        }
    }

    /// Runs `tower-jwt-revoke --prefix P ARGS…` with `REDIS_URL` set.
    pub fn run(&self, args: &[&str]) -> Ran {
        self.run_with(args, &[], None)
    }

    /// Runs with more environment variables, and `stdin` fed to it.
    pub fn run_with(&self, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Ran {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tower-jwt-revoke"));
        for name in [
            "JWT_HS256_SECRET",
            "JWT_ISSUER",
            "TOWER_JWT_REVOKE_PREFIX",
            "TOWER_JWT_REVOKE_BUCKETS",
            "TOWER_JWT_REVOKE_V1_TRANSITION",
            "REDIS_CLUSTER_NODES",
            "RUST_BACKTRACE",
        ] {
            command.env_remove(name);
        }
        command
            .env("REDIS_URL", &self.url)
            .env("JWT_LEEWAY", LEEWAY.to_string())
            .env("JWT_MAX_LIFETIME", format!("{}s", MAX_LIFETIME.as_secs()))
            .envs(env.iter().copied())
            .args(["--prefix", &self.prefix])
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("run the CLI");
        if let Some(input) = stdin {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        }
        let output = child.wait_with_output().expect("the CLI ends");
        Ran {
            code: output.status.code().expect("exited, not killed"),
            stdout: String::from_utf8(output.stdout).expect("UTF-8 stdout"),
            stderr: String::from_utf8(output.stderr).expect("UTF-8 stderr"),
        }
    }

    /// Runs with `--json`, expecting exit code `code`, and parses stdout.
    pub fn json(&self, args: &[&str], code: i32) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let ran = self.run(&all);
        assert_eq!(ran.code, code, "{args:?}: {ran:?}");
        ran.json()
    }

    /// Every record, from `list --all --json`.
    pub fn records(&self) -> Vec<Value> {
        let listed = self.json(&["list", "--all"], 0);
        assert_eq!(listed["cursor"], 0);
        listed["records"].as_array().unwrap().clone()
    }
}

pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

pub fn mint(claims: Value) -> String {
    tower_jwt_revoke::install_crypto_provider();
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap()
}

/// A token of `sub` in session `sid`, issued `age` seconds ago, valid ten minutes.
pub fn token(sub: &str, sid: &str, age: u64) -> String {
    let jti = uuid::Uuid::new_v4().to_string();
    let iat = now() - age;
    mint(json!({ "iss": ISSUER, "sub": sub, "sid": sid, "jti": jti, "iat": iat, "exp": iat + 600 }))
}

pub fn verifier() -> JwtVerifier {
    JwtVerifier::builder()
        .key(VerificationKey::hmac(Algorithm::HS256, SECRET.as_bytes()).unwrap())
        .issuer(ISSUER)
        .leeway_secs(LEEWAY)
        .max_token_lifetime(MAX_LIFETIME)
        .build()
        .unwrap()
}

/// A service answering 200 behind a layer on `store`, as a replica runs it.
#[derive(Clone)]
pub struct Replica {
    layer: RevocationLayer,
}

impl Replica {
    pub fn new(store: impl RevocationStore) -> Self {
        Self {
            layer: RevocationLayer::new(verifier(), store),
        }
    }

    pub async fn status(&self, token: &str) -> StatusCode {
        let service =
            tower::ServiceBuilder::new()
                .layer(self.layer.clone())
                .service_fn(|_: Request<String>| async {
                    Ok::<_, std::convert::Infallible>(Response::new(String::new()))
                });
        let request = Request::get("/")
            .header("authorization", format!("Bearer {token}"))
            .body(String::new())
            .unwrap();
        tokio::time::timeout(Duration::from_secs(5), service.oneshot(request))
            .await
            .expect("answered in time")
            .unwrap()
            .status()
    }

    /// Waits until `token` gets `expected`, for at most `bound`; returns how long.
    pub async fn until(&self, token: &str, expected: StatusCode, bound: Duration) -> Duration {
        let start = std::time::Instant::now();
        loop {
            let status = self.status(token).await;
            if status == expected {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < bound,
                "still {status} after {bound:?}, expected {expected}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
