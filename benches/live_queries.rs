//! Live query benchmarks, each reported against a baseline measured in the same run:
//! - watch throughput: 1,000 live queries over 100 tables while 10k single-row writes hit
//!   half of the tables (writes/s vs the same writes with no live query; re-runs counted,
//!   and queries on untouched tables must not have re-run at all);
//! - commit → emission latency of a 100-row live query with throttle 0 (median, p99) vs
//!   commit → bare `watch_tables` wake-up;
//! - decoding 100k rows: `#[derive(Row)]` vs a hand-written index-based decoder vs
//!   serde_rusqlite.
//!
//! Run with `cargo bench --bench live_queries`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

use common::runtime;

use criterion::{Criterion, criterion_group, criterion_main};
use futures::StreamExt;
use livesync::rusqlite::Connection;
use livesync::{Column, Database, FromRow, LiveQuery, Row, Schema, Table};

const TABLES: usize = 100;
const QUERIES_PER_TABLE: usize = 10;
const WRITES: usize = 10_000;
const LATENCY_SAMPLES: usize = 1_000;
const DECODE_ROWS: usize = 100_000;

fn many_tables() -> Schema {
    Schema::new((0..TABLES).map(|t| Table::new(format!("t{t}"), [Column::integer("v")])))
}

async fn open(dir: &tempfile::TempDir, schema: Schema) -> Database {
    Database::open(dir.path().join("bench.db"), schema)
        .await
        .expect("open")
}

/// Writes `WRITES` rows round-robin into the even-numbered tables; returns the time taken.
async fn write_even_tables(db: &Database) -> Duration {
    let start = Instant::now();
    for i in 0..WRITES {
        let table = (i % (TABLES / 2)) * 2;
        db.execute(
            format!("INSERT INTO t{table}(id, v) VALUES (?1, ?2)"),
            (i.to_string(), i as i64),
        )
        .await
        .unwrap();
    }
    start.elapsed()
}

fn watch_throughput(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("watch_throughput");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(30));
    let baseline = Arc::new(Mutex::new(Vec::new()));
    let watched = Arc::new(Mutex::new(Vec::new()));
    let reruns = Arc::new(Mutex::new(Vec::new()));

    group.bench_function("10k_writes_no_live_queries", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().unwrap();
                let elapsed = rt.block_on(async {
                    let db = open(&dir, many_tables()).await;
                    let elapsed = write_even_tables(&db).await;
                    db.close().await;
                    elapsed
                });
                baseline.lock().unwrap().push(elapsed);
                total += elapsed;
            }
            total
        })
    });

    group.bench_function("10k_writes_1000_live_queries", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().unwrap();
                let (elapsed, counts) = rt.block_on(async {
                    let db = open(&dir, many_tables()).await;
                    let mut live: Vec<(usize, LiveQuery<i64>)> = Vec::new();
                    for t in 0..TABLES {
                        for q in 0..QUERIES_PER_TABLE {
                            let query = db
                                .query::<i64>(format!(
                                    "SELECT count(*) FROM t{t} WHERE v % 10 = {q}"
                                ))
                                .watch();
                            live.push((t, query));
                        }
                    }
                    // First results, then keep every stream polled while writing.
                    for (_, query) in &mut live {
                        query.next().await.unwrap().unwrap();
                    }
                    let consumers: Vec<_> = live
                        .into_iter()
                        .map(|(t, mut query)| {
                            tokio::spawn(async move {
                                while query.next().await.is_some() {}
                                (t, query.run_count())
                            })
                        })
                        .collect();
                    let elapsed = write_even_tables(&db).await;
                    // Let trailing runs finish, then close: the streams end.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    db.close().await;
                    let mut counts = Vec::new();
                    for consumer in consumers {
                        counts.push(consumer.await.unwrap());
                    }
                    (elapsed, counts)
                });
                watched.lock().unwrap().push(elapsed);
                reruns.lock().unwrap().push(counts);
                total += elapsed;
            }
            total
        })
    });
    group.finish();

    let mean = |v: &Mutex<Vec<Duration>>| {
        let v = v.lock().unwrap();
        v.iter().sum::<Duration>().as_secs_f64() / v.len().max(1) as f64
    };
    let (base, with_live) = (mean(&baseline), mean(&watched));
    let runs = reruns.lock().unwrap();
    if let Some(last) = runs.last() {
        let untouched_reruns: u64 = last
            .iter()
            .filter(|(t, _)| t % 2 == 1)
            .map(|(_, n)| n - 1)
            .sum();
        let touched_reruns: u64 = last
            .iter()
            .filter(|(t, _)| t % 2 == 0)
            .map(|(_, n)| n - 1)
            .sum();
        println!(
            "\nwatch throughput: {:.0} writes/s with 1000 live queries vs {:.0} writes/s without (time ratio {:.2}x); \
             re-runs of the 500 affected queries: {touched_reruns} (at most {} possible, throttle 30 ms coalesces); \
             re-runs of the 500 queries on untouched tables: {untouched_reruns} (must be 0)\n",
            WRITES as f64 / with_live,
            WRITES as f64 / base,
            with_live / base,
            WRITES * QUERIES_PER_TABLE,
        );
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Commit → event latency samples: `live` selects a live query (else a bare watcher).
fn latency_samples(rt: &tokio::runtime::Runtime, live: bool) -> Vec<Duration> {
    let dir = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let schema = Schema::new([Table::new("items", [Column::integer("v")])]);
        let db = open(&dir, schema).await;
        db.transaction(|tx| {
            for i in 0..100 {
                tx.execute(
                    "INSERT INTO items(id, v) VALUES (?1, 0)",
                    [format!("r{i:03}")],
                )?;
            }
            Ok(())
        })
        .await
        .unwrap();
        let committed_at = Arc::new(Mutex::new(None::<Instant>));
        let waiter = {
            let committed_at = Arc::clone(&committed_at);
            let db = db.clone();
            tokio::spawn(async move {
                let mut samples = Vec::with_capacity(LATENCY_SAMPLES);
                let mut record = || {
                    let now = Instant::now();
                    if let Some(at) = committed_at.lock().unwrap().take() {
                        samples.push(now - at);
                    }
                };
                if live {
                    let mut query = db
                        .query::<(String, i64)>("SELECT id, v FROM items ORDER BY id")
                        .throttle(Duration::ZERO)
                        .watch();
                    query.next().await.unwrap().unwrap();
                    while let Some(rows) = query.next().await {
                        assert_eq!(rows.unwrap().len(), 100);
                        record();
                    }
                } else {
                    let mut updates = db.watch_tables(["items"]);
                    while updates.next().await.is_some() {
                        record();
                    }
                }
                samples
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await; // the watcher is subscribed
        for i in 0..LATENCY_SAMPLES {
            let committed_at = Arc::clone(&committed_at);
            db.write(move |conn| {
                conn.execute("UPDATE items SET v = ?1 WHERE id = 'r050'", [i as i64])?;
                *committed_at.lock().unwrap() = Some(Instant::now());
                Ok(())
            })
            .await
            .unwrap();
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        db.close().await;
        let mut samples = waiter.await.unwrap();
        samples.sort();
        samples
    })
}

/// The event loop of a UI: one thread running every task (as Dioxus and Leptos do).
fn ui_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn emission_latency(c: &mut Criterion) {
    let rt = ui_runtime();
    let mut group = c.benchmark_group("commit_to_emission");
    group.sample_size(10);
    let bare = Arc::new(Mutex::new(Vec::new()));
    let live = Arc::new(Mutex::new(Vec::new()));
    for (name, is_live, store) in [
        ("bare_watch_tables", false, &bare),
        ("live_query_100_rows", true, &live),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let samples = latency_samples(&rt, is_live);
                    total += percentile(&samples, 0.5);
                    store.lock().unwrap().extend(samples);
                }
                total
            })
        });
    }
    group.finish();
    let stats = |v: &Mutex<Vec<Duration>>| {
        let mut v = v.lock().unwrap().clone();
        v.sort();
        (percentile(&v, 0.5), percentile(&v, 0.99), v.len())
    };
    let (bare_median, bare_p99, _) = stats(&bare);
    let (median, p99, n) = stats(&live);
    println!(
        "\ncommit -> live query emission (100 rows, throttle 0) over {n} samples: median {:.1} µs, p99 {:.1} µs; \
         commit -> bare watcher: median {:.1} µs, p99 {:.1} µs; ratio (median) {:.2}x\n",
        median.as_secs_f64() * 1e6,
        p99.as_secs_f64() * 1e6,
        bare_median.as_secs_f64() * 1e6,
        bare_p99.as_secs_f64() * 1e6,
        median.as_secs_f64() / bare_median.as_secs_f64().max(1e-9),
    );
}

#[derive(Row, serde::Deserialize)]
#[allow(dead_code)]
struct Item {
    id: String,
    name: String,
    count: i64,
    price: f64,
    note: Option<String>,
}

fn decode_connection() -> Connection {
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(
        "CREATE TABLE items(id TEXT, name TEXT, count INTEGER, price REAL, note TEXT)",
    )
    .unwrap();
    let tx = conn.unchecked_transaction().unwrap();
    {
        let mut stmt = tx
            .prepare("INSERT INTO items VALUES (?1, ?2, ?3, ?4, ?5)")
            .unwrap();
        for i in 0..DECODE_ROWS {
            let note = (i % 3 == 0).then(|| format!("note {i}"));
            stmt.execute((
                format!("id-{i}"),
                format!("item {i}"),
                i as i64,
                i as f64 / 3.0,
                note,
            ))
            .unwrap();
        }
    }
    tx.commit().unwrap();
    conn
}

fn decoding(c: &mut Criterion) {
    let conn = decode_connection();
    let sql = "SELECT id, name, count, price, note FROM items";
    let mut group = c.benchmark_group("decode_100k_rows");
    group.sample_size(20);
    let times = Arc::new(Mutex::new([Duration::ZERO; 3]));
    let counts = Arc::new(Mutex::new([0u32; 3]));
    let mut measure = |name: &str, index: usize, decode: &dyn Fn() -> usize| {
        let (times, counts) = (Arc::clone(&times), Arc::clone(&counts));
        group.bench_function(name, move |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    assert_eq!(decode(), DECODE_ROWS);
                }
                let elapsed = start.elapsed();
                times.lock().unwrap()[index] += elapsed;
                counts.lock().unwrap()[index] += iters as u32;
                elapsed
            })
        });
    };
    measure("hand_written_by_index", 0, &|| {
        let mut stmt = conn.prepare_cached(sql).unwrap();
        let rows = stmt
            .query_map([], |r| {
                Ok(Item {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    count: r.get(2)?,
                    price: r.get(3)?,
                    note: r.get(4)?,
                })
            })
            .unwrap();
        rows.map(Result::unwrap).count()
    });
    measure("derive_row", 1, &|| {
        let mut stmt = conn.prepare_cached(sql).unwrap();
        let names: Vec<String> = stmt.column_names().map(str::to_owned).collect();
        let columns = Item::resolve(&names).unwrap();
        let mut rows = stmt.raw_query();
        let mut n = 0;
        while let Some(row) = rows.next().unwrap() {
            let _item = Item::from_row(row, &columns).unwrap();
            n += 1;
        }
        n
    });
    measure("serde_rusqlite", 2, &|| {
        let mut stmt = conn.prepare_cached(sql).unwrap();
        let rows = serde_rusqlite::from_rows::<Item>(stmt.query([]).unwrap());
        rows.map(Result::unwrap).count()
    });
    group.finish();
    let times = times.lock().unwrap();
    let counts = counts.lock().unwrap();
    let per = |i: usize| times[i].as_secs_f64() / f64::from(counts[i].max(1));
    println!(
        "\ndecoding {DECODE_ROWS} rows: hand-written {:.1} ms, #[derive(Row)] {:.1} ms ({:.2}x hand-written), serde_rusqlite {:.1} ms ({:.2}x)\n",
        per(0) * 1e3,
        per(1) * 1e3,
        per(1) / per(0),
        per(2) * 1e3,
        per(2) / per(0),
    );
}

criterion_group!(benches, decoding, emission_latency, watch_throughput);
criterion_main!(benches);
