//! Table-change notifications: one [`TableUpdates`] per committed write transaction,
//! broadcast to every watcher with bounded memory.
//!
//! The channel is `tokio::sync::broadcast`, which needs no runtime. (`async-broadcast`,
//! the first choice, took about 23 µs to wake a task on another thread here, against
//! about 7 µs for tokio's channel; waking watchers fast is this module's whole job.)
//!
//! The channel holds at most [`CHANNEL_CAPACITY`] events. When a watcher falls that far
//! behind, the oldest events are dropped for it and it receives one event flagged
//! [`lagged`](TableUpdates::is_lagged) that reports every table as changed: it may see
//! changes merged, but it never misses that a table changed.

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;
use futures::stream::BoxStream;
use tokio::sync::broadcast::{self, Receiver, Sender, WeakSender, error::RecvError};

/// Events a watcher may fall behind before it is told "everything changed".
pub(crate) const CHANNEL_CAPACITY: usize = 256;

/// The tables one committed transaction changed, by the names app code uses in SQL:
/// `ps_data__todos` is reported as `todos` (or as its view name override). Internal
/// tables such as `ps_crud` keep their names.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> livesync::Result<()> {
/// use futures::StreamExt;
/// use livesync::{Column, Database, Schema, Table};
/// let db = Database::in_memory(Schema::new([Table::new("todos", [Column::text("title")])])).await?;
/// let mut updates = db.watch_tables(["todos"]);
/// db.execute("INSERT INTO todos(id, title) VALUES ('1', 'milk')", ()).await?;
/// let update = updates.next().await.unwrap();
/// assert!(update.contains("todos"));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableUpdates {
    /// Sorted, deduplicated names.
    tables: Arc<[String]>,
    lagged: bool,
}

impl TableUpdates {
    pub(crate) fn new(mut tables: Vec<String>, lagged: bool) -> Self {
        tables.sort_unstable();
        tables.dedup();
        Self {
            tables: tables.into(),
            lagged,
        }
    }

    /// Whether `table` changed. Always true for a [lagged](Self::is_lagged) event.
    pub fn contains(&self, table: &str) -> bool {
        self.lagged || self.tables.iter().any(|t| t.eq_ignore_ascii_case(table))
    }

    /// The changed tables, sorted.
    pub fn tables(&self) -> impl Iterator<Item = &str> {
        self.tables.iter().map(String::as_str)
    }

    /// True when the watcher fell behind and events were merged: treat every table as
    /// changed. The listed tables are then the watched ones (or the schema's tables, for
    /// [`watch_all_updates`](crate::Database::watch_all_updates)).
    pub fn is_lagged(&self) -> bool {
        self.lagged
    }
}

/// The writer's end: maps raw table names to public names and broadcasts. Watch streams
/// end when it is dropped (the writer thread closes).
pub(crate) struct Publisher {
    sender: Sender<TableUpdates>,
    /// Data table name → public name, from the current schema.
    public_names: HashMap<String, String>,
}

/// Where new watchers subscribe; does not keep the channel open.
pub(crate) type Subscriptions = WeakSender<TableUpdates>;

impl Publisher {
    pub(super) fn new() -> (Self, Subscriptions) {
        let (sender, _) = broadcast::channel(CHANNEL_CAPACITY);
        let subscriptions = sender.downgrade();
        let publisher = Self {
            sender,
            public_names: HashMap::new(),
        };
        (publisher, subscriptions)
    }

    pub(super) fn set_public_names(&mut self, names: HashMap<String, String>) {
        self.public_names = names;
    }

    /// Broadcasts one committed transaction's changes. Call only once the commit is
    /// visible to other connections.
    pub(super) fn publish(&self, raw_tables: HashSet<String>) {
        if self.sender.receiver_count() == 0 {
            return; // nobody listens: skip building the event
        }
        let tables = raw_tables
            .into_iter()
            .map(|raw| self.public_name(raw))
            .collect();
        // A full channel drops its oldest event (lagging receivers are told); an error
        // only means nobody is listening.
        let _ = self.sender.send(TableUpdates::new(tables, false));
    }

    fn public_name(&self, raw: String) -> String {
        if let Some(name) = self.public_names.get(&raw.to_ascii_lowercase()) {
            return name.clone();
        }
        raw.strip_prefix("ps_data__")
            .or_else(|| raw.strip_prefix("ps_data_local__"))
            .map(str::to_owned)
            .unwrap_or(raw)
    }
}

/// A stream of [`TableUpdates`], from [`Database::watch_tables`](crate::Database::watch_tables)
/// or [`Database::watch_all_updates`](crate::Database::watch_all_updates).
///
/// It is subscribed from the moment it is created, so no commit after that is missed,
/// even before the first poll. It ends when the database is closed.
pub struct TableUpdateStream {
    /// `Err(())` marks a lag: events were dropped for this watcher.
    events: BoxStream<'static, Result<TableUpdates, ()>>,
    /// Watched names (`None`: all tables).
    filter: Option<Vec<String>>,
    /// Reported on lag when watching all tables.
    all_tables: Vec<String>,
    initial: Option<TableUpdates>,
}

impl TableUpdateStream {
    pub(crate) fn new(
        subscriptions: &Subscriptions,
        filter: Option<Vec<String>>,
        all_tables: Vec<String>,
    ) -> Self {
        // A closed database has no sender left: the stream is empty.
        let events = match subscriptions.upgrade() {
            Some(sender) => events(sender.subscribe()),
            None => Box::pin(futures::stream::empty()),
        };
        Self {
            events,
            filter,
            all_tables,
            initial: None,
        }
    }

    /// Makes the first item an event listing every watched table, so a consumer can do
    /// its initial work in the same loop as later updates.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> livesync::Result<()> {
    /// use futures::StreamExt;
    /// let db = livesync::Database::in_memory(Default::default()).await?;
    /// let mut updates = db.watch_tables(["ps_crud"]).with_initial_event();
    /// assert!(updates.next().await.unwrap().contains("ps_crud"));
    /// # Ok(()) }
    /// ```
    pub fn with_initial_event(mut self) -> Self {
        self.initial = Some(self.everything(false));
        self
    }

    fn everything(&self, lagged: bool) -> TableUpdates {
        let tables = self.filter.as_ref().unwrap_or(&self.all_tables).clone();
        TableUpdates::new(tables, lagged)
    }

    fn filtered(&self, update: TableUpdates) -> Option<TableUpdates> {
        let Some(filter) = &self.filter else {
            return Some(update);
        };
        let tables: Vec<String> = update
            .tables()
            .filter(|t| filter.iter().any(|f| f.eq_ignore_ascii_case(t)))
            .map(str::to_owned)
            .collect();
        (!tables.is_empty()).then(|| TableUpdates::new(tables, false))
    }
}

impl Stream for TableUpdateStream {
    type Item = TableUpdates;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<TableUpdates>> {
        if let Some(initial) = self.initial.take() {
            return Poll::Ready(Some(initial));
        }
        loop {
            match self.events.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(update))) => {
                    if let Some(update) = self.filtered(update) {
                        return Poll::Ready(Some(update));
                    }
                }
                Poll::Ready(Some(Err(()))) => return Poll::Ready(Some(self.everything(true))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// The receiver as a stream of events, `Err(())` standing for "some were dropped".
fn events(receiver: Receiver<TableUpdates>) -> BoxStream<'static, Result<TableUpdates, ()>> {
    Box::pin(futures::stream::unfold(
        receiver,
        |mut receiver| async move {
            match receiver.recv().await {
                Ok(update) => Some((Ok(update), receiver)),
                Err(RecvError::Lagged(_)) => Some((Err(()), receiver)),
                Err(RecvError::Closed) => None,
            }
        },
    ))
}
