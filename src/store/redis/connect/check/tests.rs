//! Against a real `redis-server` started by each test (skipped when there is none,
//! unless `TOWER_JWT_REVOKE_REQUIRE_REDIS` is set).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::*;

/// A private redis-server on a free loopback port, killed on drop.
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn server() -> Option<Server> {
    server_with(&[])
}

/// A server started with `extra` arguments too.
fn server_with(extra: &[&str]) -> Option<Server> {
    let port = TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args(extra)
        .stdout(Stdio::null())
        .spawn();
    let child = match child {
        Ok(child) => child,
        Err(_) if std::env::var_os("TOWER_JWT_REVOKE_REQUIRE_REDIS").is_none() => return None,
        Err(error) => panic!("redis-server is required: {error}"),
    };
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(Server { child, port });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("redis-server did not start");
}

fn mget(keys: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    push_array_len(&mut out, keys.len() + 1);
    push_bulk(&mut out, b"MGET");
    for key in keys {
        push_bulk(&mut out, key.as_bytes());
    }
    out
}

fn owned(values: &Values) -> Vec<Option<Vec<u8>>> {
    values.iter().map(|value| value.map(<[u8]>::to_vec)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_checks_each_get_their_own_answer_and_a_killed_server_fails_them() {
    let Some(mut server) = server() else { return };
    let target = Target::of_url(&format!("redis://127.0.0.1:{}/", server.port)).expect("a TCP URL");
    let connection = CheckConnection::connect(&target, Duration::from_secs(2))
        .await
        .expect("connects");
    // Seed through the same socket type: SET is not an MGET, so use redis-rs.
    let client = ::redis::Client::open(format!("redis://127.0.0.1:{}/", server.port)).unwrap();
    let mut seed = client.get_multiplexed_async_connection().await.unwrap();
    for i in 0..200 {
        let () = ::redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg(i)
            .query_async(&mut seed)
            .await
            .unwrap();
    }
    let checks = (0..2000).map(|n| {
        let connection = connection.clone();
        tokio::spawn(async move {
            let i = n % 400;
            let command = mget(&[&format!("k{i}"), "absent"]);
            let values = connection
                .send(&command, 2)
                .expect("a free slot")
                .await
                .expect("answered");
            let expected = (i < 200).then(|| i.to_string().into_bytes());
            assert_eq!(owned(&values), vec![expected, None], "check {n}");
        })
    });
    for check in checks.collect::<Vec<_>>() {
        check.await.unwrap();
    }

    // A check given up before its answer frees its slot when the answer comes: all
    // 4096 slots can be taken again afterwards.
    for _ in 0..SLOTS {
        drop(connection.send(&mget(&["k1"]), 1).expect("a free slot"));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let waiting: Vec<Pending> = (0..SLOTS)
        .map(|_| connection.send(&mget(&["k1"]), 1).expect("every slot free again"))
        .collect();
    for pending in waiting {
        assert_eq!(owned(&pending.await.unwrap()), vec![Some(b"1".to_vec())]);
    }

    // The server goes away: what waits fails as a dead connection, and so does what comes next.
    let _ = ::redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(5000)
        .query_async::<()>(&mut seed)
        .await;
    let waiting = connection.send(&mget(&["k2"]), 1).expect("a free slot");
    server.child.kill().unwrap();
    let error = waiting.await.expect_err("the server was killed");
    assert!(error.is_io_error() || error.is_connection_dropped(), "{error}");
    let later = connection.send(&mget(&["k2"]), 1).expect("answers at once").await;
    assert!(later.is_err(), "a dead connection answers nothing");
    assert!(connection.is_dead());
}

/// What Redis counts as reads from its clients so far (`INFO stats`).
async fn reads_processed(connection: &mut ::redis::aio::MultiplexedConnection) -> u64 {
    let info: String = ::redis::cmd("INFO")
        .arg("stats")
        .query_async(connection)
        .await
        .unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix("total_reads_processed:"))
        .and_then(|count| count.trim().parse().ok())
        .expect("INFO stats has total_reads_processed")
}

// One worker, as a server pinned to one core runs: a woken task goes first in its
// queue, which is how a writer woken by the first check would send every check alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn checks_of_tasks_ready_together_go_out_in_one_write() {
    let Some(server) = server() else { return };
    let url = format!("redis://127.0.0.1:{}/", server.port);
    let target = Target::of_url(&url).expect("a TCP URL");
    let connection = CheckConnection::connect(&target, Duration::from_secs(2))
        .await
        .expect("connects");
    let client = ::redis::Client::open(url).unwrap();
    let mut info = client.get_multiplexed_async_connection().await.unwrap();
    let before = reads_processed(&mut info).await;
    const CHECKS: u64 = 1000;
    // Spawned from the worker, the checks' tasks are all ready before any of them runs.
    let checks = tokio::spawn(async move {
        (0..CHECKS)
            .map(|_| {
                let connection = connection.clone();
                tokio::spawn(async move { connection.send(&mget(&["k"]), 1).expect("a free slot").await })
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for check in checks {
        assert_eq!(owned(&check.await.unwrap().expect("answered")), vec![None]);
    }
    // The INFO commands are reads too (one before the count was taken, one now).
    let reads = reads_processed(&mut info).await - before - 1;
    assert!(
        reads <= CHECKS / 10,
        "{CHECKS} checks ready together took {reads} reads in Redis: they were not written together"
    );
}

/// The value of `key` as the check connection to `url` reads it.
async fn check_reads(url: &str, key: &str) -> Option<Vec<u8>> {
    let target = Target::of_url(url).expect("a TCP URL");
    let connection = CheckConnection::connect(&target, Duration::from_secs(2))
        .await
        .expect("connects");
    let values = connection
        .send(&mget(&[key]), 1)
        .expect("a free slot")
        .await
        .expect("answered");
    owned(&values).pop().flatten()
}

// A check connection on the wrong database would read another blocklist: it must
// authenticate and select the database the store's URL names, or not connect at all.
#[tokio::test]
async fn the_handshake_authenticates_and_selects_the_urls_database() {
    let Some(server) = server_with(&["--requirepass", "s3cret"]) else {
        return;
    };
    let port = server.port;
    let admin = ::redis::Client::open(format!("redis://:s3cret@127.0.0.1:{port}/3")).unwrap();
    let mut admin = admin.get_multiplexed_async_connection().await.unwrap();
    let () = ::redis::cmd("SET")
        .arg("k")
        .arg("in db 3")
        .query_async(&mut admin)
        .await
        .unwrap();
    let () = ::redis::cmd("ACL")
        .arg("SETUSER")
        .arg("checker")
        .arg("on")
        .arg(">checker-pw")
        .arg("~*")
        .arg("+@all")
        .query_async(&mut admin)
        .await
        .unwrap();

    let read = check_reads(&format!("redis://:s3cret@127.0.0.1:{port}/3"), "k").await;
    assert_eq!(
        read.as_deref(),
        Some(&b"in db 3"[..]),
        "database 3, with the password"
    );
    let read = check_reads(&format!("redis://checker:checker-pw@127.0.0.1:{port}/3"), "k").await;
    assert_eq!(
        read.as_deref(),
        Some(&b"in db 3"[..]),
        "database 3, as an ACL user"
    );
    let read = check_reads(&format!("redis://:s3cret@127.0.0.1:{port}/0"), "k").await;
    assert_eq!(read, None, "database 0 does not hold it");

    // A wrong password, or a database to select without one: the handshake fails.
    for url in [
        format!("redis://:wrong@127.0.0.1:{port}/3"),
        format!("redis://127.0.0.1:{port}/3"),
    ] {
        let target = Target::of_url(&url).expect("a TCP URL");
        let refused = CheckConnection::connect(&target, Duration::from_secs(2)).await;
        let error = refused.err().expect("the handshake is refused");
        assert_eq!(error.kind(), ErrorKind::AuthenticationFailed, "{error}");
    }
    // Neither a password nor a database: the handshake has nothing to send, so the
    // first check is the one refused (NOAUTH), never answered as "not revoked".
    let target = Target::of_url(&format!("redis://127.0.0.1:{port}/0")).expect("a TCP URL");
    let connection = CheckConnection::connect(&target, Duration::from_secs(2))
        .await
        .expect("nothing to refuse yet");
    let answer = connection.send(&mget(&["k"]), 1).expect("a free slot").await;
    assert!(answer.is_err(), "an unauthenticated check must fail, not answer");
}

/// A hostile "Redis" on a free loopback port: it reads the first command, answers it
/// with `reply`, then sends `filler` bytes until the client hangs up or `limit` bytes
/// went out. Resolves to how many filler bytes were sent.
async fn hostile_server(
    reply: &'static [u8],
    filler: u8,
    limit: usize,
) -> (u16, tokio::task::JoinHandle<usize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut command = [0u8; 1024];
        let _ = socket.read(&mut command).await;
        if socket.write_all(reply).await.is_err() {
            return 0;
        }
        let chunk = vec![filler; 64 * 1024];
        let mut sent = 0;
        while sent < limit {
            if socket.write_all(&chunk).await.is_err() {
                break;
            }
            sent += chunk.len();
        }
        sent
    });
    (port, server)
}

async fn connect_to(port: u16) -> CheckConnection {
    let target = Target::of_url(&format!("redis://127.0.0.1:{port}/")).expect("a TCP URL");
    CheckConnection::connect(&target, Duration::from_secs(2))
        .await
        .expect("connects")
}

// A server announcing a 4 GB value must not make the reader buffer it: the length
// alone is a protocol error, the connection is dropped and the check fails (a 503).
#[tokio::test]
async fn a_hostile_bulk_length_drops_the_connection_instead_of_buffering() {
    let limit = 64 * 1024 * 1024;
    let (port, server) = hostile_server(b"*1\r\n$4000000000\r\n", b'x', limit).await;
    let connection = connect_to(port).await;
    let answer = tokio::time::timeout(
        Duration::from_secs(5),
        connection.send(&mget(&["k"]), 1).expect("a free slot"),
    )
    .await
    .expect("the check fails at once rather than waiting for 4 GB");
    let error = answer.expect_err("no answer from a hostile server");
    assert!(
        error.is_io_error(),
        "a dead connection, for the store to replace: {error}"
    );
    assert!(connection.is_dead());
    let sent = tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the client hung up")
        .unwrap();
    assert!(sent < limit, "the client kept reading: {sent} bytes");
}

// An MGET of one key answered with two values is not the answer to that MGET: the
// connection is dropped rather than the values read as answers.
#[tokio::test]
async fn an_mget_reply_with_more_values_than_keys_drops_the_connection() {
    let (port, _server) = hostile_server(b"*2\r\n$1\r\n1\r\n$-1\r\n", b'\n', 0).await;
    let connection = connect_to(port).await;
    let answer = tokio::time::timeout(
        Duration::from_secs(5),
        connection.send(&mget(&["k"]), 1).expect("a free slot"),
    )
    .await
    .expect("answered");
    let error = answer.expect_err("two values for one key are a protocol error");
    assert!(error.is_io_error(), "{error}");
    assert!(connection.is_dead());
}
