//! Large schemas: applying one costs time linear in its size, on a fresh file and on a
//! re-open. The test asserts correctness only; it prints its timings, which
//! `cargo test --release --test schema_scale -- --nocapture` shows (debug builds compile
//! SQLite without optimisation, so their figures say little).
//!
//! `LIVESYNC_SCALE_TABLES` (comma-separated) picks the sizes; the default keeps the test
//! quick.

mod common;

use std::time::Instant;

use common::rows;
use livesync::{Column, Database, Index, IndexColumn, Schema, Table};

fn wide_schema(tables: usize, extra_column: bool) -> Schema {
    Schema::new((0..tables).map(|i| {
        let mut columns = vec![
            Column::text("name"),
            Column::integer("count"),
            Column::real("score"),
        ];
        if extra_column {
            columns.push(Column::text("note"));
        }
        let table = Table::new(format!("t{i}"), columns);
        // Some indexes too, so index creation is covered.
        if i % 10 == 0 {
            table.index(Index::new("by_name", [IndexColumn::ascending("name")]))
        } else {
            table
        }
    }))
}

fn sizes() -> Vec<usize> {
    match std::env::var("LIVESYNC_SCALE_TABLES") {
        Ok(sizes) => sizes
            .split(',')
            .map(|s| s.trim().parse().expect("LIVESYNC_SCALE_TABLES: numbers"))
            .collect(),
        Err(_) => vec![100, 1000],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemas_of_thousands_of_tables_open_and_reopen_in_linear_time() {
    for tables in sizes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wide.db");
        let schema = wide_schema(tables, false);

        let started = Instant::now();
        let db = Database::open(&path, schema.clone()).await.unwrap();
        let fresh = started.elapsed();

        // Every table works through its view, triggers included.
        let last = tables - 1;
        db.execute(
            &format!("INSERT INTO t{last}(id, name, count, score) VALUES ('a', 'x', 1, 0.5)"),
            (),
        )
        .await
        .unwrap();
        assert_eq!(
            rows(&db, &format!("SELECT name, count FROM t{last}")).await,
            [["x", "1"]]
        );
        let objects = rows(
            &db,
            "SELECT type, count(*) FROM sqlite_schema WHERE tbl_name GLOB 'ps_data__*' \
             OR name GLOB 'ps_view_*' OR type = 'view' GROUP BY type ORDER BY type",
        )
        .await;
        let indexes = tables.div_ceil(10);
        assert_eq!(
            objects,
            [
                vec!["index".to_owned(), (tables + indexes).to_string()],
                vec!["table".to_owned(), tables.to_string()],
                vec!["trigger".to_owned(), (3 * tables).to_string()],
                vec!["view".to_owned(), tables.to_string()],
            ],
            "one data table (with its id index), view and three triggers per table"
        );
        db.close().await;

        let started = Instant::now();
        let db = Database::open(&path, schema.clone()).await.unwrap();
        let reopen = started.elapsed();
        assert_eq!(
            rows(&db, &format!("SELECT name FROM t{last}")).await,
            [["x"]]
        );

        // A column more in every table: every view and trigger is replaced.
        let wider = wide_schema(tables, true);
        let started = Instant::now();
        db.update_schema(wider.clone()).await.unwrap();
        let update = started.elapsed();
        assert_eq!(
            rows(&db, &format!("SELECT name, note FROM t{last}")).await,
            [["x", "NULL"]]
        );
        db.close().await;

        // Integrity of the file after the bulk work.
        let db = Database::open(&path, wider).await.unwrap();
        assert_eq!(rows(&db, "PRAGMA integrity_check").await, [["ok"]]);
        db.close().await;

        println!(
            "{tables} tables: fresh open {:.3} s, re-open {:.3} s, a column more in every table {:.3} s",
            fresh.as_secs_f64(),
            reopen.as_secs_f64(),
            update.as_secs_f64()
        );
    }
}
