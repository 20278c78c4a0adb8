//! Sync's HTTP under smol, where requests go through the backend that needs no tokio
//! (feature `async-io-http`): an untrusted certificate, compressed and plain streams (NDJSON
//! and BSON), a stream cut mid-way, a service that stops. The servers are tokio's, each on a thread
//! of its own ([`ServiceThread`], [`untrusted_server_thread`]); the client side is one
//! smol executor.
#![cfg(all(feature = "testing", feature = "smol"))]

mod common;

use std::future::Future;
use std::sync::{Arc, Mutex};

use common::sync::{ServiceThread, fast};
use common::tls::{FixedEndpoint, assert_certificate_problem, untrusted_server_thread};
use common::wait::anywhere::{in_time, until};
use futures::StreamExt;
use livesync::testing::{BucketRule, TestSyncService};
use livesync::{
    Column, Database, Error, OpenOptions, Runtime, Schema, SyncOptions, SyncStatus, Table,
    TransportFailure,
};
use serde_json::json;

/// Runs `test` on a smol executor, handing it the executor's runtime.
fn on_smol<F: Future>(
    test: impl FnOnce(Runtime, Arc<async_executor::Executor<'static>>) -> F,
) -> F::Output {
    let executor = Arc::new(async_executor::Executor::new());
    let runtime = Runtime::smol(Arc::clone(&executor));
    async_io::block_on(executor.run(test(runtime, Arc::clone(&executor))))
}

fn schema() -> Schema {
    Schema::new([Table::new("lists", [Column::text("name")])])
}

/// A service on its own thread with `rows` lists, `ops_per_line` to a data line.
fn service_with(rows: usize, ops_per_line: usize) -> ServiceThread {
    let service = ServiceThread::start(
        TestSyncService::builder()
            .rule(BucketRule::global("lists", ["lists"]))
            .ops_per_line(ops_per_line),
    );
    for i in 0..rows {
        service.service.upsert_row(
            "lists",
            &format!("l{i:04}"),
            json!({"name": format!("list {i}")}),
        );
    }
    service.service.commit();
    service
}

async fn smol_db(runtime: Runtime) -> Database {
    Database::in_memory_with(schema(), OpenOptions::default().runtime(runtime))
        .await
        .unwrap()
}

async fn count(db: &Database) -> i64 {
    db.query::<i64>("SELECT count(*) FROM lists")
        .fetch_one()
        .await
        .unwrap()
}

#[test]
fn an_untrusted_certificate_under_smol_is_a_certificate_problem() {
    let url = untrusted_server_thread();
    on_smol(|runtime, _| async move {
        let db = smol_db(runtime).await;
        db.connect(FixedEndpoint(url), SyncOptions::default())
            .await
            .unwrap();
        until("the connection attempt failed", || {
            db.status().download_error.is_some()
        })
        .await;
        let error = db.status().download_error.unwrap();
        assert_certificate_problem(&error);
        db.close().await;
    });
}

/// The async-io backend hands the response's `Content-Type` on, so BSON framing works
/// without tokio too, compressed or not.
#[test]
fn bson_streams_sync_under_smol_compressed_or_not() {
    const ROWS: usize = 2_000;
    let service = service_with(ROWS, 100);
    for compressed in [true, false] {
        on_smol(|runtime, _| async {
            let db = smol_db(runtime).await;
            db.connect(
                service.service.connector("u1"),
                fast().compressed(compressed).accept_bson(true),
            )
            .await
            .unwrap();
            in_time("the first sync", db.wait_for_first_sync())
                .await
                .unwrap();
            assert_eq!(count(&db).await, ROWS as i64);
            assert_eq!(
                service
                    .service
                    .stream_content_types()
                    .last()
                    .map(String::as_str),
                Some("application/vnd.powersync.bson-stream"),
                "compressed: {compressed}"
            );
            db.close().await;
        });
    }
}

#[test]
fn compressed_and_plain_streams_sync_under_smol() {
    const ROWS: usize = 2_000;
    let service = service_with(ROWS, 100);
    for (compressed, encoding) in [(true, "zstd"), (false, "identity")] {
        on_smol(|runtime, _| async {
            let db = smol_db(runtime).await;
            db.connect(
                service.service.connector("u1"),
                fast().compressed(compressed),
            )
            .await
            .unwrap();
            in_time("the first sync", db.wait_for_first_sync())
                .await
                .unwrap();
            assert_eq!(count(&db).await, ROWS as i64);
            assert_eq!(
                service
                    .service
                    .stream_encodings()
                    .last()
                    .map(String::as_str),
                Some(encoding),
                "compressed: {compressed}"
            );
            db.close().await;
        });
    }
}

/// Every status `db` publishes from now on, collected by a task on `executor`.
fn collect_statuses(
    db: &Database,
    executor: &async_executor::Executor<'static>,
) -> Arc<Mutex<Vec<SyncStatus>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut statuses = db.watch_status();
    let into = Arc::clone(&seen);
    executor
        .spawn(async move {
            while let Some(status) = statuses.next().await {
                into.lock().unwrap().push(status);
            }
        })
        .detach();
    seen
}

/// The download errors among `statuses`, as (kind, message).
fn download_errors(statuses: &Mutex<Vec<SyncStatus>>) -> Vec<(Option<TransportFailure>, String)> {
    statuses
        .lock()
        .unwrap()
        .iter()
        .filter_map(|status| status.download_error.as_ref())
        .map(|error| {
            let kind = match error.error() {
                Error::Transport { kind, .. } => Some(*kind),
                _ => None,
            };
            (kind, error.to_string())
        })
        .collect()
}

#[test]
fn a_stream_cut_mid_way_under_smol_is_a_body_error_and_resumes() {
    let service = service_with(100, 10);
    // checkpoint + 3 data lines, then the connection is reset.
    service.service.drop_next_connection_after(4);
    on_smol(|runtime, executor| async move {
        let db = smol_db(runtime).await;
        let statuses = collect_statuses(&db, &executor);
        db.connect(service.service.connector("u1"), fast())
            .await
            .unwrap();
        in_time("the sync after the reconnect", db.wait_for_first_sync())
            .await
            .unwrap();
        assert_eq!(count(&db).await, 100);
        assert!(service.service.sync_requests().len() >= 2, "it reconnected");
        assert_eq!(service.service.ops_sent(), 100, "no op is downloaded twice");
        let errors = download_errors(&statuses);
        assert!(
            errors
                .iter()
                .any(|(kind, message)| *kind == Some(TransportFailure::Body)
                    && message.contains("/sync/stream")
                    && message.contains("connection broke")),
            "{errors:?}"
        );
        db.close().await;
    });
}

#[test]
fn a_service_that_stops_mid_stream_under_smol_is_a_clear_connect_error() {
    let service = service_with(10, 10);
    on_smol(|runtime, _| async move {
        let db = smol_db(runtime).await;
        db.connect(service.service.connector("u1"), fast())
            .await
            .unwrap();
        in_time("the first sync", db.wait_for_first_sync())
            .await
            .unwrap();
        assert!(db.status().connected);
        let url = service.service.url();
        // Stops the service and its thread: the open stream is cut, reconnects are refused.
        drop(service);
        until("the reconnect is refused", || {
            matches!(
                db.status()
                    .download_error
                    .as_ref()
                    .map(|e| e.error().clone()),
                Some(Error::Transport {
                    kind: TransportFailure::Connect,
                    ..
                })
            )
        })
        .await;
        let status = db.status();
        assert!(!status.connected);
        let message = status.download_error.unwrap().to_string();
        assert!(message.contains(&url), "{message}");
        assert!(message.contains("running and reachable"), "{message}");
        db.disconnect().await;
        assert_eq!(db.background_tasks(), 0);
        db.close().await;
    });
}
