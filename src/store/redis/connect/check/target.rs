//! Where a check connection goes, and its handshake: the address, user, password and
//! database of a `redis://` URL on TCP, speaking RESP2. Other deployments (TLS, a Unix
//! socket, RESP3, Sentinel, a cluster) keep their checks on redis-rs.

use std::time::Duration;

use ::redis::{ConnectionAddr, ConnectionInfo, ErrorKind, IntoConnectionInfo, ProtocolVersion, RedisError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::resp::push_command;

/// A server a check connection can be made to.
#[derive(Clone)]
pub(crate) struct Target {
    host: String,
    port: u16,
    username: Option<String>,
    password: Option<String>,
    db: i64,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        f.debug_struct("Target")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("db", &self.db)
            .finish_non_exhaustive()
    }
}

impl Target {
    /// The target of `url`, when a check connection can speak to it.
    pub(crate) fn of_url(url: &str) -> Option<Self> {
        Self::of_info(&url.into_connection_info().ok()?)
    }

    /// The target of `info`, when a check connection can speak to it.
    pub(crate) fn of_info(info: &ConnectionInfo) -> Option<Self> {
        let ConnectionAddr::Tcp(host, port) = info.addr() else {
            return None;
        };
        let redis = info.redis_settings();
        if redis.protocol() != ProtocolVersion::RESP2 {
            return None;
        }
        Some(Self {
            host: host.clone(),
            port: *port,
            username: redis.username().map(str::to_owned),
            password: redis.password().map(str::to_owned),
            db: redis.db(),
        })
    }

    /// A socket to the server, authenticated and on the right database, within
    /// `timeout` as a whole.
    pub(crate) async fn connect(&self, timeout: Duration) -> Result<TcpStream, RedisError> {
        tokio::time::timeout(timeout, self.handshake())
            .await
            .map_err(|_| RedisError::from((ErrorKind::Io, "timed out making the Redis check connection")))?
    }

    async fn handshake(&self) -> Result<TcpStream, RedisError> {
        let mut stream = TcpStream::connect((self.host.as_str(), self.port)).await?;
        // Checks are small and answered one by one: never held back by Nagle.
        stream.set_nodelay(true)?;
        let mut commands = Vec::new();
        let mut expected = 0;
        if let Some(password) = &self.password {
            match &self.username {
                Some(user) => push_command(&mut commands, &[b"AUTH", user.as_bytes(), password.as_bytes()]),
                None => push_command(&mut commands, &[b"AUTH", password.as_bytes()]),
            }
            expected += 1;
        }
        if self.db != 0 {
            push_command(&mut commands, &[b"SELECT", self.db.to_string().as_bytes()]);
            expected += 1;
        }
        if expected == 0 {
            return Ok(stream);
        }
        stream.write_all(&commands).await?;
        let mut answers = Vec::new();
        while answers.split(|&b| b == b'\n').count() <= expected {
            let mut chunk = [0u8; 512];
            let read = stream.read(&mut chunk).await?;
            if read == 0 {
                return Err(RedisError::from((
                    ErrorKind::Io,
                    "Redis closed the check connection during its handshake",
                )));
            }
            answers.extend_from_slice(&chunk[..read]);
        }
        for line in answers.split(|&b| b == b'\n').take(expected) {
            if !line.starts_with(b"+OK") {
                let text = String::from_utf8_lossy(line).trim().to_owned();
                return Err(RedisError::from((
                    ErrorKind::AuthenticationFailed,
                    "Redis refused the check connection's handshake",
                    text,
                )));
            }
        }
        Ok(stream)
    }
}
