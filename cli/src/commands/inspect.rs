//! `stats` and `list`: what the blocklist holds.

use std::time::Duration;

use serde::Serialize;
use tower_jwt_revoke::store::{Record, Stats};

use super::Context;
use crate::args::List;
use crate::error::{Exit, Failure};
use crate::output::{bytes, human};

pub async fn stats(context: &mut Context) -> Result<Exit, Failure> {
    context.require_in_use().await?;
    let stats = context.store.stats().await?;
    if context.out.json() {
        #[derive(Serialize)]
        struct Answer<'a> {
            prefix: &'a str,
            #[serde(flatten)]
            stats: &'a Stats,
        }
        let prefix = context.store.prefix().to_owned();
        context.out.value(&Answer {
            prefix: &prefix,
            stats: &stats,
        })?;
        return Ok(Exit::Ok);
    }
    let expiring = |record: &Option<Record>| match record {
        Some(record) => format!("{} {} in {}", record.kind, short(record), left(record)),
        None => "-".to_owned(),
    };
    let memory = match (stats.memory_bytes, stats.server_memory_bytes) {
        (Some(ours), Some(server)) => format!(
            "{} under the prefix, {} for the server",
            bytes(ours),
            bytes(server)
        ),
        (Some(ours), None) => format!("{} under the prefix", bytes(ours)),
        (None, Some(server)) => format!("{} for the server (MEMORY USAGE refused)", bytes(server)),
        (None, None) => "unknown".to_owned(),
    };
    let rows = [
        ("prefix", context.store.prefix().to_owned()),
        ("tokens", stats.tokens.to_string()),
        ("sessions", stats.sessions.to_string()),
        ("subjects", stats.subjects.to_string()),
        (
            "all",
            if stats.all {
                "yes: a global watermark is live"
            } else {
                "no"
            }
            .to_owned(),
        ),
        (
            "keys",
            format!(
                "{} in {} buckets (sessions and `all` in every bucket)",
                stats.keys, stats.buckets
            ),
        ),
        (
            "feed",
            format!(
                "last seq {}, {} events kept (summed over the buckets' feeds)",
                stats.feed_last_seq, stats.feed_length
            ),
        ),
        ("expires first", expiring(&stats.expires_first)),
        ("expires last", expiring(&stats.expires_last)),
        ("memory", memory),
    ];
    for (name, value) in rows {
        context.out.line(format!("{name:<14} {value}"))?;
    }
    Ok(Exit::Ok)
}

pub async fn list(context: &mut Context, list: List) -> Result<Exit, Failure> {
    context.require_in_use().await?;
    let wanted = list.count.max(1);
    let mut records = Vec::new();
    let mut cursor = list.cursor;
    loop {
        let page = context.store.scan_page(cursor, wanted).await?;
        records.extend(page.records);
        cursor = page.cursor;
        if cursor == 0 || (!list.all && records.len() >= wanted) {
            break;
        }
    }
    if context.out.json() {
        #[derive(Serialize)]
        struct Listed {
            key: String,
            #[serde(flatten)]
            record: Record,
        }
        #[derive(Serialize)]
        struct Answer {
            records: Vec<Listed>,
            /// Where the next page starts; 0: none.
            cursor: u64,
        }
        let records = records
            .into_iter()
            .map(|record| Listed {
                key: context.store.record_key(&record),
                record,
            })
            .collect();
        context.out.value(&Answer { records, cursor })?;
        return Ok(Exit::Ok);
    }
    context.out.line(format!("{:<8} {:<10} KEY", "KIND", "TTL"))?;
    for record in &records {
        let key = context.store.record_key(record);
        context
            .out
            .line(format!("{:<8} {:<10} {key}", record.kind.name(), left(record)))?;
    }
    let summary = match cursor {
        0 => format!("{} records", records.len()),
        more => format!(
            "{} records; more: tower-jwt-revoke list --cursor {more}",
            records.len()
        ),
    };
    context.out.line(summary)?;
    Ok(Exit::Ok)
}

/// The remaining TTL, for people.
fn left(record: &Record) -> String {
    match record.ttl_ms {
        Some(ms) => human(Duration::from_millis(ms)),
        None => "no TTL!".to_owned(),
    }
}

/// The first hex digits of a record's hash, enough to find it in `list`.
fn short(record: &Record) -> String {
    match record.hash {
        Some(hash) => hash.to_string()[..16].to_owned(),
        None => "(global)".to_owned(),
    }
}
