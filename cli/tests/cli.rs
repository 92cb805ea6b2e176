//! The `tower-jwt-revoke` binary against a private redis-server: every command, its
//! `--json` answer and exit code, and what bad input gets.

#[path = "../../tests/support/mod.rs"]
mod support;

mod common;

use std::time::{Duration, Instant};

use serde_json::json;

use self::common::{Cli, ISSUER, LEEWAY, MAX_LIFETIME, SECRET, mint, now, token};
use self::support::unique_prefix;

const WATERMARK_TTL: u64 = MAX_LIFETIME.as_secs() + LEEWAY + 1;

#[test]
fn help_reads_like_a_command_line_tool() {
    let cli = Cli::new("redis://127.0.0.1:1", "unused");
    let help = cli.run(&["--help"]);
    assert_eq!(help.code, 0, "{help:?}");
    for part in [
        "Usage: tower-jwt-revoke",
        "revoke",
        "check",
        "unrevoke",
        "Examples:",
        "Exit codes:",
    ] {
        assert!(help.stdout.contains(part), "{part}: {}", help.stdout);
    }
    let revoke = cli.run(&["revoke", "subject", "--help"]);
    assert_eq!(revoke.code, 0);
    assert!(revoke.stdout.contains("--issuer") && revoke.stdout.contains("--max-lifetime"));
    // With a secret in the environment, help says where it comes from, not what it is.
    let token_help = cli.run_with(
        &["revoke", "token", "--help"],
        &[("JWT_HS256_SECRET", SECRET)],
        None,
    );
    assert!(token_help.stdout.contains("JWT_HS256_SECRET") && !token_help.stdout.contains(SECRET));
    assert_eq!(cli.run(&["--version"]).code, 0);
    assert_eq!(cli.run(&[]).code, 2, "no command: usage");
}

#[test]
fn every_command_answers_in_json_with_exit_codes_that_mean_something() {
    let server = redis_or_skip!();
    let cli = Cli::new(server.url(), &unique_prefix());
    let key = [("JWT_HS256_SECRET", SECRET), ("JWT_ISSUER", ISSUER)];

    // A fresh prefix holds nothing yet: reading commands refuse to guess.
    let alice = token("alice", "s-alice", 0);
    cli.run(&["check", &alice]).assert_one_line_error(5);

    // revoke token, verified with the service's key (from the environment).
    // Writes too: a revocation under a mistyped prefix would reach no service.
    cli.run_with(&["revoke", "token", &alice], &key, None)
        .assert_one_line_error(5);
    let ran = cli.run_with(&["--json", "revoke", "token", &alice, "--new-prefix"], &key, None);
    assert_eq!(ran.code, 0, "{ran:?}");
    let revoked = ran.json();
    assert_eq!(revoked["scope"], "token");
    assert_eq!(revoked["recorded"], true);
    let ttl = revoked["ttl_secs"].as_u64().unwrap();
    assert!(
        (600 + LEEWAY..=600 + LEEWAY + 1).contains(&ttl),
        "exp + leeway + 1 - now: {ttl}"
    );
    let checked = cli.json(&["check", &alice], 1);
    assert_eq!(checked["revoked"], true);
    assert_eq!(checked["by"], "token");
    assert_eq!(checked["verified"], false);
    assert_eq!(checked["token"], revoked["hash"]);
    let ran = cli.run_with(&["--json", "check", &alice], &key, None);
    assert_eq!(
        (ran.code, ran.json()["verified"].clone()),
        (1, json!(true)),
        "{ran:?}"
    );

    // Another token of another user is not revoked: exit code 0.
    let bob = token("bob", "s-bob", 1);
    let checked = cli.json(&["check", &bob], 0);
    assert_eq!(
        (checked["revoked"].clone(), checked["by"].clone()),
        (json!(false), json!(null))
    );

    // revoke subject: every token of bob issued until now.
    let subject = cli.json(&["revoke", "subject", "bob", "--issuer", ISSUER], 0);
    assert_eq!(subject["ttl_secs"], WATERMARK_TTL, "max lifetime + leeway + 1");
    assert_eq!(cli.json(&["check", &bob], 1)["by"], "subject");

    // revoke session: every token of carol's session.
    let carol = token("carol", "s-carol", 0);
    let session = cli.json(&["revoke", "session", "s-carol", "--issuer", ISSUER], 0);
    // One more leeway: a token of the session may come from an issuer clock ahead.
    assert_eq!(session["ttl_secs"], WATERMARK_TTL + LEEWAY);
    let checked = cli.json(&["check", &carol], 1);
    assert_eq!(
        (checked["by"].clone(), checked["session"].clone()),
        (json!("session"), session["hash"].clone())
    );

    // stats: counts by scope, the feed, expiries, memory.
    let stats = cli.json(&["stats"], 0);
    assert_eq!(stats["prefix"], cli.prefix.as_str());
    assert_eq!(
        (
            stats["tokens"].clone(),
            stats["subjects"].clone(),
            stats["sessions"].clone()
        ),
        (json!(1), json!(1), json!(1))
    );
    assert_eq!(stats["all"], false);
    // The session is kept in every bucket (a check reads one bucket, and the sid does
    // not say whose): three revocations, 2 + 16 keys, each with its own feed event.
    assert_eq!(stats["buckets"], 16);
    assert_eq!(stats["keys"], 18);
    assert_eq!(
        (stats["feed_last_seq"].clone(), stats["feed_length"].clone()),
        (json!(18), json!(18))
    );
    assert_eq!(stats["expires_first"]["kind"], "token");
    assert_eq!(stats["expires_first"]["hash"], revoked["hash"]);
    assert!(
        stats["memory_bytes"].as_u64().unwrap() > 0 && stats["server_memory_bytes"].as_u64().unwrap() > 0
    );
    let text = cli.run(&["stats"]);
    assert!(
        text.code == 0 && text.stdout.contains("tokens") && text.stdout.contains("memory"),
        "{text:?}"
    );

    // list: hashed keys, kinds and TTLs; paged with SCAN until the cursor comes back to 0.
    // One line per key: the session's 16 copies each show up, with their bucket.
    let records = cli.records();
    assert_eq!(records.len(), 18);
    for record in &records {
        let key = record["key"].as_str().unwrap();
        let tag = format!("{{{}:b{}}}:", cli.prefix, record["bucket"]);
        assert!(
            key.starts_with(&tag) && key.ends_with(record["hash"].as_str().unwrap()),
            "{key} in {tag}"
        );
        assert!(record["ttl_ms"].as_u64().unwrap() > 0);
    }
    let (mut paged, mut cursor, mut pages) = (0, 0u64, 0);
    loop {
        let page = cli.json(&["list", "--count", "1", "--cursor", &cursor.to_string()], 0);
        paged += page["records"].as_array().unwrap().len();
        cursor = page["cursor"].as_u64().unwrap();
        pages += 1;
        if cursor == 0 {
            break;
        }
        assert!(pages < 500, "SCAN ends");
    }
    assert!(paged >= 18, "every record on some page (SCAN may repeat one)");
    let text = cli.run(&["list"]);
    assert_eq!(
        text.stdout.lines().count(),
        20,
        "header, 18 records, summary: {text:?}"
    );

    // revoke all: every token issued until now, of every user.
    let dave = token("dave", "s-dave", 1);
    assert_eq!(cli.run(&["revoke", "all"]).code, 2, "revoke all wants --yes");
    let all = cli.json(&["revoke", "all", "--yes"], 0);
    assert_eq!(
        (all["scope"].clone(), all["hash"].clone()),
        (json!("all"), json!(null))
    );
    assert_eq!(cli.json(&["check", &dave], 1)["by"], "all");
    assert_eq!(cli.json(&["stats"], 0)["all"], true);
}

#[test]
fn revoke_token_without_a_key_goes_by_its_claims_only_when_asked() {
    let server = redis_or_skip!();
    let cli = Cli::new(server.url(), &unique_prefix());
    let iat = now();
    let leaked = mint(json!({ "iss": ISSUER, "jti": "leaked", "iat": iat, "exp": iat + 100 }));

    let ran = cli.run(&["revoke", "token", &leaked]);
    ran.assert_one_line_error(2);
    assert!(ran.stderr.contains("--no-verify"), "{ran:?}");

    // Read from standard input, recorded by its claims, for exp + leeway + 1 - now.
    let ran = cli.run_with(
        &["--json", "revoke", "token", "--no-verify", "--new-prefix", "-"],
        &[],
        Some(&format!("{leaked}\n")),
    );
    assert_eq!(ran.code, 0, "{ran:?}");
    let ttl = ran.json()["ttl_secs"].as_u64().unwrap();
    assert!((100 + LEEWAY..=100 + LEEWAY + 1).contains(&ttl), "{ttl}");
    let record = &cli.records()[0];
    let pttl = record["ttl_ms"].as_u64().unwrap();
    assert!(
        pttl.abs_diff(ttl * 1000) <= 1000,
        "Redis keeps it for the TTL said: {pttl} ms"
    );

    // A forged token does not verify against the key: nothing is recorded.
    let forged = format!("{}.Zm9yZ2Vk", leaked.rsplit_once('.').unwrap().0);
    let ran = cli.run_with(
        &["revoke", "token", &forged],
        &[("JWT_HS256_SECRET", SECRET)],
        None,
    );
    ran.assert_one_line_error(3);
    assert!(
        ran.stderr.contains("invalid signature") && !ran.stderr.contains(SECRET),
        "{ran:?}"
    );

    // A genuine token that expired is a successful no-op.
    let old = mint(json!({ "iss": ISSUER, "jti": "old", "iat": iat - 900, "exp": iat - 600 }));
    let ran = cli.run_with(
        &["--json", "revoke", "token", &old],
        &[("JWT_HS256_SECRET", SECRET)],
        None,
    );
    assert_eq!(
        (ran.code, ran.json()["recorded"].clone()),
        (0, json!(false)),
        "{ran:?}"
    );
    assert_eq!(cli.records().len(), 1);
}

#[test]
fn during_an_upgrade_from_v1_it_reads_and_writes_both_schemas_when_asked() {
    let server = redis_or_skip!();
    let cli = Cli::new(server.url(), &unique_prefix());
    let mut redis = server.client().get_connection().unwrap();
    // A deployment still on v1: one feed, untagged keys.
    let () = redis::cmd("SET")
        .arg(format!("{}:feed:seq", cli.prefix))
        .arg(3)
        .query(&mut redis)
        .unwrap();

    // Without the flag, the tool sees nothing it knows under the prefix.
    cli.run(&["stats"]).assert_one_line_error(5);
    // With it, a revocation reaches the old replicas' keys as well as the new ones'.
    let revoked = cli.json(
        &["--v1-transition", "revoke", "subject", "bob", "--issuer", ISSUER],
        0,
    );
    let hash = revoked["hash"].as_str().unwrap();
    let v1: Option<String> = redis::cmd("GET")
        .arg(format!("{}:s:{hash}", cli.prefix))
        .query(&mut redis)
        .unwrap();
    assert!(v1.is_some(), "the v1 watermark is written");
    let bob = token("bob", "s-bob", 0);
    let checked = cli.json(&["--v1-transition", "check", &bob], 1);
    assert_eq!(checked["by"], "subject");
    let ran = cli.run_with(
        &["--json", "stats"],
        &[("TOWER_JWT_REVOKE_V1_TRANSITION", "true")],
        None,
    );
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_eq!(ran.json()["subjects"], 1, "one revocation, in both schemas");
}

#[test]
fn bad_input_gets_one_line_and_a_non_zero_exit_code() {
    let server = redis_or_skip!();
    let cli = Cli::new(server.url(), &unique_prefix());
    cli.json(
        &["revoke", "subject", "someone", "--no-issuer", "--new-prefix"],
        0,
    );

    for malformed in ["not-a-jwt", "a.b.c", "e30.e30.", &"x".repeat(10_000)] {
        cli.run(&["check", malformed]).assert_one_line_error(3);
        cli.run(&["revoke", "token", "--no-verify", malformed])
            .assert_one_line_error(3);
        cli.run(&["unrevoke", "token", malformed])
            .assert_one_line_error(3);
    }
    cli.run(&["unrevoke", "token", "--hash", "abc"])
        .assert_one_line_error(3);
    cli.run(&["--frobnicate", "stats"]).assert_one_line_error(2);
    cli.run(&["revoke", "subject", "alice"]).assert_one_line_error(2);
    cli.run(&["revoke", "all", "--yes", "--max-lifetime", "soon"])
        .assert_one_line_error(2);
    let ran = cli.run_with(
        &["revoke", "all", "--yes"],
        &[("JWT_MAX_LIFETIME", "a while")],
        None,
    );
    ran.assert_one_line_error(2);

    // A wrong prefix: nothing was ever recorded under it.
    let wrong = Cli::new(server.url(), "no-such-prefix");
    for command in [
        &["stats"][..],
        &["list"],
        &["export"],
        &["check", &token("a", "b", 0)],
    ] {
        let ran = wrong.run(command);
        ran.assert_one_line_error(5);
        assert!(ran.stderr.contains("--prefix"), "{ran:?}");
    }
    wrong
        .run(&["unrevoke", "token", "--hash", &"0".repeat(64)])
        .assert_one_line_error(5);

    // An import that is not what export writes restores nothing.
    let ran = cli.run_with(&["import"], &[], Some("{\"kind\":\"token\",\"hash\":null}\n"));
    ran.assert_one_line_error(3);
    assert!(ran.stderr.contains("line 1"), "{ran:?}");
    cli.run(&["import", "/no/such/file.jsonl"])
        .assert_one_line_error(3);

    // Redis unreachable: a one-line error within the connect timeout; the password in
    // the URL is never printed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = Cli::new(&format!("redis://:hunter2-secret@127.0.0.1:{port}"), "revoked");
    let started = Instant::now();
    for command in [&["stats"][..], &["revoke", "subject", "x", "--no-issuer"]] {
        let ran = down.run(&[&["--connect-timeout", "500ms"][..], command].concat());
        ran.assert_one_line_error(4);
        assert!(!ran.stderr.contains("hunter2"), "{ran:?}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let ran = Cli::new("", "revoked").run(&["stats"]);
    ran.assert_one_line_error(2);
    // A password the server does not expect: refused, and not printed.
    let ran = Cli::new(
        &server.url().replace("redis://", "redis://:hunter2-secret@"),
        &cli.prefix,
    )
    .run(&["stats"]);
    assert_ne!(ran.code, 0);
    assert!(
        !ran.stderr.contains("hunter2") && !ran.stdout.contains("hunter2"),
        "{ran:?}"
    );
}
