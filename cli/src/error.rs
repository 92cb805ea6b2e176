//! Why a command failed, as one line on stderr and an exit code.

use std::error::Error;
use std::fmt;
use std::process::ExitCode;

use tower_jwt_revoke::store::StoreError;
use tower_jwt_revoke::{RevokeError, VerifyError};

/// The exit codes, documented in `--help` and the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Done; `check`: not revoked.
    Ok = 0,
    /// `check`: the token is revoked.
    Revoked = 1,
    /// The command line is wrong.
    Usage = 2,
    /// A token, key, file or hash is not what it should be.
    Input = 3,
    /// Redis is unreachable or failing.
    Store = 4,
    /// Nothing was ever recorded under the prefix.
    EmptyPrefix = 5,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

/// A failed command: what to say, and how to exit.
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
}

impl Failure {
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self {
            exit,
            message: message.into(),
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Exit::Usage, message)
    }

    pub fn input(message: impl Into<String>) -> Self {
        Self::new(Exit::Input, message)
    }

    /// A failure of Redis, its causes on the same line.
    pub fn store(error: &StoreError) -> Self {
        Self::new(Exit::Store, chain(error))
    }

    pub fn invalid_token(error: &VerifyError) -> Self {
        Self::input(format!("invalid token: {error}"))
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One line, whatever the causes said.
        f.write_str(&self.message.replace(['\n', '\r'], " "))
    }
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        Self::store(&error)
    }
}

impl From<RevokeError> for Failure {
    fn from(error: RevokeError) -> Self {
        match &error {
            RevokeError::InvalidToken(reason) => Self::invalid_token(reason),
            RevokeError::Store(store) => Self::store(store),
            _ => Self::input(chain(&error)),
        }
    }
}

/// An error and its sources, `: `-separated.
pub fn chain(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        source = cause.source();
    }
    text
}
