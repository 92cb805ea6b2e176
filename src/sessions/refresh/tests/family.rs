//! What a family carries: no personal data in its tokens, the sign-in's claims in every
//! access token; the grace window.

use std::sync::Arc;
use std::time::Duration;

use super::super::{
    InMemoryRefreshStore, MAX_FAMILY_CLAIMS_LEN, RefreshRefusal, RefreshStore, Rotation, RotationOutcome,
    SessionError, Sessions,
};
use super::{accepted, family, hash, sessions, start_family};
use crate::Revoker;

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
    let big = serde_json::json!({ "blob": "x".repeat(MAX_FAMILY_CLAIMS_LEN) });
    let error = sessions.sign_in_with_claims("alice", &big).await.unwrap_err();
    assert!(
        matches!(error, SessionError::ClaimsTooLarge { max, .. } if max == MAX_FAMILY_CLAIMS_LEN),
        "{error:?}"
    );
    assert!(error.to_string().contains("4096"), "{error}");
    assert_eq!(error.status(), http::StatusCode::INTERNAL_SERVER_ERROR);
    assert!(store.is_empty(), "no family started");
    let fits = serde_json::json!({ "blob": "x".repeat(MAX_FAMILY_CLAIMS_LEN - 20) });
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
    let family = family();
    start_family(&store, 0, b"r", (1000, 2000), Duration::from_secs(300)).await;
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
