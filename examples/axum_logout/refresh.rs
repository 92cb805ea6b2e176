//! `POST /refresh`, and the answer a sign-in and a refresh share.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{AppendHeaders, IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use tower_jwt_revoke::refresh::{SessionError, TokenPair};

use super::{AppState, COOKIE, REFRESH_COOKIE, error};

#[derive(Deserialize)]
struct RefreshRequest {
    refresh_token: String,
}

/// `POST /refresh`: the refresh token from the JSON body, or else from its cookie.
pub(super) async fn refresh_tokens(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let token = if body.is_empty() {
        match cookie(&headers, REFRESH_COOKIE) {
            Some(token) => token.to_owned(),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "no refresh token: send {\"refresh_token\"} or its cookie",
                );
            }
        }
    } else {
        match serde_json::from_slice::<RefreshRequest>(&body) {
            Ok(request) => request.refresh_token,
            Err(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "the body must be JSON {\"refresh_token\": \"...\"}",
                );
            }
        }
    };
    match state.sessions.refresh(&token).await {
        Ok(pair) => tokens(&state, &pair),
        Err(failure) => session_error(&failure),
    }
}

/// The answer to a sign-in or a refresh: the pair as JSON, and both as cookies.
pub(super) fn tokens(state: &AppState, pair: &TokenPair) -> Response {
    let expires_in = pair.access().expires_in().as_secs();
    let token = pair.access().token();
    // Add `Secure` when serving over TLS.
    let access_cookie = format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={expires_in}");
    let secure = if state.secure_cookies { "; Secure" } else { "" };
    let refresh_cookie = format!(
        "{REFRESH_COOKIE}={}; HttpOnly{secure}; SameSite=Strict; Path=/refresh; Max-Age={}",
        pair.refresh_token(),
        state.refresh_ttl.as_secs()
    );
    let body = Json(json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": expires_in,
        "refresh_token": pair.refresh_token(),
    }));
    (
        AppendHeaders([
            (header::SET_COOKIE, access_cookie),
            (header::SET_COOKIE, refresh_cookie),
        ]),
        body,
    )
        .into_response()
}

/// A refused or reused refresh token: 401; a store that failed: 503 with
/// `Retry-After`; a revocation that failed: its own answer (see `logout`).
pub(super) fn session_error(failure: &SessionError) -> Response {
    if let SessionError::Revoke(_) | SessionError::Store(_) | SessionError::Issue(_) = failure {
        tracing::warn!(error = %failure, "session operation failed");
    }
    let mut response = error(failure.status(), &failure.to_string());
    if let Some(retry_after) = failure.retry_after() {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(retry_after.as_secs().max(1)),
        );
    }
    response
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}
