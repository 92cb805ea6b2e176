//! A mirror whose copy is not fresh answers from Redis; what Redis refused then, the
//! replica keeps refusing, even after Redis loses it (a `FLUSHALL` before the mirror
//! read the revocation's event), and writes it back. Against a real redis-server (see
//! tests/support), with a mirror that cannot follow the feeds (its user may not `XREAD`)
//! and so answers from Redis throughout.

#[macro_use]
mod support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tower_jwt_revoke::RevocationKey;
use tower_jwt_revoke::store::{MirrorStore, RedisStore, RevocationQuery, RevocationStore};

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn query(name: &str) -> RevocationQuery {
    RevocationQuery {
        token: RevocationKey::token(None, &format!("jti-{name}")),
        subject: Some(RevocationKey::subject(None, &format!("user-{name}"))),
        session: Some(RevocationKey::session(None, &format!("session-{name}"))),
        issued_at: Some(now() - 5),
    }
}

async fn refuses(store: &impl RevocationStore, query: &RevocationQuery) -> bool {
    let answer = store.lookup(query).await.expect("the store answers");
    answer.revoked_by(query.issued_at).is_some()
}

/// Polls `condition` every 50 ms for up to `within`.
async fn eventually(within: Duration, mut condition: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if condition().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_redis_refused_for_a_mirror_not_in_sync_is_kept_and_written_back() {
    let server = redis_or_skip!(private);
    let mut admin = server.client().get_multiplexed_async_connection().await.unwrap();
    // Everything but reading the feeds: the mirror never gets in sync.
    let url = server.url_of_user("replica", &["xread"]).await;
    let prefix = support::unique_prefix();
    let mirror = MirrorStore::start(
        RedisStore::builder()
            .url(url.as_str())
            .prefix(prefix.as_str())
            .command_timeout(Duration::from_millis(500))
            .build()
            .unwrap(),
    );
    let writer = server.store(&prefix);

    let (token, session, subject, untouched) =
        (query("token"), query("session"), query("subject"), query("none"));
    let ttl = Duration::from_secs(60);
    writer
        .revoke_token_of(&token.token, token.subject.as_ref(), ttl)
        .await
        .unwrap();
    writer
        .revoke_session(session.session.as_ref().unwrap(), ttl)
        .await
        .unwrap();
    writer
        .raise_subject_watermark(subject.subject.as_ref().unwrap(), now(), ttl)
        .await
        .unwrap();

    assert!(
        mirror
            .wait_until_synced(Duration::from_millis(300))
            .await
            .is_err(),
        "the mirror may not follow the feeds, so it answers from Redis"
    );
    for refused in [&token, &session, &subject] {
        assert!(
            refuses(&mirror, refused).await,
            "Redis refuses it, and so the mirror"
        );
    }
    assert!(!refuses(&mirror, &untouched).await);

    // The refusals are kept in the background, a round trip after they were answered.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _: () = redis::cmd("FLUSHALL").query_async(&mut admin).await.unwrap();
    for refused in [&token, &session, &subject] {
        assert!(
            refuses(&mirror, refused).await,
            "Redis lost it before the mirror read its event; the mirror still refuses it"
        );
    }
    assert!(!refuses(&mirror, &untouched).await, "nothing else is refused");

    // The loss is noticed (the epoch markers are gone) and the mirror writes back what it
    // kept: a store without a mirror refuses them again.
    for refused in [&token, &session, &subject] {
        assert!(
            eventually(Duration::from_secs(10), async || refuses(&writer, refused).await).await,
            "written back into Redis"
        );
    }
    assert!(!refuses(&writer, &untouched).await);

    // Kept with the time Redis said it had left, not for ever: every key with a TTL
    // (the records and their buckets' indexes) expires within the 60 s given at first.
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query_async(&mut admin).await.unwrap();
    let mut with_ttl = 0;
    for key in keys {
        let left: i64 = redis::cmd("PTTL")
            .arg(&key)
            .query_async(&mut admin)
            .await
            .unwrap();
        if left > 0 {
            with_ttl += 1;
            assert!(
                (45_000..=60_000).contains(&left),
                "{key} written back with what was left of its 60 s: {left} ms"
            );
        }
    }
    assert!(with_ttl >= 3, "the three records are back");
}
