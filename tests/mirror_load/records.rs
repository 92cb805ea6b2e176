//! What a mirror's load must find, written by every path: the `RedisStore` writes of
//! every kind, an operator's unrevoke, another writer's `SET`s with their index members
//! (many index pages' worth, over every bucket, most sharing an expiry to the
//! millisecond); and what it finds.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tower_jwt_revoke::RevocationKey;
use tower_jwt_revoke::store::{MirrorStore, RedisStore, RevocationQuery, RevocationStore};

/// More than two index pages hold (4000 members), all in one bucket (their subject's),
/// so the load reads several pages of it.
pub const PLAIN: usize = 9_000;

/// The subject of the `PLAIN` tokens.
pub fn plain_subject() -> RevocationKey {
    RevocationKey::subject(Some("load-plain"), "bob")
}

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
}

/// Writes a record of every kind through `store`, and `PLAIN` tokens as another writer
/// would on `redis`: a `SET` and its index member each.
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
    // A third share one expiry to the millisecond: pages must not skip members that
    // share a score.
    let shared_ms = (now() + 600) * 1000;
    let bucket = store.bucket_of(&plain_subject());
    for n in 0..PLAIN {
        let expires_ms = if n % 3 == 0 {
            shared_ms
        } else {
            shared_ms + n as u64
        };
        crate::support::mark_as_another_writer(redis, store, bucket, &plain(n), expires_ms).await;
    }
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
    let mut missing = Vec::new();
    for n in 0..PLAIN {
        let of_bob = query(plain(n), Some(plain_subject()), None, iat);
        if !mirror.lookup(&of_bob).await.unwrap().token_revoked {
            missing.push(n);
        }
    }
    assert!(
        missing.is_empty(),
        "{} of the other writer's revocations missing: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let never = RevocationKey::token(Some("load"), "never revoked");
    assert!(!mirror.lookup(&fresh(never)).await.unwrap().token_revoked);
}
