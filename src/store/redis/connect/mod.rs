//! Connecting to Redis: what every command of a store goes over, and how long it may
//! take.
//!
//! - `shared.rs`: the one multiplexed connection every check and revocation shares, made
//!   by a task of its own and replaced when it dies or falls silent;
//! - `conn.rs`: one server's connection or a cluster's, behind one type, and the commands
//!   that go to each node in turn;
//! - `command.rs`: running one command on the shared connection (silence timing, one
//!   retry on a fresh connection);
//! - `check/`: the checks' own connection, a small RESP2 reader for the one hot `MGET`;
//! - `exclusive.rs`: a pooled connection for one caller alone (a write and its `WAIT`);
//! - `sentinel.rs`: connections to the master Redis Sentinel names;
//! - `error.rs`: a failure to connect, shared by everyone who waited for it.
//!
//! May use: the schema's layout check (every connection reads the recorded layout
//! first). Used by: every other part of the store, and the mirror (its dedicated
//! connections).

pub(crate) mod check;
pub(crate) mod command;
pub(crate) mod conn;
pub(crate) mod error;
pub(crate) mod exclusive;
pub(crate) mod sentinel;
pub(crate) mod shared;
