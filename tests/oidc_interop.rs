//! Interoperability with a real, certified OpenID Provider: `oidc-provider` from the
//! npm registry (tests/oidc_provider), run with the machine's Node.js on loopback.
//!
//! The `oidc_resource_server` example discovers the provider, accepts the RFC 9068
//! access token the provider issues (200), and once the provider sends its own
//! Back-Channel Logout token for that subject, refuses the same access token (401).
//!
//! Gated like the Redis tests: without Node.js or the npm packages (`npm ci --prefix
//! tests/oidc_provider`) it says so loudly and passes, unless
//! `TOWER_JWT_REVOKE_REQUIRE_NODE=1` (set by `.ci/run`), where it fails.
#![cfg(all(feature = "axum", feature = "redis", feature = "jwks", feature = "endpoints"))]

mod common;

#[path = "../examples/oidc_resource_server.rs"]
#[allow(dead_code)]
mod oidc_resource_server;

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
    eprintln!(
        "\n!!! SKIPPED: {reason}. Install Node.js and run `npm ci --prefix tests/oidc_provider`. !!!\n"
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

/// Starts the provider on a free port; `None` (after saying why) when it cannot run.
fn start_provider(backchannel_logout_uri: &str) -> Option<Provider> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oidc_provider");
    if !dir.join("node_modules/oidc-provider").is_dir() {
        skip("tests/oidc_provider/node_modules is missing");
        return None;
    }
    let port = free_port();
    let spawned = Command::new("node")
        .arg("provider.mjs")
        .current_dir(&dir)
        .env("PORT", port.to_string())
        .env("CLIENT_ID", CLIENT_ID)
        .env("CLIENT_SECRET", CLIENT_SECRET)
        .env("BACKCHANNEL_LOGOUT_URI", backchannel_logout_uri)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
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
