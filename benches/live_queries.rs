//! Live query benchmarks, each reported against a baseline measured in the same run:
//! - watch throughput: 1,000 live queries over 100 tables (throttle 0, each driven by its
//!   own task) while 10k single-row writes hit half of the tables, on a file and in memory
//!   (writes/s vs the same writes with no live query; re-runs counted, and queries on
//!   untouched tables must not have re-run at all);
//! - fan-out latency: 10,000 live queries over 1,000 tables, one write to one table:
//!   commit → emission of that table's query vs the same with only that query mounted;
//! - creating live queries: 1,000 over 100 tables and 2,000 over 200 tables (first
//!   results) vs a plain `fetch_all` of the same SQL;
//! - memory per mounted live query (resident set growth while 10,000 are mounted);
//! - commit → emission latency of a 100-row live query with throttle 0 (median, p99) vs
//!   commit → bare `watch_tables` wake-up;
//! - decoding 100k rows: `#[derive(Row)]` vs a hand-written index-based decoder vs
//!   serde_rusqlite;
//! - identical live queries: 50 live queries of the same SQL against one, 1,000 writes
//!   to their table (throttle 0, file): the most that sharing one re-run between them
//!   could save.
//!
//! Run with `cargo bench --bench live_queries` (or name one group, e.g.
//! `cargo bench --bench live_queries -- fanout_latency`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

use common::runtime;

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use futures::StreamExt;
use livesync::rusqlite::Connection;
use livesync::{Column, Database, FromRow, LiveQuery, Row, Schema, Table};

const TABLES: usize = 100;
const QUERIES_PER_TABLE: usize = 10;
const WRITES: usize = 10_000;
const LATENCY_SAMPLES: usize = 1_000;
const DECODE_ROWS: usize = 100_000;
const FANOUT_TABLES: usize = 1_000;
const FANOUT_QUERIES: usize = 10_000;

fn tables(count: usize) -> Schema {
    Schema::new((0..count).map(|t| Table::new(format!("t{t}"), [Column::integer("v")])))
}

/// Where a bench database lives.
#[derive(Clone, Copy)]
enum Storage {
    File,
    Memory,
}

async fn open_on(storage: Storage, dir: &tempfile::TempDir, schema: Schema) -> Database {
    match storage {
        Storage::File => Database::open(dir.path().join("bench.db"), schema).await,
        Storage::Memory => Database::in_memory(schema).await,
    }
    .expect("open")
}

async fn open(dir: &tempfile::TempDir, schema: Schema) -> Database {
    open_on(Storage::File, dir, schema).await
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

/// Resident set size of this process, in KiB (Linux; 0 elsewhere).
fn resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Slow iterations (a second or more each): one per sample, a short warm-up.
fn slow_group<'a>(
    c: &'a mut Criterion,
    name: &str,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(5));
    group
}

fn watch_throughput(c: &mut Criterion) {
    let rt = runtime();
    for (storage, label) in [(Storage::File, "file"), (Storage::Memory, "memory")] {
        let mut group = slow_group(c, &format!("watch_throughput_{label}"));
        let baseline = Arc::new(Mutex::new(Vec::new()));
        let watched = Arc::new(Mutex::new(Vec::new()));
        let reruns = Arc::new(Mutex::new(Vec::new()));

        group.bench_function("10k_writes_no_live_queries", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let dir = tempfile::tempdir().unwrap();
                    let elapsed = rt.block_on(async {
                        let db = open_on(storage, &dir, tables(TABLES)).await;
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

        group.bench_function("10k_writes_1000_live_queries_throttle_0", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let dir = tempfile::tempdir().unwrap();
                    let (elapsed, counts) = rt.block_on(async {
                        let db = open_on(storage, &dir, tables(TABLES)).await;
                        let mut live: Vec<(usize, LiveQuery<i64>)> = Vec::new();
                        for t in 0..TABLES {
                            for q in 0..QUERIES_PER_TABLE {
                                let query = db
                                    .query::<i64>(format!(
                                        "SELECT count(*) FROM t{t} WHERE v % 10 = {q}"
                                    ))
                                    .throttle(Duration::ZERO)
                                    .watch();
                                live.push((t, query));
                            }
                        }
                        // First results, then keep every stream polled while writing.
                        let mut firsts = Vec::new();
                        for (_, query) in &mut live {
                            firsts.push(query.next().await.unwrap().unwrap()[0]);
                        }
                        let consumers: Vec<_> = live
                            .into_iter()
                            .zip(firsts)
                            .enumerate()
                            .map(|(index, ((t, mut query), first))| {
                                tokio::spawn(async move {
                                    let mut last = Some(first);
                                    while let Some(result) = query.next().await {
                                        last = Some(result.unwrap()[0]);
                                    }
                                    (index, t, query.run_count(), last)
                                })
                            })
                            .collect();
                        let elapsed = write_even_tables(&db).await;
                        // Let trailing runs finish, then close: the streams end.
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        // Every live query must have ended on the final state, however
                        // many intermediate states it skipped.
                        let mut expected = Vec::new();
                        for t in 0..TABLES {
                            for q in 0..QUERIES_PER_TABLE {
                                let sql = format!("SELECT count(*) FROM t{t} WHERE v % 10 = {q}");
                                expected.push(db.query::<i64>(sql).fetch_one().await.unwrap());
                            }
                        }
                        db.close().await;
                        let mut counts = Vec::new();
                        for consumer in consumers {
                            let (index, t, runs, last) = consumer.await.unwrap();
                            assert_eq!(
                                last,
                                Some(expected[index]),
                                "live query {index} did not end on the final state"
                            );
                            counts.push((t, runs));
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
            let reruns_where = |touched: bool| -> u64 {
                last.iter()
                    .filter(|(t, _)| (t % 2 == 0) == touched)
                    .map(|(_, n)| n - 1)
                    .sum()
            };
            println!(
                "\nwatch throughput ({label}, throttle 0): {:.0} writes/s with 1000 live queries vs {:.0} writes/s without \
                 (time ratio {:.2}x); re-runs of the 500 affected queries: {} (at most {} possible); \
                 re-runs of the 500 queries on untouched tables: {} (must be 0)\n",
                WRITES as f64 / with_live,
                WRITES as f64 / base,
                with_live / base,
                reruns_where(true),
                WRITES * QUERIES_PER_TABLE,
                reruns_where(false),
            );
        }
    }
}

/// How many components render the same list in [`identical_queries`].
const IDENTICAL: usize = 50;
/// Writes in one sample of [`identical_queries`].
const IDENTICAL_WRITES: usize = 1_000;

/// What sharing runs between live queries of the same SQL saves:
/// `IDENTICAL_WRITES` single-row writes to one table (file, throttle 0) while `mounted`
/// live queries of the same SQL on it are each driven by their own task; the time and
/// the re-runs the SQL actually did (results taken from another copy's run excluded).
async fn identical_writes(mounted: usize) -> (Duration, u64) {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir, tables(1)).await;
    let mut consumers = Vec::new();
    for _ in 0..mounted {
        let mut query = db
            .query::<i64>("SELECT count(*) FROM t0 WHERE v % 10 = 3")
            .throttle(Duration::ZERO)
            .watch();
        query.next().await.unwrap().unwrap();
        consumers.push(tokio::spawn(async move {
            while query.next().await.is_some() {}
            query.run_count() - query.shared_run_count()
        }));
    }
    let start = Instant::now();
    for i in 0..IDENTICAL_WRITES {
        db.execute(
            "INSERT INTO t0(id, v) VALUES (?1, ?2)",
            (i.to_string(), i as i64),
        )
        .await
        .unwrap();
    }
    let elapsed = start.elapsed();
    tokio::time::sleep(Duration::from_millis(200)).await;
    db.close().await;
    // The first results of all copies came from one run.
    let mut runs = 0;
    for consumer in consumers {
        runs += consumer.await.unwrap();
    }
    (elapsed, runs.saturating_sub(1))
}

/// Issue 19: `IDENTICAL` live queries of one SQL against one, the same writes. Before
/// the copies shared their runs this took 3.7–4× the time; sharing keeps it near 1×.
fn identical_queries(c: &mut Criterion) {
    let rt = runtime();
    let mut group = slow_group(c, "identical_queries");
    let results: Arc<Mutex<Vec<(usize, Duration, u64)>>> = Arc::default();
    for mounted in [1, IDENTICAL] {
        let name = format!("1k_writes_{mounted}_identical_live_queries");
        let (results, rt) = (Arc::clone(&results), &rt);
        group.bench_function(name, move |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (elapsed, runs) = rt.block_on(identical_writes(mounted));
                    results.lock().unwrap().push((mounted, elapsed, runs));
                    total += elapsed;
                }
                total
            })
        });
    }
    group.finish();
    let results = results.lock().unwrap();
    let mean = |m: usize| {
        let of: Vec<_> = results.iter().filter(|r| r.0 == m).collect();
        let time = of.iter().map(|r| r.1).sum::<Duration>().as_secs_f64() / of.len().max(1) as f64;
        let runs = of.iter().map(|r| r.2).sum::<u64>() as f64 / of.len().max(1) as f64;
        (time, runs)
    };
    let ((one, one_runs), (many, many_runs)) = (mean(1), mean(IDENTICAL));
    println!(
        "
identical live queries (file, throttle 0, {IDENTICAL_WRITES} writes): {IDENTICAL} copies {:.3} s, {:.0} re-runs of the SQL; one query {:.3} s, {:.0} re-runs; time ratio {:.2}x
",
        many, many_runs, one, one_runs, many / one
    );
}

/// A database with `FANOUT_TABLES` tables and live queries on it, each driven by its own
/// task on the UI runtime: `others` queries spread over tables 1.., plus one on `t0`
/// whose emissions (their instants) arrive on the returned channel.
struct Mounted {
    db: Database,
    _dir: tempfile::TempDir,
    emissions: tokio::sync::mpsc::UnboundedReceiver<Instant>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Resident set growth while mounting, KiB.
    grown_kib: u64,
}

fn mount(rt: &tokio::runtime::Runtime, others: usize) -> Mounted {
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir, tables(FANOUT_TABLES)).await;
        // Every reader connection parses the schema on its first statement (megabytes
        // with a thousand tables, once per connection): done before measuring, so the
        // growth below is what the live queries hold. Concurrent reads that each hold
        // their reader a moment reach every reader.
        futures::future::join_all((0..16).map(|_| {
            db.read(|conn| {
                conn.query_row("SELECT count(*) FROM t0", [], |row| row.get::<_, i64>(0))?;
                std::thread::sleep(Duration::from_millis(20));
                Ok(())
            })
        }))
        .await;
        let before = resident_kib();
        let mut tasks = Vec::with_capacity(others + 1);
        for i in 0..others {
            let table = 1 + i % (FANOUT_TABLES - 1);
            let mut query = db
                .query::<i64>(format!("SELECT count(*) FROM t{table} WHERE v = {i}"))
                .throttle(Duration::ZERO)
                .watch();
            query.next().await.unwrap().unwrap();
            tasks.push(tokio::spawn(async move {
                while query.next().await.is_some() {}
            }));
        }
        let grown_kib = resident_kib().saturating_sub(before);
        let (sender, emissions) = tokio::sync::mpsc::unbounded_channel();
        // One row, updated in place: the query costs the same at every sample.
        db.execute("INSERT INTO t0(id, v) VALUES ('1', 0)", ())
            .await
            .unwrap();
        let mut watched = db
            .query::<i64>("SELECT v FROM t0 WHERE id = '1'")
            .throttle(Duration::ZERO)
            .watch();
        watched.next().await.unwrap().unwrap();
        tasks.push(tokio::spawn(async move {
            while let Some(result) = watched.next().await {
                result.unwrap();
                let _ = sender.send(Instant::now());
            }
        }));
        Mounted {
            db,
            _dir: dir,
            emissions,
            tasks,
            grown_kib,
        }
    })
}

impl Mounted {
    /// One write to `t0`; commit → emission of its live query.
    async fn one_write(&mut self, value: i64) -> Duration {
        let committed_at = Arc::new(Mutex::new(None::<Instant>));
        let at = Arc::clone(&committed_at);
        self.db
            .write(move |conn| {
                conn.execute("UPDATE t0 SET v = ?1 WHERE id = '1'", [value])?;
                *at.lock().unwrap() = Some(Instant::now());
                Ok(())
            })
            .await
            .unwrap();
        let emitted = self.emissions.recv().await.expect("an emission");
        let committed = committed_at.lock().unwrap().take().unwrap();
        emitted.saturating_duration_since(committed)
    }

    fn close(self, rt: &tokio::runtime::Runtime) {
        rt.block_on(async {
            self.db.close().await;
            for task in self.tasks {
                task.await.unwrap();
            }
        });
    }
}

fn fanout_latency(c: &mut Criterion) {
    let rt = ui_runtime();
    let mut group = c.benchmark_group("fanout_latency");
    group.sample_size(20);
    let mut medians = Vec::new();
    for (name, others) in [
        ("only_the_affected_query_mounted", 0),
        ("10000_live_queries_over_1000_tables", FANOUT_QUERIES - 1),
    ] {
        let setup = Instant::now();
        let mut mounted = mount(&rt, others);
        let setup = setup.elapsed();
        if others > 0 {
            println!(
                "\nmounting {} live queries over {FANOUT_TABLES} tables took {:.2} s; resident set grew by {} KiB ({:.2} KiB per live query)\n",
                others,
                setup.as_secs_f64(),
                mounted.grown_kib,
                mounted.grown_kib as f64 / others as f64,
            );
        }
        let samples = Arc::new(Mutex::new(Vec::new()));
        let mut next_value = 0;
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    next_value += 1;
                    let latency = rt.block_on(mounted.one_write(next_value));
                    samples.lock().unwrap().push(latency);
                    total += latency;
                }
                total
            })
        });
        mounted.close(&rt);
        let mut samples = samples.lock().unwrap().clone();
        samples.sort();
        medians.push((percentile(&samples, 0.5), percentile(&samples, 0.99)));
    }
    group.finish();
    let [(alone, alone_p99), (crowded, crowded_p99)] = medians[..] else {
        return;
    };
    println!(
        "\ncommit -> emission of the affected query: median {:.1} µs (p99 {:.1} µs) with 10,000 live queries mounted \
         vs {:.1} µs (p99 {:.1} µs) with only that query; ratio (median) {:.2}x\n",
        crowded.as_secs_f64() * 1e6,
        crowded_p99.as_secs_f64() * 1e6,
        alone.as_secs_f64() * 1e6,
        alone_p99.as_secs_f64() * 1e6,
        crowded.as_secs_f64() / alone.as_secs_f64().max(1e-9),
    );
}

fn create_live_queries(c: &mut Criterion) {
    let rt = runtime();
    for (table_count, queries) in [(100, 1_000), (200, 2_000)] {
        let dir = tempfile::tempdir().unwrap();
        let db = rt.block_on(open(&dir, tables(table_count)));
        let sql = |i: usize| {
            format!(
                "SELECT count(*) FROM t{} WHERE v % 10 = {}",
                i % table_count,
                i / table_count
            )
        };
        let mut group = c.benchmark_group(format!("create_{queries}_over_{table_count}_tables"));
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500));
        let fetch = Arc::new(Mutex::new(common::Totals::default()));
        let live = Arc::new(Mutex::new(common::Totals::default()));
        group.bench_function("fetch_all", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let elapsed = rt.block_on(async {
                        let start = Instant::now();
                        for i in 0..queries {
                            db.query::<i64>(sql(i)).fetch_all().await.unwrap();
                        }
                        start.elapsed()
                    });
                    fetch.lock().unwrap().add(elapsed);
                    total += elapsed;
                }
                total
            })
        });
        group.bench_function("watch_first_result", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let elapsed = rt.block_on(async {
                        let start = Instant::now();
                        let mut mounted = Vec::with_capacity(queries);
                        for i in 0..queries {
                            let mut query = db.query::<i64>(sql(i)).watch();
                            query.next().await.unwrap().unwrap();
                            mounted.push(query);
                        }
                        let elapsed = start.elapsed();
                        drop(mounted);
                        elapsed
                    });
                    live.lock().unwrap().add(elapsed);
                    total += elapsed;
                }
                total
            })
        });
        group.finish();
        rt.block_on(db.close());
        let (fetch, live) = (fetch.lock().unwrap().mean(), live.lock().unwrap().mean());
        println!(
            "\ncreating {queries} live queries over {table_count} tables: {:.3} s ({:.1} µs each) vs {queries} fetch_all {:.3} s ({:.1} µs each); ratio {:.2}x\n",
            live,
            live / queries as f64 * 1e6,
            fetch,
            fetch / queries as f64 * 1e6,
            live / fetch,
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

criterion_group!(
    benches,
    fanout_latency,
    create_live_queries,
    decoding,
    emission_latency,
    watch_throughput,
    identical_queries
);
criterion_main!(benches);
