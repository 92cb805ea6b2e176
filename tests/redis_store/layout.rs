//! The key layout recorded beside the blocklist: a store configured with another bucket
//! count than the one that wrote it is refused (its checks 503, its writes fail), so
//! that it never writes or reads other buckets than its peers.

use std::time::Duration;

use http::StatusCode;
use redis::AsyncCommands;
use tower_jwt_revoke::store::{MirrorStore, RedisStore, RevocationQuery, RevocationStore};
use tower_jwt_revoke::{RevocationLayer, Revoker};

use super::scenarios::*;
use super::support::{self, RedisServer};

fn store_with(server: &RedisServer, prefix: &str, buckets: u32) -> RedisStore {
    RedisStore::builder()
        .url(server.url())
        .prefix(prefix)
        .buckets(buckets)
        .connect_timeout(Duration::from_millis(300))
        .command_timeout(Duration::from_millis(300))
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_store_with_another_bucket_count_is_refused_not_let_in() {
    let server = crate::redis_or_skip!();
    let prefix = support::unique_prefix();
    let sixteen = store_with(&server, &prefix, 16);
    let token = token_for("alice");
    Revoker::new(verifier(), sixteen.clone())
        .revoke(&verifier().verify(&token).unwrap())
        .await
        .unwrap();
    let mut redis = server.client().get_multiplexed_async_connection().await.unwrap();
    let recorded: Option<String> = redis.get(sixteen.layout_key()).await.unwrap();
    assert_eq!(recorded.as_deref(), Some("v2 buckets=16"));

    // Another bucket count would read alice's token in another bucket, and let it in.
    let other = store_with(&server, &prefix, 32);
    let query = RevocationQuery::for_token(&verifier().verify(&token).unwrap());
    let error = other.lookup(&query).await.unwrap_err();
    let said = format!(
        "{error}: {:?}",
        std::error::Error::source(&error).map(ToString::to_string)
    );
    assert!(
        said.contains("v2 buckets=16") && said.contains("v2 buckets=32"),
        "{said}"
    );
    let layer = RevocationLayer::new(verifier(), other.clone());
    assert_eq!(
        status_with(&protected(layer), &token).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "fails closed"
    );
    assert!(
        Revoker::new(verifier(), other.clone())
            .revoke_subject_for(None, "bob")
            .await
            .is_err(),
        "a write would land in buckets nobody reads"
    );
    let mirror = MirrorStore::start(other);
    assert!(mirror.wait_until_synced(Duration::from_secs(2)).await.is_err());

    // The same count is welcome, and so is any count on a new prefix.
    let same = store_with(&server, &prefix, 16);
    assert!(same.lookup(&query).await.unwrap().token_revoked);
    let fresh = store_with(&server, &support::unique_prefix(), 32);
    assert!(!fresh.lookup(&query).await.unwrap().token_revoked);
}
