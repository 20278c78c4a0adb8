//! BSON stream framing (docs/sync-protocol.md §1.3) against the in-process test service:
//! the same rows as over NDJSON, compressed or not, live changes and uploads included; a
//! service that answers NDJSON to a client offering BSON; and a broken BSON document.

mod common;

use common::strings;
use common::sync::{fast, schema, synced};
use common::wait::{eventually, until};
use livesync::testing::{BucketRule, TestSyncService};
use livesync::{Database, SyncOptions};
use serde_json::json;

const BSON: &str = "application/vnd.powersync.bson-stream";
const NDJSON: &str = "application/x-ndjson";
const TODOS: &str = "SELECT id || ':' || ifnull(description, 'NULL') || ':' || ifnull(owner_id, 'NULL') FROM todos ORDER BY id";
const LISTS: &str = "SELECT id || ':' || ifnull(name, 'NULL') FROM lists ORDER BY id";

/// A service holding 250 todos (a few with awkward text) and two lists, sent in lines
/// of 40 ops, so the download takes several data lines.
async fn seeded(builder: livesync::testing::TestSyncServiceBuilder) -> TestSyncService {
    let service = builder
        .rule(BucketRule::global("todos", ["todos"]))
        .rule(BucketRule::global("lists", ["lists"]))
        .ops_per_line(40)
        .start()
        .await
        .expect("service starts");
    for i in 0..250 {
        let description = match i % 5 {
            0 => format!("todo {i} with \"quotes\", a \\ and a\nnewline"),
            1 => format!("todo {i}: é 日本 🦀"),
            _ => format!("todo number {i}"),
        };
        service.upsert_row(
            "todos",
            &format!("t{i:03}"),
            json!({"description": description, "owner_id": format!("u{}", i % 3)}),
        );
    }
    service.upsert_row("lists", "l1", json!({"name": "groceries"}));
    service.upsert_row("lists", "l2", json!({"name": null}));
    service.commit();
    service
}

/// Syncs a fresh client with `options`, makes live changes on both sides, and returns
/// the client's final todos and lists.
async fn sync_and_change(service: &TestSyncService, options: SyncOptions) -> Vec<String> {
    let db = Database::in_memory(schema()).await.expect("open");
    db.connect(service.connector("u1"), options)
        .await
        .expect("connect");
    synced(&db).await;
    eventually(&db, "SELECT count(*) FROM todos", &["250"]).await;

    // Live changes from the service while the stream stays open.
    service.upsert_row(
        "todos",
        "t001",
        json!({"description": "changed", "owner_id": "u9"}),
    );
    service.delete_row("todos", "t002");
    service.upsert_row("lists", "l3", json!({"name": "new list"}));
    service.commit();
    eventually(&db, "SELECT count(*) FROM lists", &["3"]).await;

    // A local write goes up and comes back down through the same stream.
    db.execute(
        "INSERT INTO todos(id, description, owner_id) VALUES ('local', 'from the client', 'u1')",
        (),
    )
    .await
    .expect("local write");
    until("the upload reaches the service", || {
        service.rows("todos").iter().any(|row| row["id"] == "local")
    })
    .await;
    // Once the queue is empty the write gate opens again: a service-side change to the
    // uploaded row comes down.
    let deadline = tokio::time::Instant::now() + common::wait::WAIT;
    while db.upload_queue_stats().await.expect("queue stats").count > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the upload queue never drained"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    service.upsert_row(
        "todos",
        "local",
        json!({"description": "confirmed", "owner_id": "u1"}),
    );
    service.commit();
    eventually(
        &db,
        "SELECT description FROM todos WHERE id = 'local'",
        &["confirmed"],
    )
    .await;
    eventually(&db, "SELECT count(*) FROM todos", &["250"]).await;
    assert!(db.status().download_error.is_none(), "{:?}", db.status());

    let mut rows = strings(&db, TODOS).await;
    rows.extend(strings(&db, LISTS).await);
    db.close().await;
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bson_streams_bring_the_same_rows_as_ndjson_compressed_or_not() {
    let mut results = Vec::new();
    for (accept_bson, compressed) in [(false, false), (true, false), (false, true), (true, true)] {
        let service = seeded(TestSyncService::builder()).await;
        let options = fast().accept_bson(accept_bson).compressed(compressed);
        let rows = sync_and_change(&service, options).await;
        let framing = if accept_bson { BSON } else { NDJSON };
        let encoding = if compressed { "zstd" } else { "identity" };
        let content_types = service.stream_content_types();
        assert!(!content_types.is_empty());
        assert!(
            content_types.iter().all(|t| t == framing),
            "accept_bson {accept_bson}: {content_types:?}"
        );
        assert!(
            service.stream_encodings().iter().all(|e| e == encoding),
            "compressed {compressed}: {:?}",
            service.stream_encodings()
        );
        // The request body still says `binary_data: true` (old services need it for BSON).
        assert_eq!(service.sync_requests()[0]["binary_data"], true);
        assert_eq!(service.sync_requests()[0]["raw_data"], true);
        results.push((accept_bson, compressed, rows));
        service.shutdown().await;
    }
    let (_, _, expected) = &results[0];
    assert_eq!(expected.len(), 250 + 3);
    assert!(expected.contains(&"t001:changed:u9".to_owned()));
    assert!(expected.contains(&"local:confirmed:u1".to_owned()));
    assert!(expected.contains(&"l2:NULL".to_owned()));
    assert!(expected.iter().any(|row| row.contains("日本 🦀")));
    assert!(
        expected
            .iter()
            .any(|row| row.contains("\"quotes\", a \\ and a\nnewline"))
    );
    for (accept_bson, compressed, rows) in &results[1..] {
        assert_eq!(
            rows, expected,
            "accept_bson {accept_bson}, compressed {compressed}: the rows differ from NDJSON's"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_answers_ndjson_to_a_bson_offer_still_syncs() {
    let service = seeded(TestSyncService::builder().bson(false)).await;
    let rows = sync_and_change(&service, fast().accept_bson(true)).await;
    assert_eq!(rows.len(), 253);
    assert!(
        service.stream_content_types().iter().all(|t| t == NDJSON),
        "{:?}",
        service.stream_content_types()
    );
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_bson_document_is_a_download_error_and_the_client_reconnects() {
    let service = seeded(TestSyncService::builder()).await;
    let db = Database::in_memory(schema()).await.expect("open");
    db.connect(service.connector("u1"), fast().accept_bson(true))
        .await
        .expect("connect");
    synced(&db).await;
    // Not BSON at all: its first four bytes read as an absurd document length.
    service.send_malformed_line();
    until("the broken document is reported", || {
        db.status()
            .download_error
            .is_some_and(|e| e.to_string().contains("BSON document"))
    })
    .await;
    until("the client reconnects", || {
        service.sync_requests().len() >= 2
    })
    .await;
    service.upsert_row("lists", "l9", json!({"name": "after the error"}));
    service.commit();
    eventually(
        &db,
        "SELECT name FROM lists WHERE id = 'l9'",
        &["after the error"],
    )
    .await;
    db.close().await;
    service.shutdown().await;
}
