//! `check`: would the services refuse this token, and why.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tower_jwt_revoke::UnverifiedToken;
use tower_jwt_revoke::store::{RevocationQuery, RevocationStore};

use super::{Context, scope};
use crate::args::Check;
use crate::error::{Exit, Failure};
use crate::keys;

/// The answer, for scripts.
#[derive(Serialize)]
struct Checked {
    /// Whether a revocation refuses the token.
    revoked: bool,
    /// Which: `token`, `session`, `subject` or `all`.
    by: Option<&'static str>,
    /// Whether the signature and claims were verified (keys given), or only read.
    verified: bool,
    /// Whether it is past `exp` plus leeway: refused as expired anyway.
    expired: bool,
    /// The token's hashed key as a logout records it (as `list` and `revoke` show it):
    /// bound to its subject when it has a `sub`.
    token: String,
    /// Its subject's hashed key, if it has a `sub`.
    subject: Option<String>,
    /// Its session's hashed key, if it has a `sid`.
    session: Option<String>,
}

pub async fn run(context: &mut Context, check: Check) -> Result<Exit, Failure> {
    let token = keys::token(&check.token)?;
    let unverified = UnverifiedToken::parse(&token).map_err(|error| Failure::invalid_token(&error))?;
    let verified = keys::has_keys(&check.keys);
    let query: RevocationQuery = if verified {
        let verifier = keys::verifier(Some(&check.keys), &check.lifetime)?;
        let token = verifier
            .verify(&token)
            .map_err(|error| Failure::invalid_token(&error))?;
        RevocationQuery::for_token(&token)
    } else {
        unverified.query()
    };
    context.require_in_use().await?;
    let lookup = context.store.lookup(&query).await?;
    let by = lookup.revoked_by(query.issued_at).map(scope);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let expired = unverified.expires_at().saturating_add(check.lifetime.leeway) < now;
    let answer = Checked {
        revoked: by.is_some(),
        by,
        verified,
        expired,
        token: query.token_for_subject().unwrap_or(query.token).to_string(),
        subject: query.subject.map(|key| key.to_string()),
        session: query.session.map(|key| key.to_string()),
    };
    let mut text = match by {
        Some("token") => format!("revoked: the token itself ({})", answer.token),
        Some("session") => format!(
            "revoked: its session ({})",
            answer.session.as_deref().unwrap_or("")
        ),
        Some("subject") => format!(
            "revoked: every token of its subject issued until a moment ({})",
            answer.subject.as_deref().unwrap_or("")
        ),
        Some(other) => format!("revoked: every token issued until a moment, of every user (`{other}`)"),
        None => format!("not revoked ({})", answer.token),
    };
    if expired {
        text.push_str("; expired besides: refused anyway");
    }
    if !verified {
        text.push_str(" [signature not verified: give keys to verify]");
    }
    context.out.answer(&answer, text)?;
    Ok(if answer.revoked { Exit::Revoked } else { Exit::Ok })
}
