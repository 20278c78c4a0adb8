//! Local store benchmarks, each reported as a ratio against a baseline measured in the
//! same run:
//! (a) 100k inserts through a schema view in one transaction vs raw rusqlite inserts of
//!     the same rows into a plain table; and the same inserts into a raw table (the same
//!     plain table, declared a `RawTable`, so its upload triggers record every insert),
//!     also against raw rusqlite doing that same work by hand (each row and its upload
//!     entry, in the same transaction);
//! (b) 10k single-row write transactions on a file database with one watcher attached
//!     (and the events it received) vs raw rusqlite autocommit inserts;
//! (c) commit → watcher wake-up latency (median, p99) vs a bare cross-thread wake-up of a
//!     tokio task (the floor any notification has to pay); with the `smol` feature also
//!     on smol, against the same baseline on smol.
//!
//! Run with `cargo bench --bench local_store` (`--features smol` for the smol figures).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

use common::{Totals, runtime, todo_schema};

use criterion::{Criterion, criterion_group, criterion_main};
use futures::StreamExt;
use livesync::Database;
use livesync::rusqlite::{self, Connection};

const BULK_ROWS: usize = 100_000;
const SINGLE_WRITES: usize = 10_000;
const LATENCY_SAMPLES: usize = 2_000;

fn row(i: usize) -> (String, String, i64, f64) {
    (
        format!("row-{i:08}"),
        format!("todo number {i}"),
        (i % 2) as i64,
        i as f64 * 0.5,
    )
}

fn raw_connection(dir: &tempfile::TempDir) -> Connection {
    let conn = Connection::open(dir.path().join("raw.db")).expect("open raw");
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
         CREATE TABLE todos(id TEXT PRIMARY KEY NOT NULL, description TEXT, done INTEGER, score REAL);",
    )
    .expect("raw schema");
    conn
}

/// A database whose `todos` is a raw table: the baseline's very table, plus the upload
/// triggers livesync creates on it.
async fn livesync_raw_table_db(dir: &tempfile::TempDir) -> Database {
    let db = Database::open(
        dir.path().join("livesync-raw.db"),
        livesync::Schema::default().raw_table(livesync::RawTable::new("todos")),
    )
    .await
    .expect("open livesync");
    db.execute_batch(
        "CREATE TABLE todos(id TEXT PRIMARY KEY NOT NULL, description TEXT, done INTEGER, score REAL)",
    )
    .await
    .expect("raw table");
    db.prepare_raw_tables().await.expect("raw table triggers");
    db
}

async fn livesync_db(dir: &tempfile::TempDir) -> Database {
    Database::open(dir.path().join("livesync.db"), todo_schema())
        .await
        .expect("open livesync")
}

/// `INSERT ... VALUES (?, ?, ?, ?), ...` with `rows` value tuples.
fn insert_sql(rows: usize) -> String {
    format!(
        "INSERT INTO todos(id, description, done, score) VALUES {}",
        vec!["(?, ?, ?, ?)"; rows].join(", ")
    )
}

/// One upload entry as a raw table's trigger writes it.
#[derive(serde::Serialize)]
struct UploadEntry<'a> {
    op: &'static str,
    #[serde(rename = "type")]
    table: &'static str,
    id: &'a str,
    data: UploadData<'a>,
}

#[derive(serde::Serialize)]
struct UploadData<'a> {
    description: &'a str,
    done: i64,
    score: f64,
}

/// The same inserts as [`insert_all`], each also recorded by hand in an upload log with
/// the entry a raw table's trigger writes (`{"op":"PUT","type":..,"id":..,"data":{..}}`,
/// serialised with serde_json from a derived struct, into one reused buffer): what an
/// app would have to do itself to get the raw table's upload capture without livesync,
/// and so the floor for that work in raw rusqlite.
fn insert_all_with_upload_log(conn: &Connection, per_statement: usize) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS upload_log(id INTEGER PRIMARY KEY, tx_id INTEGER, data TEXT)",
    )?;
    let mut stmt = conn.prepare(&insert_sql(per_statement))?;
    let mut log = conn.prepare("INSERT INTO upload_log(id, tx_id, data) VALUES (?1, 1, ?2)")?;
    let mut params: Vec<rusqlite::types::Value> = Vec::with_capacity(per_statement * 4);
    let mut json = Vec::with_capacity(256);
    for start in (0..BULK_ROWS).step_by(per_statement) {
        params.clear();
        for i in start..start + per_statement {
            let (id, description, done, score) = row(i);
            let entry = UploadEntry {
                op: "PUT",
                table: "todos",
                id: &id,
                data: UploadData {
                    description: &description,
                    done,
                    score,
                },
            };
            json.clear();
            serde_json::to_writer(&mut json, &entry).expect("serialise");
            let text = std::str::from_utf8(&json).expect("utf-8");
            log.execute((i as i64 + 1, text))?;
            params.extend([id.into(), description.into(), done.into(), score.into()]);
        }
        stmt.execute(rusqlite::params_from_iter(params.iter()))?;
    }
    Ok(())
}

/// Inserts `BULK_ROWS` rows with statements of `per_statement` rows each.
fn insert_all(conn: &Connection, per_statement: usize) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare(&insert_sql(per_statement))?;
    let mut params: Vec<rusqlite::types::Value> = Vec::with_capacity(per_statement * 4);
    for start in (0..BULK_ROWS).step_by(per_statement) {
        params.clear();
        for i in start..start + per_statement {
            let (id, description, done, score) = row(i);
            params.extend([id.into(), description.into(), done.into(), score.into()]);
        }
        stmt.execute(rusqlite::params_from_iter(params.iter()))?;
    }
    Ok(())
}

fn bulk_inserts(c: &mut Criterion) {
    bulk_inserts_with(c, 1);
    bulk_inserts_with(c, 10);
}

fn bulk_inserts_with(c: &mut Criterion, per_statement: usize) {
    let rt = runtime();
    let view = Arc::new(Mutex::new(Totals::default()));
    let raw = Arc::new(Mutex::new(Totals::default()));
    let raw_table = Arc::new(Mutex::new(Totals::default()));
    let raw_logged = Arc::new(Mutex::new(Totals::default()));
    let mut group = c.benchmark_group(format!(
        "a_bulk_insert_100k_{per_statement}_rows_per_statement"
    ));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));

    group.bench_function("raw_rusqlite_plain_table", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().unwrap();
                let mut conn = raw_connection(&dir);
                let start = Instant::now();
                let tx = conn.transaction().unwrap();
                insert_all(&tx, per_statement).unwrap();
                tx.commit().unwrap();
                let elapsed = start.elapsed();
                raw.lock().unwrap().add(elapsed);
                total += elapsed;
            }
            total
        })
    });

    group.bench_function("raw_rusqlite_plain_table_with_upload_log", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().unwrap();
                let mut conn = raw_connection(&dir);
                let start = Instant::now();
                let tx = conn.transaction().unwrap();
                insert_all_with_upload_log(&tx, per_statement).unwrap();
                tx.commit().unwrap();
                let elapsed = start.elapsed();
                raw_logged.lock().unwrap().add(elapsed);
                total += elapsed;
            }
            total
        })
    });

    group.bench_function("livesync_view_with_crud_capture", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().unwrap();
                let db = rt.block_on(livesync_db(&dir));
                let start = Instant::now();
                rt.block_on(db.transaction(move |tx| Ok(insert_all(tx, per_statement)?)))
                    .unwrap();
                let elapsed = start.elapsed();
                view.lock().unwrap().add(elapsed);
                total += elapsed;
                rt.block_on(db.close());
            }
            total
        })
    });

    group.bench_function("livesync_raw_table_with_crud_capture", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().unwrap();
                let db = rt.block_on(livesync_raw_table_db(&dir));
                let start = Instant::now();
                rt.block_on(db.transaction(move |tx| Ok(insert_all(tx, per_statement)?)))
                    .unwrap();
                let elapsed = start.elapsed();
                raw_table.lock().unwrap().add(elapsed);
                total += elapsed;
                rt.block_on(db.close());
            }
            total
        })
    });
    group.finish();

    let raw_table = raw_table.lock().unwrap().mean();
    let raw_logged = raw_logged.lock().unwrap().mean();
    let (raw, view) = (raw.lock().unwrap().mean(), view.lock().unwrap().mean());
    println!(
        "\n(a) {BULK_ROWS} inserts in one transaction, {per_statement} row(s) per statement: livesync view {:.0} rows/s, raw rusqlite {:.0} rows/s, ratio livesync/raw time = {:.2}x\n",
        BULK_ROWS as f64 / view,
        BULK_ROWS as f64 / raw,
        view / raw
    );
    println!(
        "(a, raw table) the same inserts into a raw table with upload capture: {:.0} rows/s, ratio livesync raw table/raw rusqlite time = {:.2}x\n",
        BULK_ROWS as f64 / raw_table,
        raw_table / raw
    );
    println!(
        "(a, raw table) raw rusqlite recording the same upload entries by hand: {:.0} rows/s ({:.2}x the plain inserts' time); livesync raw table/that = {:.2}x\n",
        BULK_ROWS as f64 / raw_logged,
        raw_logged / raw,
        raw_table / raw_logged
    );
}

fn single_row_transactions(c: &mut Criterion) {
    let rt = runtime();
    let view = Arc::new(Mutex::new(Totals::default()));
    let raw = Arc::new(Mutex::new(Totals::default()));
    let events = Arc::new(Mutex::new(Vec::new()));
    let mut group = c.benchmark_group("b_10k_single_row_transactions");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));

    group.bench_function("raw_rusqlite_autocommit", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().unwrap();
                let conn = raw_connection(&dir);
                let start = Instant::now();
                let mut stmt = conn
                    .prepare(
                        "INSERT INTO todos(id, description, done, score) VALUES (?1, ?2, ?3, ?4)",
                    )
                    .unwrap();
                for i in 0..SINGLE_WRITES {
                    stmt.execute(row(i)).unwrap();
                }
                let elapsed = start.elapsed();
                raw.lock().unwrap().add(elapsed);
                total += elapsed;
            }
            total
        })
    });

    group.bench_function("livesync_execute_with_watcher", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().unwrap();
                let db = rt.block_on(livesync_db(&dir));
                let mut updates = db.watch_tables(["todos"]);
                let counter = rt.spawn(async move {
                    let mut received = 0usize;
                    while updates.next().await.is_some() {
                        received += 1;
                    }
                    received
                });
                let start = Instant::now();
                rt.block_on(async {
                    for i in 0..SINGLE_WRITES {
                        db.execute(
                            "INSERT INTO todos(id, description, done, score) VALUES (?1, ?2, ?3, ?4)",
                            row(i),
                        )
                        .await
                        .unwrap();
                    }
                });
                let elapsed = start.elapsed();
                rt.block_on(db.close());
                events.lock().unwrap().push(rt.block_on(counter).unwrap());
                view.lock().unwrap().add(elapsed);
                total += elapsed;
            }
            total
        })
    });
    group.finish();

    let (raw, view) = (raw.lock().unwrap().mean(), view.lock().unwrap().mean());
    let events = events.lock().unwrap();
    println!(
        "\n(b) {SINGLE_WRITES} single-row write transactions: livesync {:.3} s ({:.0} tx/s), raw rusqlite {:.3} s, ratio = {:.2}x; watcher events per run: min {} max {} (of {SINGLE_WRITES})\n",
        view,
        SINGLE_WRITES as f64 / view,
        raw,
        view / raw,
        events.iter().min().unwrap_or(&0),
        events.iter().max().unwrap_or(&0),
    );
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

/// The event loop of a UI: one thread running every task (as Dioxus and Leptos do).
fn ui_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn wake_latency(c: &mut Criterion) {
    let rt = ui_runtime();
    let mut group = c.benchmark_group("c_commit_to_watcher_latency");
    group.sample_size(10);

    // Baseline: another thread waking a task waiting on the UI thread (no database at all).
    let baseline = Arc::new(Mutex::new(Vec::new()));
    group.bench_function("baseline_thread_to_task_wake", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
                let sender = std::thread::spawn(move || {
                    for _ in 0..LATENCY_SAMPLES {
                        std::thread::sleep(Duration::from_micros(200));
                        tx.send(Instant::now()).unwrap();
                    }
                });
                let samples = rt.block_on(async move {
                    let mut samples = Vec::with_capacity(LATENCY_SAMPLES);
                    while let Some(sent) = rx.recv().await {
                        samples.push(sent.elapsed());
                    }
                    samples
                });
                sender.join().unwrap();
                total += samples.iter().sum::<Duration>() / samples.len() as u32;
                baseline.lock().unwrap().extend(samples);
            }
            total
        })
    });

    // livesync: a task on the UI thread writes; another task there watches the table.
    let livesync = Arc::new(Mutex::new(Vec::new()));
    group.bench_function("livesync_commit_to_watch_tables", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().unwrap();
                let samples = rt.block_on(async {
                    let db = livesync_db(&dir).await;
                    let committed_at = Arc::new(Mutex::new(None::<Instant>));
                    let mut updates = db.watch_tables(["todos"]);
                    let waiter = {
                        let committed_at = Arc::clone(&committed_at);
                        tokio::spawn(async move {
                            let mut samples = Vec::with_capacity(LATENCY_SAMPLES);
                            while updates.next().await.is_some() {
                                let woke = Instant::now();
                                if let Some(at) = committed_at.lock().unwrap().take() {
                                    samples.push(woke - at);
                                }
                            }
                            samples
                        })
                    };
                    for i in 0..LATENCY_SAMPLES {
                        let committed_at = Arc::clone(&committed_at);
                        db.write(move |conn| {
                            conn.execute(
                                "INSERT INTO todos(id, description, done, score) VALUES (?1, ?2, ?3, ?4)",
                                row(i),
                            )?;
                            // The statement committed (autocommit); the event goes out
                            // right after this closure returns.
                            *committed_at.lock().unwrap() = Some(Instant::now());
                            Ok(())
                        })
                        .await
                        .unwrap();
                        // Let the watcher go back to sleep, so each sample is a real wake-up.
                        tokio::time::sleep(Duration::from_micros(200)).await;
                    }
                    // Closing ends the watch stream and with it the waiter.
                    db.close().await;
                    waiter.await.unwrap()
                });
                total += samples.iter().sum::<Duration>() / samples.len().max(1) as u32;
                livesync.lock().unwrap().extend(samples);
            }
            total
        })
    });
    group.finish();

    let summarize = |samples: &Mutex<Vec<Duration>>| {
        let mut samples = samples.lock().unwrap().clone();
        samples.sort();
        (
            percentile(&samples, 0.5),
            percentile(&samples, 0.99),
            samples.len(),
        )
    };
    let (base_median, base_p99, _) = summarize(&baseline);
    let (median, p99, n) = summarize(&livesync);
    println!(
        "\n(c) commit -> watcher wake-up over {n} samples: median {:.1} µs, p99 {:.1} µs; bare thread->task wake median {:.1} µs, p99 {:.1} µs; ratio (median) = {:.2}x\n",
        median.as_secs_f64() * 1e6,
        p99.as_secs_f64() * 1e6,
        base_median.as_secs_f64() * 1e6,
        base_p99.as_secs_f64() * 1e6,
        median.as_secs_f64() / base_median.as_secs_f64()
    );
    #[cfg(feature = "smol")]
    smol_wake::wake_latency_on_smol(c, &summarize);
}

/// (c) again with the UI thread driven by smol (`async_io::block_on` running one
/// `async_executor::Executor`) instead of tokio; same samples, same baseline shape.
#[cfg(feature = "smol")]
mod smol_wake {
    use super::*;

    type Summary = (Duration, Duration, usize);

    pub(super) fn wake_latency_on_smol(
        c: &mut Criterion,
        summarize: &dyn Fn(&Mutex<Vec<Duration>>) -> Summary,
    ) {
        let mut group = c.benchmark_group("c_commit_to_watcher_latency_smol");
        group.sample_size(10);
        let baseline = Arc::new(Mutex::new(Vec::new()));
        group.bench_function("baseline_thread_to_task_wake", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
                    let sender = std::thread::spawn(move || {
                        for _ in 0..LATENCY_SAMPLES {
                            std::thread::sleep(Duration::from_micros(200));
                            tx.send(Instant::now()).unwrap();
                        }
                    });
                    let executor = async_executor::Executor::new();
                    let samples = async_io::block_on(executor.run(async move {
                        let mut samples = Vec::with_capacity(LATENCY_SAMPLES);
                        while let Some(sent) = rx.recv().await {
                            samples.push(sent.elapsed());
                        }
                        samples
                    }));
                    sender.join().unwrap();
                    total += samples.iter().sum::<Duration>() / samples.len() as u32;
                    baseline.lock().unwrap().extend(samples);
                }
                total
            })
        });
        let livesync = Arc::new(Mutex::new(Vec::new()));
        group.bench_function("livesync_commit_to_watch_tables", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let dir = tempfile::tempdir().unwrap();
                    let executor = Arc::new(async_executor::Executor::new());
                    let options =
                        livesync::OpenOptions::default().runtime(livesync::Runtime::smol(Arc::clone(&executor)));
                    let samples = async_io::block_on(executor.run(async {
                        let db = Database::open_with(dir.path().join("livesync.db"), todo_schema(), options)
                            .await
                            .expect("open livesync");
                        let committed_at = Arc::new(Mutex::new(None::<Instant>));
                        let mut updates = db.watch_tables(["todos"]);
                        let waiter = {
                            let committed_at = Arc::clone(&committed_at);
                            executor.spawn(async move {
                                let mut samples = Vec::with_capacity(LATENCY_SAMPLES);
                                while updates.next().await.is_some() {
                                    let woke = Instant::now();
                                    if let Some(at) = committed_at.lock().unwrap().take() {
                                        samples.push(woke - at);
                                    }
                                }
                                samples
                            })
                        };
                        for i in 0..LATENCY_SAMPLES {
                            let committed_at = Arc::clone(&committed_at);
                            db.write(move |conn| {
                                conn.execute(
                                    "INSERT INTO todos(id, description, done, score) VALUES (?1, ?2, ?3, ?4)",
                                    row(i),
                                )?;
                                *committed_at.lock().unwrap() = Some(Instant::now());
                                Ok(())
                            })
                            .await
                            .unwrap();
                            async_io::Timer::after(Duration::from_micros(200)).await;
                        }
                        db.close().await;
                        waiter.await
                    }));
                    total += samples.iter().sum::<Duration>() / samples.len().max(1) as u32;
                    livesync.lock().unwrap().extend(samples);
                }
                total
            })
        });
        group.finish();
        let (base_median, base_p99, _) = summarize(&baseline);
        let (median, p99, n) = summarize(&livesync);
        println!(
            "\n(c, smol) commit -> watcher wake-up over {n} samples: median {:.1} µs, p99 {:.1} µs; bare thread->task wake median {:.1} µs, p99 {:.1} µs; ratio (median) = {:.2}x\n",
            median.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6,
            base_median.as_secs_f64() * 1e6,
            base_p99.as_secs_f64() * 1e6,
            median.as_secs_f64() / base_median.as_secs_f64()
        );
    }
}

criterion_group!(benches, bulk_inserts, single_row_transactions, wake_latency);
criterion_main!(benches);
