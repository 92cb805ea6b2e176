//! The upgrade from the v1 key schema: a deployment with live v1 revocations switches to
//! v2, through the transition (both schemas read and written) and the one-shot
//! migration, and every one of them stays refused. On a single server: v1 never ran on
//! a cluster.

use std::time::Duration;

use redis::AsyncCommands;
use serde_json::json;
use tower_jwt_revoke::store::{MirrorStore, RedisStore, RevokedBy};
use tower_jwt_revoke::{Rejection, RevocationKey, RevocationLayer, Revoker};

use super::scenarios::*;
use super::support;

/// A store on `url` under `prefix`, reading and writing v1 too or not.
fn store(url: &str, prefix: &str, transition: bool) -> RedisStore {
    RedisStore::builder()
        .url(url)
        .prefix(prefix)
        .v1_transition(transition)
        .build()
        .unwrap()
}

/// What each probe token meets through a layer on `store`.
async fn outcomes(store: impl tower_jwt_revoke::store::RevocationStore, tokens: &[String]) -> Vec<Outcome> {
    let layer = RevocationLayer::new(verifier(), store);
    let mut outcomes = Vec::new();
    for token in tokens {
        outcomes.push(probe(&layer, token).await);
    }
    outcomes
}

#[tokio::test]
async fn live_v1_revocations_stay_refused_through_the_upgrade() {
    let server = redis_or_skip!();
    let prefix = support::unique_prefix();
    let verifier = verifier();
    let mut redis = server.client().get_multiplexed_async_connection().await.unwrap();

    // What the old deployment left, by the v1 schema: a token, a subject's watermark, a
    // session, the global watermark; each with its TTL.
    let token = mint(json!({ "sub": "u1", "jti": "v1-token", "iat": now(), "exp": now() + 600 }));
    let of_subject = mint(json!({ "sub": "u2", "jti": "v1-subject", "iat": now() - 10, "exp": now() + 600 }));
    let of_session =
        mint(json!({ "sub": "u3", "sid": "v1-sid", "jti": "v1-session", "iat": now(), "exp": now() + 600 }));
    let before_all = mint(json!({ "sub": "u4", "jti": "v1-all", "iat": now() - 200, "exp": now() + 600 }));
    let untouched = mint(json!({ "sub": "u5", "jti": "v1-none", "iat": now(), "exp": now() + 600 }));
    let v1 = [
        (
            format!("{prefix}:t:{}", verifier.verify(&token).unwrap().revocation_key()),
            "1".to_owned(),
        ),
        (
            format!("{prefix}:s:{}", RevocationKey::subject(None, "u2")),
            (now() - 5).to_string(),
        ),
        (
            format!("{prefix}:x:{}", RevocationKey::session(None, "v1-sid")),
            "1".to_owned(),
        ),
        (format!("{prefix}:all"), (now() - 100).to_string()),
    ];
    for (key, value) in &v1 {
        let () = redis.set_ex(key, value, 600).await.unwrap();
    }
    let probes = [token.clone(), of_subject, of_session, before_all, untouched];
    let refused = |by| Err(Rejection::Revoked(by));
    let expected = vec![
        refused(RevokedBy::Token),
        refused(RevokedBy::Subject),
        refused(RevokedBy::Session),
        refused(RevokedBy::All),
        Ok(()),
    ];

    // Without the transition, v2 alone would not know them: what the upgrade must avoid.
    let forgetful = outcomes(store(server.url(), &prefix, false), &probes).await;
    assert_eq!(forgetful, vec![Ok(()); 5], "the test's v1 records are v1 only");

    // 1. The transition: upgraded replicas read both schemas, directly and mirrored...
    let transition = store(server.url(), &prefix, true);
    assert_eq!(
        outcomes(transition.clone(), &probes).await,
        expected,
        "transition, direct"
    );
    let mirror = MirrorStore::start(store(server.url(), &prefix, true));
    mirror.wait_until_synced(Duration::from_secs(10)).await.unwrap();
    assert_eq!(outcomes(mirror, &probes).await, expected, "transition, mirrored");
    // ...and write both, so that replicas still on v1 see what upgraded ones revoke.
    let during = mint(json!({ "sub": "u6", "jti": "during", "iat": now(), "exp": now() + 600 }));
    Revoker::new(verifier.clone(), transition.clone())
        .revoke_token(&during)
        .await
        .unwrap();
    let v1_key = format!(
        "{prefix}:t:{}",
        verifier.verify(&during).unwrap().revocation_key()
    );
    assert!(
        redis.exists::<_, bool>(&v1_key).await.unwrap(),
        "written to v1 too"
    );

    // 2. No v1 replica left: copy what only v1 has.
    let report = transition.migrate_v1().await.unwrap();
    assert_eq!(
        (report.tokens, report.subjects, report.sessions, report.global),
        (2, 1, 1, true),
        "{report:?}"
    );

    // 3. v2 alone: every revocation still refused, directly and mirrored.
    let mut after = probes.to_vec();
    after.push(during);
    let mut expected_after = expected.clone();
    expected_after.push(refused(RevokedBy::Token));
    assert_eq!(
        outcomes(store(server.url(), &prefix, false), &after).await,
        expected_after,
        "v2, direct"
    );
    let mirror = MirrorStore::start(store(server.url(), &prefix, false));
    mirror.wait_until_synced(Duration::from_secs(10)).await.unwrap();
    assert_eq!(outcomes(mirror, &after).await, expected_after, "v2, mirrored");
    // What a copy lives: the time the v1 record had left.
    let copy = store(server.url(), &prefix, false);
    let key = verifier.verify(&token).unwrap().revocation_key();
    let ttl: i64 = redis.ttl(copy.token_key(0, &key)).await.unwrap();
    assert!((590..=600).contains(&ttl), "TTL {ttl}");
}

#[tokio::test]
async fn the_transition_is_refused_on_a_cluster() {
    let built = RedisStore::builder()
        .cluster_nodes(["redis://127.0.0.1:1"])
        .v1_transition(true)
        .build();
    assert!(built.is_err());
    let braces = RedisStore::builder()
        .url("redis://127.0.0.1:1")
        .prefix("a{b}")
        .build();
    assert!(braces.is_err(), "a prefix with a hash tag of its own");
}
