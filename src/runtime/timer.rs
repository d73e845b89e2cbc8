//! Deadlines that cost one timer registration per deadline, however often they are polled.
//!
//! A task that waits on a timer next to other events (a socket, a channel) polls that timer at
//! every wake-up. Under madsim each poll of a pending `Sleep` adds an entry to the timer heap
//! that stays until its time comes, and tokio re-registers a `Sleep` whenever it is reset. A
//! busy connection or node loop would register a timer per request. [`Deadline`] registers once
//! per deadline and waker; a deadline moved later is registered lazily, when the earlier
//! registration fires, so an idle timeout pushed back at every read costs nothing per read.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

pub struct Deadline {
    sleep: Pin<Box<Sleep>>,
    target: Instant,
    /// The waker registered with `sleep` at its current deadline.
    armed: Option<Waker>,
}

impl Deadline {
    pub fn at(target: Instant) -> Deadline {
        Deadline {
            sleep: Box::pin(tokio::time::sleep_until(target)),
            target,
            armed: None,
        }
    }

    pub fn after(duration: Duration) -> Deadline {
        Deadline::at(Instant::now() + duration)
    }

    /// Moves the deadline. Moving it later registers nothing now: the earlier registration
    /// wakes the task, whose next poll registers the new time.
    pub fn set(&mut self, target: Instant) {
        self.target = target;
    }
}

impl Future for Deadline {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let now = Instant::now();
        if now >= this.target {
            return Poll::Ready(());
        }
        let registered = this.sleep.deadline();
        let armed = this
            .armed
            .as_ref()
            .is_some_and(|waker| waker.will_wake(cx.waker()));
        // A registration still to come, no later than the target, wakes this same task in time.
        if armed && now < registered && registered <= this.target {
            return Poll::Pending;
        }
        if registered != this.target {
            this.sleep.as_mut().reset(this.target);
        }
        match this.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(()),
            Poll::Pending => {
                this.armed = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Deadline {
    /// `future`'s output, or `None` once `within` has passed. A caller that bounds one call after
    /// another with the same `Deadline` keeps one timer registration for many calls: each call
    /// moves the deadline later, which registers nothing until the old time comes.
    pub async fn bound<F: Future>(&mut self, within: Duration, future: F) -> Option<F::Output> {
        self.set(Instant::now() + within);
        tokio::pin!(future);
        // `biased`: the future first, as tokio's own timeout does; random branch order would
        // also make simulation runs irreproducible.
        tokio::select! {
            biased;
            out = &mut future => Some(out),
            () = &mut *self => None,
        }
    }
}

/// `future`'s output, or `None` once `within` has passed.
pub async fn timeout<F: Future>(within: Duration, future: F) -> Option<F::Output> {
    Deadline::after(within).bound(within, future).await
}

#[cfg(test)]
mod tests {
    use super::*;

    // Real time (no paused clock in this build): each check is "not before the target, and
    // well before any later registration would have fired".
    const MS: Duration = Duration::from_millis(1);

    #[tokio::test]
    async fn a_deadline_moved_later_fires_at_the_new_target() {
        let start = Instant::now();
        let mut deadline = Deadline::after(20 * MS);
        assert!(timeout(5 * MS, &mut deadline).await.is_none());
        deadline.set(start + 60 * MS);
        (&mut deadline).await;
        let waited = start.elapsed();
        assert!(waited >= 60 * MS && waited < 2000 * MS, "{waited:?}");
        deadline.set(Instant::now() + 10 * MS);
        (&mut deadline).await;
        assert!(start.elapsed() >= 70 * MS);
    }

    #[tokio::test]
    async fn a_deadline_moved_earlier_fires_early() {
        let start = Instant::now();
        let mut deadline = Deadline::after(Duration::from_secs(60));
        // Poll once so the far registration exists, then move the target in.
        assert!(timeout(MS, &mut deadline).await.is_none());
        deadline.set(start + 30 * MS);
        (&mut deadline).await;
        let waited = start.elapsed();
        assert!(waited >= 30 * MS && waited < 10_000 * MS, "{waited:?}");
    }

    #[tokio::test]
    async fn one_deadline_bounds_call_after_call() {
        let mut deadline = Deadline::after(Duration::from_secs(60));
        for i in 0..3 {
            assert_eq!(deadline.bound(50 * MS, async { i }).await, Some(i));
        }
        let start = Instant::now();
        let slow = deadline.bound(20 * MS, tokio::time::sleep(Duration::from_secs(60)));
        assert_eq!(slow.await, None);
        assert!(start.elapsed() >= 20 * MS);
    }

    #[tokio::test]
    async fn timeout_gives_the_output_or_none() {
        assert_eq!(timeout(50 * MS, async { 7 }).await, Some(7));
        let slow = timeout(10 * MS, tokio::time::sleep(Duration::from_secs(60))).await;
        assert_eq!(slow, None);
    }
}
