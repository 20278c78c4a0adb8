//! The download loop (docs/sync-protocol.md §8.1, §8.3, §8.6): one iteration per
//! `/sync/stream` request, reading lines as bytes arrive and handing each to the
//! [`Iteration`] state machine, reconnecting after the retry delay when it ends.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Future, StreamExt};
use tracing::Instrument;

use super::checkpoint_requests::Seeding;
use super::connection::{Engine, after_iteration};
use super::framing::{Framing, LineReader};
use super::iteration::{Iteration, Next};
use super::oplog;
use super::protocol::SyncLine;
use super::status::now_micros;
use super::stream_state::{StreamState, offline_statuses};
use super::subscriptions;
use super::transport;
use crate::{BackendConnector, Credentials, Error, Result};

/// How an iteration ended.
pub(super) enum End {
    /// Reconnect at once, without showing a disconnect (new credentials, new
    /// subscriptions).
    Hidden,
    /// Reconnect after the retry delay.
    Delayed(Option<Error>),
}

pub(super) async fn download_loop<C: BackendConnector>(engine: Arc<Engine<C>>) {
    loop {
        let end = iteration(&engine)
            .instrument(tracing::debug_span!("sync_iteration"))
            .await;
        after_iteration(&engine.db).await;
        // Checkpoint requests wait for the next attempt to seed, or fail until then.
        engine.link.set_seeding(match &end {
            End::Hidden => Seeding::Pending,
            End::Delayed(Some(error)) => Seeding::Unavailable(error.clone()),
            End::Delayed(None) => Seeding::Unavailable(Error::Disconnected(
                "the sync stream ended; reconnecting after the retry delay".into(),
            )),
        });
        if let End::Delayed(error) = end {
            if let Some(error) = &error {
                tracing::warn!(%error, "sync iteration failed; retrying after the delay");
            }
            engine.status().update(|s| {
                s.connected = false;
                s.connecting = false;
                s.downloading = None;
                if let Some(error) = error {
                    s.download_error = Some(error.into());
                }
            });
            engine.db.runtime().sleep(engine.options.retry_delay).await;
        }
    }
}

async fn iteration<C: BackendConnector>(engine: &Engine<C>) -> End {
    engine.status().update(|s| {
        s.connecting = true;
        s.downloading = None;
    });
    engine.link.set_seeding(Seeding::Pending);
    match stream(engine).await {
        Ok(end) => end,
        Err(error) => End::Delayed(Some(engine.check_auth(error))),
    }
}

type CredentialsFuture<'a> = Pin<Box<dyn Future<Output = Result<Credentials>> + Send + 'a>>;

async fn stream<C: BackendConnector>(engine: &Engine<C>) -> Result<End> {
    let credentials = engine.credentials().await?;
    let registry = &engine.db.sync_slot().streams;
    // Subscribed before the subscriptions are read: a change after this point is seen.
    let mut subscription_changes = registry.changes();
    subscription_changes.borrow_and_update();
    let active = registry.active_keys();
    let now = now_micros();
    // Read on the writer, behind any data line still being stored by a previous
    // connection, so the `after` positions include it (never re-download an op).
    let (buckets, stored) = engine
        .db
        .store()
        .transaction(move |tx| {
            let stored = subscriptions::refreshed(tx, &active, now)?;
            Ok((oplog::requested_buckets(tx)?, stored))
        })
        .await?;
    // A new iteration starts from what is stored (docs/sync-protocol.md §7.2).
    engine
        .status()
        .update(|s| s.streams = offline_statuses(&stored.rows, &s.streams));
    let request = transport::StreamRequest {
        buckets: &buckets,
        client_id: &engine.link.client_id,
        parameters: &engine.options.params,
        include_default_streams: engine.options.include_default_streams,
        subscriptions: &stored.requested,
        app_metadata: &engine.options.app_metadata,
    };
    tracing::debug!(buckets = buckets.len(), "opening sync stream");
    let idle = engine.options.idle_timeout;
    let open = transport::open_stream(
        &engine.link.http,
        &credentials,
        &request,
        engine.options.accept_bson,
    );
    let opened = async {
        if !engine.link.uses_requests() {
            return open.await;
        }
        // Seeding checkpoint requests (docs/sync-protocol.md §5.3 step 1) goes along
        // with opening the stream; a failure other than "not supported" fails the attempt.
        let (response, seeded) =
            futures::join!(open, engine.link.seed(engine.db.store(), &credentials));
        seeded?;
        response
    };
    let response = engine
        .db
        .runtime()
        .timeout(idle, opened)
        .await
        .map_err(|_| Error::StreamIdle(idle))??;
    engine.status().update(|s| {
        s.connected = true;
        s.connecting = false;
    });
    // Writes made while offline go out as soon as the service is reachable.
    engine.upload_now.notify_one();

    let _live = registry.iteration_live();
    let mut iteration = Iteration::new(
        buckets.into_iter().map(|(name, _)| name).collect(),
        StreamState::new(stored.requested, stored.rows),
    )
    .uploads(engine.options.mode.uploads());
    let framing = Framing::of_content_type(response.content_type.as_deref());
    tracing::debug!(?framing, "sync stream opened");
    let mut body = response.body;
    // A line (or BSON document) is buffered whole: `max_line_bytes` bounds what one can take.
    let mut reader = LineReader::new(framing, engine.options.max_line_bytes);
    let mut refresh: Option<CredentialsFuture<'_>> = None;
    // Only bytes from the service move the idle deadline (not uploads or refreshes).
    let mut deadline = crate::runtime::IdleDeadline::new(engine.db.runtime().clone(), idle);
    let mut first_line = true;
    loop {
        tokio::select! {
            chunk = deadline.guard(body.next()) => {
                let chunk = chunk.map_err(|_| Error::StreamIdle(idle))?;
                let ended = chunk.is_none();
                if let Some(chunk) = chunk {
                    reader.push(&chunk?);
                }
                // At the end of the body, an unterminated NDJSON remainder is the last
                // line; a BSON document cut short is an error.
                while let Some((line, bytes)) = reader.next_line(ended)? {
                    if std::mem::take(&mut first_line) {
                        // The service answers and speaks the protocol again: an error from an
                        // earlier connection no longer describes the present one.
                        engine.status().update(|s| s.download_error = None);
                    }
                    if let Some(end) = on_line(engine, &mut iteration, &mut refresh, line, bytes).await? {
                        return Ok(end);
                    }
                }
                if ended {
                    tracing::debug!("sync stream ended");
                    return Ok(End::Delayed(None));
                }
            }
            stored = iteration.next_stored(engine.status()) => stored?,
            () = engine.upload_finished.notified() => {
                iteration.upload_finished(engine.db.store(), engine.status()).await?;
            }
            changed = subscription_changes.changed() => {
                if changed.is_ok() && check_subscriptions(engine, &mut iteration).await? {
                    return Ok(End::Hidden);
                }
            }
            fetched = async {
                match refresh.as_mut() {
                    Some(fetching) => fetching.await,
                    None => std::future::pending().await,
                }
            }, if refresh.is_some() => {
                refresh = None;
                match fetched {
                    Ok(fresh) if fresh.token == credentials.token => {
                        // The connector had nothing newer; keep streaming until expiry.
                        tracing::debug!("the connector returned the same token");
                    }
                    Ok(fresh) => {
                        engine.remember_credentials(fresh)?;
                        // Stored data lines must be counted in the next request's positions.
                        iteration.flush(engine.status()).await?;
                        tracing::debug!("reconnecting with refreshed credentials");
                        return Ok(End::Hidden);
                    }
                    // Keep streaming with the current token; the next keepalive retries.
                    Err(error) => tracing::warn!(%error, "could not refresh credentials"),
                }
            }
        }
    }
}

/// Handles one line; `Some` ends the iteration.
async fn on_line<'a, C: BackendConnector>(
    engine: &'a Engine<C>,
    iteration: &mut Iteration,
    refresh: &mut Option<CredentialsFuture<'a>>,
    line: SyncLine,
    bytes: usize,
) -> Result<Option<End>> {
    match iteration
        .handle(engine.db.store(), engine.status(), line, bytes)
        .await?
    {
        Next::Continue => Ok(None),
        Next::CheckSubscriptions => {
            let changed = check_subscriptions(engine, iteration).await?;
            Ok(changed.then_some(End::Hidden))
        }
        Next::RefreshCredentials => {
            // Keepalives renew subscription TTLs whatever the token's lifetime.
            if check_subscriptions(engine, iteration).await? {
                return Ok(Some(End::Hidden));
            }
            if refresh.is_none() {
                tracing::debug!("token expires soon; fetching new credentials");
                // The connector drops its cached token first (docs/sync-protocol.md
                // §8.4), so it fetches a new one rather than handing back the expiring one.
                engine.connector.invalidate_credentials();
                *refresh = Some(Box::pin(engine.connector.fetch_credentials()));
            }
            Ok(None)
        }
        Next::TokenExpired => {
            engine.invalidate_credentials();
            Ok(Some(End::Delayed(None)))
        }
        Next::Reconnect(error) => Ok(Some(End::Delayed(error))),
    }
}

/// Renews subscription TTLs and drops expired ones (docs/sync-protocol.md §6.5). `true`
/// when the subscriptions to request differ from this iteration's: it must reconnect
/// (hidden), after storing what it received so the new request resumes behind it.
async fn check_subscriptions<C: BackendConnector>(
    engine: &Engine<C>,
    iteration: &mut Iteration,
) -> Result<bool> {
    let active = engine.db.sync_slot().streams.active_keys();
    let now = now_micros();
    let stored = engine
        .db
        .store()
        .transaction(move |tx| subscriptions::refreshed(tx, &active, now))
        .await?;
    if stored.requested != iteration.streams().requested() {
        iteration.flush(engine.status()).await?;
        tracing::debug!("stream subscriptions changed; reconnecting with the new request");
        return Ok(true);
    }
    iteration.subscriptions_changed(stored.rows, engine.status());
    Ok(false)
}
