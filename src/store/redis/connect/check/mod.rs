//! A connection of the store's own for its checks: `MGET`s pipelined on one socket,
//! written into a reused buffer and read into fixed-size replies, so that a check
//! allocates nothing of its own.
//!
//! redis-rs's multiplexed connection, which every other command uses, allocates four
//! times per command whatever the caller does (its boxed future, the packed command,
//! the channel its answer comes back on, the parsed reply), and parses with a general
//! RESP parser. A check is one command of one shape, on every request: this connection
//! does only that. It is made beside the multiplexed one, to the same server, when the
//! store is configured with a `redis://` URL on TCP (see [`Target`]); otherwise checks
//! go through redis-rs as every other command does.
//!
//! Requests in flight wait in slots allocated with the connection; a writer task sends
//! what the callers queued, a reader task parses the answers and hands each to the
//! oldest slot waiting. A failed read or write kills the connection: every waiting
//! check fails with an I/O error (which the store's command runner treats as a dead
//! connection: it reconnects), and so does every later one.
//!
//! In this folder: the connection and its queue (`mod.rs`), the RESP2 it speaks
//! (`resp.rs`), where it connects and its handshake (`target.rs`), and its tests against
//! a real server and a hostile one (`tests.rs`). May use: nothing else of the store. Used
//! by: the shared connection (`connect/shared.rs`), for a check.

mod resp;
mod target;

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use ::redis::{ErrorKind, RedisError};
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use self::resp::{Parsed, Reply};
pub(crate) use self::resp::{Values, push_array_len, push_bulk};
pub(crate) use self::target::Target;

/// How many checks may wait on one connection at once; one more goes through the
/// multiplexed connection instead.
const SLOTS: usize = 4096;

/// How much the reader asks the socket for at a time.
const READ_CHUNK: usize = 16 * 1024;

/// The check connection. Cheap to clone; the last clone dropped closes it.
#[derive(Clone)]
pub(crate) struct CheckConnection {
    handle: Arc<Handle>,
}

/// Stops the connection's tasks when the last clone goes.
struct Handle {
    core: Arc<Core>,
    tasks: [AbortHandle; 2],
}

impl Drop for Handle {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        self.core.kill("the check connection was closed");
    }
}

struct Core {
    queue: Mutex<Queue>,
    slots: Box<[Mutex<Slot>]>,
    /// Wakes the writer when the first command is queued into an empty buffer.
    written: Notify,
}

struct Queue {
    /// Commands queued and not yet handed to the writer.
    out: Vec<u8>,
    /// The slots waiting for an answer, in the order their commands were queued (the
    /// order Redis answers in), each with the number of values its `MGET` asked for.
    waiting: VecDeque<(u32, usize)>,
    free: Vec<u32>,
    /// Why the connection is dead, once it is.
    dead: Option<&'static str>,
}

#[derive(Default)]
struct Slot {
    waker: Option<Waker>,
    answer: Option<Answer>,
    /// Its check was given up: the answer, when it comes, only frees the slot.
    abandoned: bool,
}

type Answer = Result<Values, Failure>;

enum Failure {
    /// Redis answered with an error.
    Refused(String),
    /// The connection died.
    Dead(&'static str),
}

impl CheckConnection {
    /// Connects to `target` and starts the connection's tasks (on the current runtime).
    pub(crate) async fn connect(target: &Target, timeout: Duration) -> Result<Self, RedisError> {
        let stream = target.connect(timeout).await?;
        let (reader, writer) = stream.into_split();
        let core = Arc::new(Core {
            queue: Mutex::new(Queue {
                out: Vec::with_capacity(READ_CHUNK),
                waiting: VecDeque::with_capacity(SLOTS),
                // Handed out from the end: the lowest first.
                free: (0..SLOTS as u32).rev().collect(),
                dead: None,
            }),
            slots: (0..SLOTS).map(|_| Mutex::default()).collect(),
            written: Notify::new(),
        });
        let write = tokio::spawn(write_loop(Arc::clone(&core), writer)).abort_handle();
        let read = tokio::spawn(read_loop(Arc::clone(&core), reader)).abort_handle();
        Ok(Self {
            handle: Arc::new(Handle {
                core,
                tasks: [write, read],
            }),
        })
    }

    /// Queues `command` (whole RESP, an `MGET` of `keys` keys): the answer is the
    /// future's. `None` when every slot is taken (the caller sends it another way).
    ///
    /// A reply with another number of values than `keys` is a protocol error: the
    /// connection is dropped (and the check fails) rather than the values read as
    /// answers to keys they may not be about.
    pub(crate) fn send(&self, command: &[u8], keys: usize) -> Option<Pending> {
        let core = &self.handle.core;
        let mut queue = core.lock_queue();
        if let Some(why) = queue.dead {
            return Some(Pending::failed(core, why));
        }
        let slot = queue.free.pop()?;
        let wake_writer = queue.out.is_empty();
        queue.out.extend_from_slice(command);
        queue.waiting.push_back((slot, keys));
        drop(queue);
        if wake_writer {
            core.written.notify_one();
        }
        Some(Pending {
            core: Arc::clone(core),
            slot: Some(slot),
            failed: None,
        })
    }

    /// Whether the connection died (its checks fail; the store replaces it).
    #[cfg(test)]
    pub(crate) fn is_dead(&self) -> bool {
        self.handle.core.lock_queue().dead.is_some()
    }
}

impl Core {
    fn lock_queue(&self) -> MutexGuard<'_, Queue> {
        // Critical sections only push, pop and swap: a panic leaves nothing half-done.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_slot(&self, slot: u32) -> MutexGuard<'_, Slot> {
        self.slots[slot as usize]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn release(&self, slot: u32) {
        self.lock_queue().free.push(slot);
    }

    /// Gives `answer` to `slot`'s check, or frees the slot if the check is gone.
    fn answer(&self, slot: u32, answer: Answer) {
        let mut state = self.lock_slot(slot);
        if state.abandoned {
            *state = Slot::default();
            drop(state);
            self.release(slot);
            return;
        }
        state.answer = Some(answer);
        let waker = state.waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Marks the connection dead and fails every check waiting on it.
    fn kill(&self, why: &'static str) {
        let waiting = {
            let mut queue = self.lock_queue();
            if queue.dead.is_some() {
                return;
            }
            queue.dead = Some(why);
            queue.out.clear();
            std::mem::take(&mut queue.waiting)
        };
        tracing::debug!(%why, "the Redis check connection is closed");
        for (slot, _) in waiting {
            self.answer(slot, Err(Failure::Dead(why)));
        }
        // A writer waiting for work sees the connection dead and stops.
        self.written.notify_one();
    }
}

async fn write_loop(core: Arc<Core>, mut writer: OwnedWriteHalf) {
    let mut sending = Vec::with_capacity(READ_CHUNK);
    loop {
        // The checks the runtime is about to run queue theirs first, so that one write
        // carries them all: woken by the first check of a burst, the writer would
        // otherwise send it alone (tokio runs a task just woken first), and every write
        // costs a system call and a TCP segment here and a read in Redis. Measured under
        // load: one write per check without this, one per 17 checks with it. With
        // nothing else ready the delay is one turn of the runtime.
        behind_ready_tasks().await;
        {
            let mut queue = core.lock_queue();
            if queue.dead.is_some() {
                return;
            }
            // Swapped, not copied: both buffers keep their capacity.
            std::mem::swap(&mut queue.out, &mut sending);
        }
        if sending.is_empty() {
            core.written.notified().await;
            continue;
        }
        if writer.write_all(&sending).await.is_err() {
            core.kill("writing a check to Redis failed");
            return;
        }
        sending.clear();
    }
}

async fn read_loop(core: Arc<Core>, mut reader: OwnedReadHalf) {
    let mut buffer = BytesMut::with_capacity(READ_CHUNK);
    loop {
        buffer.reserve(READ_CHUNK);
        match reader.read_buf(&mut buffer).await {
            Ok(0) => return core.kill("Redis closed the check connection"),
            Ok(_) => {}
            Err(_) => return core.kill("reading from the Redis check connection failed"),
        }
        loop {
            let (reply, used) = match resp::parse(&buffer) {
                Ok(Parsed::Incomplete) => break,
                Ok(Parsed::Reply(reply, used)) => (reply, used),
                Err(error) => {
                    tracing::warn!(%error, "the Redis check connection read something it cannot parse");
                    return core.kill(error.0);
                }
            };
            buffer.advance(used);
            let Some((slot, keys)) = core.lock_queue().waiting.pop_front() else {
                return core.kill("Redis answered a check nobody sent");
            };
            let answer = match reply {
                Reply::Values(values) if values.len() != keys => {
                    tracing::warn!(
                        keys,
                        values = values.len(),
                        "the Redis check connection read an MGET reply with another number of values than keys"
                    );
                    // The slot was popped: fail it, then everything behind it.
                    core.answer(
                        slot,
                        Err(Failure::Dead(
                            "Redis answered a check with another number of values than keys",
                        )),
                    );
                    return core.kill("Redis answered a check with another number of values than keys");
                }
                Reply::Values(values) => Ok(values),
                Reply::Error(text) => Err(Failure::Refused(text)),
            };
            core.answer(slot, answer);
        }
    }
}

/// Returns once the tasks that were ready to run when it was called have run: the task
/// wakes itself and goes to the back of its worker's queue. (`tokio::task::yield_now`
/// waits for the I/O driver's next turn as well, and cost one allocation per write in
/// `benches/allocations.rs`.)
async fn behind_ready_tasks() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if std::mem::replace(&mut yielded, true) {
            return Poll::Ready(());
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await;
}

/// A check's answer, on its way.
pub(crate) struct Pending {
    core: Arc<Core>,
    /// `None` once answered.
    slot: Option<u32>,
    /// The connection was dead when the check was sent.
    failed: Option<&'static str>,
}

impl Pending {
    fn failed(core: &Arc<Core>, why: &'static str) -> Self {
        Self {
            core: Arc::clone(core),
            slot: None,
            failed: Some(why),
        }
    }
}

impl Future for Pending {
    type Output = Result<Values, RedisError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(slot) = self.slot else {
            return Poll::Ready(Err(dead(self.failed.unwrap_or("the check was answered already"))));
        };
        let mut state = self.core.lock_slot(slot);
        let Some(answer) = state.answer.take() else {
            match &state.waker {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                _ => state.waker = Some(cx.waker().clone()),
            }
            return Poll::Pending;
        };
        state.waker = None;
        drop(state);
        self.core.release(slot);
        self.slot = None;
        Poll::Ready(answer.map_err(|failure| match failure {
            Failure::Refused(text) => {
                RedisError::from((ErrorKind::Extension, "Redis refused the check", text))
            }
            Failure::Dead(why) => dead(why),
        }))
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let Some(slot) = self.slot else { return };
        let mut state = self.core.lock_slot(slot);
        if state.answer.is_some() {
            *state = Slot::default();
            drop(state);
            self.core.release(slot);
        } else {
            state.abandoned = true;
            state.waker = None;
        }
    }
}

/// The error of a check on a dead connection: an I/O error, which the store's command
/// runner reads as "reconnect".
fn dead(why: &'static str) -> RedisError {
    RedisError::from(std::io::Error::new(std::io::ErrorKind::ConnectionReset, why))
}

#[cfg(test)]
mod tests;
