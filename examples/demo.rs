//! livesync demo: open a local database, write through the schema's views, watch the
//! changes arrive, and look at the upload queue a backend connector would drain.
//!
//! Run with `cargo run --example demo`.

use futures::StreamExt;
use livesync::{Column, Database, Schema, Table, TrackPreviousValues};

#[tokio::main]
async fn main() -> livesync::Result<()> {
    let schema = Schema::new([
        Table::new("lists", [Column::text("name")]),
        Table::new(
            "todos",
            [
                Column::text("list_id"),
                Column::text("description"),
                Column::integer("done"),
            ],
        )
        .track_previous_values(TrackPreviousValues::columns(["done"]).only_when_changed()),
        Table::new("ui_state", [Column::text("value")]).local_only(),
    ]);

    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("demo.db");
    let db = Database::open(&path, schema).await?;
    println!(
        "opened {} (client id {})",
        path.display(),
        db.client_id().await?
    );

    // Every committed transaction that touches these tables is announced once.
    let mut changes = db.watch_tables(["lists", "todos", "ui_state"]);
    let watcher = tokio::spawn(async move {
        while let Some(update) = changes.next().await {
            println!(
                "  changed: {}",
                update.tables().collect::<Vec<_>>().join(", ")
            );
        }
    });

    println!("\nwriting a list with three todos in one transaction");
    db.transaction(|tx| {
        tx.execute("INSERT INTO lists(id, name) VALUES ('l1', 'Groceries')", [])?;
        for (id, description) in [("t1", "milk"), ("t2", "bread"), ("t3", "coffee")] {
            tx.execute(
                "INSERT INTO todos(id, list_id, description, done) VALUES (?1, 'l1', ?2, 0)",
                [id, description],
            )?;
        }
        Ok(())
    })
    .await?;
    println!("completing one todo, deleting another, saving local-only UI state");
    db.execute("UPDATE todos SET done = 1 WHERE id = 't1'", ())
        .await?;
    db.execute("DELETE FROM todos WHERE id = 't2'", ()).await?;
    db.execute(
        "INSERT INTO ui_state(id, value) VALUES ('selected_list', 'l1')",
        (),
    )
    .await?;

    let todos = db
        .read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT l.name, t.id, t.description, t.done FROM todos t JOIN lists l ON l.id = t.list_id ORDER BY t.id",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(format!(
                    "{} / {}: {} [{}]",
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    if r.get::<_, i64>(3)? == 1 { "x" } else { " " }
                ))
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await?;
    println!("\nrows:");
    for todo in todos {
        println!("  {todo}");
    }

    println!("\nupload queue (local-only tables are never queued):");
    let (count, bytes) = db.upload_queue_stats().await?;
    println!("  {count} entries, {bytes} bytes");
    while let Some(transaction) = db.get_next_crud_transaction().await? {
        println!("  transaction {:?}:", transaction.transaction_id);
        for entry in &transaction.crud {
            println!(
                "    #{} {:?} {}/{} data={} old={}",
                entry.client_id,
                entry.op,
                entry.table,
                entry.id,
                serde_json::to_string(&entry.data).unwrap_or_default(),
                serde_json::to_string(&entry.previous_values).unwrap_or_default(),
            );
        }
        // A BackendConnector would send these to the app's backend first.
        transaction.complete().await?;
    }
    println!("  queue drained: {:?}", db.upload_queue_stats().await?);

    db.close().await;
    watcher.await.expect("watcher task");
    Ok(())
}
