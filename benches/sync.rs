//! Initial-sync benchmarks: a fresh file database downloads everything from the
//! in-process `TestSyncService` over loopback HTTP, until the first checkpoint is
//! applied. Each is reported against a baseline measured in the same run: raw rusqlite
//! parsing the same NDJSON data lines and inserting their rows (`id`, `data`) into a
//! plain table of a WAL file database, one transaction per line.
//!
//! (a) 100k rows in one bucket (criterion, 10 samples);
//! (b) 1M rows in 10 buckets (one measured run each, in a fresh child process; also the
//!     peak RSS growth during the livesync sync, reset through `/proc/self/clear_refs`).
//!
//! (a) also runs the 100k download with each framing (NDJSON, BSON) and with compression
//! on and off, and prints the bytes each sent on the wire; and the default download into
//! a raw table (typed columns, one put statement per row) instead of the JSON table.
//!
//! The service sends 1,000 ops per data line. Run with `cargo bench --bench sync --features testing`
//! (add `smol` for the same 100k download with the client on smol); a filter argument
//! (`-- a_initial_sync`) leaves (b) out unless it matches (b)'s name.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

use common::{Totals, runtime, todo_schema};

use criterion::{Criterion, criterion_group};
use livesync::rusqlite::Connection;
use livesync::testing::TestSyncService;
use livesync::{Database, SyncOptions};
use serde_json::{Value, json};

const OPS_PER_LINE: usize = 1_000;

fn row(i: usize) -> (String, Value) {
    (
        format!("row-{i:08}"),
        json!({"description": format!("todo number {i}"), "done": i % 2, "score": i as f64 * 0.5}),
    )
}

/// A service holding `rows` rows spread over `buckets` buckets.
async fn service(rows: usize, buckets: usize) -> TestSyncService {
    let service = TestSyncService::builder()
        .ops_per_line(OPS_PER_LINE)
        .start()
        .await
        .expect("service");
    for i in 0..rows {
        let (id, data) = row(i);
        service.put(&format!("bucket{}", i % buckets), "todos", &id, data);
    }
    service.commit();
    service
}

/// The data lines the service sends for the same rows, for the baseline to parse.
fn data_lines(rows: usize, buckets: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for bucket in 0..buckets {
        let ids: Vec<usize> = (bucket..rows).step_by(buckets).collect();
        for chunk in ids.chunks(OPS_PER_LINE) {
            let ops: Vec<Value> = chunk
                .iter()
                .map(|&i| {
                    let (id, data) = row(i);
                    json!({"op_id": (i + 1).to_string(), "op": "PUT", "object_type": "todos",
                           "object_id": id, "checksum": i as u32, "subkey": "s",
                           "data": data.to_string()})
                })
                .collect();
            lines.push(
                json!({"data": {"bucket": format!("bucket{bucket}"), "data": ops}}).to_string(),
            );
        }
    }
    lines
}

fn raw_sync(dir: &tempfile::TempDir, lines: &[String]) -> Duration {
    let mut conn = Connection::open(dir.path().join("raw.db")).expect("open raw");
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
         CREATE TABLE todos(id TEXT PRIMARY KEY NOT NULL, data TEXT);",
    )
    .expect("raw schema");
    let start = Instant::now();
    for line in lines {
        let parsed: Value = serde_json::from_str(line).expect("json");
        let tx = conn.transaction().expect("tx");
        {
            let mut insert = tx
                .prepare_cached("INSERT OR REPLACE INTO todos(id, data) VALUES (?1, ?2)")
                .expect("prepare");
            for op in parsed["data"]["data"].as_array().expect("ops") {
                insert
                    .execute((op["object_id"].as_str(), op["data"].as_str()))
                    .expect("insert");
            }
        }
        tx.commit().expect("commit");
    }
    start.elapsed()
}

async fn livesync_sync(service: &TestSyncService, dir: &tempfile::TempDir) -> Duration {
    livesync_sync_with(service, dir, SyncOptions::default()).await
}

/// [`livesync_sync`] with `options` (e.g. without compression).
async fn livesync_sync_with(
    service: &TestSyncService,
    dir: &tempfile::TempDir,
    options: SyncOptions,
) -> Duration {
    livesync_sync_into(service, dir, options, false).await
}

/// [`livesync_sync_with`], into a raw table `todos` (typed columns, upload triggers)
/// instead of the JSON-backed one when `raw_table`.
async fn livesync_sync_into(
    service: &TestSyncService,
    dir: &tempfile::TempDir,
    options: SyncOptions,
    raw_table: bool,
) -> Duration {
    let schema = if raw_table {
        livesync::Schema::default().raw_table(livesync::RawTable::new("todos"))
    } else {
        todo_schema()
    };
    let db = Database::open(dir.path().join("livesync.db"), schema)
        .await
        .expect("open");
    if raw_table {
        db.execute_batch(
            "CREATE TABLE todos(id TEXT PRIMARY KEY NOT NULL, description TEXT, done INTEGER, score REAL)",
        )
        .await
        .expect("raw table");
        db.prepare_raw_tables().await.expect("raw table triggers");
    }
    let start = Instant::now();
    db.connect(service.connector("bench"), options)
        .await
        .expect("connect");
    db.wait_for_first_sync().await.expect("synced");
    let elapsed = start.elapsed();
    db.close().await;
    elapsed
}

/// [`livesync_sync`] with the client's executor and timers from smol: one
/// `async_executor::Executor` run by `async_io::block_on` on this thread.
#[cfg(feature = "smol")]
fn smol_sync(service: &TestSyncService, dir: &tempfile::TempDir) -> Duration {
    let executor = Arc::new(async_executor::Executor::new());
    let options =
        livesync::OpenOptions::default().runtime(livesync::Runtime::smol(Arc::clone(&executor)));
    async_io::block_on(executor.run(async {
        let db = Database::open_with(dir.path().join("livesync.db"), todo_schema(), options)
            .await
            .expect("open");
        let start = Instant::now();
        db.connect(service.connector("bench"), SyncOptions::default())
            .await
            .expect("connect");
        db.wait_for_first_sync().await.expect("synced");
        let elapsed = start.elapsed();
        db.close().await;
        elapsed
    }))
}

fn sync_100k(c: &mut Criterion) {
    const ROWS: usize = 100_000;
    let rt = runtime();
    let service = rt.block_on(service(ROWS, 1));
    let lines = data_lines(ROWS, 1);
    let raw = Arc::new(Mutex::new(Totals::default()));
    let ours = Arc::new(Mutex::new(Totals::default()));
    let mut group = c.benchmark_group("a_initial_sync_100k_rows_1_bucket");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.bench_function("raw_rusqlite_parse_and_insert", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let dir = tempfile::tempdir().unwrap();
                    let elapsed = raw_sync(&dir, &lines);
                    raw.lock().unwrap().add(elapsed);
                    elapsed
                })
                .sum()
        })
    });
    group.bench_function("livesync_from_test_service", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let dir = tempfile::tempdir().unwrap();
                    let elapsed = rt.block_on(livesync_sync(&service, &dir));
                    ours.lock().unwrap().add(elapsed);
                    elapsed
                })
                .sum()
        })
    });
    // The same download as plain NDJSON (`SyncOptions::compressed(false)`): what the
    // compression (zstd, both ends in this process) costs in time and saves in bytes;
    // and both again framed as BSON (`SyncOptions::accept_bson(true)`).
    // Last, the default download into a raw table.
    let variants = [
        (
            "livesync_from_test_service_uncompressed",
            false,
            false,
            false,
        ),
        ("livesync_from_test_service_bson", true, true, false),
        (
            "livesync_from_test_service_bson_uncompressed",
            true,
            false,
            false,
        ),
        (
            "livesync_from_test_service_into_raw_table",
            false,
            true,
            true,
        ),
    ];
    let variant_totals: Vec<Arc<Mutex<Totals>>> = variants
        .iter()
        .map(|_| Arc::new(Mutex::new(Totals::default())))
        .collect();
    for ((name, bson, compressed, raw_table), totals) in variants.iter().zip(&variant_totals) {
        group.bench_function(*name, |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        let dir = tempfile::tempdir().unwrap();
                        let options = SyncOptions::default()
                            .accept_bson(*bson)
                            .compressed(*compressed);
                        let elapsed =
                            rt.block_on(livesync_sync_into(&service, &dir, options, *raw_table));
                        totals.lock().unwrap().add(elapsed);
                        elapsed
                    })
                    .sum()
            })
        });
    }
    // The same download with the client on smol (the service stays on tokio's threads).
    #[cfg(feature = "smol")]
    let on_smol = Arc::new(Mutex::new(Totals::default()));
    #[cfg(feature = "smol")]
    group.bench_function("livesync_from_test_service_on_smol", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let dir = tempfile::tempdir().unwrap();
                    let elapsed = smol_sync(&service, &dir);
                    on_smol.lock().unwrap().add(elapsed);
                    elapsed
                })
                .sum()
        })
    });
    group.finish();
    let (raw, ours) = (raw.lock().unwrap().mean(), ours.lock().unwrap().mean());
    println!(
        "\n(a) initial sync of {ROWS} rows in 1 bucket: livesync {:.0} ops/s ({ours:.2} s), raw rusqlite {:.0} rows/s, ratio livesync/raw time = {:.2}x\n",
        ROWS as f64 / ours,
        ROWS as f64 / raw,
        ours / raw
    );
    // Bytes on the wire for one download each way (after compression).
    let wire = |options: SyncOptions| {
        let before = service.stream_bytes_sent();
        rt.block_on(livesync_sync_with(
            &service,
            &tempfile::tempdir().unwrap(),
            options,
        ));
        service.stream_bytes_sent() - before
    };
    let options = |bson: bool, compressed: bool| {
        SyncOptions::default()
            .accept_bson(bson)
            .compressed(compressed)
    };
    let zstd_bytes = wire(options(false, true));
    let plain_bytes = wire(options(false, false));
    let plain = variant_totals[0].lock().unwrap().mean();
    println!(
        "(a, compression) zstd: {:.0} ops/s, {:.2} MB on the wire; plain NDJSON: {:.0} ops/s ({plain:.2} s, ratio zstd/plain time = {:.2}x), {:.2} MB on the wire ({:.1}x the bytes)\n",
        ROWS as f64 / ours,
        zstd_bytes as f64 / 1e6,
        ROWS as f64 / plain,
        ours / plain,
        plain_bytes as f64 / 1e6,
        plain_bytes as f64 / zstd_bytes.max(1) as f64
    );
    // NDJSON against BSON, each compressed and plain, all against the same baseline.
    let bson_zstd_bytes = wire(options(true, true));
    let bson_plain_bytes = wire(options(true, false));
    let bson_zstd = variant_totals[1].lock().unwrap().mean();
    let bson_plain = variant_totals[2].lock().unwrap().mean();
    for (label, time, bytes) in [
        ("NDJSON, zstd", ours, zstd_bytes),
        ("NDJSON, plain", plain, plain_bytes),
        ("BSON, zstd", bson_zstd, bson_zstd_bytes),
        ("BSON, plain", bson_plain, bson_plain_bytes),
    ] {
        println!(
            "(a, framing) {label}: {:.0} ops/s ({time:.2} s, {:.2}x the raw baseline's time, {:.2}x NDJSON's with the same compression), {:.2} MB on the wire",
            ROWS as f64 / time,
            time / raw,
            time / if label.ends_with("zstd") { ours } else { plain },
            bytes as f64 / 1e6,
        );
    }
    println!();
    let into_raw = variant_totals[3].lock().unwrap().mean();
    println!(
        "(a, raw table) the default download into a raw table: {:.0} ops/s ({into_raw:.2} s, {:.2}x the raw baseline's time, {:.2}x the JSON table's)\n",
        ROWS as f64 / into_raw,
        into_raw / raw,
        into_raw / ours,
    );
    #[cfg(feature = "smol")]
    {
        let smol = on_smol.lock().unwrap().mean();
        println!(
            "(a, smol) initial sync of {ROWS} rows in 1 bucket: livesync on smol {:.0} ops/s ({smol:.2} s), ratio smol/tokio time = {:.2}x, smol/raw time = {:.2}x\n",
            ROWS as f64 / smol,
            smol / ours,
            smol / raw
        );
    }
    rt.block_on(service.shutdown());
}

/// Peak resident set size of this process in KiB (`VmHWM`), and the current one.
fn memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

const ROWS_1M: usize = 1_000_000;

/// (b) runs in a fresh child process: memory freed by earlier benches stays resident and
/// would hide the sync's own growth from the peak-RSS figure.
fn sync_1m(_: &mut Criterion) {
    // A filter that does not name (b) leaves it out (criterion's own filter only
    // applies to benchmark functions, and (b) is a single measured run).
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with('-'))
        .collect();
    if !filters.is_empty()
        && !filters
            .iter()
            .any(|filter| "b_initial_sync_1m_rows_10_buckets".contains(filter.as_str()))
    {
        return;
    }
    let exe = std::env::current_exe().expect("bench executable");
    let output = std::process::Command::new(exe)
        .env(CHILD_ENV, "1")
        .output()
        .expect("run the 1M-row measurement");
    print!("{}", String::from_utf8_lossy(&output.stdout));
    assert!(
        output.status.success(),
        "1M-row measurement failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

const CHILD_ENV: &str = "LIVESYNC_SYNC_BENCH_1M_CHILD";

fn sync_1m_in_this_process() {
    const ROWS: usize = ROWS_1M;
    let rt = runtime();
    let service = rt.block_on(service(ROWS, 10));
    let dir = tempfile::tempdir().unwrap();
    // Reset the peak to the current RSS, so the peak afterwards is the sync's own growth
    // (measured before the baseline allocates its copy of the lines).
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let (_, before) = memory_kib();
    let ours = rt.block_on(livesync_sync(&service, &dir));
    let (peak, _) = memory_kib();
    rt.block_on(service.shutdown());
    let lines = data_lines(ROWS, 10);
    let raw = raw_sync(&tempfile::tempdir().unwrap(), &lines);
    println!(
        "\n(b) initial sync of {ROWS} rows in 10 buckets: livesync {:.0} ops/s ({:.2} s), raw rusqlite {:.0} rows/s ({:.2} s), ratio = {:.2}x; peak RSS growth {} MiB{}\n",
        ROWS as f64 / ours.as_secs_f64(),
        ours.as_secs_f64(),
        ROWS as f64 / raw.as_secs_f64(),
        raw.as_secs_f64(),
        ours.as_secs_f64() / raw.as_secs_f64(),
        peak.saturating_sub(before) / 1024,
        if reset {
            ""
        } else {
            " (peak could not be reset: includes set-up)"
        }
    );
    rt.block_on(service.shutdown());
}

criterion_group!(benches, sync_100k, sync_1m);

fn main() {
    if std::env::var_os(CHILD_ENV).is_some() {
        sync_1m_in_this_process();
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
