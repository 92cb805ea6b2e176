//! The command line: every command, option and help text (clap derive).

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgGroup, Args, Parser, Subcommand};
use tower_jwt_revoke::store::{DEFAULT_BUCKETS, DEFAULT_PREFIX};

const EXAMPLES: &str = "\
Examples:
  # A laptop was stolen: log user 42 out everywhere, now
  export REDIS_URL=redis://:password@redis.internal:6379
  tower-jwt-revoke revoke subject 42 --issuer https://auth.example.com

  # Would this token be refused, and why? (exit code 1: revoked, 0: not)
  tower-jwt-revoke check eyJhbGciOi...

  # Revoke one leaked token, verified with the service's key
  JWT_HS256_SECRET=... tower-jwt-revoke revoke token eyJhbGciOi...

  # Back up the blocklist, and restore it into another Redis
  tower-jwt-revoke export --output revoked.jsonl
  tower-jwt-revoke --redis-url redis://new:6379 import revoked.jsonl

Exit codes:
  0  done (check: not revoked)      3  bad input (token, key, file, hash)
  1  check: the token is revoked    4  Redis unreachable or failing
  2  usage error                    5  nothing ever recorded under --prefix
                                       (revoke --new-prefix starts a blocklist)";

/// Operate a tower-jwt-revoke blocklist in Redis: revoke tokens, users and sessions,
/// check tokens, list, count, back up and restore revocations.
///
/// Talks to the same Redis as the services, through the library's own store, so its
/// writes reach every replica (mirrors included, through the change feed). Nothing
/// secret is stored or printed: records are named by hashes.
#[derive(Debug, Parser)]
#[command(name = "tower-jwt-revoke", version, after_help = EXAMPLES, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Where the blocklist is, and how to answer.
#[derive(Debug, Args)]
pub struct Global {
    /// Redis URL: redis://[:password@]host:port[/db], rediss://, redis+unix:///path
    #[arg(
        long,
        env = "REDIS_URL",
        hide_env_values = true,
        global = true,
        value_name = "URL"
    )]
    pub redis_url: Option<String>,
    /// A Redis Cluster's seed nodes instead of --redis-url, comma-separated
    #[arg(
        long,
        env = "REDIS_CLUSTER_NODES",
        hide_env_values = true,
        global = true,
        value_name = "URLS",
        conflicts_with = "redis_url"
    )]
    pub cluster_nodes: Option<String>,
    /// How many buckets the services spread revocations over (the key schema's N)
    #[arg(long, env = "TOWER_JWT_REVOKE_BUCKETS", default_value_t = DEFAULT_BUCKETS, global = true, value_name = "N")]
    pub buckets: u32,
    /// Read and write the v1 key schema too, while a deployment upgrades from it (as
    /// the services' RedisStoreBuilder::v1_transition)
    #[arg(long, env = "TOWER_JWT_REVOKE_V1_TRANSITION", global = true)]
    pub v1_transition: bool,
    /// Key prefix the services use
    #[arg(long, env = "TOWER_JWT_REVOKE_PREFIX", hide_env_values = true, default_value = DEFAULT_PREFIX, global = true)]
    pub prefix: String,
    /// Print JSON for scripts instead of text
    #[arg(long, global = true)]
    pub json: bool,
    /// How long to wait for a connection to Redis
    #[arg(long, default_value = "2s", value_parser = parse_duration, global = true, value_name = "DURATION")]
    pub connect_timeout: Duration,
    /// How long Redis may stay silent before a command fails
    #[arg(long, default_value = "5s", value_parser = parse_duration, global = true, value_name = "DURATION")]
    pub timeout: Duration,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Revoke a token, every token of a user or of a session, or every token
    #[command(subcommand)]
    Revoke(Revoke),
    /// Would this token be refused, and why (exit code 1: revoked, 0: not revoked)
    Check(Check),
    /// Count revocations by scope; feed position, expiries, memory
    Stats,
    /// List revocations (hashed keys, kind, remaining TTL), paged with SCAN
    List(List),
    /// Lift a token or session revocation made by mistake (mirrors forget it too)
    #[command(subcommand)]
    Unrevoke(Unrevoke),
    /// Write every live revocation as JSON lines (a backup, a migration)
    Export(Export),
    /// Restore revocations from JSON lines written by `export`
    Import(Import),
}

#[derive(Debug, Subcommand)]
pub enum Revoke {
    /// Revoke one token until it would expire (verified with a key, or --no-verify)
    Token(RevokeToken),
    /// Log a user out everywhere: refuse every token of SUB issued until now
    Subject(RevokeSubject),
    /// Refuse every token of a session (its `sid`)
    Session(RevokeSession),
    /// Refuse every token issued until now, of every user (a key compromise)
    All(RevokeAll),
}

#[derive(Debug, Args)]
pub struct RevokeToken {
    /// The token (`-`: read it from standard input)
    #[arg(value_name = "JWT")]
    pub token: String,
    /// Record it by its claims without checking the signature (keys are then ignored)
    #[arg(long)]
    pub no_verify: bool,
    #[command(flatten)]
    pub keys: KeyArgs,
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub lifetime: Lifetime,
}

#[derive(Debug, Args)]
pub struct RevokeSubject {
    /// The user's `sub` claim
    #[arg(value_name = "SUB")]
    pub subject: String,
    #[command(flatten)]
    pub issuer: IssuerChoice,
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub lifetime: Lifetime,
}

#[derive(Debug, Args)]
pub struct RevokeSession {
    /// The session's `sid` claim
    #[arg(value_name = "SID")]
    pub session: String,
    #[command(flatten)]
    pub issuer: IssuerChoice,
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub lifetime: Lifetime,
}

#[derive(Debug, Args)]
pub struct RevokeAll {
    /// Confirm: every user of every issuer sharing this blocklist is logged out
    #[arg(long, required = true)]
    pub yes: bool,
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub lifetime: Lifetime,
}

/// Whether the prefix may be a new one.
#[derive(Debug, Args)]
pub struct Target {
    /// Write even though nothing was ever recorded under --prefix (a new blocklist)
    #[arg(long)]
    pub new_prefix: bool,
}

/// Whose subject or session: an issuer, or explicitly none.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct IssuerChoice {
    /// The issuer (`iss`) of the user's tokens; subjects and sessions are per issuer
    #[arg(long, env = "JWT_ISSUER", hide_env_values = true, value_name = "ISS")]
    pub issuer: Option<String>,
    /// The tokens carry no `iss` claim
    #[arg(long)]
    pub no_issuer: bool,
}

impl IssuerChoice {
    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }
}

/// How long records must last: the services' own verifier settings.
#[derive(Debug, Args)]
pub struct Lifetime {
    /// Clock-skew leeway on `exp`/`nbf` in seconds, as the services verify
    #[arg(long, env = "JWT_LEEWAY", hide_env_values = true, default_value_t = tower_jwt_revoke::DEFAULT_LEEWAY_SECS, value_name = "SECS")]
    pub leeway: u64,
    /// Longest token lifetime the services accept (user, session and `all` records
    /// last this long, plus leeway)
    #[arg(long, env = "JWT_MAX_LIFETIME", hide_env_values = true, default_value = "24h", value_parser = parse_duration, value_name = "DURATION")]
    pub max_lifetime: Duration,
}

/// The keys a token is verified with.
#[derive(Debug, Args)]
pub struct KeyArgs {
    /// HS256 secret (prefer the environment variable: arguments show in `ps`)
    #[arg(long, env = "JWT_HS256_SECRET", hide_env_values = true, value_name = "SECRET")]
    pub hs256_secret: Option<String>,
    /// Public key in PEM form (RSA, EC or Ed25519); needs --alg
    #[arg(
        long,
        value_name = "PEM_FILE",
        requires = "alg",
        conflicts_with = "hs256_secret"
    )]
    pub public_key: Option<PathBuf>,
    /// The public key's algorithm
    #[arg(long, value_parser = PUBLIC_KEY_ALGORITHMS, requires = "public_key")]
    pub alg: Option<String>,
    /// Accepted issuer (`iss`), checked when verifying
    #[arg(long, env = "JWT_ISSUER", hide_env_values = true, value_name = "ISS")]
    pub issuer: Option<String>,
    /// Accepted audience (`aud`); repeat for several
    #[arg(long, value_name = "AUD")]
    pub audience: Vec<String>,
}

/// The algorithms `--alg` takes.
pub const PUBLIC_KEY_ALGORITHMS: [&str; 9] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

#[derive(Debug, Args)]
pub struct Check {
    /// The token (`-`: read it from standard input)
    #[arg(value_name = "JWT")]
    pub token: String,
    /// Without keys the claims are read unverified, and the answer says so
    #[command(flatten)]
    pub keys: KeyArgs,
    #[command(flatten)]
    pub lifetime: Lifetime,
}

#[derive(Debug, Args)]
pub struct List {
    /// Stop after about this many records (one page)
    #[arg(long, default_value_t = 100)]
    pub count: usize,
    /// Resume where a previous page stopped
    #[arg(long, default_value_t = 0)]
    pub cursor: u64,
    /// Every record, page after page
    #[arg(long, conflicts_with = "cursor")]
    pub all: bool,
}

#[derive(Debug, Subcommand)]
pub enum Unrevoke {
    /// Lift the revocation of one token
    Token(UnrevokeToken),
    /// Lift the revocation of a session
    Session(UnrevokeSession),
}

#[derive(Debug, Args)]
#[command(group = ArgGroup::new("which").required(true).args(["token", "hash"]))]
pub struct UnrevokeToken {
    /// The token (`-`: read it from standard input)
    #[arg(value_name = "JWT")]
    pub token: Option<String>,
    /// The token's hashed key, as `list` shows it
    #[arg(long, value_name = "HEX")]
    pub hash: Option<String>,
}

#[derive(Debug, Args)]
#[command(group = ArgGroup::new("which").required(true).args(["session", "hash"]))]
pub struct UnrevokeSession {
    /// The session's `sid` claim (with --issuer or --no-issuer)
    #[arg(value_name = "SID")]
    pub session: Option<String>,
    /// The issuer (`iss`) of the session's tokens
    #[arg(long, env = "JWT_ISSUER", hide_env_values = true, value_name = "ISS")]
    pub issuer: Option<String>,
    /// The session's tokens carry no `iss` claim
    #[arg(long, conflicts_with = "issuer")]
    pub no_issuer: bool,
    /// The session's hashed key, as `list` shows it
    #[arg(long, value_name = "HEX", conflicts_with_all = ["issuer", "no_issuer"])]
    pub hash: Option<String>,
}

#[derive(Debug, Args)]
pub struct Export {
    /// Write to this file instead of standard output
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct Import {
    /// JSON lines written by `export` (default, or `-`: standard input)
    #[arg(value_name = "FILE")]
    pub input: Option<PathBuf>,
}

/// `90`, `90s`, `15m`, `24h`, `7d`, `1h30m`, `250ms`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("`{text}` is not a duration (like 90s, 15m, 24h, 7d)");
    let text = text.trim();
    if text.is_empty() {
        return Err(invalid());
    }
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(invalid)?;
        let number: u64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        let unit = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let one = match &rest[..unit] {
            "ms" => Duration::from_millis(1),
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            "d" => Duration::from_secs(86_400),
            _ => return Err(invalid()),
        };
        total = one
            .checked_mul(u32::try_from(number).map_err(|_| invalid())?)
            .and_then(|part| total.checked_add(part))
            .ok_or_else(invalid)?;
        rest = &rest[unit..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        for bad in ["", "h", "5x", "-1s", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
