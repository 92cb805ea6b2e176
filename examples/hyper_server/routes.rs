//! The demo's routes: `/login` (open), and `/me`, `/logout`, `/logout-all` behind the
//! layer, with their JSON answers and the session cookie.

use std::convert::Infallible;

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::json;
use tower_jwt_revoke::{RevokeError, VerifiedToken};

use super::{AppState, Body, COOKIE, MAX_LOGIN_BODY, MAX_USERNAME_LEN};

#[derive(Deserialize)]
struct LoginRequest {
    username: String,
    password: String,
}

/// The routes behind the layer: every request here carries a verified token.
pub(crate) async fn protected_routes(
    state: AppState,
    mut request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let Some(token) = request.extensions_mut().remove::<VerifiedToken>() else {
        tracing::error!("a protected route without a verified token: is RevocationLayer applied?");
        return Ok(error(StatusCode::INTERNAL_SERVER_ERROR, "no verified token"));
    };
    let response = match (request.method(), request.uri().path()) {
        (&Method::GET, "/me") => me(token),
        (&Method::POST, "/logout") => logout(state, token).await,
        (&Method::POST, "/logout-all") => logout_all(state, token).await,
        (_, "/me") => method_not_allowed("GET"),
        (_, "/logout" | "/logout-all") => method_not_allowed("POST"),
        _ => error(StatusCode::NOT_FOUND, "no such route"),
    };
    Ok(response)
}

pub(crate) async fn login(state: AppState, request: Request<Incoming>) -> Response<Body> {
    let is_json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if !is_json {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expected content-type: application/json",
        );
    }
    let body = match Limited::new(request.into_body(), MAX_LOGIN_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return error(StatusCode::PAYLOAD_TOO_LARGE, "the request body is too large"),
    };
    let Ok(request) = serde_json::from_slice::<LoginRequest>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            r#"expected {"username": "...", "password": "..."}"#,
        );
    };
    let username = request.username.trim();
    if username.is_empty() {
        return error(StatusCode::BAD_REQUEST, "username must not be empty");
    }
    if username.chars().count() > MAX_USERNAME_LEN || username.chars().any(char::is_control) {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("username must be at most {MAX_USERNAME_LEN} printable characters"),
        );
    }
    if request.password != "password" {
        return error(StatusCode::UNAUTHORIZED, "invalid username or password");
    }
    // Each login a new session: its own `sid`, and a random 128-bit `jti`.
    let minted = state
        .issuer
        .new_session_id()
        .and_then(|session| state.issuer.issue(username, &session));
    let minted = match minted {
        Ok(minted) => minted,
        Err(_) => return error(StatusCode::INTERNAL_SERVER_ERROR, "could not sign the token"),
    };
    let expires_in = minted.expires_in().as_secs();
    let token = minted.into_token();
    // Add `Secure` when serving over TLS.
    let cookie = format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={expires_in}");
    let mut response = json_response(
        StatusCode::OK,
        &json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": expires_in,
        }),
    );
    if let Ok(cookie) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

fn me(token: VerifiedToken) -> Response<Body> {
    json_response(
        StatusCode::OK,
        &json!({
            "sub": token.subject(),
            "jti": token.token_id(),
            "iat": token.issued_at(),
            "exp": token.expires_at(),
        }),
    )
}

async fn logout(state: AppState, token: VerifiedToken) -> Response<Body> {
    match state.revoker.revoke(&token).await {
        Ok(_) => clear_cookie(),
        Err(failed) => revoke_error(&failed),
    }
}

async fn logout_all(state: AppState, token: VerifiedToken) -> Response<Body> {
    // A token without `sub` names no one to log out everywhere: 400, not 503.
    match state.revoker.revoke_subject_of(&token).await {
        Ok(_) => clear_cookie(),
        Err(failed) => revoke_error(&failed),
    }
}

/// 503 with `Retry-After` when the store failed (the client retries), 400 for a
/// request that can never succeed.
fn revoke_error(failed: &RevokeError) -> Response<Body> {
    let status = failed.status();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        tracing::warn!(error = %failed, "a logout was not recorded");
        let mut response = error(status, "could not record the logout; try again");
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    }
    error(status, &failed.to_string())
}

fn clear_cookie() -> Response<Body> {
    let mut response = Response::new(Body::default());
    *response.status_mut() = StatusCode::NO_CONTENT;
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("token=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    response
}

pub(crate) fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut response = error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

pub(crate) fn error(status: StatusCode, message: &str) -> Response<Body> {
    json_response(status, &json!({ "error": message }))
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Body> {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
