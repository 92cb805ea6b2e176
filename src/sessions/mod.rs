//! Sessions that end properly, for apps that sign in their own users: access tokens
//! minted from the verifier's own configuration (`issue/`, [`TokenIssuer`](crate::TokenIssuer)),
//! and refresh tokens rotated on every use, with reuse detection (`refresh/`, public as
//! [`tower_jwt_revoke::refresh`](crate::refresh)).
//!
//! May use: `verify/`, `revoke/`, `store/`. Used by: applications; the Redis store and
//! the mirror implement the refresh store.

pub(crate) mod issue;
pub mod refresh;
