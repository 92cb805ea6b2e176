//! When fetches happen: waiting for the next due time (or for it to move), and the
//! times themselves.

use std::collections::hash_map::RandomState;
use std::future::{Future, poll_fn};
use std::hash::{BuildHasher, Hasher};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// Why [`wait_until`] returned.
pub(super) enum Wake {
    /// The time came.
    Due,
    /// Another fetch set another time.
    Moved,
    /// The source is gone.
    Stopped,
}

/// Waits until `next`, unless a fetch moves the due time first (`due` changes) or the
/// source is dropped (`due`'s sender goes).
pub(super) async fn wait_until(next: Instant, due: &mut watch::Receiver<Instant>) -> Wake {
    let mut sleep = pin!(tokio::time::sleep_until(next));
    let mut moved = pin!(due.changed());
    poll_fn(|cx| {
        if let Poll::Ready(changed) = moved.as_mut().poll(cx) {
            return Poll::Ready(if changed.is_ok() {
                Wake::Moved
            } else {
                Wake::Stopped
            });
        }
        sleep.as_mut().poll(cx).map(|()| Wake::Due)
    })
    .await
}

/// The instant `delay` from now. Never sooner than 100 ms, so that an interval
/// configured as zero cannot turn the background task into a busy loop against the
/// provider; never later than the clock can say.
pub(super) fn due_in(delay: Duration) -> Instant {
    after(Instant::now(), delay.max(Duration::from_millis(100)))
}

/// The instant `delay` after `from`, or as late as the clock can say.
pub(super) fn after(from: Instant, delay: Duration) -> Instant {
    from.checked_add(delay)
        .unwrap_or_else(|| from + Duration::from_secs(30 * 365 * 24 * 60 * 60))
}

/// `delay` less up to 10 %, at random, so that replicas started together do not
/// fetch (or retry) in step.
pub(super) fn jitter(delay: Duration) -> Duration {
    let random = RandomState::new().build_hasher().finish();
    let parts_of_ten_thousand = u32::try_from(random % 1000).unwrap_or(0);
    delay.saturating_sub(delay / 10_000 * parts_of_ten_thousand)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_takes_off_at_most_a_tenth() {
        for delay in [
            Duration::ZERO,
            Duration::from_millis(1),
            Duration::from_secs(300),
            Duration::MAX,
        ] {
            let jittered = jitter(delay);
            assert!(
                jittered <= delay && jittered >= delay - delay / 10,
                "{delay:?} {jittered:?}"
            );
        }
    }

    #[tokio::test]
    async fn due_times_are_never_immediate_nor_overflow() {
        let now = Instant::now();
        assert!(due_in(Duration::ZERO) >= now + Duration::from_millis(100));
        assert!(due_in(Duration::MAX) > now + Duration::from_secs(365 * 24 * 60 * 60));
    }
}
