//! What a live query backed by sync streams waits for, independent of the UI framework.
//!
//! Shared by the Dioxus and the Leptos adapters: subscribing to the streams
//! a query depends on, deciding from the [`SyncStatus`] whether they have synced or the
//! service refused them, and driving a query that must not report rows before that.

use std::sync::Arc;

use super::LiveQueryOptions;
use super::live_options::StreamSpec;
use crate::{Database, Error, FromRow, Query, Result, SyncStatus, SyncStreamSubscription};
use futures::StreamExt;

/// A live value's source in the Leptos adapters: the query, and the streams it waits for
/// (none for a plain live query). Both adapters' resources are keyed by it.
#[cfg_attr(
    not(any(feature = "leptos", feature = "leptos08")),
    allow(dead_code, reason = "keys the Leptos adapters' resources only")
)]
pub(crate) trait LiveKey<T>: Clone + PartialEq + 'static {
    fn query(&self) -> Query<T>;
    fn streams(&self) -> &[StreamSpec];
}

impl<T: 'static> LiveKey<T> for Query<T> {
    fn query(&self) -> Query<T> {
        self.clone()
    }
    fn streams(&self) -> &[StreamSpec] {
        &[]
    }
}

impl<T: 'static> LiveKey<T> for (Query<T>, LiveQueryOptions) {
    fn query(&self) -> Query<T> {
        self.0.clone()
    }
    fn streams(&self) -> &[StreamSpec] {
        self.1.streams()
    }
}

/// Where the streams of a query stand.
#[derive(Debug, Clone)]
pub(crate) enum Gate {
    /// A stream has not synced yet (or is not in the status yet).
    Pending,
    /// Every stream has synced, and the service reports no error for any of them.
    Ready,
    /// The service reported errors for a stream.
    Failed(Error),
}

impl Gate {
    #[cfg_attr(
        not(any(feature = "dioxus", feature = "leptos")),
        allow(dead_code, reason = "the Leptos 0.8 adapter waits in `drive` instead")
    )]
    pub(crate) fn is_ready(&self) -> bool {
        matches!(self, Self::Ready)
    }
}

/// The state of `specs` in `status`. Errors win over "not synced yet": a subscription
/// the service refused would otherwise wait forever (or count as synced with no data).
pub(crate) fn gate(status: &SyncStatus, specs: &[StreamSpec]) -> Gate {
    let mut pending = false;
    for spec in specs {
        match status.for_stream(&spec.name, spec.parameters.clone()) {
            Some(stream) if !stream.errors.is_empty() => {
                return Gate::Failed(service_error(spec, &stream.errors));
            }
            Some(stream) if stream.has_synced() => {}
            _ => pending = true,
        }
    }
    if pending { Gate::Pending } else { Gate::Ready }
}

/// The error a query reports while the service refuses one of its streams.
fn service_error(spec: &StreamSpec, errors: &[String]) -> Error {
    let parameters = spec
        .parameters
        .as_ref()
        .map(|p| format!(" {p}"))
        .unwrap_or_default();
    Error::Remote(format!(
        "the sync service refused stream {:?}{parameters}: {}",
        spec.name,
        errors.join("; ")
    ))
}

/// Subscribes to every stream; the handles keep them subscribed until dropped.
pub(crate) async fn subscribe_all(
    db: &Database,
    specs: &[StreamSpec],
) -> Result<Vec<SyncStreamSubscription>> {
    let mut held = Vec::with_capacity(specs.len());
    for spec in specs {
        let stream = db.sync_stream(spec.name.clone(), spec.parameters.clone());
        held.push(stream.subscribe_with(spec.options).await?);
    }
    Ok(held)
}

/// Subscribes to `specs` (for as long as it waits) and waits until they have all synced
/// (`Ok`) or the service refused one (`Err`).
///
/// # Errors
/// The stream's error from the service, a local subscription error, or
/// [`Error::Closed`] when the database closed meanwhile.
#[allow(dead_code)] // used by the Dioxus adapter only
pub(crate) async fn wait_until_synced(db: &Database, specs: &[StreamSpec]) -> Result<()> {
    let _held = subscribe_all(db, specs).await?;
    let mut statuses = db.watch_status();
    while let Some(status) = statuses.next().await {
        match gate(&status, specs) {
            Gate::Ready => return Ok(()),
            Gate::Failed(error) => return Err(error),
            Gate::Pending => {}
        }
    }
    Err(Error::Closed)
}

/// The error of a live value that lists sync streams but finds no database in context
/// (logged too): `entry` names the function called, `provide` the `provide_database` to
/// call first.
#[cfg_attr(
    not(any(feature = "leptos", feature = "leptos08")),
    allow(dead_code, reason = "the Leptos adapters' values only")
)]
pub(crate) fn no_database(entry: &str, provide: &str) -> Error {
    tracing::error!("{entry}: no database in context; call {provide} first");
    Error::InvalidParameter(format!(
        "the live query lists sync streams but no database was provided: call {provide} first"
    ))
}

/// [`drive`] for a value that holds the rows as a `Vec`: each value goes to `emit`
/// (`false` once nobody listens), the synced step needs nothing more.
#[cfg_attr(
    not(any(feature = "leptos", feature = "leptos08")),
    allow(dead_code, reason = "the Leptos adapters' values only")
)]
pub(crate) async fn drive_rows<T: FromRow + Clone>(
    db: &Database,
    specs: &[StreamSpec],
    query: Query<T>,
    mut emit: impl FnMut(Result<Vec<T>>) -> bool,
) {
    drive(db, specs, query, |step| match step {
        Step::Synced => true,
        Step::Value(rows) => emit(rows.map(|rows| rows.to_vec())),
    })
    .await;
}

/// What [`drive`] reports.
pub(crate) enum Step<T> {
    /// Every stream has synced (reported once, before the first rows).
    Synced,
    /// The query's rows, or an error: of the query, of subscribing, or the service's
    /// error for a stream (while it lasts).
    Value(Result<Arc<[T]>>),
}

/// Keeps `specs` subscribed and feeds `query` to `emit`, but only once every stream has
/// synced: until then nothing but errors is reported. After that, later syncs of the
/// streams never hold the rows back again; a stream the service starts refusing turns the
/// value into its error until the refusal ends (then the latest rows come back). Runs
/// until the database closes or `emit` returns `false`.
pub(crate) async fn drive<T: FromRow>(
    db: &Database,
    specs: &[StreamSpec],
    query: Query<T>,
    mut emit: impl FnMut(Step<T>) -> bool,
) {
    let _held = match subscribe_all(db, specs).await {
        Ok(held) => held,
        Err(error) => {
            tracing::warn!(%error, "could not subscribe to the sync streams of a live query");
            emit(Step::Value(Err(error)));
            // Nothing more can happen for these streams; the owner stops this task.
            return std::future::pending().await;
        }
    };
    let mut statuses = db.watch_status();
    // Until synced: errors only.
    let mut refused = false;
    loop {
        let Some(status) = statuses.next().await else {
            return;
        };
        match gate(&status, specs) {
            Gate::Ready => break,
            Gate::Failed(error) => {
                if !refused {
                    refused = true;
                    if !emit(Step::Value(Err(error))) {
                        return;
                    }
                }
            }
            Gate::Pending => refused = false,
        }
    }
    if !emit(Step::Synced) {
        return;
    }

    enum Event<T> {
        Rows(Result<Arc<[T]>>),
        Status(SyncStatus),
    }
    let rows = query.watch().map(|rows| Event::Rows(rows.map(Arc::from)));
    let mut events = std::pin::pin!(futures::stream::select(rows, statuses.map(Event::Status)));
    let mut latest: Option<Result<Arc<[T]>>> = None;
    let mut refusal: Option<Error> = None;
    while let Some(event) = events.next().await {
        let out = match event {
            Event::Rows(result) => {
                latest = Some(result.clone());
                match refusal {
                    Some(_) => None,
                    None => Some(result),
                }
            }
            Event::Status(status) => match (gate(&status, specs), &refusal) {
                (Gate::Failed(error), None) => {
                    refusal = Some(error.clone());
                    Some(Err(error))
                }
                (Gate::Failed(_), Some(_)) => None,
                // Ready, or not synced again (a sign-out cleared the sync times): the
                // rows stay; only the end of a refusal changes what is shown.
                (_, Some(_)) => {
                    refusal = None;
                    latest.clone()
                }
                (_, None) => None,
            },
        };
        if let Some(out) = out
            && !emit(Step::Value(out))
        {
            return;
        }
    }
}
