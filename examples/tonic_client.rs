//! A gRPC client for the `tonic_grpc` example: the logout tour with cargo alone (no
//! grpcurl).
//!
//! ```text
//! cargo run --example tonic_grpc                                  # in one terminal
//! ADDR=http://127.0.0.1:50051 cargo run --example tonic_client    # in another
//! ```
//!
//! | variable   | meaning                          | default                  |
//! |------------|----------------------------------|--------------------------|
//! | `ADDR`     | the server's URL                 | `http://127.0.0.1:50051` |
//! | `USERNAME` | who logs in                      | `alice`                  |
//!
//! It logs in, calls `Session/Whoami` (accepted), `Session/Logout`, then
//! `Session/Whoami` again with the same token, which the server must refuse with
//! `UNAUTHENTICATED` ("token revoked"). It prints each step and exits non-zero when
//! the server answers otherwise.

use tonic::metadata::MetadataValue;
use tonic::{Code, Request};

/// The messages and clients generated from `tonic_grpc/auth.proto`.
pub mod pb {
    include!("tonic_grpc/auth.v1.rs");
}

use pb::login_client::LoginClient;
use pb::session_client::SessionClient;
use pb::{LoginRequest, LogoutRequest, WhoamiRequest};

/// `message` with the token as `authorization: Bearer` metadata.
fn authorized<T>(message: T, token: &str) -> Result<Request<T>, Box<dyn std::error::Error>> {
    let mut request = Request::new(message);
    let value: MetadataValue<_> = format!("Bearer {token}").parse()?;
    request.metadata_mut().insert("authorization", value);
    Ok(request)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::var("ADDR").unwrap_or_else(|_| "http://127.0.0.1:50051".into());
    let username = std::env::var("USERNAME").unwrap_or_else(|_| "alice".into());

    let channel = tonic::transport::Endpoint::from_shared(addr.clone())?
        .connect()
        .await
        .map_err(|error| {
            format!("cannot reach {addr}: {error} (is `cargo run --example tonic_grpc` running?)")
        })?;
    let mut login = LoginClient::new(channel.clone());
    let mut session = SessionClient::new(channel);

    let token = login
        .login(LoginRequest {
            username,
            password: "password".into(),
        })
        .await?
        .into_inner()
        .access_token;
    println!("Login           -> got a token");

    let me = session
        .whoami(authorized(WhoamiRequest {}, &token)?)
        .await?
        .into_inner();
    println!("Whoami          -> sub {:?}, jti {:?}", me.sub, me.jti);

    session.logout(authorized(LogoutRequest {}, &token)?).await?;
    println!("Logout          -> ok");

    match session.whoami(authorized(WhoamiRequest {}, &token)?).await {
        Err(status) if status.code() == Code::Unauthenticated => {
            println!("Whoami again    -> {:?}: {}", status.code(), status.message());
            Ok(())
        }
        Err(status) => Err(format!("expected UNAUTHENTICATED after logout, got {status}").into()),
        Ok(_) => Err("the revoked token was accepted after logout".into()),
    }
}
