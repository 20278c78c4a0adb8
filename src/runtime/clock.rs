//! Time for livesync: the instant type, the reactor-free timer used when an executor
//! brings none, timeouts, and the idle deadline of a stream.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use super::{Delay, Runtime};

/// A point in time on livesync's clocks. `std`'s on native targets.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) type Instant = std::time::Instant;
/// A point in time on livesync's clocks: in the browser, where `std::time::Instant::now`
/// panics, `performance.now()` through `web-time` (same API).
#[cfg(target_arch = "wasm32")]
pub(crate) type Instant = web_time::Instant;

/// The wall clock as a `std::time::SystemTime` (the type of the public API's sync and
/// expiry times). In the browser `SystemTime::now` panics, so it is built from
/// `Date.now()`, in milliseconds since the Unix epoch.
pub(crate) fn system_now() -> std::time::SystemTime {
    #[cfg(not(target_arch = "wasm32"))]
    return std::time::SystemTime::now();
    #[cfg(target_arch = "wasm32")]
    return std::time::UNIX_EPOCH + Duration::from_secs_f64(js_sys::Date::now().max(0.0) / 1000.0);
}

/// The wall-independent clock of timers that are not an executor's.
pub(crate) fn now() -> Instant {
    Instant::now()
}

/// A delay that needs no reactor: `futures-timer` runs one helper thread for every
/// pending delay of the process on native targets.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn sleep(duration: Duration) -> Delay {
    Box::pin(futures_timer::Delay::new(duration))
}

/// A delay on the browser's `setTimeout` (`futures-timer` with its `wasm-bindgen`
/// feature). Its JavaScript handles are `!Send`; the page has one thread, and the
/// wrapper checks at run time that the delay stays on it.
#[cfg(target_arch = "wasm32")]
pub(crate) fn sleep(duration: Duration) -> Delay {
    Box::pin(send_wrapper::SendWrapper::new(futures_timer::Delay::new(
        duration,
    )))
}

/// A future did not finish in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Elapsed;

/// `future`'s output, or [`Elapsed`] if `delay` completes first (a future that is
/// ready wins over a delay that is too).
pub(crate) async fn timeout<F: Future>(
    delay: Delay,
    future: F,
) -> std::result::Result<F::Output, Elapsed> {
    let mut future = pin!(future);
    let mut delay = delay;
    poll_fn(|cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Ok(output));
        }
        delay.as_mut().poll(cx).map(|()| Err(Elapsed))
    })
    .await
}

/// A deadline that moves forward whenever something arrives, as in "fail when the
/// stream sends nothing for `idle`". Moving it costs a clock read, not a new timer:
/// one delay is kept, and when it fires early (the deadline moved meanwhile) the next
/// one is set for the new deadline.
pub(crate) struct IdleDeadline {
    runtime: Runtime,
    idle: Duration,
    last_activity: Instant,
    /// Kept across calls, so an [`IdleDeadline::guard`] future dropped by a `select!`
    /// loses no time.
    delay: Option<Delay>,
}

impl IdleDeadline {
    pub(crate) fn new(runtime: Runtime, idle: Duration) -> Self {
        let last_activity = runtime.now();
        Self {
            runtime,
            idle,
            last_activity,
            delay: None,
        }
    }

    /// `future`'s output, which also moves the deadline; or [`Elapsed`] once `idle` has
    /// passed since the last output (a ready `future` wins over an expired deadline).
    pub(crate) async fn guard<F: Future>(
        &mut self,
        future: F,
    ) -> std::result::Result<F::Output, Elapsed> {
        let mut future = pin!(future);
        poll_fn(|cx| {
            if let Poll::Ready(output) = future.as_mut().poll(cx) {
                self.last_activity = self.runtime.now();
                return Poll::Ready(Ok(output));
            }
            loop {
                let deadline = self.last_activity + self.idle;
                let runtime = &self.runtime;
                let delay = self
                    .delay
                    .get_or_insert_with(|| runtime.sleep_until(deadline));
                if delay.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.delay = None;
                if self.runtime.now() >= self.last_activity + self.idle {
                    return Poll::Ready(Err(Elapsed));
                }
            }
        })
        .await
    }
}
