//! Set-up shared by the bench crates (each bench file is its own crate and uses a part).
#![allow(dead_code)]

use std::time::Duration;

use livesync::{Column, Schema, Table};

/// `todos(description TEXT, done INTEGER, score REAL)`.
pub(crate) fn todo_schema() -> Schema {
    Schema::new([Table::new(
        "todos",
        [
            Column::text("description"),
            Column::integer("done"),
            Column::real("score"),
        ],
    )])
}

/// A runtime shaped like the CI machine: two worker threads.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Mean seconds per iteration, filled in by the measured closures for the summary lines.
#[derive(Default)]
pub(crate) struct Totals {
    time: Duration,
    iterations: u32,
}

impl Totals {
    pub(crate) fn add(&mut self, time: Duration) {
        self.time += time;
        self.iterations += 1;
    }

    pub(crate) fn mean(&self) -> f64 {
        self.time.as_secs_f64() / f64::from(self.iterations.max(1))
    }
}
