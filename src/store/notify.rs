//! Table-change notifications: one [`TableUpdates`] per committed write transaction,
//! routed by table to the watchers that asked for it, with bounded memory.
//!
//! # Routing
//! Every watcher registers the tables it watches (or "every table") in one registry,
//! indexed by table name. The writer, publishing a commit, looks up the tables the commit
//! touched and delivers the event only to the watchers of those tables (plus the
//! watchers of every table), each receiving just the watched tables that changed. So a
//! commit costs time proportional to the watchers it concerns, not to the number
//! mounted, and a watcher of another table is not even woken. (The first design, one
//! `broadcast` channel that every watcher filtered after waking, spent most of a
//! 1,000-live-query workload waking tasks that had nothing to do.)
//!
//! # Bounded memory, exact lag merge
//! Each watcher has its own queue of at most [`QUEUE_CAPACITY`] events. When a watcher
//! falls that far behind, its queued events are merged into one set of table names, and
//! it next receives one event flagged [`lagged`](TableUpdates::is_lagged) listing exactly
//! the watched tables changed by the events it missed, then the events that came after.
//! Never "everything changed": with a thousand live queries, that made queries on
//! untouched tables re-run. A watcher's memory is bounded by the queue and its tables.
//!
//! # Ordering and wake-ups
//! Delivery happens under the registry lock, so a watcher changing what it watches
//! ([`TableUpdateStream::retarget`]) sees every commit exactly once, either under its old
//! or its new tables. Wakers are called after the lock is released.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use futures::Stream;

/// Events a watcher may fall behind before it gets one merged `lagged` event instead.
pub(crate) const QUEUE_CAPACITY: usize = 256;

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

    /// Whether `table` changed.
    pub fn contains(&self, table: &str) -> bool {
        self.tables.iter().any(|t| t.eq_ignore_ascii_case(table))
    }

    /// The changed tables, sorted.
    pub fn tables(&self) -> impl Iterator<Item = &str> {
        self.tables.iter().map(String::as_str)
    }

    /// True when the watcher fell behind and several commits were merged into this one
    /// event. The listed tables are still exact: every table changed by any merged commit,
    /// and no other.
    pub fn is_lagged(&self) -> bool {
        self.lagged
    }
}

/// Which tables a watcher receives: lowercase names, or every table.
type Filter = Option<Box<[String]>>;

fn lowercase_filter(tables: Option<Vec<String>>) -> Filter {
    tables.map(|tables| {
        let mut tables: Vec<String> = tables.iter().map(|t| t.to_ascii_lowercase()).collect();
        tables.sort_unstable();
        tables.dedup();
        tables.into()
    })
}

fn passes(filter: &Filter, table: &str) -> bool {
    filter
        .as_ref()
        .is_none_or(|f| f.iter().any(|w| w.eq_ignore_ascii_case(table)))
}

/// One subscribed stream's end of the registry: its filter (fixed for its lifetime; a
/// retarget replaces the watcher) and its inbox.
struct Watcher {
    id: u64,
    filter: Filter,
    /// The publication that last delivered here (at registration: the publications
    /// so far, which the watcher's consumer must see too): a commit touching two
    /// watched tables is delivered once. Written only under the registry lock.
    delivered: AtomicU64,
    inbox: Mutex<Inbox>,
}

#[derive(Default)]
struct Inbox {
    queue: VecDeque<TableUpdates>,
    /// Tables of the events merged away because the queue was full, reported as one
    /// lagged event before the queue.
    missed: BTreeSet<String>,
    waker: Option<Waker>,
    /// The database closed: nothing more will arrive.
    closed: bool,
}

impl Watcher {
    fn inbox(&self) -> MutexGuard<'_, Inbox> {
        // A panic while holding this lock cannot leave the queue inconsistent.
        self.inbox.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `update` (merging the queue into a lag report when full); returns the
    /// waker to call once the registry lock is released.
    fn deliver(&self, update: TableUpdates) -> Option<Waker> {
        let mut inbox = self.inbox();
        if inbox.queue.len() >= QUEUE_CAPACITY {
            let queued = std::mem::take(&mut inbox.queue);
            let tables = queued
                .iter()
                .chain(std::iter::once(&update))
                .flat_map(|u| u.tables.iter().cloned());
            inbox.missed.extend(tables);
        } else {
            inbox.queue.push_back(update);
        }
        inbox.waker.take()
    }
}

/// Every watcher, indexed by the tables it watches. Shared by the publisher (the writer
/// thread) and the streams, which register and unregister themselves.
#[derive(Default)]
struct Registry {
    next_id: u64,
    /// Publications so far, watched or not (marks deliveries, see
    /// [`Watcher::delivered`], and dates snapshots, see
    /// [`TableUpdateStream::publications`]).
    published: u64,
    /// Lowercase table name → its watchers, by id.
    by_table: HashMap<String, HashMap<u64, Arc<Watcher>>>,
    /// Watchers of every table.
    everything: HashMap<u64, Arc<Watcher>>,
    watchers: usize,
    /// The publisher is gone (the database closed).
    closed: bool,
}

impl Registry {
    fn register(&mut self, filter: Filter) -> Arc<Watcher> {
        self.next_id += 1;
        let watcher = Arc::new(Watcher {
            id: self.next_id,
            filter,
            delivered: AtomicU64::new(self.published),
            inbox: Mutex::new(Inbox {
                closed: self.closed,
                ..Inbox::default()
            }),
        });
        if !self.closed {
            match &watcher.filter {
                None => {
                    self.everything.insert(watcher.id, Arc::clone(&watcher));
                }
                Some(tables) => {
                    for table in tables.iter() {
                        self.by_table
                            .entry(table.clone())
                            .or_default()
                            .insert(watcher.id, Arc::clone(&watcher));
                    }
                }
            }
            self.watchers += 1;
        }
        watcher
    }

    fn unregister(&mut self, watcher: &Watcher) {
        let removed = match &watcher.filter {
            None => self.everything.remove(&watcher.id).is_some(),
            Some(tables) => {
                let mut removed = false;
                for table in tables.iter() {
                    if let Some(watchers) = self.by_table.get_mut(table) {
                        removed |= watchers.remove(&watcher.id).is_some();
                        if watchers.is_empty() {
                            self.by_table.remove(table);
                        }
                    }
                }
                removed
            }
        };
        if removed {
            self.watchers -= 1;
        }
    }
}

/// The registry, shared by the publisher and every stream.
#[derive(Default)]
struct Hub {
    registry: Mutex<Registry>,
}

impl Hub {
    fn registry(&self) -> MutexGuard<'_, Registry> {
        // Every update of the registry is complete before anything can panic.
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The writer's end: maps raw table names to public names and delivers each commit to
/// the watchers of its tables. Watch streams end when it is dropped (the writer thread
/// closes).
pub(crate) struct Publisher {
    hub: Arc<Hub>,
    /// Data table name → public name, from the current schema.
    public_names: Arc<HashMap<String, String>>,
}

/// Where new watchers subscribe; does not keep streams open.
#[derive(Clone)]
pub(crate) struct Subscriptions {
    hub: Arc<Hub>,
}

impl Subscriptions {
    /// How many streams are subscribed (0 once the database closed).
    pub(crate) fn receiver_count(&self) -> usize {
        self.hub.registry().watchers
    }
}

impl Publisher {
    pub(super) fn new() -> (Self, Subscriptions) {
        let hub = Arc::new(Hub::default());
        let subscriptions = Subscriptions {
            hub: Arc::clone(&hub),
        };
        let publisher = Self {
            hub,
            public_names: Arc::default(),
        };
        (publisher, subscriptions)
    }

    pub(super) fn set_public_names(&mut self, names: Arc<HashMap<String, String>>) {
        self.public_names = names;
    }

    /// Delivers one committed transaction's changes to the watchers of the tables it
    /// touched. Call only once the commit is visible to other connections.
    pub(super) fn publish(&self, raw_tables: impl IntoIterator<Item = String>) {
        let mut wakers = Vec::new();
        {
            let mut registry = self.hub.registry();
            registry.published += 1;
            if registry.watchers == 0 {
                return; // nobody listens: skip building the event
            }
            let tables: Vec<String> = raw_tables
                .into_iter()
                .map(|raw| self.public_name(raw))
                .collect();
            let update = TableUpdates::new(tables, false);
            let publication = registry.published;
            let registry = &*registry;
            let mut deliver = |watcher: &Arc<Watcher>| {
                if watcher.delivered.swap(publication, Ordering::Relaxed) == publication {
                    return; // already reached through another of its tables
                }
                let event = if update.tables().all(|t| passes(&watcher.filter, t)) {
                    update.clone() // shares the name list
                } else {
                    let tables = update
                        .tables()
                        .filter(|t| passes(&watcher.filter, t))
                        .map(str::to_owned)
                        .collect();
                    TableUpdates::new(tables, false)
                };
                wakers.extend(watcher.deliver(event));
            };
            for table in update.tables() {
                let watchers = if table.bytes().any(|b| b.is_ascii_uppercase()) {
                    registry.by_table.get(&table.to_ascii_lowercase())
                } else {
                    registry.by_table.get(table)
                };
                watchers
                    .into_iter()
                    .flat_map(HashMap::values)
                    .for_each(&mut deliver);
            }
            registry.everything.values().for_each(&mut deliver);
        }
        for waker in wakers {
            waker.wake();
        }
    }

    fn public_name(&self, raw: String) -> String {
        if let Some(name) = self.public_names.get(&raw.to_ascii_lowercase()) {
            return name.clone();
        }
        match crate::schema::names::app_table(&raw) {
            Some(name) => name.to_owned(),
            None => raw,
        }
    }
}

impl Drop for Publisher {
    /// Ends every stream: the database closed.
    fn drop(&mut self) {
        let mut wakers = Vec::new();
        {
            let mut registry = self.hub.registry();
            registry.closed = true;
            let by_table = std::mem::take(&mut registry.by_table);
            let everything = std::mem::take(&mut registry.everything);
            registry.watchers = 0;
            let watchers = by_table
                .into_values()
                .flat_map(HashMap::into_values)
                .chain(everything.into_values());
            for watcher in watchers {
                let mut inbox = watcher.inbox();
                inbox.closed = true;
                wakers.extend(inbox.waker.take());
            }
        }
        for waker in wakers {
            waker.wake();
        }
    }
}

/// A stream of [`TableUpdates`], from [`Database::watch_tables`](crate::Database::watch_tables)
/// or [`Database::watch_all_updates`](crate::Database::watch_all_updates).
///
/// It is subscribed from the moment it is created, so no commit after that is missed,
/// even before the first poll. Commits that touch none of its tables never wake it. It
/// ends when the database is closed.
#[must_use = "a stream yields nothing unless polled; dropping it unsubscribes"]
pub struct TableUpdateStream {
    hub: Arc<Hub>,
    watcher: Arc<Watcher>,
    /// Listed by the initial event when watching all tables.
    all_tables: Vec<String>,
    /// Watched names as given (`None`: all tables), for the initial event.
    watched: Option<Vec<String>>,
    initial: Option<TableUpdates>,
}

impl fmt::Debug for TableUpdateStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TableUpdateStream")
            .field("filter", &self.watched)
            .finish_non_exhaustive()
    }
}

impl TableUpdateStream {
    pub(crate) fn new(
        subscriptions: &Subscriptions,
        filter: Option<Vec<String>>,
        all_tables: Vec<String>,
    ) -> Self {
        // A closed database registers nothing: the stream is empty.
        let watcher = subscriptions
            .hub
            .registry()
            .register(lowercase_filter(filter.clone()));
        Self {
            hub: Arc::clone(&subscriptions.hub),
            watcher,
            all_tables,
            watched: filter,
            initial: None,
        }
    }

    /// How many names an initial event of an all-tables stream would list (for tests).
    #[cfg(test)]
    pub(crate) fn all_tables_kept(&self) -> usize {
        self.all_tables.len()
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
        let tables = self.watched.as_ref().unwrap_or(&self.all_tables).clone();
        self.initial = Some(TableUpdates::new(tables, false));
        self
    }

    /// The publications this stream has covered: those before it subscribed and the
    /// last one delivered to it. A snapshot taken once
    /// [`publications`](Self::publications) reached this number reflects every commit
    /// this stream has reported, and every commit before it subscribed.
    pub(crate) fn covered_through(&self) -> u64 {
        // The publisher writes it before it locks the inbox to queue the event, and the
        // consumer drained the inbox under that lock: never behind what was drained.
        self.watcher.delivered.load(Ordering::Relaxed)
    }

    /// How many commits have been published so far. Each is published once visible to
    /// other connections, so a snapshot taken after reading `n` includes the first `n`.
    pub(crate) fn publications(&self) -> u64 {
        self.hub.registry().published
    }

    /// A handle that reads [`publications`](Self::publications) from any thread (a run
    /// reads it on its connection's thread, just before its snapshot).
    pub(crate) fn publication_counter(&self) -> PublicationCounter {
        PublicationCounter(Arc::clone(&self.hub))
    }

    /// Drops the queued events when every one of them is covered by a snapshot taken
    /// once `stamp` commits were published: a live query whose run waited for its turn
    /// was told of commits its run already saw. Keeps them all when one came later.
    pub(crate) fn discard_covered(&self, stamp: u64) {
        let mut inbox = self.watcher.inbox();
        // Under the inbox lock: a publisher that already marked a later delivery here
        // (it marks before it takes this lock to queue) is seen, and one that has not
        // yet will queue its event after this.
        if self.watcher.delivered.load(Ordering::Relaxed) <= stamp {
            inbox.queue.clear();
            inbox.missed.clear();
        }
    }

    /// Watches `tables` from now on (`None`: every table), without missing or repeating a
    /// commit: events already queued are kept, narrowed to the new tables. Live queries
    /// subscribe to everything before they know what they read, then narrow down.
    pub(crate) fn retarget(&mut self, tables: Option<Vec<String>>) {
        let filter = lowercase_filter(tables.clone());
        if filter == self.watcher.filter {
            return;
        }
        let mut registry = self.hub.registry();
        // Under the registry lock no commit is being delivered, so every commit lands
        // either in the old inbox (moved below) or in the new one.
        let watcher = registry.register(filter);
        registry.unregister(&self.watcher);
        drop(registry);
        {
            let mut old = self.watcher.inbox();
            let mut new = watcher.inbox();
            let keep = |t: &String| passes(&watcher.filter, t);
            new.missed = std::mem::take(&mut old.missed)
                .into_iter()
                .filter(keep)
                .collect();
            new.queue = std::mem::take(&mut old.queue)
                .into_iter()
                .filter_map(|update| {
                    let tables: Vec<String> =
                        update.tables.iter().filter(|t| keep(t)).cloned().collect();
                    (!tables.is_empty()).then(|| TableUpdates::new(tables, update.lagged))
                })
                .collect();
            new.closed |= old.closed;
            // The task polling this stream may be parked on the old inbox's waker.
            new.waker = old.waker.take();
        }
        self.watcher = watcher;
        self.watched = tables;
    }
}

/// Reads a store's publication count ([`TableUpdateStream::publications`]).
pub(crate) struct PublicationCounter(Arc<Hub>);

impl PublicationCounter {
    pub(crate) fn get(&self) -> u64 {
        self.0.registry().published
    }
}

impl Drop for TableUpdateStream {
    fn drop(&mut self) {
        self.hub.registry().unregister(&self.watcher);
    }
}

impl Stream for TableUpdateStream {
    type Item = TableUpdates;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<TableUpdates>> {
        if let Some(initial) = self.initial.take() {
            return Poll::Ready(Some(initial));
        }
        let mut inbox = self.watcher.inbox();
        if !inbox.missed.is_empty() {
            let tables = std::mem::take(&mut inbox.missed).into_iter().collect();
            return Poll::Ready(Some(TableUpdates::new(tables, true)));
        }
        if let Some(update) = inbox.queue.pop_front() {
            return Poll::Ready(Some(update));
        }
        if inbox.closed {
            return Poll::Ready(None);
        }
        match &mut inbox.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}
