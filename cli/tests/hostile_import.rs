//! `import` of a damaged or hostile file: one clear error naming the line, and nothing
//! written, whatever is wrong and wherever it is (huge lines, bad JSON, enormous
//! numbers, a TTL or watermark no store could keep).

#[path = "../../tests/support/mod.rs"]
mod support;

mod common;

use self::common::{Cli, Ran};
use self::support::unique_prefix;

/// A valid token record, to put before the damage: it must not be written either.
fn good_line(digit: char) -> String {
    format!(
        "{{\"kind\":\"token\",\"hash\":\"{}\",\"value\":\"1\",\"ttl_ms\":600000}}\n",
        digit.to_string().repeat(64)
    )
}

/// `import FILE` of `bytes` (a file, not stdin: the tool stops reading at the first bad
/// line, and a pipe would break under the writer).
fn import_file(cli: &Cli, bytes: &[u8]) -> Ran {
    let path = std::env::temp_dir().join(format!("{}.jsonl", unique_prefix()));
    std::fs::write(&path, bytes).unwrap();
    let ran = cli.run(&["import", path.to_str().unwrap()]);
    std::fs::remove_file(&path).unwrap();
    ran
}

#[test]
fn a_hostile_backup_is_refused_whole_with_the_line_that_is_wrong() {
    let server = redis_or_skip!();
    let hash = "b".repeat(64);
    let cases: Vec<(&str, String)> = vec![
        (
            "longer than 65536 bytes",
            format!("{{\"kind\":\"token\",\"value\":\"{}\"}}\n", "x".repeat(1 << 20)),
        ),
        ("longer than 65536 bytes", "y".repeat(200_000)), // no line break at all
        ("not a revocation record", "{\"kind\":\"token\",\n".into()),
        (
            "not a revocation record",
            format!("{{\"kind\":\"token\",\"hash\":\"{hash}\",\"value\":\"1\",\"ttl_ms\":1e400}}\n"),
        ),
        (
            "not a revocation record",
            format!("{{\"kind\":\"token\",\"hash\":\"{hash}\",\"value\":\"1\",\"ttl_ms\":-5}}\n"),
        ),
        (
            "longer than any revocation lasts",
            format!(
                "{{\"kind\":\"token\",\"hash\":\"{hash}\",\"value\":\"1\",\"ttl_ms\":18446744073709551615}}\n"
            ),
        ),
        (
            "longer than any revocation lasts",
            format!(
                "{{\"kind\":\"session\",\"hash\":\"{hash}\",\"value\":\"1\",\"ttl_ms\":null,\"expires_ms\":18446744073709551615}}\n"
            ),
        ),
        (
            "not a number of seconds",
            format!(
                "{{\"kind\":\"subject\",\"hash\":\"{hash}\",\"value\":\"18446744073709551615\",\"ttl_ms\":60000}}\n"
            ),
        ),
        (
            "not a number of seconds",
            "{\"kind\":\"all\",\"hash\":null,\"value\":\"soon\",\"ttl_ms\":60000}\n".into(),
        ),
    ];
    for (why, damage) in cases {
        // A fresh prefix each time: `list` answers 5 ("nothing ever recorded here")
        // unless the import wrote something.
        let cli = Cli::new(server.url(), &unique_prefix());
        let ran = import_file(&cli, (good_line('a') + &damage).as_bytes());
        ran.assert_one_line_error(3);
        assert!(ran.stderr.contains("line 2"), "{why}: {ran:?}");
        assert!(ran.stderr.contains(why), "{why}: {ran:?}");
        assert!(ran.stderr.len() < 1024, "{why}: the error repeats the input");
        cli.run(&["list", "--all"]).assert_one_line_error(5);
    }
}

#[test]
fn a_file_that_is_not_text_is_refused() {
    let server = redis_or_skip!();
    let cli = Cli::new(server.url(), &unique_prefix());
    let mut bytes = good_line('e').into_bytes();
    bytes.extend_from_slice(b"{\"kind\":\"token\xff\xfe\"}\n");
    let ran = import_file(&cli, &bytes);
    ran.assert_one_line_error(3);
    assert!(ran.stderr.contains("line 2: not UTF-8"), "{ran:?}");
    cli.run(&["list", "--all"]).assert_one_line_error(5);
}

#[test]
fn a_backup_at_the_limits_is_restored() {
    let server = redis_or_skip!();
    let cli = Cli::new(server.url(), &unique_prefix());
    let longest = u64::from(u32::MAX) * 1000;
    let file = format!(
        "{}\n\n{{\"kind\":\"subject\",\"hash\":\"{}\",\"value\":\"4294967295\",\"ttl_ms\":{longest}}}\n",
        good_line('c').trim_end(),
        "d".repeat(64),
    );
    let ran = cli.run_with(&["--json", "import"], &[], Some(&file));
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_eq!(ran.json()["restored"], 2, "{ran:?}");
}
