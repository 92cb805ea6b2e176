//! One module per command; [`Context`] is what they share.

mod backup;
mod check;
mod inspect;
mod revoke;
mod unrevoke;

use tower_jwt_revoke::store::{MAX_BUCKETS, RedisStore, RevokedBy};

use crate::args::{Command, Global};
use crate::error::{Exit, Failure};
use crate::output::Out;

/// The store, and where answers go.
pub struct Context {
    pub store: RedisStore,
    pub out: Out,
}

impl Context {
    /// The store `global` names. Connecting starts in the background; the first
    /// command waits for it at most the connect timeout.
    pub fn new(global: &Global) -> Result<Self, Failure> {
        let given = |value: &Option<String>| value.clone().filter(|value| !value.trim().is_empty());
        let builder = match (given(&global.redis_url), given(&global.cluster_nodes)) {
            (Some(url), _) => RedisStore::builder().url(url),
            (None, Some(nodes)) => RedisStore::builder().cluster_nodes(
                nodes
                    .split(',')
                    .map(str::trim)
                    .filter(|node| !node.is_empty())
                    .map(str::to_owned)
                    .collect::<Vec<_>>(),
            ),
            (None, None) => {
                return Err(Failure::usage(
                    "no Redis: pass --redis-url (REDIS_URL) or --cluster-nodes (REDIS_CLUSTER_NODES)",
                ));
            }
        };
        if global.prefix.is_empty() {
            return Err(Failure::usage("--prefix must not be empty"));
        }
        if !(1..=MAX_BUCKETS).contains(&global.buckets) {
            return Err(Failure::usage(format!("--buckets must be 1 to {MAX_BUCKETS}")));
        }
        let store = builder
            .buckets(global.buckets)
            .v1_transition(global.v1_transition)
            .prefix(global.prefix.as_str())
            .connect_timeout(global.connect_timeout)
            .command_timeout(global.timeout)
            // A tool is not a service of the blocklist: it must not register the prefix
            // it was given (a mistyped one would then look in use), and it lives too
            // short a time to watch for losses.
            .detect_data_loss(false)
            .build()?;
        Ok(Self {
            store,
            out: Out::new(global.json),
        })
    }

    /// Fails when nothing was ever recorded under the prefix: a mistyped `--prefix`
    /// (or a Redis that lost its data) must not read as an empty blocklist.
    pub async fn require_in_use(&self) -> Result<(), Failure> {
        if self.store.in_use().await? {
            return Ok(());
        }
        Err(Failure::new(
            Exit::EmptyPrefix,
            format!(
                "nothing was ever recorded under prefix `{}` on this Redis: is --prefix right? \
                 (revoke --new-prefix starts a blocklist there)",
                self.store.prefix()
            ),
        ))
    }
}

/// Runs one command; the exit code says how it went.
pub async fn run(global: &Global, command: Command) -> Result<Exit, Failure> {
    let mut context = Context::new(global)?;
    let exit = match command {
        Command::Revoke(revoke) => revoke::run(&mut context, revoke).await?,
        Command::Check(check) => check::run(&mut context, check).await?,
        Command::Stats => inspect::stats(&mut context).await?,
        Command::List(list) => inspect::list(&mut context, list).await?,
        Command::Unrevoke(unrevoke) => unrevoke::run(&mut context, unrevoke).await?,
        Command::Export(export) => backup::export(&mut context, export).await?,
        Command::Import(import) => backup::import(&mut context, import).await?,
    };
    context.out.flush()?;
    Ok(exit)
}

/// The scope a revocation refusing a token has, by name.
pub fn scope(by: RevokedBy) -> &'static str {
    match by {
        RevokedBy::Token => "token",
        RevokedBy::Session => "session",
        RevokedBy::Subject => "subject",
        RevokedBy::All => "all",
        _ => "other",
    }
}
