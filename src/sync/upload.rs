//! The upload loop (docs/sync-protocol.md §8.5): wakes when the upload queue changes,
//! hands queued transactions to the app's connector until the queue is empty, then asks
//! for the write checkpoint that opens the download gate (§5.2; a checkpoint request in
//! request mode, §5.3). Download-only connections hand nothing to the connector (the
//! gate stays shut while writes are queued) but still ask for a write checkpoint an
//! earlier upload left pending; upload-only connections never ask for one (§5.5).

use std::sync::Arc;

use futures::StreamExt;
use tracing::Instrument;

use super::connection::Engine;
use super::write_gate;
use crate::{BackendConnector, Error, Result};

pub(super) async fn upload_loop<C: BackendConnector>(engine: Arc<Engine<C>>) {
    let mut changes = engine.db.watch_tables(["ps_crud"]).with_initial_event();
    // When the last round that handed anything to the connector started. The throttle
    // spaces such rounds; an empty round (the one at connect time, or one that only
    // asked for a write checkpoint) leaves no window, so the first write after a quiet
    // period uploads at once.
    let mut last_upload: Option<crate::runtime::Instant> = None;
    loop {
        let repost = engine.options.checkpoint_repost_delay;
        tokio::select! {
            change = changes.next() => if change.is_none() { return },
            () = engine.upload_now.notified() => {}
            // Checkpoint-request mode: a request the service may have lost is posted
            // again after a quiet period (docs/sync-protocol.md §5.3 step 4).
            () = engine.db.runtime().sleep(repost), if engine.link.uses_requests() => {
                if let Err(error) = engine.link.repost_unapplied(&engine.db).await {
                    tracing::warn!(%error, "could not post a checkpoint request again");
                }
                continue;
            }
        }
        if let Some(started) = last_upload {
            engine
                .db
                .runtime()
                .sleep_until(started + engine.options.crud_upload_throttle)
                .await;
        }
        loop {
            let started = engine.db.runtime().now();
            let round = upload_round(&engine)
                .instrument(tracing::debug_span!("upload"))
                .await;
            match round {
                Ok(uploaded) => {
                    if uploaded {
                        last_upload = Some(started);
                    }
                    engine.status().update(|s| {
                        s.uploading = false;
                        s.upload_error = None;
                    });
                    engine.upload_finished.notify_one();
                    break;
                }
                Err(error) => {
                    tracing::warn!(%error, "upload failed; retrying after the delay");
                    let error = engine.check_auth(error);
                    engine.status().update(|s| {
                        s.uploading = false;
                        s.upload_error = Some(error.into());
                    });
                    engine.db.runtime().sleep(engine.options.retry_delay).await;
                }
            }
        }
    }
}

/// Hands queued transactions to the connector until the queue is empty, then obtains
/// the write checkpoint that opens the download gate. `true` when the connector was
/// called (the queue was not empty).
async fn upload_round<C: BackendConnector>(engine: &Engine<C>) -> Result<bool> {
    let store = engine.db.store();
    let mode = engine.options.mode;
    let mut previous_first = None;
    let mut uploaded = false;
    loop {
        let first: Option<i64> = store
            .read(|conn| Ok(conn.query_row("SELECT min(id) FROM ps_crud", [], |r| r.get(0))?))
            .await?;
        let Some(first) = first else { break };
        if !mode.uploads() {
            // Download-only: the writes stay queued (and the gate shut) for a later
            // connection that uploads.
            return Ok(false);
        }
        uploaded = true;
        if previous_first == Some(first) {
            return Err(Error::UploadStalled(first));
        }
        previous_first = Some(first);
        engine.status().update(|s| s.uploading = true);
        engine.connector.upload_data(&engine.db).await?;
    }
    // Upload-only never contacts the service: the next connection that downloads asks.
    if mode.downloads() && store.read(write_gate::needs_write_checkpoint).await? {
        let before = store.crud_counter().await?;
        let credentials = engine.credentials().await?;
        let checkpoint = engine
            .link
            .write_checkpoint(&engine.db, &credentials)
            .await?;
        let set = store
            .transaction_with_crud_counter(move |tx, now| {
                // A write that raced in needs its own round (and checkpoint).
                let set = write_gate::crud_queue_empty(tx)? && now == before;
                if set {
                    write_gate::set_target(tx, checkpoint)?;
                }
                Ok(set)
            })
            .await?;
        tracing::debug!(checkpoint, set, "requested write checkpoint");
    }
    Ok(uploaded)
}
