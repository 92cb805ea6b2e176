//! The little of RESP2 a check connection speaks: commands written into a buffer as
//! arrays of bulk strings, and the replies of an `MGET` (an array of bulk strings and
//! nils, or an error) read in place into a fixed-size value, without allocating.

use std::fmt;

/// The most values one check reads: five keys (the token's, the token's for its
/// subject, the global watermark, the session's, the subject's), and four more during a
/// v1 transition (which has no token-for-subject key).
pub(crate) const MAX_VALUES: usize = 9;

/// The longest value kept as it is. A revocation's value is `1` or a watermark (a
/// number of seconds, at most 20 digits); a longer one is a foreign writer's, and is
/// read as present but not a number.
const MAX_VALUE: usize = 24;

/// The longest value a reply may carry at all. A check reads only revocations, whose
/// values are `1` or a watermark of at most 20 digits, so anything far longer is not
/// a blocklist's (and only its presence would be kept anyway): a server announcing
/// `$4000000000` is refused at once rather than buffered.
pub(crate) const MAX_BULK: usize = 512;

/// The longest line (`*8`, `$1234`, an error's text) a reply may have: a reply that
/// goes on longer is not Redis speaking RESP2.
const MAX_LINE: usize = 4096;

/// Appends `*len\r\n`.
pub(crate) fn push_array_len(out: &mut Vec<u8>, len: usize) {
    out.push(b'*');
    push_decimal(out, len);
    out.extend_from_slice(b"\r\n");
}

/// Appends `$len\r\nbytes\r\n`.
pub(crate) fn push_bulk(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'$');
    push_decimal(out, bytes.len());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

/// Appends a whole command.
pub(crate) fn push_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    push_array_len(out, args.len());
    for arg in args {
        push_bulk(out, arg);
    }
}

fn push_decimal(out: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        // `n % 10` is below 10: the cast cannot truncate.
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// One value of an `MGET` reply.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    Nil,
    Short {
        len: u8,
        bytes: [u8; MAX_VALUE],
    },
    /// Longer than [`MAX_VALUE`]: its presence is all that is kept.
    Long,
}

/// The values of an `MGET` reply, in key order.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Values {
    count: u8,
    fields: [Field; MAX_VALUES],
}

impl Values {
    /// How many values the reply held.
    pub(crate) fn len(&self) -> usize {
        usize::from(self.count)
    }

    /// Each value: `None` for a key that is not there, else its bytes (a value too long
    /// to keep reads as `-`, which is present and not a number).
    pub(crate) fn iter(&self) -> impl Iterator<Item = Option<&[u8]>> {
        self.fields[..usize::from(self.count)]
            .iter()
            .map(|field| match field {
                Field::Nil => None,
                Field::Short { len, bytes } => Some(&bytes[..usize::from(*len)]),
                Field::Long => Some(&b"-"[..]),
            })
    }
}

impl fmt::Debug for Values {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.iter().map(|value| value.map(String::from_utf8_lossy)))
            .finish()
    }
}

/// What Redis answered one command with.
#[allow(clippy::large_enum_variant)] // As `Parsed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    Values(Values),
    /// An error reply (`-LOADING …`): the command failed, the connection is fine.
    Error(String),
}

/// What [`parse`] found at the start of a buffer.
// A reply is a couple of hundred bytes, kept by value: boxing it is the allocation per
// check this module is for avoiding.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// Not all of a reply has arrived yet.
    Incomplete,
    /// A reply, and how many bytes it took.
    Reply(Reply, usize),
}

/// The connection does not carry `MGET` replies in RESP2: it cannot be read further.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProtocolError(pub(crate) &'static str);

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// Reads the reply at the start of `buffer`.
pub(crate) fn parse(buffer: &[u8]) -> Result<Parsed, ProtocolError> {
    let Some((head, mut at)) = line(buffer, 0)? else {
        return Ok(Parsed::Incomplete);
    };
    match head.split_first() {
        Some((b'-', text)) => {
            let text = String::from_utf8_lossy(text).into_owned();
            Ok(Parsed::Reply(Reply::Error(text), at))
        }
        Some((b'*', count)) => {
            let count = number(count).ok_or(ProtocolError("Redis sent an array of no known length"))?;
            if count > MAX_VALUES {
                return Err(ProtocolError("Redis sent more values than a check asked for"));
            }
            let mut values = Values {
                // At most MAX_VALUES (8): it fits.
                count: count as u8,
                fields: [Field::Nil; MAX_VALUES],
            };
            for field in &mut values.fields[..count] {
                let Some((head, next)) = line(buffer, at)? else {
                    return Ok(Parsed::Incomplete);
                };
                at = next;
                match head.split_first() {
                    Some((b'$', b"-1")) => *field = Field::Nil,
                    Some((b'$', len)) => {
                        let len =
                            number(len).ok_or(ProtocolError("Redis sent a string of no known length"))?;
                        if len > MAX_BULK {
                            return Err(ProtocolError(
                                "Redis announced a value longer than any revocation's",
                            ));
                        }
                        let end = at
                            .checked_add(len)
                            .ok_or(ProtocolError("Redis sent an endless string"))?;
                        let Some(with_crlf) = buffer.get(at..end.saturating_add(2)) else {
                            return Ok(Parsed::Incomplete);
                        };
                        if !with_crlf.ends_with(b"\r\n") {
                            return Err(ProtocolError("Redis sent a string longer than it said"));
                        }
                        *field = short(&with_crlf[..len]);
                        at = end + 2;
                    }
                    _ => {
                        return Err(ProtocolError(
                            "Redis answered a check with something other than strings",
                        ));
                    }
                }
            }
            Ok(Parsed::Reply(Reply::Values(values), at))
        }
        _ => Err(ProtocolError(
            "Redis answered a check with neither a list nor an error",
        )),
    }
}

fn short(value: &[u8]) -> Field {
    if value.len() > MAX_VALUE {
        return Field::Long;
    }
    let mut bytes = [0u8; MAX_VALUE];
    bytes[..value.len()].copy_from_slice(value);
    Field::Short {
        // At most MAX_VALUE (24): it fits.
        len: value.len() as u8,
        bytes,
    }
}

/// The line starting at `from` (without its CRLF) and where the next one starts.
fn line(buffer: &[u8], from: usize) -> Result<Option<(&[u8], usize)>, ProtocolError> {
    let rest = buffer.get(from..).unwrap_or_default();
    match rest.windows(2).position(|pair| pair == b"\r\n") {
        Some(end) if end <= MAX_LINE => Ok(Some((&rest[..end], from + end + 2))),
        Some(_) => Err(ProtocolError("Redis sent a line too long for a reply to a check")),
        None if rest.len() > MAX_LINE => {
            Err(ProtocolError("Redis sent a line too long for a reply to a check"))
        }
        None => Ok(None),
    }
}

fn number(digits: &[u8]) -> Option<usize> {
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(reply: &[u8]) -> Vec<Option<Vec<u8>>> {
        match parse(reply) {
            Ok(Parsed::Reply(Reply::Values(values), used)) => {
                assert_eq!(used, reply.len(), "the whole reply is used");
                values.iter().map(|value| value.map(<[u8]>::to_vec)).collect()
            }
            other => panic!("not values: {other:?}"),
        }
    }

    #[test]
    fn a_command_is_an_array_of_bulk_strings() {
        let mut out = Vec::new();
        push_command(&mut out, &[b"MGET", b"{r:b1}:t:ab", b""]);
        assert_eq!(out, b"*3\r\n$4\r\nMGET\r\n$11\r\n{r:b1}:t:ab\r\n$0\r\n\r\n");
    }

    #[test]
    fn values_and_nils_are_read_in_order() {
        assert_eq!(
            values(b"*4\r\n$1\r\n1\r\n$-1\r\n$10\r\n1700000000\r\n$-1\r\n"),
            vec![Some(b"1".to_vec()), None, Some(b"1700000000".to_vec()), None]
        );
        assert_eq!(values(b"*0\r\n"), Vec::<Option<Vec<u8>>>::new());
    }

    #[test]
    fn a_long_value_is_present_and_not_a_number() {
        let long = format!("*1\r\n$30\r\n{}\r\n", "9".repeat(30));
        assert_eq!(values(long.as_bytes()), vec![Some(b"-".to_vec())]);
    }

    #[test]
    fn a_reply_cut_anywhere_is_incomplete_and_two_replies_are_read_one_by_one() {
        let reply = b"*3\r\n$1\r\n1\r\n$-1\r\n$3\r\n123\r\n";
        for cut in 0..reply.len() {
            assert_eq!(parse(&reply[..cut]), Ok(Parsed::Incomplete), "cut at {cut}");
        }
        let mut two = reply.to_vec();
        two.extend_from_slice(b"-LOADING Redis is loading\r\n");
        let Ok(Parsed::Reply(_, used)) = parse(&two) else {
            panic!("the first reply is whole");
        };
        assert_eq!(used, reply.len());
        assert_eq!(
            parse(&two[used..]),
            Ok(Parsed::Reply(
                Reply::Error("LOADING Redis is loading".into()),
                two.len() - used
            ))
        );
    }

    #[test]
    fn what_is_not_an_mget_reply_is_a_protocol_error() {
        for reply in [
            &b"+OK\r\n"[..],
            b":1\r\n",
            b"*10\r\n",
            b"*x\r\n",
            b"*1\r\n:1\r\n",
            b"*1\r\n$1\r\n12\r\n",
            b"*1\r\n$z\r\n",
        ] {
            assert!(parse(reply).is_err(), "{:?}", String::from_utf8_lossy(reply));
        }
        assert!(parse(&[b'*'; MAX_LINE + 1]).is_err(), "an endless line");
    }

    #[test]
    fn a_value_announced_longer_than_the_cap_is_refused_before_it_arrives() {
        assert!(parse(b"*1\r\n$4000000000\r\n").is_err());
        assert!(parse(format!("*1\r\n${}\r\n", MAX_BULK + 1).as_bytes()).is_err());
        let at_cap = format!("*1\r\n${MAX_BULK}\r\n{}\r\n", "x".repeat(MAX_BULK));
        assert_eq!(values(at_cap.as_bytes()), vec![Some(b"-".to_vec())]);
    }
}
