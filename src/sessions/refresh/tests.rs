//! The rotation rules, on the in-memory store.

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

fn sessions() -> (Sessions, JwtVerifier, Arc<dyn RevocationStore>) {
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
async fn accepted(verifier: &JwtVerifier, store: &Arc<dyn RevocationStore>, token: &str) -> bool {
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
    let family = RevocationKey::session(Some("app"), "s");
    let subject = RevocationKey::subject(Some("app"), "alice");
    let hash = |n: u8| RefreshHash([n; 32]);
    // Started at 1000; absolute end 1100; idle 30.
    store
        .start_family(&NewFamily::new(
            family,
            subject,
            hash(0),
            b"sealed".to_vec(),
            1000,
            1100,
            Duration::from_secs(30),
        ))
        .await
        .unwrap();
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

    store
        .start_family(&NewFamily::new(
            family,
            subject,
            hash(10),
            Vec::new(),
            2000,
            2100,
            Duration::from_secs(30),
        ))
        .await
        .unwrap();
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

#[tokio::test]
async fn a_refresh_token_carries_no_session_id_nor_subject() {
    let (sessions, verifier, _) = sessions();
    let pair = sessions.sign_in("alice-the-subject").await.unwrap();
    let next = sessions.refresh(pair.refresh_token()).await.unwrap();
    let session = verifier
        .verify(next.access().token())
        .unwrap()
        .session_id()
        .unwrap()
        .to_owned();
    assert_eq!(
        next.access().session_id(),
        pair.access().session_id(),
        "the same session"
    );
    for token in [pair.refresh_token(), next.refresh_token()] {
        assert!(token.starts_with("rt1."), "{token}");
        let decoded =
            base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &token[4..]).unwrap();
        assert_eq!(decoded.len(), 48, "a 128-bit handle and a 256-bit secret");
        let text = String::from_utf8_lossy(&decoded);
        assert!(!text.contains("alice") && !token.contains(&session));
        let session_bytes =
            base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &session).unwrap();
        assert!(!decoded.windows(session_bytes.len()).any(|w| w == session_bytes));
    }
}

#[tokio::test]
async fn the_claims_given_at_sign_in_are_in_every_access_token_of_the_family() {
    let (sessions, verifier, _) = sessions();
    let claims = serde_json::json!({ "scope": "read write", "tenant": 7, "roles": ["admin"] });
    let pair = sessions.sign_in_with_claims("alice", &claims).await.unwrap();
    let mut current = pair;
    for _ in 0..3 {
        let verified = verifier.verify(current.access().token()).unwrap();
        assert_eq!(verified.subject(), Some("alice"));
        let payload: serde_json::Value = serde_json::from_slice(
            &base64::Engine::decode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                current.access().token().split('.').nth(1).unwrap(),
            )
            .unwrap(),
        )
        .unwrap();
        for name in ["scope", "tenant", "roles"] {
            assert_eq!(payload[name], claims[name], "{name}");
        }
        current = sessions.refresh(current.refresh_token()).await.unwrap();
    }
    // Without claims, none.
    let plain = sessions.sign_in("bob").await.unwrap();
    let plain = sessions.refresh(plain.refresh_token()).await.unwrap();
    assert!(!plain.access().token().is_empty());
}

#[tokio::test]
async fn claims_past_the_bound_or_naming_reserved_claims_are_a_clear_error_and_start_nothing() {
    let (sessions, _, _) = sessions();
    let store = Arc::new(InMemoryRefreshStore::new());
    let sessions = Sessions::new(sessions.issuer().clone(), sessions_revoker(), Arc::clone(&store));
    let big = serde_json::json!({ "blob": "x".repeat(super::MAX_FAMILY_CLAIMS_LEN) });
    let error = sessions.sign_in_with_claims("alice", &big).await.unwrap_err();
    assert!(
        matches!(error, SessionError::ClaimsTooLarge { max, .. } if max == super::MAX_FAMILY_CLAIMS_LEN),
        "{error:?}"
    );
    assert!(error.to_string().contains("4096"), "{error}");
    assert_eq!(error.status(), http::StatusCode::INTERNAL_SERVER_ERROR);
    assert!(store.is_empty(), "no family started");
    let fits = serde_json::json!({ "blob": "x".repeat(super::MAX_FAMILY_CLAIMS_LEN - 20) });
    sessions.sign_in_with_claims("alice", &fits).await.unwrap();
    assert!(matches!(
        sessions
            .sign_in_with_claims("alice", &serde_json::json!({ "sub": "mallory" }))
            .await,
        Err(SessionError::Issue(crate::IssueError::Claims(_)))
    ));
    assert!(matches!(
        sessions.sign_in_with_claims("alice", &[1, 2]).await,
        Err(SessionError::Issue(crate::IssueError::Claims(_)))
    ));
    assert_eq!(store.len(), 1, "only the sign-in whose claims fit");
}

fn sessions_revoker() -> Revoker {
    let (sessions, verifier, store) = sessions();
    drop(sessions);
    Revoker::new(verifier, store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_grace_window_two_concurrent_refreshes_both_succeed() {
    let (sessions, verifier, store) = sessions();
    let sessions = sessions.with_grace_window(Duration::from_secs(30));
    for trial in 0..200 {
        let pair = sessions.sign_in("alice").await.unwrap();
        let race =
            |sessions: Sessions, token: String| tokio::spawn(async move { sessions.refresh(&token).await });
        let first = race(sessions.clone(), pair.refresh_token().to_owned());
        let second = race(sessions.clone(), pair.refresh_token().to_owned());
        let (first, second) = (first.await.unwrap().unwrap(), second.await.unwrap().unwrap());
        assert_eq!(
            first.refresh_token(),
            second.refresh_token(),
            "trial {trial}: the same successor"
        );
        assert!(accepted(&verifier, &store, first.access().token()).await);
        assert!(accepted(&verifier, &store, second.access().token()).await);
        // The successor works once; the family goes on.
        let next = sessions.refresh(first.refresh_token()).await.unwrap();
        assert!(accepted(&verifier, &store, next.access().token()).await);
    }
}

#[tokio::test]
async fn a_grace_window_forgives_only_the_last_token_within_it() {
    let (sessions, _, _) = sessions();
    let sessions = sessions.with_grace_window(Duration::from_secs(30));
    let first = sessions.sign_in("alice").await.unwrap();
    let second = sessions.refresh(first.refresh_token()).await.unwrap();
    let again = sessions.refresh(first.refresh_token()).await.unwrap();
    assert_eq!(again.refresh_token(), second.refresh_token());
    let third = sessions.refresh(second.refresh_token()).await.unwrap();
    // `first` is no longer the last token consumed: a reuse, ending the family.
    assert!(matches!(
        sessions.refresh(first.refresh_token()).await,
        Err(SessionError::Reused)
    ));
    assert!(matches!(
        sessions.refresh(third.refresh_token()).await,
        Err(SessionError::Refused(RefreshRefusal::Ended))
    ));

    // Past the window, the last token is a reuse too (store-level, at chosen seconds).
    let store = InMemoryRefreshStore::new();
    let family = RevocationKey::session(Some("app"), "s");
    let subject = RevocationKey::subject(Some("app"), "alice");
    let hash = |n: u8| RefreshHash([n; 32]);
    store
        .start_family(&NewFamily::new(
            family,
            subject,
            hash(0),
            b"r".to_vec(),
            1000,
            2000,
            Duration::from_secs(300),
        ))
        .await
        .unwrap();
    let grace = Duration::from_secs(5);
    let rotation = |presented: u8, next: u8, now: u64| {
        Rotation::new(family, hash(presented), hash(next), now).with_grace(grace, b"successor".to_vec())
    };
    assert!(matches!(
        store.rotate(&rotation(0, 1, 1010)).await.unwrap(),
        RotationOutcome::Rotated { .. }
    ));
    assert_eq!(
        store.rotate(&rotation(0, 2, 1014)).await.unwrap(),
        RotationOutcome::Repeated {
            sealed: b"r".to_vec(),
            successor: b"successor".to_vec()
        },
        "the window's last second"
    );
    assert_eq!(
        store.rotate(&rotation(0, 3, 1015)).await.unwrap(),
        RotationOutcome::Reused,
        "past it"
    );
}
