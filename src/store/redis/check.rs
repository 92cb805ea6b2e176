//! Reading a check's answer: which keys one `MGET` asks for, in which order, and what
//! their values say.

use crate::key::RevocationKey;
use crate::store::{Lookup, RevocationQuery, StoreError};

fn watermark(value: Option<String>) -> Result<Option<u64>, StoreError> {
    value
        .map(|text| text.parse::<u64>())
        .transpose()
        .map_err(|error| StoreError::new("a watermark in Redis is not a number of seconds", error))
}

/// The keys one check reads in one schema: token, global, then session and subject
/// when the query has them.
pub(super) fn check_keys(
    query: &RevocationQuery,
    token: String,
    global: String,
    session: impl FnOnce(&RevocationKey) -> String,
    subject: impl FnOnce(&RevocationKey) -> String,
) -> impl Iterator<Item = String> {
    [
        Some(token),
        Some(global),
        query.session.as_ref().map(session),
        query.subject.as_ref().map(subject),
    ]
    .into_iter()
    .flatten()
}

/// Reads one schema's answer from the `MGET` reply, in [`check_keys`] order.
pub(super) fn read_answer(
    query: &RevocationQuery,
    values: &mut impl Iterator<Item = Option<String>>,
) -> Result<Lookup, StoreError> {
    let token = values.next().flatten();
    let global = values.next().flatten();
    let session = query.session.and_then(|_| values.next().flatten());
    let subject = query.subject.and_then(|_| values.next().flatten());
    Ok(Lookup {
        token_revoked: token.is_some(),
        session_revoked: session.is_some(),
        subject_watermark: watermark(subject)?,
        global_watermark: watermark(global)?,
    })
}
