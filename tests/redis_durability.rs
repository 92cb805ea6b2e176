//! How durable a revocation is, against real servers: acknowledged writes (`WAIT`,
//! `WAITAOF`) and the persistence check at start (see tests/support).

mod common;
mod support;

use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::json;
use tower_jwt_revoke::store::{
    Acknowledgement, PersistenceSource, RedisStore, RevocationQuery, RevocationStore,
};
use tower_jwt_revoke::{RevocationKey, RevokeError, Revoker};

fn verifier() -> tower_jwt_revoke::JwtVerifier {
    common::verifier(0)
}

fn token(jti: &str) -> String {
    common::mint(&common::claims_with("durable", json!({ "jti": jti })))
}

async fn is_revoked(store: &RedisStore, jti: &str) -> bool {
    let query = RevocationQuery {
        token: RevocationKey::token(Some(common::ISSUER), jti),
        subject: Some(RevocationKey::subject(Some(common::ISSUER), "durable")),
        session: None,
        issued_at: Some(common::now()),
    };
    store.lookup(&query).await.unwrap().token_revoked
}

/// The timeout each acknowledgement waits for, in these tests.
const ACK_TIMEOUT: Duration = Duration::from_millis(300);

#[tokio::test]
async fn an_acknowledged_revocation_fails_with_the_documented_error_while_the_replica_is_frozen() {
    let replicated = replicated_or_skip!();
    let store = replicated
        .builder(&support::unique_prefix())
        .acknowledge(Acknowledgement::replicas(1).with_timeout(ACK_TIMEOUT))
        .build()
        .unwrap();
    let revoker = Revoker::new(verifier(), store.clone());

    // With the replica answering, the revocation is confirmed.
    revoker.revoke_token(&token("confirmed")).await.unwrap();
    assert!(is_revoked(&store, "confirmed").await);

    replicated.replica.freeze(3.0);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let error = revoker
        .revoke_token(&token("unconfirmed"))
        .await
        .expect_err("no replica can confirm while it is frozen");
    let took = started.elapsed();
    let RevokeError::Unacknowledged(store_error) = &error else {
        panic!("expected RevokeError::Unacknowledged, got {error:?}");
    };
    assert!(store_error.is_unacknowledged());
    assert!(
        error.to_string().contains("may not survive a failover"),
        "the error says what it means: {error}"
    );
    assert_eq!(error.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        took >= ACK_TIMEOUT && took < ACK_TIMEOUT + Duration::from_secs(2),
        "it fails once the acknowledgement timeout is over, not before nor long after: {took:?}"
    );
    // It is applied all the same: the token is refused.
    assert!(is_revoked(&store, "unconfirmed").await);

    // The store itself says so to a caller below the revoker.
    let direct = store
        .revoke_token(&RevocationKey::token(None, "direct"), Duration::from_secs(60))
        .await
        .expect_err("still frozen");
    assert!(direct.is_unacknowledged(), "{direct}");
}

#[tokio::test]
async fn without_acknowledgement_a_revocation_does_not_wait_for_replicas() {
    let replicated = replicated_or_skip!();
    let store = replicated.builder(&support::unique_prefix()).build().unwrap();
    replicated.replica.freeze(2.0);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    Revoker::new(verifier(), store.clone())
        .revoke_token(&token("unwaited"))
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(is_revoked(&store, "unwaited").await);
}

/// `WAITAOF` came with Redis 7.2: on an older server an fsync acknowledgement cannot
/// be had, and every such revocation says so (while being applied).
#[tokio::test]
async fn an_fsync_acknowledgement_needs_waitaof() {
    let server = redis_or_skip!(private, aof);
    let captured = common::captured::Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // The test's runtime runs on this one thread, the store's start-up check included.
    let _guard = tracing::subscriber::set_default(subscriber);
    let store = RedisStore::builder()
        .url(server.url())
        .prefix(support::unique_prefix())
        .acknowledge(Acknowledgement::fsync().with_timeout(ACK_TIMEOUT))
        .build()
        .unwrap();
    let version: String = {
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut server.client().get_multiplexed_async_connection().await.unwrap())
            .await
            .unwrap();
        info.lines()
            .find_map(|line| line.strip_prefix("redis_version:"))
            .unwrap()
            .trim()
            .to_owned()
    };
    let parts: Vec<u32> = version.split('.').filter_map(|part| part.parse().ok()).collect();
    let has_waitaof = parts.as_slice() >= [7, 2].as_slice();
    let revoked = Revoker::new(verifier(), store.clone())
        .revoke_token(&token("on-disk"))
        .await;
    if !has_waitaof {
        let error = revoked.expect_err("Redis before 7.2 cannot confirm an fsync");
        assert!(
            matches!(&error, RevokeError::Unacknowledged(inner) if inner.is_unacknowledged()),
            "{error:?}"
        );
        assert!(
            error.to_string().contains("7.2"),
            "the error names the version needed: {error}"
        );
        // And the store said so once at start, at `error` level.
        assert!(
            captured
                .wait_for("Redis has no WAITAOF", Duration::from_secs(10))
                .await,
            "{}",
            captured.text()
        );
        let said = captured.text();
        let errors: Vec<&str> = said.lines().filter(|line| line.contains("ERROR")).collect();
        assert_eq!(errors.len(), 1, "{said}");
        assert!(errors[0].contains("no WAITAOF"), "{said}");
    } else {
        revoked.unwrap();
        assert!(!captured.text().contains("no WAITAOF"));
    }
    assert!(is_revoked(&store, "on-disk").await, "applied either way");
}

/// What the store logs at start against `server`, once its persistence check ran.
async fn start_up_logs(server: &support::RedisServer) -> String {
    start_up_logs_of(|| server.store(&support::unique_prefix())).await
}

async fn start_up_logs_of(build: impl FnOnce() -> RedisStore) -> String {
    let captured = common::captured::Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // The test's runtime runs on this one thread, the store's background check included.
    let _guard = tracing::subscriber::set_default(subscriber);
    let store = build();
    assert!(
        captured.wait_for("persistence=", Duration::from_secs(10)).await,
        "the persistence check ran: {}",
        captured.text()
    );
    // Once per store: using it does not check again.
    Revoker::new(verifier(), store.clone())
        .revoke_token(&token("after-start"))
        .await
        .unwrap();
    drop(store);
    captured.text()
}

#[tokio::test]
async fn a_server_without_persistence_is_warned_about_at_start() {
    let server = redis_or_skip!(private);
    let logs = start_up_logs(&server).await;
    let warnings: Vec<&str> = logs.lines().filter(|line| line.contains(" WARN ")).collect();
    assert_eq!(
        warnings
            .iter()
            .filter(|line| line.contains("does not keep revocations across a restart"))
            .count(),
        1,
        "one warning: {logs}"
    );
    assert!(
        warnings[0].contains("no persistence"),
        "it says what a restart loses: {logs}"
    );
}

#[tokio::test]
async fn a_server_with_the_append_only_file_is_not_warned_about() {
    let server = redis_or_skip!(private, aof);
    let logs = start_up_logs(&server).await;
    assert!(
        !logs.contains("does not keep revocations across a restart"),
        "no warning with appendonly yes: {logs}"
    );
    assert!(logs.contains("append-only file"), "the check saw the AOF: {logs}");
}

/// Where `CONFIG` is refused (managed services rename or forbid it), the check reads
/// `INFO persistence` instead.
#[tokio::test]
async fn where_config_is_refused_the_check_reads_info() {
    let server = redis_or_skip!(private, aof);
    let url = server.url_of_user("app", &["config"]).await;
    let build = || {
        RedisStore::builder()
            .url(url.as_str())
            .prefix(support::unique_prefix())
            .build()
            .unwrap()
    };
    let logs = start_up_logs_of(build).await;
    assert!(
        !logs.contains("does not keep revocations across a restart"),
        "INFO says the AOF is on: {logs}"
    );
    let persistence = build().persistence().await.unwrap();
    assert!(persistence.append_only);
    assert_eq!(persistence.source, PersistenceSource::Info);
    assert_eq!(persistence.snapshots, None, "INFO does not say");
}
