//! `revoke token|subject|session|all`: through the library's `Revoker`, so records
//! last exactly as long as the services' own revocations do.

use std::time::Duration;

use serde::Serialize;
use tower_jwt_revoke::{Revocation, RevocationKey, Revoker, UnverifiedToken};

use super::Context;
use crate::args::{Lifetime, Revoke, RevokeToken, Target};
use crate::error::{Exit, Failure};
use crate::keys;
use crate::output::human;

/// The answer to a revocation, for scripts.
#[derive(Serialize)]
struct Revoked {
    /// `token`, `subject`, `session` or `all`.
    scope: &'static str,
    /// The hashed key written (none for `all`).
    hash: Option<String>,
    /// Whether a record was written (`false`: the token had expired already).
    recorded: bool,
    /// How long the record lasts, in seconds.
    ttl_secs: Option<u64>,
}

pub async fn run(context: &mut Context, revoke: Revoke) -> Result<Exit, Failure> {
    let (scope, hash, revocation) = match revoke {
        Revoke::Token(token) => revoke_token(context, token).await?,
        Revoke::Subject(subject) => {
            ensure_target(context, &subject.target).await?;
            let revoker = revoker(context, &subject.lifetime)?;
            let issuer = subject.issuer.issuer();
            let hash = RevocationKey::subject(issuer, &subject.subject);
            (
                "subject",
                Some(hash),
                revoker.revoke_subject_for(issuer, &subject.subject).await?,
            )
        }
        Revoke::Session(session) => {
            ensure_target(context, &session.target).await?;
            let revoker = revoker(context, &session.lifetime)?;
            let issuer = session.issuer.issuer();
            let hash = RevocationKey::session(issuer, &session.session);
            (
                "session",
                Some(hash),
                revoker.revoke_session_for(issuer, &session.session).await?,
            )
        }
        Revoke::All(all) => {
            ensure_target(context, &all.target).await?;
            ("all", None, revoker(context, &all.lifetime)?.revoke_all().await?)
        }
    };
    let ttl = match revocation {
        Revocation::Recorded { ttl } => Some(ttl),
        _ => None,
    };
    let answer = Revoked {
        scope,
        hash: hash.map(|hash| hash.to_string()),
        recorded: ttl.is_some(),
        ttl_secs: ttl.map(|ttl| ttl.as_secs()),
    };
    let text = match (ttl, &answer.hash) {
        (None, _) => "nothing to do: the token has expired already, no service accepts it".to_owned(),
        (Some(ttl), Some(hash)) => format!("revoked {scope} {hash} for {}", human(ttl)),
        (Some(ttl), None) => format!("revoked every token issued until now, for {}", human(ttl)),
    };
    context.out.answer(&answer, text)?;
    Ok(Exit::Ok)
}

/// A token verified with the keys given, or read unverified with `--no-verify`.
async fn revoke_token(
    context: &Context,
    args: RevokeToken,
) -> Result<(&'static str, Option<RevocationKey>, Revocation), Failure> {
    let token = keys::token(&args.token)?;
    let verify = keys::has_keys(&args.keys) && !args.no_verify;
    if !verify && !args.no_verify {
        return Err(Failure::usage(
            "give a key to verify the token (--hs256-secret or JWT_HS256_SECRET, or --public-key \
             with --alg), or --no-verify to record it by its unverified claims",
        ));
    }
    let verifier = keys::verifier(verify.then_some(&args.keys), &args.lifetime)?;
    let revoker = Revoker::new(verifier, context.store.clone()).with_timeout(write_timeout());
    // The key the token is revoked under, whether verified or not: bound to its subject
    // when it has one (as `list` shows it).
    let unverified = UnverifiedToken::parse(&token).map_err(|error| Failure::invalid_token(&error))?;
    ensure_target(context, &args.target).await?;
    let revocation = if verify {
        // Verified as the services verify it; a genuine but expired token is a no-op.
        revoker.revoke_token(&token).await?
    } else {
        revoker.revoke_unverified(&unverified).await?
    };
    let query = unverified.query();
    let recorded = query.token_for_subject().unwrap_or(query.token);
    Ok(("token", Some(recorded), revocation))
}

/// A mistyped prefix would record a revocation no service reads: refused unless the
/// prefix is in use, or `--new-prefix` says it is meant to be new.
async fn ensure_target(context: &Context, target: &Target) -> Result<(), Failure> {
    if target.new_prefix {
        return Ok(());
    }
    context.require_in_use().await
}

fn revoker(context: &Context, lifetime: &Lifetime) -> Result<Revoker, Failure> {
    let verifier = keys::verifier(None, lifetime)?;
    Ok(Revoker::new(verifier, context.store.clone()).with_timeout(write_timeout()))
}

/// A revocation may wait for a connection and a retry on a fresh one.
fn write_timeout() -> Duration {
    Duration::from_secs(30)
}
