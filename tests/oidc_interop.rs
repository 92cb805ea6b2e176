//! Interoperability with a real, certified OpenID Provider: `oidc-provider` from the
//! npm registry (tests/oidc_provider), run with the machine's Node.js on loopback.
//!
//! The `oidc_resource_server` example discovers the provider, accepts the RFC 9068
//! access token the provider issues (200), and once the provider sends its own
//! Back-Channel Logout token for that subject, refuses the same access token (401).
//! Restarted with a rotated signing key while made-up `kid`s keep the example's
//! unknown-kid rate limit busy, the provider's new tokens are never a 401: 200, or
//! 503 with a `Retry-After` after which they are 200.
//!
//! Gated like the Redis tests: without Node.js or the npm packages (`npm ci --prefix
//! tests/oidc_provider`) it says so loudly and passes, unless
//! `TOWER_JWT_REVOKE_REQUIRE_NODE=1` (set by `.ci/run`), where it fails.
#![cfg(all(feature = "axum", feature = "redis", feature = "jwks", feature = "endpoints"))]

mod common;

#[path = "../examples/oidc_resource_server.rs"]
#[allow(dead_code)]
mod oidc_resource_server;

use std::io::Write;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tower_jwt_revoke::store::InMemoryStore;

use common::background::Background;

const CLIENT_ID: &str = "interop-api";
const CLIENT_SECRET: &str = "interop-secret-0123456789";

/// The provider's process, killed on drop.
struct Provider {
    child: Child,
    issuer: String,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn skip(reason: &str) {
    if std::env::var("TOWER_JWT_REVOKE_REQUIRE_NODE").is_ok_and(|value| value == "1") {
        panic!("TOWER_JWT_REVOKE_REQUIRE_NODE=1 but {reason}");
    }
    // Straight to the process's stderr: the test harness captures `eprintln!` of a
    // passing test, and a skip must show where `cargo test` is read.
    let _ = writeln!(
        std::io::stderr(),
        "\n!!! SKIPPED an OpenID Provider test: {reason}. Install Node.js and npm; the test installs \
         the provider's packages itself (`npm ci --prefix tests/oidc_provider`). !!!\n"
    );
}

/// Installs the provider's packages (`npm ci`, from the lock file) once, when they are
/// missing: the README's one test command needs nothing else. Says why it could not.
fn provider_packages(dir: &std::path::Path) -> Result<(), String> {
    static INSTALLED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            if dir.join("node_modules/oidc-provider").is_dir() {
                return Ok(());
            }
            let installed = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            match installed {
                Ok(status) if status.success() => Ok(()),
                Ok(status) => Err(format!("`npm ci --prefix tests/oidc_provider` failed ({status})")),
                Err(error) => Err(format!("npm could not run ({error})")),
            }
        })
        .clone()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

/// Starts the provider on a free port; `None` (after saying why) when it cannot run.
fn start_provider(backchannel_logout_uri: &str) -> Option<Provider> {
    start_provider_on(free_port(), backchannel_logout_uri, None)
}

/// Starts the provider on `port`, signing with the keys of `keys` (a directory and
/// the comma-separated `kid`s, the first signing) when given.
fn start_provider_on(
    port: u16,
    backchannel_logout_uri: &str,
    keys: Option<(&std::path::Path, &str)>,
) -> Option<Provider> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oidc_provider");
    if let Err(why) = provider_packages(&dir) {
        skip(&why);
        return None;
    }
    let mut command = Command::new("node");
    command
        .arg("provider.mjs")
        .current_dir(&dir)
        .env("PORT", port.to_string())
        .env("CLIENT_ID", CLIENT_ID)
        .env("CLIENT_SECRET", CLIENT_SECRET)
        .env("BACKCHANNEL_LOGOUT_URI", backchannel_logout_uri)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some((dir, kids)) = keys {
        command.env("KEYS_DIR", dir).env("KEY_IDS", kids);
    }
    let spawned = command.spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(error) => {
            skip(&format!("node could not start ({error})"));
            return None;
        }
    };
    let issuer = format!("http://127.0.0.1:{port}");
    // It prints `listening on ISSUER` once it accepts connections.
    let stdout = child.stdout.take().expect("piped stdout");
    let (ready, listening) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("listening on ") {
                let _ = ready.send(());
            }
        }
    });
    let provider = Provider { child, issuer };
    listening
        .recv_timeout(Duration::from_secs(30))
        .expect("the OpenID Provider starts within 30 s");
    Some(provider)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_from_a_real_provider_is_refused_after_the_providers_backchannel_logout() {
    // Our API's address first: the provider must know where to send logout tokens.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    let Some(provider) = start_provider(&format!("{api}/backchannel-logout")) else {
        return;
    };

    let app = oidc_resource_server::app(oidc_resource_server::OidcConfig {
        issuer: provider.issuer.clone(),
        audience: CLIENT_ID.into(),
        token_type: Some("at+jwt".into()),
        store: Arc::new(InMemoryStore::new()),
    })
    .await
    .expect("the API discovers the provider");
    let server = Background::spawn(|stopped| oidc_resource_server::serve(listener, app, stopped));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    // The provider issues an RFC 9068 access token for the API (client credentials).
    let token: Value = http
        .post(format!("{}/token", provider.issuer))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[("grant_type", "client_credentials"), ("scope", "api")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access_token = token["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned();

    let me = || async {
        http.get(format!("{api}/me"))
            .bearer_auth(&access_token)
            .send()
            .await
            .unwrap()
    };
    let accepted = me().await;
    assert_eq!(accepted.status(), 200);
    let body: Value = accepted.json().await.unwrap();
    assert_eq!(body["sub"], CLIENT_ID);
    assert!(body["jti"].is_string(), "{body}");
    assert_eq!(body["sid"], Value::Null);

    // The provider's own back-channel logout for that subject: it signs a logout
    // token and POSTs it to our receiver, which must answer 200 (else this fails).
    let logout = http
        .post(format!("{}/test/backchannel-logout", provider.issuer))
        .query(&[("sub", CLIENT_ID)])
        .send()
        .await
        .unwrap();
    let status = logout.status();
    assert_eq!(status, 204, "{}", logout.text().await.unwrap_or_default());

    let started = Instant::now();
    let refused = me().await;
    assert_eq!(refused.status(), 401);
    assert_eq!(
        refused.headers()["www-authenticate"],
        common::REVOKED_CHALLENGE,
        "refused after {:?}",
        started.elapsed()
    );
    server.stop().await;
}

/// An access token from the provider (client credentials).
async fn access_token(http: &reqwest::Client, provider: &Provider) -> String {
    let token: Value = http
        .post(format!("{}/token", provider.issuer))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[("grant_type", "client_credentials"), ("scope", "api")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    token["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned()
}

/// `token` with its header's `kid` replaced: what an attacker sends to make the API
/// fetch keys (its signature no longer matters).
fn with_kid(token: &str, kid: &str) -> String {
    let mut parts = token.splitn(2, '.');
    let header = common::b64url_decode(parts.next().unwrap());
    let mut header: Value = serde_json::from_slice(&header).unwrap();
    header["kid"] = Value::from(kid);
    format!(
        "{}.{}",
        common::b64url(header.to_string().as_bytes()),
        parts.next().unwrap()
    )
}

fn kid_of(token: &str) -> String {
    let header = common::b64url_decode(token.split('.').next().unwrap());
    let header: Value = serde_json::from_slice(&header).unwrap();
    header["kid"].as_str().unwrap_or_default().to_owned()
}

// Issue 23: the provider restarted with a rotated key, while made-up `kid`s keep the
// API's unknown-kid rate limit busy. No request with a genuine new-key token may be
// answered 401 (a client throws such a token away): each is 200, or 503 with a
// `Retry-After` after which it is 200. Tokens of the old key, still published, stay 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_providers_key_rotation_is_never_a_401_for_its_new_tokens() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    let keys = std::env::temp_dir().join(format!("tower-jwt-revoke-keys-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&keys).unwrap();
    let port = free_port();
    let logout_uri = format!("{api}/backchannel-logout");
    let Some(provider) = start_provider_on(port, &logout_uri, Some((&keys, "k1"))) else {
        return;
    };
    let app = oidc_resource_server::app(oidc_resource_server::OidcConfig {
        issuer: provider.issuer.clone(),
        audience: CLIENT_ID.into(),
        token_type: Some("at+jwt".into()),
        store: Arc::new(InMemoryStore::new()),
    })
    .await
    .expect("the API discovers the provider");
    let server = Background::spawn(|stopped| oidc_resource_server::serve(listener, app, stopped));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let me = {
        let (http, api) = (http.clone(), api.clone());
        move |token: String| {
            let (http, api) = (http.clone(), api.clone());
            async move {
                http.get(format!("{api}/me"))
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap()
            }
        }
    };

    let old = access_token(&http, &provider).await;
    assert_eq!(kid_of(&old), "k1");
    assert_eq!(me(old.clone()).await.status(), 200);

    // An attacker's made-up kids, from now to the end: each makes the API want a
    // fetch, so a fetch for an unknown kid is always recent.
    let attacking = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let attacker = tokio::spawn({
        let (attacking, me, old) = (Arc::clone(&attacking), me.clone(), old.clone());
        async move {
            let mut answers = Vec::new();
            while attacking.load(std::sync::atomic::Ordering::Relaxed) {
                let forged = with_kid(&old, &uuid::Uuid::new_v4().to_string());
                answers.push(me(forged).await.status().as_u16());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            answers
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The provider restarts with a new signing key, the old one still published.
    drop(provider);
    let provider = start_provider_on(port, &logout_uri, Some((&keys, "k2,k1"))).expect("restarts");
    let new = access_token(&http, &provider).await;
    assert_eq!(kid_of(&new), "k2");

    let started = Instant::now();
    let mut answers = Vec::new();
    loop {
        let response = me(new.clone()).await;
        let status = response.status().as_u16();
        answers.push(status);
        match status {
            200 => break,
            503 => {
                let retry_after: u64 = response.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!((1..=10).contains(&retry_after), "Retry-After: {retry_after}");
                assert!(answers.len() < 2, "a 503 after its Retry-After: {answers:?}");
                tokio::time::sleep(Duration::from_secs(retry_after)).await;
            }
            _ => panic!(
                "a genuine new-key token answered {status} after {:?}: {answers:?}",
                started.elapsed()
            ),
        }
    }
    eprintln!(
        "new-key token answers: {answers:?}, 200 after {:?}",
        started.elapsed()
    );
    assert_eq!(
        me(old.clone()).await.status(),
        200,
        "the old key is still published"
    );
    assert_eq!(me(new).await.status(), 200);

    attacking.store(false, std::sync::atomic::Ordering::Relaxed);
    let forged = attacker.await.unwrap();
    assert!(
        forged.iter().all(|status| [401, 503].contains(status)),
        "made-up kids: {forged:?}"
    );
    server.stop().await;
    drop(provider);
    let _ = std::fs::remove_dir_all(&keys);
}
