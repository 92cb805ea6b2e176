//! A check's one `MGET`: which keys it asks for, in which order, written into a reused
//! command; and what the reply's values say, read where they lie in the reply.
//!
//! A check runs on every request, so it allocates as little as redis-rs lets it: the
//! command and its key buffer are taken from a per-thread pool and given back (their
//! capacity is kept), and the reply is read as the `Value` redis-rs parsed, without converting it
//! to strings first.

use std::cell::RefCell;

use ::redis::{Cmd, Value};

use crate::store::key::RevocationKey;
use crate::store::redis::Kind;
use crate::store::{Lookup, RevocationQuery, StoreError};

/// How many spare commands a thread keeps: about as many as checks in flight on it.
const SPARE: usize = 64;

/// The keys one check reads in one schema, as a kind and its hash (the token's, for the
/// global watermark, which has none): token, the token bound to its subject (`bound`,
/// [`RevocationQuery::token_for_subject`]; the v1 schema never had it), global, then
/// session and subject when the query has them.
pub(crate) fn check_keys<'a>(
    query: &'a RevocationQuery,
    bound: Option<&'a RevocationKey>,
) -> impl Iterator<Item = (Kind, &'a RevocationKey)> {
    [
        Some((Kind::Token, &query.token)),
        bound.map(|bound| (Kind::Token, bound)),
        Some((Kind::Global, &query.token)),
        query.session.as_ref().map(|session| (Kind::Session, session)),
        query.subject.as_ref().map(|subject| (Kind::Subject, subject)),
    ]
    .into_iter()
    .flatten()
}

/// An `MGET` being built (for redis-rs, and packed for the check connection), and the
/// buffer its keys are written in.
pub(crate) struct Scratch {
    pub(crate) mget: Cmd,
    pub(crate) packed: Vec<u8>,
    pub(crate) key: String,
}

/// A check's reply: read by the check connection, or parsed by redis-rs.
pub(crate) enum CheckReply {
    Values(crate::store::redis::connect::check::Values),
    Value(Value),
}

thread_local! {
    /// Spare [`Scratch`]es for the checks this thread runs. Per thread rather than per
    /// store behind a lock: a check never waits for another to take or give one back
    /// (with runtime workers sharing a core, a lock's holder may be preempted).
    static SPARE_COMMANDS: RefCell<Vec<Scratch>> = RefCell::new(Vec::with_capacity(SPARE));
}

/// An empty `MGET`: a spare one, or a new one sized for a check during a v1 transition
/// (eight keys of up to 200 bytes).
pub(crate) fn take_command() -> Scratch {
    let spare = SPARE_COMMANDS.try_with(|spare| spare.try_borrow_mut().ok()?.pop());
    let mut scratch = spare.ok().flatten().unwrap_or_else(|| Scratch {
        mget: Cmd::with_capacity(9, 2048),
        packed: Vec::with_capacity(2048),
        key: String::with_capacity(256),
    });
    scratch.mget.arg("MGET");
    scratch
}

/// Keeps `scratch` for a later check on this thread (unless enough are spare already).
/// One lost with a check that was given up costs only its allocation, the next time.
pub(crate) fn give_command(mut scratch: Scratch) {
    scratch.mget.clear();
    scratch.packed.clear();
    scratch.key.clear();
    let _ = SPARE_COMMANDS.try_with(|spare| {
        if let Ok(mut spare) = spare.try_borrow_mut()
            && spare.len() < SPARE
        {
            spare.push(scratch);
        }
    });
}

/// One value of an `MGET` reply: a string, nothing (a key that is not there), or an
/// error (a value of another type: never read as "not revoked").
pub(crate) type Field<'a> = Result<Option<&'a [u8]>, StoreError>;

/// The values of an `MGET` reply redis-rs parsed, in key order.
pub(crate) fn reply_values(reply: &Value) -> Result<impl Iterator<Item = Field<'_>>, StoreError> {
    match reply {
        Value::Array(values) => Ok(values.iter().map(|value| match value {
            Value::Nil => Ok(None),
            Value::BulkString(bytes) => Ok(Some(bytes.as_slice())),
            Value::SimpleString(text) => Ok(Some(text.as_bytes())),
            _ => Err(StoreError::msg("a revocation in Redis is not a string")),
        })),
        _ => Err(StoreError::msg(
            "Redis answered an MGET with something other than a list",
        )),
    }
}

/// A value of the reply; fewer values than keys is an error.
fn text<'a>(value: Option<Field<'a>>) -> Field<'a> {
    value.unwrap_or_else(|| {
        Err(StoreError::msg(
            "Redis answered an MGET with fewer values than keys",
        ))
    })
}

/// The answer of a check's reply: one schema's, or (during a v1 transition) the union of
/// both schemas', in [`check_keys`] order (`bound`: whether the v2 keys included the
/// token bound to its subject).
pub(crate) fn answer_of<'a>(
    query: &RevocationQuery,
    bound: bool,
    with_v1: bool,
    values: &mut impl Iterator<Item = Field<'a>>,
) -> Result<Lookup, StoreError> {
    let mut answer = read_answer(query, bound, values)?;
    if with_v1 {
        answer = answer.union(read_answer(query, false, values)?);
    }
    // Values beyond the keys asked for answer a question nobody asked: the reply is
    // not the one this check's `MGET` gets.
    if values.next().is_some() {
        return Err(StoreError::msg(
            "Redis answered an MGET with more values than keys",
        ));
    }
    Ok(answer)
}

fn watermark(value: Option<&[u8]>) -> Result<Option<u64>, StoreError> {
    value
        .map(|bytes| {
            std::str::from_utf8(bytes)
                .ok()
                .and_then(|text| text.parse::<u64>().ok())
        })
        .map(|seconds| seconds.ok_or(StoreError::msg("a watermark in Redis is not a number of seconds")))
        .transpose()
}

/// Reads one schema's answer from the `MGET` reply, in [`check_keys`] order.
fn read_answer<'a>(
    query: &RevocationQuery,
    bound: bool,
    values: &mut impl Iterator<Item = Field<'a>>,
) -> Result<Lookup, StoreError> {
    let token = text(values.next())?;
    let token_for_subject = match bound {
        true => text(values.next())?,
        false => None,
    };
    let global = text(values.next())?;
    let session = match query.session {
        Some(_) => text(values.next())?,
        None => None,
    };
    let subject = match query.subject {
        Some(_) => text(values.next())?,
        None => None,
    };
    Ok(Lookup {
        token_revoked: token.is_some() || token_for_subject.is_some(),
        session_revoked: session.is_some(),
        subject_watermark: watermark(subject)?,
        global_watermark: watermark(global)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query() -> RevocationQuery {
        RevocationQuery {
            token: RevocationKey::token(None, "t"),
            subject: Some(RevocationKey::subject(None, "alice")),
            session: None,
            issued_at: Some(1),
        }
    }

    fn answer(values: Vec<Value>) -> Result<Lookup, StoreError> {
        let reply = Value::Array(values);
        read_answer(&query(), false, &mut reply_values(&reply)?)
    }

    #[test]
    fn a_reply_is_read_in_key_order() {
        let lookup = answer(vec![
            Value::BulkString(b"1".to_vec()),
            Value::Nil,
            Value::BulkString(b"1700000000".to_vec()),
        ])
        .expect("a well-formed reply");
        assert!(lookup.token_revoked);
        assert_eq!(lookup.global_watermark, None);
        assert_eq!(lookup.subject_watermark, Some(1_700_000_000));
        assert_eq!(check_keys(&query(), None).count(), 3);
    }

    #[test]
    fn a_short_or_mistyped_reply_is_an_error_never_not_revoked() {
        assert!(answer(vec![Value::Nil, Value::Nil]).is_err(), "one value short");
        assert!(answer(vec![Value::Nil, Value::Int(1), Value::Nil]).is_err());
        assert!(answer(vec![Value::Nil, Value::Nil, Value::BulkString(b"soon".to_vec())]).is_err());
        let reply = Value::Int(3);
        assert!(reply_values(&reply).is_err());
    }

    #[test]
    fn a_token_bound_to_its_subject_is_read_second() {
        let query = query();
        let bound = query.token_for_subject().expect("the query has a subject");
        let keys: Vec<_> = check_keys(&query, Some(&bound)).collect();
        assert_eq!(keys.len(), 4);
        assert_eq!(keys[1], (Kind::Token, &bound));
        let reply = Value::Array(vec![
            Value::Nil,
            Value::BulkString(b"1".to_vec()),
            Value::Nil,
            Value::Nil,
        ]);
        let lookup = answer_of(&query, true, false, &mut reply_values(&reply).unwrap()).unwrap();
        assert!(lookup.token_revoked, "revoked for its subject");
    }

    #[test]
    fn a_reply_with_more_values_than_keys_is_an_error() {
        let reply = Value::Array(vec![Value::Nil; 4]);
        let read = answer_of(&query(), false, false, &mut reply_values(&reply).unwrap());
        assert!(read.is_err(), "four values for three keys: {read:?}");
        let reply = Value::Array(vec![Value::Nil; 3]);
        assert!(answer_of(&query(), false, false, &mut reply_values(&reply).unwrap()).is_ok());
    }
}
