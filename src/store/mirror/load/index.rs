//! Loading a bucket from its index (`{prefix:bB}:index`, a sorted set of the bucket's
//! live records by expiry, kept by every write script beside the records), page by
//! page in expiry order, instead of scanning every key and asking each one's TTL.
//!
//! A page is read without its scores: Redis formats a score as a double for every
//! member, which more than doubled the load's cost on the server. Each page asks
//! instead, in the same transaction, for the score of its last member, and every record
//! of the page is kept until then: at most the page's spread in expiry longer than
//! Redis keeps it, which only ever refuses tokens that are expired by then anyway (a
//! record lives until no verifier accepts what it covers).
//!
//! Pages follow one another by score: the next starts after the last one's score, and
//! the members that share that score are read whole in the next transaction, so no
//! member is skipped however many share a score. A member changed between two pages was
//! changed by a write, which the feed replays after the load.

use std::time::Duration;

use ::redis::Value;

use crate::store::StoreError;
use crate::store::key::RevocationKey;
use crate::store::redis::scan::bounded;
use crate::store::redis::{Conn, Kind};

/// How many members one page brings at most: a few milliseconds of the server's time.
const PAGE: usize = 4000;

/// A record an index names.
pub(crate) struct Indexed {
    pub(crate) kind: Kind,
    pub(crate) hash: RevocationKey,
    /// The watermark; `1` for a marker (its value in Redis).
    pub(crate) value: u64,
    pub(crate) expires_ms: u64,
}

/// One member, `kind:hash` or `kind:hash:value` (a watermark); `None` when malformed
/// (a watermark that is not a number included).
fn parse(member: &[u8], expires_ms: u64) -> Option<Indexed> {
    let member = std::str::from_utf8(member).ok()?;
    let mut parts = member.splitn(3, ':');
    let kind = Kind::from_code(parts.next()?)?;
    let hash = RevocationKey::from_hex(parts.next()?)?;
    let value = match (kind, parts.next()) {
        (Kind::Token | Kind::Session, None) => 1,
        (Kind::Subject | Kind::Global, Some(value)) => value.parse().ok()?,
        _ => return None,
    };
    let hash = if kind == Kind::Global {
        RevocationKey::ZERO
    } else {
        hash
    };
    Some(Indexed {
        kind,
        hash,
        value,
        expires_ms,
    })
}

/// Where the next page starts.
enum From {
    /// The members that do not expire before this instant (the first page).
    Start(u64),
    /// After the last page, whose last member expires at this score: the members with
    /// that very score are read whole first.
    After(String),
}

/// Reads every live record of the index `key`, `apply`ing each page as it comes.
pub(crate) async fn read(
    connection: &Conn,
    key: &str,
    now_ms: u64,
    timeout: Duration,
    mut apply: impl FnMut(Vec<Indexed>),
) -> Result<(), StoreError> {
    let mut connection = connection.clone();
    let mut from = From::Start(now_ms);
    loop {
        let mut page = ::redis::pipe();
        page.atomic();
        let min = match &from {
            From::Start(now) => now.to_string(),
            From::After(score) => {
                page.cmd("ZRANGEBYSCORE").arg(key).arg(score).arg(score);
                format!("({score}")
            }
        };
        page.cmd("ZRANGEBYSCORE")
            .arg(key)
            .arg(&min)
            .arg("+inf")
            .arg("LIMIT")
            .arg(0)
            .arg(PAGE)
            // The last member of a full page, with its score.
            .cmd("ZRANGEBYSCORE")
            .arg(key)
            .arg(&min)
            .arg("+inf")
            .arg("WITHSCORES")
            .arg("LIMIT")
            .arg(PAGE - 1)
            .arg(1)
            // The last member of all: the end of a page that is not full.
            .cmd("ZRANGE")
            .arg(key)
            .arg(-1)
            .arg(-1)
            .arg("WITHSCORES");
        let mut replies: Vec<Vec<Value>> = bounded(timeout, page.query_async(&mut connection)).await?;
        let ties = match from {
            From::After(ref score) if !replies.is_empty() => Some((replies.remove(0), score.clone())),
            _ => None,
        };
        let [members, last_of_page, last_of_all] =
            <[Vec<Value>; 3]>::try_from(replies).map_err(|_| malformed())?;
        let mut read = Vec::with_capacity(members.len() + ties.as_ref().map_or(0, |(ties, _)| ties.len()));
        if let Some((ties, score)) = ties {
            let expires_ms = score_ms(score.as_bytes())?;
            read.extend(ties.iter().filter_map(|member| parse(bytes(member)?, expires_ms)));
        }
        let full = members.len() >= PAGE;
        let end = if full { &last_of_page } else { &last_of_all };
        let score = match end.get(1) {
            Some(score) => Some(bytes(score).ok_or_else(malformed)?.to_vec()),
            None if members.is_empty() => None,
            None => return Err(malformed()),
        };
        if let Some(score) = &score {
            let expires_ms = score_ms(score)?;
            read.extend(
                members
                    .iter()
                    .filter_map(|member| parse(bytes(member)?, expires_ms)),
            );
        }
        apply(read);
        match score {
            Some(score) if full => {
                from = From::After(String::from_utf8(score).map_err(|_| malformed())?);
            }
            _ => return Ok(()),
        }
    }
}

fn bytes(value: &Value) -> Option<&[u8]> {
    match value {
        Value::BulkString(bytes) => Some(bytes),
        _ => None,
    }
}

fn malformed() -> StoreError {
    StoreError::msg("Redis answered an index page with another shape")
}

/// A score as Redis writes it (a double: `1767225600000`, or `1.7672256e+12` for the
/// largest), in whole milliseconds, rounded up.
fn score_ms(score: &[u8]) -> Result<u64, StoreError> {
    let text = std::str::from_utf8(score).map_err(|_| malformed())?;
    if let Ok(ms) = text.parse::<u64>() {
        return Ok(ms);
    }
    let ms: f64 = text.parse().map_err(|_| malformed())?;
    if ms.is_finite() && ms >= 0.0 {
        // Saturates at u64::MAX for the far future: kept for as long as the mirror runs.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Ok(ms.ceil() as u64)
    } else {
        Err(malformed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_parse_by_kind() {
        let hash = RevocationKey::token(None, "a");
        let marker = parse(format!("t:{hash}").as_bytes(), 7).unwrap();
        assert_eq!((marker.kind, marker.hash, marker.value), (Kind::Token, hash, 1));
        let mark = parse(format!("s:{hash}:1700000000").as_bytes(), 7).unwrap();
        assert_eq!((mark.kind, mark.value), (Kind::Subject, 1_700_000_000));
        let global = parse(format!("all:{}:5", RevocationKey::ZERO).as_bytes(), 7).unwrap();
        assert_eq!((global.kind, global.hash), (Kind::Global, RevocationKey::ZERO));
        assert!(
            parse(format!("t:{hash}:1").as_bytes(), 7).is_none(),
            "a marker has no value"
        );
        assert!(
            parse(format!("s:{hash}").as_bytes(), 7).is_none(),
            "a watermark has one"
        );
        assert!(
            parse(format!("s:{hash}:soon").as_bytes(), 7).is_none(),
            "a watermark is a number"
        );
        assert!(parse(b"q:00", 7).is_none());
    }

    #[test]
    fn scores_read_as_whole_milliseconds() {
        assert_eq!(score_ms(b"1767225600000").unwrap(), 1_767_225_600_000);
        assert_eq!(score_ms(b"1.5e3").unwrap(), 1500);
        assert_eq!(score_ms(b"1500.2").unwrap(), 1501, "rounded up");
        assert!(score_ms(b"-1").is_err());
        assert!(score_ms(b"inf").is_err());
    }
}
