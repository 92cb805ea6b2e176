//! The open connections that logout reaches: `GET /events` (Server-Sent Events) and
//! `GET /ws` (a WebSocket), both behind the layer, both ended when their token is
//! refused (revoked, or expired) while they are open.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::response::Response;
use axum::response::sse::{Event, Sse};
use futures_util::Stream;
use serde_json::json;
use tower_jwt_revoke::VerifiedToken;

/// How often `/events` sends its counter.
const TICK: Duration = Duration::from_millis(200);

/// `GET /events`: `data: {"n": <counter>}` every 200 ms, until the token is refused;
/// then the stream ends (an `EventSource` that reconnects gets 401).
pub async fn events(token: VerifiedToken) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let state = (0_u64, ticks, token.revoked());
    Sse::new(futures_util::stream::unfold(
        state,
        |(n, mut ticks, mut revoked)| async move {
            tokio::select! {
                refusal = &mut revoked => {
                    tracing::debug!(%refusal, "ending an event stream");
                    None
                }
                _ = ticks.tick() => {
                    let event = Event::default().data(json!({ "n": n }).to_string());
                    Some((Ok(event), (n + 1, ticks, revoked)))
                }
            }
        },
    ))
}

/// `GET /ws`: a WebSocket echoing text messages, closed with code 1008 (policy
/// violation) when its token is refused. The token is the upgrade request's, checked
/// by the layer like any other request's.
pub async fn websocket(token: VerifiedToken, upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(move |socket| echo_until_refused(socket, token))
}

async fn echo_until_refused(mut socket: WebSocket, token: VerifiedToken) {
    let mut revoked = token.revoked();
    loop {
        tokio::select! {
            refusal = &mut revoked => {
                let close = CloseFrame { code: close_code::POLICY, reason: refusal.to_string().into() };
                let _ = socket.send(Message::Close(Some(close))).await;
                return;
            }
            message = socket.recv() => match message {
                Some(Ok(Message::Text(text))) => {
                    if socket.send(Message::Text(text)).await.is_err() {
                        return;
                    }
                }
                // Pings are answered by axum; binary messages are not echoed.
                Some(Ok(Message::Binary(_) | Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
            }
        }
    }
}
