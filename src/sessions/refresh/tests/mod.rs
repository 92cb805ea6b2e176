//! The rotation rules, on the in-memory store; what a family carries (opaque tokens,
//! the sign-in's claims) and the grace window in `family.rs`.

mod family;

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::Algorithm;

use super::{
    InMemoryRefreshStore, NewFamily, RefreshHash, RefreshRefusal, RefreshStore, Rotation, RotationOutcome,
    SessionError, Sessions,
};
use crate::store::{InMemoryStore, RevocationQuery, RevocationStore};
use crate::{JwtVerifier, RevocationKey, Revoker, SigningKey, TokenIssuer, VerificationKey};

const SECRET: &[u8] = b"a long random secret of 32 bytes";

/// The family the store-level timing tests rotate (`app`'s session `s`, of alice).
pub(super) fn family() -> RevocationKey {
    RevocationKey::session(Some("app"), "s")
}

/// The `n`th refresh token's hash in those tests.
pub(super) fn hash(n: u8) -> RefreshHash {
    RefreshHash([n; 32])
}

/// Starts [`family`] on `store` with token `first`, its record `sealed`, at `started`
/// (seconds), ending at `ends` or after `idle` without use.
pub(super) async fn start_family(
    store: &InMemoryRefreshStore,
    first: u8,
    sealed: &[u8],
    (started, ends): (u64, u64),
    idle: Duration,
) {
    let subject = RevocationKey::subject(Some("app"), "alice");
    let family = NewFamily::new(
        family(),
        subject,
        hash(first),
        sealed.to_vec(),
        started,
        ends,
        idle,
    );
    store.start_family(&family).await.unwrap();
}

pub(super) fn sessions() -> (Sessions, JwtVerifier, Arc<dyn RevocationStore>) {
    let verifier = JwtVerifier::builder()
        .key(VerificationKey::hmac(Algorithm::HS256, SECRET).unwrap())
        .issuer("app")
        .build()
        .unwrap();
    let issuer = TokenIssuer::builder(&verifier)
        .signing_key(SigningKey::hmac(Algorithm::HS256, SECRET).unwrap())
        .build()
        .unwrap();
    let store: Arc<dyn RevocationStore> = Arc::new(InMemoryStore::new());
    let revoker = Revoker::new(verifier.clone(), Arc::clone(&store));
    (
        Sessions::new(issuer, revoker, InMemoryRefreshStore::new()),
        verifier,
        store,
    )
}

/// Whether the layer would let `token` through: verified, and not revoked.
pub(super) async fn accepted(verifier: &JwtVerifier, store: &Arc<dyn RevocationStore>, token: &str) -> bool {
    let Ok(verified) = verifier.verify(token) else {
        return false;
    };
    let query = RevocationQuery::for_token(&verified);
    store
        .lookup(&query)
        .await
        .unwrap()
        .revoked_by(verified.issued_at())
        .is_none()
}

#[tokio::test]
async fn a_reused_copy_ends_its_session_and_no_other() {
    let (sessions, verifier, store) = sessions();
    let first = sessions.sign_in("alice").await.unwrap();
    let other = sessions.sign_in("alice").await.unwrap();
    let copy = first.refresh_token().to_owned();
    let current = sessions.refresh(first.refresh_token()).await.unwrap();
    assert!(accepted(&verifier, &store, current.access().token()).await);

    assert!(matches!(sessions.refresh(&copy).await, Err(SessionError::Reused)));
    assert!(
        !accepted(&verifier, &store, current.access().token()).await,
        "the session is revoked"
    );
    assert!(!accepted(&verifier, &store, first.access().token()).await);
    let refused = sessions.refresh(current.refresh_token()).await;
    assert!(
        matches!(refused, Err(SessionError::Refused(RefreshRefusal::Ended))),
        "{refused:?}"
    );
    // Presented again, the copy is still a reuse (and revokes the session again).
    assert!(matches!(sessions.refresh(&copy).await, Err(SessionError::Reused)));

    assert!(
        accepted(&verifier, &store, other.access().token()).await,
        "another session is untouched"
    );
    let renewed = sessions.refresh(other.refresh_token()).await.unwrap();
    assert!(accepted(&verifier, &store, renewed.access().token()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_concurrent_refreshes_with_one_token_exactly_one_wins() {
    let (sessions, _, _) = sessions();
    for trial in 0..1000 {
        let pair = sessions.sign_in("alice").await.unwrap();
        let race =
            |sessions: Sessions, token: String| tokio::spawn(async move { sessions.refresh(&token).await });
        let first = race(sessions.clone(), pair.refresh_token().to_owned());
        let second = race(sessions.clone(), pair.refresh_token().to_owned());
        let outcomes = [first.await.unwrap(), second.await.unwrap()];
        let winners = outcomes.iter().filter(|outcome| outcome.is_ok()).count();
        assert_eq!(winners, 1, "trial {trial}: {outcomes:?}");
        assert!(
            outcomes
                .iter()
                .any(|outcome| matches!(outcome, Err(SessionError::Reused))),
            "trial {trial}: the loser presented a consumed token: {outcomes:?}"
        );
    }
}

#[tokio::test]
async fn what_is_not_a_live_refresh_token_is_refused_and_changes_nothing() {
    let (sessions, _, _) = sessions();
    let pair = sessions.sign_in("alice").await.unwrap();
    let refused = |outcome: Result<_, SessionError>, refusal: RefreshRefusal| {
        assert!(
            matches!(&outcome, Err(SessionError::Refused(r)) if *r == refusal),
            "{outcome:?}"
        );
        assert_eq!(outcome.unwrap_err().status(), http::StatusCode::UNAUTHORIZED);
    };
    refused(
        sessions.refresh(pair.access().token()).await,
        RefreshRefusal::Malformed,
    );
    refused(sessions.refresh("").await, RefreshRefusal::Malformed);
    refused(
        sessions.refresh(&"x".repeat(100_000)).await,
        RefreshRefusal::Malformed,
    );
    // A token edited in its secret, or in its family handle: unknown.
    let token = pair.refresh_token();
    let edited = |at: usize| {
        let flipped = if &token[at..at + 1] == "A" { "B" } else { "A" };
        format!("{}{flipped}{}", &token[..at], &token[at + 1..])
    };
    refused(
        sessions.refresh(&edited(token.len() - 2)).await,
        RefreshRefusal::Unknown,
    );
    refused(sessions.refresh(&edited(6)).await, RefreshRefusal::Unknown);
    let other = Sessions::sign_in(&sessions, "carol").await.unwrap();
    drop(other);
    // None of that ended the family.
    sessions.refresh(pair.refresh_token()).await.unwrap();
}

#[tokio::test]
async fn logout_ends_the_family_and_logout_everywhere_every_family_of_the_subject() {
    let (sessions, verifier, store) = sessions();
    let one = sessions.sign_in("alice").await.unwrap();
    let two = sessions.sign_in("alice").await.unwrap();
    let three = sessions.sign_in("alice").await.unwrap();
    let bob = sessions.sign_in("bob").await.unwrap();

    sessions
        .log_out(&verifier.verify(one.access().token()).unwrap())
        .await
        .unwrap();
    let refused = sessions.refresh(one.refresh_token()).await;
    assert!(
        matches!(refused, Err(SessionError::Refused(RefreshRefusal::Ended))),
        "{refused:?}"
    );
    assert!(!accepted(&verifier, &store, one.access().token()).await);
    assert!(accepted(&verifier, &store, two.access().token()).await);

    sessions
        .log_out_everywhere(&verifier.verify(two.access().token()).unwrap())
        .await
        .unwrap();
    for pair in [&two, &three] {
        let refused = sessions.refresh(pair.refresh_token()).await;
        assert!(
            matches!(refused, Err(SessionError::Refused(RefreshRefusal::Ended))),
            "{refused:?}"
        );
        assert!(!accepted(&verifier, &store, pair.access().token()).await);
    }
    assert!(accepted(&verifier, &store, bob.access().token()).await);
    sessions.refresh(bob.refresh_token()).await.unwrap();
}

#[tokio::test]
async fn idle_timeout_and_absolute_lifetime_end_a_family_at_their_second() {
    let store = InMemoryRefreshStore::new();
    let family = family();
    // Started at 1000; absolute end 1100; idle 30.
    start_family(&store, 0, b"sealed", (1000, 1100), Duration::from_secs(30)).await;
    let rotate = |presented: u8, now: u64| {
        let rotation = Rotation::new(family, hash(presented), hash(presented + 1), now);
        let store = &store;
        async move { store.rotate(&rotation).await.unwrap() }
    };
    let rotated = RotationOutcome::Rotated {
        sealed: b"sealed".to_vec(),
    };
    assert_eq!(rotate(0, 1029).await, rotated, "the last second before idle");
    assert_eq!(rotate(1, 1058).await, rotated, "idle counts from the last use");
    assert_eq!(rotate(2, 1087).await, rotated);
    assert_eq!(rotate(3, 1099).await, rotated, "the last second of its lifetime");
    assert_eq!(
        rotate(4, 1100).await,
        RotationOutcome::Expired,
        "absolute lifetime"
    );
    assert!(store.is_empty(), "nothing kept past it");

    start_family(&store, 10, b"", (2000, 2100), Duration::from_secs(30)).await;
    assert_eq!(rotate(10, 2030).await, RotationOutcome::Expired, "idle timeout");
    assert!(store.is_empty());
}

#[tokio::test]
async fn a_sign_in_in_the_same_second_as_log_out_everywhere_gets_a_token_that_works() {
    let (sessions, verifier, store) = sessions();
    for _ in 0..3 {
        let before = sessions.sign_in("alice").await.unwrap();
        let token = verifier.verify(before.access().token()).unwrap();
        sessions.log_out_everywhere(&token).await.unwrap();
        let after = sessions.sign_in("alice").await.unwrap();
        assert!(!accepted(&verifier, &store, before.access().token()).await);
        assert!(
            accepted(&verifier, &store, after.access().token()).await,
            "signed in after the logout"
        );
        sessions.refresh(after.refresh_token()).await.unwrap();
    }
}
