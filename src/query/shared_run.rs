//! Live queries of the same SQL and parameters share their runs.
//!
//! A list rendered by fifty components is fifty live queries of one SQL: without
//! sharing, every commit to its table ran that SQL fifty times (measured: 3.7–4× the
//! time of one live query for the same writes). Here every live query holds a
//! [`SharedRun`] for its [`RunKey`]; while others of the same key exist, a live query
//! that must run first looks at the latest run any of them started:
//! - if that run's snapshot is recent enough for it (started after every commit this
//!   live query has been told about, see `TableUpdateStream::covered_through`), it
//!   awaits that run's outcome instead of running;
//! - otherwise it starts a run, stamped with the commits published so far, that the
//!   others may join.
//!
//! No task is spawned: the run is a [`Shared`] future polled by whichever live queries
//! await it, so dropping them all drops the run, as with an unshared live query. A live
//! query alone with its key runs directly, at no cost beyond a reference count check.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use rusqlite::types::Value;

use super::Param;
use super::live::Run;
use crate::Result;

/// What makes two live queries' results the same: the SQL, the parameters (values
/// compared by type and exact content, reals by their bits) and the tables that trigger
/// them when they were given. Encoded as bytes so it hashes and compares exactly.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(super) struct RunKey {
    sql: Arc<str>,
    rest: Box<[u8]>,
}

impl RunKey {
    /// The key of a query, or `None` when a parameter could not be bound (such a query
    /// fails on its own, nothing to share).
    pub(super) fn new(
        sql: &Arc<str>,
        params: &[Param],
        bind_error: Option<&str>,
        triggered_by: Option<&[String]>,
    ) -> Option<Self> {
        if bind_error.is_some() {
            return None;
        }
        let mut rest = Vec::new();
        for param in params {
            match param {
                Param::Positional(value) => {
                    rest.push(b'p');
                    encode_value(&mut rest, value);
                }
                Param::Named(name, value) => {
                    rest.push(b'n');
                    encode_bytes(&mut rest, name.as_bytes());
                    encode_value(&mut rest, value);
                }
            }
        }
        if let Some(tables) = triggered_by {
            rest.push(b't');
            for table in tables {
                encode_bytes(&mut rest, table.as_bytes());
            }
        }
        Some(Self {
            sql: Arc::clone(sql),
            rest: rest.into(),
        })
    }
}

fn encode_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn encode_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.push(0),
        Value::Integer(i) => {
            out.push(1);
            out.extend_from_slice(&i.to_le_bytes());
        }
        Value::Real(r) => {
            out.push(2);
            out.extend_from_slice(&r.to_bits().to_le_bytes());
        }
        Value::Text(t) => {
            out.push(3);
            encode_bytes(out, t.as_bytes());
        }
        Value::Blob(b) => {
            out.push(4);
            encode_bytes(out, b);
        }
    }
}

/// A run's outcome as the live queries sharing it see it.
pub(super) type Outcome = Arc<Result<Run>>;

/// A run in progress (or done), with the commits it is known to include.
struct Latest {
    /// Commits published before the run started: its snapshot includes them all.
    includes: u64,
    run: Shared<BoxFuture<'static, Outcome>>,
}

/// The runs of one key, shared by its live queries.
struct Slot {
    key: RunKey,
    latest: Mutex<Option<Latest>>,
}

/// Every key some live query of a database holds, to find the others of its key.
#[derive(Default)]
pub(crate) struct SharedRuns {
    slots: Mutex<HashMap<RunKey, Weak<Slot>>>,
}

impl SharedRuns {
    /// The handle of `key`'s runs, shared with the live queries holding it already.
    pub(super) fn join(self: &Arc<Self>, key: RunKey) -> SharedRun {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = match slots.get(&key).and_then(Weak::upgrade) {
            Some(slot) => slot,
            None => {
                let slot = Arc::new(Slot {
                    key: key.clone(),
                    latest: Mutex::new(None),
                });
                slots.insert(key, Arc::downgrade(&slot));
                slot
            }
        };
        SharedRun {
            slot,
            runs: Arc::clone(self),
        }
    }

    /// How many distinct keys live queries hold (for tests).
    #[cfg(test)]
    pub(crate) fn keys(&self) -> usize {
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// One live query's hold on the runs of its key; the key is forgotten when the last
/// holder drops.
pub(super) struct SharedRun {
    slot: Arc<Slot>,
    runs: Arc<SharedRuns>,
}

impl SharedRun {
    /// The outcome of a run whose snapshot includes the first `needed` commits, and
    /// whether it was another live query's run. `published` reads how many commits are
    /// published now; `start` starts a run (its snapshot taken after it is polled).
    pub(super) async fn run(
        &self,
        needed: u64,
        published: impl FnOnce() -> u64,
        start: impl FnOnce() -> BoxFuture<'static, Result<Run>>,
    ) -> (Outcome, bool) {
        if Arc::strong_count(&self.slot) == 1 {
            // Alone with this key: nobody to share with.
            return (Arc::new(start().await), false);
        }
        let (run, joined) = {
            let mut latest = self
                .slot
                .latest
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match latest.as_ref() {
                Some(latest) if latest.includes >= needed => (latest.run.clone(), true),
                _ => {
                    // Read under the slot lock, before the run is polled: the run's
                    // snapshot is taken later, so it includes all these commits.
                    let includes = published();
                    let run = start().map(Arc::new).boxed().shared();
                    *latest = Some(Latest {
                        includes,
                        run: run.clone(),
                    });
                    (run, false)
                }
            }
        };
        (run.await, joined)
    }
}

impl Drop for SharedRun {
    fn drop(&mut self) {
        let mut slots = self
            .runs
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Under the map lock nobody can take a new hold: this is the last one when the
        // count is 1.
        if Arc::strong_count(&self.slot) == 1 {
            slots.remove(&self.slot.key);
        }
    }
}
