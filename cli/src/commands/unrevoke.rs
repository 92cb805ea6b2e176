//! `unrevoke token|session`: lift a revocation made by mistake. The store deletes the
//! record and appends a `del` event to the change feed in one script, so mirrors
//! forget it too.

use serde::Serialize;
use tower_jwt_revoke::store::{RevocationQuery, RevocationStore};
use tower_jwt_revoke::{RevocationKey, UnverifiedToken};

use super::{Context, scope};
use crate::args::Unrevoke;
use crate::error::{Exit, Failure};
use crate::keys;

/// The answer, for scripts.
#[derive(Serialize)]
struct Lifted {
    /// `token` or `session`.
    scope: &'static str,
    hash: String,
    /// Whether a revocation was there and is gone.
    removed: bool,
    /// A token given whole may still be refused by another revocation: which.
    still_refused_by: Option<&'static str>,
}

pub async fn run(context: &mut Context, unrevoke: Unrevoke) -> Result<Exit, Failure> {
    let (scope_name, hash, query) = match unrevoke {
        Unrevoke::Token(args) => match (args.token, args.hash) {
            (Some(token), _) => {
                let token = UnverifiedToken::parse(&keys::token(&token)?)
                    .map_err(|error| Failure::invalid_token(&error))?;
                let query = token.query();
                ("token", query.token, Some(query))
            }
            (None, Some(hex)) => ("token", hash(&hex)?, None),
            (None, None) => return Err(Failure::usage("give the token, or --hash")),
        },
        Unrevoke::Session(args) => match (args.session, args.hash) {
            (Some(sid), _) => {
                if args.issuer.is_none() && !args.no_issuer {
                    return Err(Failure::usage(
                        "a session id needs its issuer: --issuer ISS, or --no-issuer (see --help)",
                    ));
                }
                (
                    "session",
                    RevocationKey::session(args.issuer.as_deref(), &sid),
                    None,
                )
            }
            (None, Some(hex)) => ("session", hash(&hex)?, None),
            (None, None) => return Err(Failure::usage("give the session id, or --hash")),
        },
    };
    context.require_in_use().await?;
    let (hash, removed) = match (scope_name, &query) {
        // A token given whole may be revoked for its subject, or by its key alone (for
        // every subject): both are lifted, and the answer names the one that was there.
        ("token", Some(query)) => match query.token_for_subject() {
            Some(bound) => {
                let for_subject = context.store.unrevoke_token(&bound).await?;
                let alone = context.store.unrevoke_token(&hash).await?;
                if for_subject || !alone {
                    (bound, for_subject || alone)
                } else {
                    (hash, alone)
                }
            }
            None => (hash, context.store.unrevoke_token(&hash).await?),
        },
        ("token", None) => (hash, context.store.unrevoke_token(&hash).await?),
        _ => (hash, context.store.unrevoke_session(&hash).await?),
    };
    let still_refused_by = match query {
        Some(query) => still_refused(context, &query).await?,
        None => None,
    };
    let answer = Lifted {
        scope: scope_name,
        hash: hash.to_string(),
        removed,
        still_refused_by,
    };
    let mut text = if removed {
        format!("lifted the {scope_name} revocation {hash}; mirrors forget it through the change feed")
    } else {
        format!("no {scope_name} revocation under {hash}: nothing to lift")
    };
    if let Some(by) = still_refused_by {
        text.push_str(&format!("; the token is still refused by a `{by}` revocation"));
    }
    context.out.answer(&answer, text)?;
    Ok(Exit::Ok)
}

async fn still_refused(context: &Context, query: &RevocationQuery) -> Result<Option<&'static str>, Failure> {
    let lookup = context.store.lookup(query).await?;
    Ok(lookup.revoked_by(query.issued_at).map(scope))
}

fn hash(hex: &str) -> Result<RevocationKey, Failure> {
    RevocationKey::from_hex(hex.trim())
        .ok_or_else(|| Failure::input(format!("--hash: `{hex}` is not 64 hex digits")))
}
