//! Bounded waiting: every wait of the tests ends by [`WAIT`], then panics naming what it
//! waited for (never a hang).

use std::future::IntoFuture;
use std::time::Duration;

use livesync::Database;

/// Upper bound for anything a test waits for.
pub const WAIT: Duration = Duration::from_secs(10);

/// The output of `future`; panics naming `what` if it takes longer than [`WAIT`].
pub async fn in_time<F: IntoFuture>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(WAIT, future)
        .await
        .unwrap_or_else(|_| panic!("timed out after {WAIT:?}: {what}"))
}

/// Polls `check` until it holds (every 5 ms, bounded by [`WAIT`]); the pauses let other
/// tasks run, also those on the current `LocalSet`.
pub async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {WAIT:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Polls `sql` until its first column is `expected` (every 10 ms, bounded by [`WAIT`]);
/// the panic shows the last rows and the sync status.
pub async fn eventually(db: &Database, sql: &str, expected: &[&str]) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let rows = super::strings(db, sql).await;
        if rows == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{sql}: still {rows:?}, expected {expected:?}; status {:?}",
            db.status()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The same bounded waits on a timer that needs no runtime (`futures-timer`), for tests
/// that run under smol or no executor at all. They follow the real clock, never a
/// paused tokio one.
pub mod anywhere {
    use std::future::IntoFuture;
    use std::time::{Duration, Instant};

    use futures::FutureExt;

    use super::WAIT;

    /// The output of `future`; panics naming `what` if it takes longer than [`WAIT`].
    pub async fn in_time<F: IntoFuture>(what: &str, future: F) -> F::Output {
        futures::select_biased! {
            output = future.into_future().fuse() => output,
            () = futures_timer::Delay::new(WAIT).fuse() => panic!("timed out after {WAIT:?}: {what}"),
        }
    }

    /// Polls `check` until it holds (every 5 ms, bounded by [`WAIT`]).
    pub async fn until(what: &str, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + WAIT;
        while !check() {
            assert!(
                Instant::now() < deadline,
                "timed out after {WAIT:?}: {what}"
            );
            futures_timer::Delay::new(Duration::from_millis(5)).await;
        }
    }

    /// Like [`until`], for a check that is itself async.
    pub async fn until_async<F: Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
        let deadline = Instant::now() + WAIT;
        while !check().await {
            assert!(
                Instant::now() < deadline,
                "timed out after {WAIT:?}: {what}"
            );
            futures_timer::Delay::new(Duration::from_millis(5)).await;
        }
    }
}
