//! The tokio glue (feature `tokio`): tasks on the current tokio runtime, tokio's clock
//! and timers inside one, the reactor-free timer outside.

use std::future::Future;

use tokio::runtime::Handle;

use super::{Delay, Instant, clock};
use crate::{Error, Result};

pub(super) fn spawn(task: impl Future<Output = ()> + Send + 'static) -> Result<()> {
    let handle = Handle::try_current().map_err(|_| {
        Error::NoExecutor(
            "connect was called outside a tokio runtime: call it from inside one (#[tokio::main], Runtime::block_on), or open the database with OpenOptions::runtime(..) naming your executor (Runtime::smol, Runtime::custom)".into(),
        )
    })?;
    drop(handle.spawn(task));
    Ok(())
}

/// tokio's clock inside a runtime (it is the one a paused test clock moves), else the
/// system's.
pub(super) fn now() -> Instant {
    if Handle::try_current().is_ok() {
        tokio::time::Instant::now().into_std()
    } else {
        clock::now()
    }
}

pub(super) fn sleep_until(deadline: Instant) -> Delay {
    if Handle::try_current().is_ok() {
        Box::pin(tokio::time::sleep_until(tokio::time::Instant::from_std(
            deadline,
        )))
    } else {
        // Polled by another executor (say `futures::executor::block_on`): tokio's timer
        // would panic without its runtime.
        clock::sleep(deadline.saturating_duration_since(clock::now()))
    }
}
