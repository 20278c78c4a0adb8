//! The smol glue (feature `smol`): timers from `async-io`, which drives them on its
//! own thread whichever executor polls them. Spawning is `Executor::spawn`, in `mod.rs`.

use super::{Delay, Instant};

pub(super) fn sleep_until(deadline: Instant) -> Delay {
    Box::pin(async move {
        async_io::Timer::at(deadline).await;
    })
}
