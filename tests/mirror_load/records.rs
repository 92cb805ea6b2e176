//! What a mirror's load must find, written by every path: the `RedisStore` writes of
//! every kind, an operator's unrevoke, the README's plain `SET`s of another writer (many
//! `SCAN` steps' worth, over every bucket), a record without TTL; and what it finds.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tower_jwt_revoke::RevocationKey;
use tower_jwt_revoke::store::{MirrorStore, RedisStore, RevocationQuery, RevocationStore};

/// More than one load step holds (4000 keys), so the load reads several.
pub const PLAIN: usize = 9_000;

pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

pub fn plain(n: usize) -> RevocationKey {
    RevocationKey::token(Some("load-plain"), &n.to_string())
}

fn query(
    token: RevocationKey,
    subject: Option<RevocationKey>,
    session: Option<RevocationKey>,
    iat: u64,
) -> RevocationQuery {
    RevocationQuery {
        token,
        subject,
        session,
        issued_at: Some(iat),
    }
}

/// The records [`write`] leaves, for [`check`].
pub struct Written {
    token: RevocationKey,
    subject_token: RevocationKey,
    subject: RevocationKey,
    subject_mark: u64,
    session: RevocationKey,
    global_mark: u64,
    unrevoked: RevocationKey,
    without_ttl: RevocationKey,
}

/// Writes a record of every kind through `store`, and `PLAIN` tokens plus one without a
/// TTL with plain `SET`s on `redis`.
pub async fn write<C: redis::aio::ConnectionLike + Send>(store: &RedisStore, redis: &mut C) -> Written {
    let ttl = Duration::from_secs(600);
    let written = Written {
        token: RevocationKey::token(Some("load"), "token"),
        subject_token: RevocationKey::token(Some("load"), "of-subject"),
        subject: RevocationKey::subject(Some("load"), "alice"),
        subject_mark: now() - 100,
        session: RevocationKey::session(Some("load"), "sid-1"),
        global_mark: now() - 1_000,
        unrevoked: RevocationKey::token(Some("load"), "unrevoked"),
        without_ttl: RevocationKey::token(Some("load"), "no-ttl"),
    };
    store.revoke_token_of(&written.token, None, ttl).await.unwrap();
    store
        .revoke_token_of(&written.subject_token, Some(&written.subject), ttl)
        .await
        .unwrap();
    store
        .raise_subject_watermark(&written.subject, written.subject_mark, ttl)
        .await
        .unwrap();
    store.revoke_session(&written.session, ttl).await.unwrap();
    store
        .raise_global_watermark(written.global_mark, ttl)
        .await
        .unwrap();
    store
        .revoke_token_of(&written.unrevoked, None, ttl)
        .await
        .unwrap();
    assert!(store.unrevoke_token(&written.unrevoked).await.unwrap());
    for chunk in (0..PLAIN).collect::<Vec<_>>().chunks(500) {
        // One command at a time per key: a cluster routes each by its slot.
        for &n in chunk {
            let key = store.token_key(store.bucket_of(&plain(n)), &plain(n));
            let () = redis::cmd("SET")
                .arg(key)
                .arg(1)
                .arg("EX")
                .arg(600)
                .query_async(redis)
                .await
                .unwrap();
        }
    }
    let key = store.token_key(store.bucket_of(&written.without_ttl), &written.without_ttl);
    let () = redis::cmd("SET")
        .arg(key)
        .arg(1)
        .query_async(redis)
        .await
        .unwrap();
    written
}

/// Fails unless `mirror`, loaded and answering locally, holds exactly what [`write`]
/// left.
pub async fn check(mirror: &MirrorStore, written: &Written) {
    mirror.wait_until_synced(Duration::from_secs(20)).await.unwrap();
    assert!(mirror.health().serving_locally, "{:?}", mirror.health());
    let iat = now();
    let fresh = |token| query(token, None, None, iat);
    assert!(mirror.lookup(&fresh(written.token)).await.unwrap().token_revoked);
    let of_subject = mirror
        .lookup(&query(written.subject_token, Some(written.subject), None, iat))
        .await
        .unwrap();
    assert!(of_subject.token_revoked);
    assert_eq!(of_subject.subject_watermark, Some(written.subject_mark));
    let of_session = mirror
        .lookup(&query(
            RevocationKey::token(None, "any"),
            None,
            Some(written.session),
            iat,
        ))
        .await
        .unwrap();
    assert!(of_session.session_revoked);
    assert_eq!(of_session.global_watermark, Some(written.global_mark));
    assert!(
        !mirror
            .lookup(&fresh(written.unrevoked))
            .await
            .unwrap()
            .token_revoked
    );
    assert!(
        mirror
            .lookup(&fresh(written.without_ttl))
            .await
            .unwrap()
            .token_revoked
    );
    let mut missing = Vec::new();
    for n in 0..PLAIN {
        if !mirror.lookup(&fresh(plain(n))).await.unwrap().token_revoked {
            missing.push(n);
        }
    }
    assert!(
        missing.is_empty(),
        "{} plain SETs missing: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let never = RevocationKey::token(Some("load"), "never revoked");
    assert!(!mirror.lookup(&fresh(never)).await.unwrap().token_revoked);
}
