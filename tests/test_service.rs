//! `TestSyncService` speaks the PowerSync protocol: checked with plain HTTP requests.
#![cfg(feature = "testing")]

mod common;

use std::time::Duration;

use common::wait::{WAIT, in_time, until};
use livesync::testing::{BucketRule, ParameterSource, TestSyncService};
use livesync::{BackendConnector, Database};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// Reads a sync stream line by line (lines may span chunks).
struct SyncLines {
    response: reqwest::Response,
    buffer: Vec<u8>,
}

impl SyncLines {
    /// The next line as JSON (`Value::String` holding the raw text if it is not JSON);
    /// `None` at the end of the stream. Panics if nothing arrives within `WAIT`.
    async fn next(&mut self) -> Option<Value> {
        self.next_within(WAIT).await.expect("a line in time")
    }

    /// `Err(())` when nothing arrived within `wait`.
    async fn next_within(&mut self, wait: Duration) -> Result<Option<Value>, ()> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                let text = String::from_utf8(line[..end].to_vec()).unwrap();
                return Ok(Some(
                    serde_json::from_str(&text).unwrap_or(Value::String(text)),
                ));
            }
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Err(_) => return Err(()),
                Ok(Ok(Some(chunk))) => self.buffer.extend_from_slice(&chunk),
                Ok(Ok(None)) => return Ok(None),
                Ok(Err(error)) => panic!("stream failed: {error}"),
            }
        }
    }

    /// Lines up to and including the next `checkpoint_complete`.
    async fn until_complete(&mut self) -> Vec<Value> {
        let mut lines = Vec::new();
        for _ in 0..10_000 {
            let line = self.next().await.expect("stream open");
            let done = line.get("checkpoint_complete").is_some();
            lines.push(line);
            if done {
                return lines;
            }
        }
        panic!("no checkpoint_complete in 10000 lines");
    }

    /// Whether the stream fails (connection reset) before ending or producing `limit` lines.
    async fn fails_within(&mut self, limit: usize) -> (usize, bool) {
        for received in 0..limit {
            loop {
                if let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                    self.buffer.drain(..=end);
                    break;
                }
                match tokio::time::timeout(WAIT, self.response.chunk()).await {
                    Err(_) => panic!("stalled"),
                    Ok(Ok(Some(chunk))) => self.buffer.extend_from_slice(&chunk),
                    Ok(Ok(None)) => return (received, false),
                    Ok(Err(_)) => return (received, true),
                }
            }
        }
        (limit, false)
    }
}

async fn open_stream(service: &TestSyncService, token: &str, body: Value) -> SyncLines {
    let response = http()
        .post(format!("{}/sync/stream", service.url()))
        .header("Authorization", format!("Token {token}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    assert_eq!(
        response.headers()["content-type"],
        "application/x-ndjson",
        "NDJSON framing"
    );
    SyncLines {
        response,
        buffer: Vec::new(),
    }
}

fn request(client_id: &str, buckets: &[(&str, i64)]) -> Value {
    json!({
        "buckets": buckets.iter().map(|(name, after)| json!({"name": name, "after": after.to_string()})).collect::<Vec<_>>(),
        "include_checksum": true,
        "raw_data": true,
        "binary_data": true,
        "client_id": client_id,
        "parameters": {},
        "streams": {"include_defaults": true, "subscriptions": []},
    })
}

fn le_u32_of_sha256(text: &str) -> u32 {
    let hash = Sha256::digest(text.as_bytes());
    u32::from_le_bytes([hash[0], hash[1], hash[2], hash[3]])
}

fn data_ops(lines: &[Value]) -> Vec<Value> {
    lines
        .iter()
        .filter_map(|line| line.get("data"))
        .flat_map(|data| data["data"].as_array().unwrap().clone())
        .collect()
}

fn checksum_of(op: &Value) -> u32 {
    op["checksum"].as_u64().unwrap() as u32
}

fn bucket_entry<'a>(buckets: &'a Value, name: &str) -> &'a Value {
    buckets
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["bucket"] == name)
        .unwrap_or_else(|| panic!("bucket {name} in {buckets}"))
}

async fn service_with_rules() -> TestSyncService {
    TestSyncService::builder()
        .rule(BucketRule::global("global", ["lists"]))
        .rule(BucketRule::per_value(
            "by_owner",
            "todos",
            "owner",
            ParameterSource::UserId,
        ))
        .start()
        .await
        .unwrap()
}

/// A browser app served from another origin can sync: the `Authorization` preflight is
/// answered, and every answer (errors too) is readable from any origin.
#[tokio::test]
async fn browsers_on_other_origins_pass_the_cors_preflight_and_read_every_answer() {
    let service = TestSyncService::start().await.unwrap();
    for path in ["/sync/stream", "/write-checkpoint2.json", "/upload"] {
        let preflight = http()
            .request(reqwest::Method::OPTIONS, format!("{}{path}", service.url()))
            .header("Origin", "http://127.0.0.1:1")
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization, content-type",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(preflight.status(), 204, "{path}");
        let headers = preflight.headers();
        assert_eq!(headers["access-control-allow-origin"], "*");
        let allowed = headers["access-control-allow-headers"].to_str().unwrap();
        assert!(allowed.contains("authorization") && allowed.contains("content-type"));
        let methods = headers["access-control-allow-methods"].to_str().unwrap();
        assert!(methods.contains("POST") && methods.contains("GET"));
    }
    let refused = http()
        .post(format!("{}/sync/stream", service.url()))
        .json(&request("c", &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(refused.headers()["access-control-allow-origin"], "*");
}

#[tokio::test]
async fn requests_without_a_valid_token_get_401_with_the_service_error_body() {
    let service = TestSyncService::start().await.unwrap();
    let url = format!("{}/sync/stream", service.url());
    let post = |auth: Option<String>| {
        let mut request = http().post(&url).json(&request("c", &[]));
        if let Some(auth) = auth {
            request = request.header("Authorization", auth);
        }
        request.send()
    };
    let code_of = |response: reqwest::Response| async move {
        assert_eq!(response.status(), 401);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["status"], 401);
        assert!(body["error"]["description"].as_str().is_some());
        body["error"]["code"].as_str().unwrap().to_owned()
    };
    assert_eq!(code_of(post(None).await.unwrap()).await, "PSYNC_S2106");
    assert_eq!(
        code_of(post(Some("Token not.a.jwt".into())).await.unwrap()).await,
        "PSYNC_S2101"
    );
    // Signed with another service's secret.
    let other = TestSyncService::builder()
        .secret("other secret")
        .start()
        .await
        .unwrap();
    let foreign = other.token("u1");
    assert_eq!(
        code_of(post(Some(format!("Token {foreign}"))).await.unwrap()).await,
        "PSYNC_S2102"
    );
    let other_audience = TestSyncService::builder()
        .audience("somebody-else")
        .start()
        .await
        .unwrap();
    let wrong_aud = other_audience.token("u1");
    let to_other = http()
        .post(format!("{}/sync/stream", service.url()))
        .header("Authorization", format!("Token {wrong_aud}"))
        .json(&request("c", &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(
        code_of(to_other).await,
        "PSYNC_S2105",
        "same key, wrong audience"
    );
    let expired = service.token_with("u1", Duration::ZERO, None);
    assert_eq!(
        code_of(post(Some(format!("Token {expired}"))).await.unwrap()).await,
        "PSYNC_S2103"
    );
    let too_long = service.token_with("u1", Duration::from_secs(2 * 86_400), None);
    assert_eq!(
        code_of(post(Some(format!("Token {too_long}"))).await.unwrap()).await,
        "PSYNC_S2104"
    );
    // `Bearer` works as well as `Token`.
    let ok = post(Some(format!("Bearer {}", service.token("u1"))))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn audience_mismatch_is_its_own_error() {
    let service = TestSyncService::builder()
        .audience("expected")
        .secret("shared")
        .start()
        .await
        .unwrap();
    let signer = TestSyncService::builder()
        .audience("another")
        .secret("shared")
        .start()
        .await
        .unwrap();
    let response = http()
        .post(format!("{}/sync/stream", service.url()))
        .header("Authorization", format!("Token {}", signer.token("u1")))
        .json(&request("c", &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "PSYNC_S2105");
}

#[tokio::test]
async fn initial_sync_sends_a_checkpoint_data_with_real_checksums_and_complete() {
    let service = service_with_rules().await;
    service.upsert_row("lists", "l1", json!({"name": "Groceries"}));
    service.upsert_row("todos", "t1", json!({"owner": "u1", "description": "milk"}));
    service.upsert_row(
        "todos",
        "t2",
        json!({"owner": "u2", "description": "not mine"}),
    );
    service.put("extra", "notes", "n1", json!({"text": "hi"}));
    let checkpoint = service.commit();

    let mut lines = open_stream(&service, &service.token("u1"), request("c1", &[])).await;
    let lines = lines.until_complete().await;
    let head = &lines[0]["checkpoint"];
    assert_eq!(head["last_op_id"], checkpoint.to_string());
    assert!(head["write_checkpoint"].is_null());
    let names: Vec<&str> = head["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["bucket"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [r#"by_owner["u1"]"#, "extra", "global[]"],
        "u2's bucket is not sent"
    );

    let ops = data_ops(&lines);
    assert_eq!(ops.len(), 3);
    for op in &ops {
        // The op checksum is SHA-256 based, exactly as the real service computes it.
        let data = op["data"]
            .as_str()
            .expect("raw_data sends data as JSON text");
        let expected = le_u32_of_sha256(&format!(
            "put.{}.{}.{}",
            op["object_type"].as_str().unwrap(),
            op["object_id"].as_str().unwrap(),
            data
        ));
        assert_eq!(checksum_of(op), expected);
        assert_eq!(op["op"], "PUT");
        assert!(op["subkey"].as_str().is_some());
    }
    for line in lines.iter().filter_map(|l| l.get("data")) {
        let bucket = line["bucket"].as_str().unwrap();
        let sum = line["data"]
            .as_array()
            .unwrap()
            .iter()
            .fold(0u32, |acc, op| acc.wrapping_add(checksum_of(op)));
        let entry = bucket_entry(&head["buckets"], bucket);
        // Bucket checksums go out as signed 32-bit integers, like the real service.
        assert_eq!(entry["checksum"].as_i64().unwrap(), sum as i32 as i64);
        assert_eq!(entry["count"], 1);
    }
    assert_eq!(
        lines.last().unwrap()["checkpoint_complete"]["last_op_id"],
        checkpoint.to_string()
    );
}

#[tokio::test]
async fn large_buckets_arrive_in_several_data_lines() {
    let service = TestSyncService::builder()
        .ops_per_line(10)
        .start()
        .await
        .unwrap();
    for i in 0..25 {
        service.put("big", "items", &format!("i{i}"), json!({"n": i}));
    }
    service.commit();
    let mut lines = open_stream(&service, &service.token("u"), request("c", &[])).await;
    let lines = lines.until_complete().await;
    let data: Vec<&Value> = lines.iter().filter_map(|l| l.get("data")).collect();
    assert_eq!(data.len(), 3);
    assert_eq!(data[0]["has_more"], true);
    assert_eq!(data[2]["has_more"], false);
    assert_eq!(data_ops(&lines).len(), 25);
    assert_eq!(service.ops_sent(), 25);
}

#[tokio::test]
async fn later_changes_arrive_as_diffs_with_only_the_new_ops() {
    let service = service_with_rules().await;
    service.upsert_row("lists", "l1", json!({"name": "a"}));
    service.upsert_row("todos", "t1", json!({"owner": "u1", "description": "x"}));
    service.commit();
    let mut lines = open_stream(&service, &service.token("u1"), request("c1", &[])).await;
    lines.until_complete().await;

    // A change in another user's bucket sends nothing to u1.
    service.upsert_row("todos", "t9", json!({"owner": "u2"}));
    service.commit();
    assert!(lines.next_within(Duration::from_millis(200)).await.is_err());

    service.upsert_row("lists", "l2", json!({"name": "b"}));
    // Moving t1 to another owner removes it from u1's bucket.
    service.upsert_row("todos", "t1", json!({"owner": "u2", "description": "x"}));
    let checkpoint = service.commit();
    let update = lines.until_complete().await;
    let diff = &update[0]["checkpoint_diff"];
    assert_eq!(diff["last_op_id"], checkpoint.to_string());
    assert_eq!(diff["updated_buckets"].as_array().unwrap().len(), 2);
    assert_eq!(diff["removed_buckets"], json!([]));
    let ops = data_ops(&update);
    let kinds: Vec<(&str, &str)> = ops
        .iter()
        .map(|op| {
            (
                op["op"].as_str().unwrap(),
                op["object_id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(kinds, [("REMOVE", "t1"), ("PUT", "l2")]);
    let remove = &ops[0];
    assert!(remove["data"].is_null());
    assert_eq!(
        checksum_of(remove),
        le_u32_of_sha256(&format!("delete.{}", remove["subkey"].as_str().unwrap()))
    );
}

#[tokio::test]
async fn a_new_connection_resumes_after_the_ops_it_already_has() {
    let service = TestSyncService::start().await.unwrap();
    service.put("b", "items", "a", json!({"v": 1}));
    service.put("b", "items", "b", json!({"v": 2}));
    let first = service.commit();
    let mut lines = open_stream(&service, &service.token("u"), request("c", &[])).await;
    assert_eq!(data_ops(&lines.until_complete().await).len(), 2);
    drop(lines);
    until("the service noticed the client left", || {
        service.open_streams() == 0
    })
    .await;

    service.put("b", "items", "c", json!({"v": 3}));
    service.commit();
    let mut resumed =
        open_stream(&service, &service.token("u"), request("c", &[("b", first)])).await;
    let resumed = resumed.until_complete().await;
    let ops = data_ops(&resumed);
    assert_eq!(ops.len(), 1, "only the op after {first}");
    assert_eq!(ops[0]["object_id"], "c");
    // The checksum still covers every op of the bucket.
    let total = bucket_entry(&resumed[0]["checkpoint"]["buckets"], "b");
    assert_eq!(total["count"], 3);
    assert_eq!(service.ops_sent(), 3, "nothing was downloaded twice");
    assert_eq!(
        service.sync_requests()[1]["buckets"][0]["after"],
        first.to_string()
    );
}

#[tokio::test]
async fn keepalives_count_down_to_token_expiry() {
    let service = TestSyncService::builder()
        .keepalive_interval(Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    let token = service.token_with("u", Duration::from_secs(2), None);
    let mut lines = open_stream(&service, &token, request("c", &[])).await;
    lines.until_complete().await;
    let keepalive = lines.next().await.unwrap();
    let left = keepalive["token_expires_in"].as_i64().unwrap();
    assert!((0..=2).contains(&left), "{keepalive}");
    // At expiry the service says 0 and ends the stream.
    let mut last = keepalive;
    while let Some(line) = lines.next().await {
        last = line;
    }
    assert_eq!(last, json!({"token_expires_in": 0}));
}

#[tokio::test]
async fn write_checkpoints_are_echoed_to_the_client_that_asked() {
    let service = TestSyncService::start().await.unwrap();
    service.put("b", "items", "a", json!({"v": 1}));
    service.commit();
    let token = service.token("u1");
    let mut mine = open_stream(&service, &token, request("client-a", &[])).await;
    let mut other = open_stream(&service, &token, request("client-b", &[])).await;
    mine.until_complete().await;
    other.until_complete().await;

    let response: Value = http()
        .get(format!(
            "{}/write-checkpoint2.json?client_id=client-a",
            service.url()
        ))
        .header("Authorization", format!("Token {token}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let write_checkpoint = response["data"]["write_checkpoint"].as_str().unwrap();
    assert_eq!(write_checkpoint, "1");
    let echo = mine.until_complete().await;
    assert_eq!(echo[0]["checkpoint_diff"]["write_checkpoint"], "1");
    assert_eq!(echo[0]["checkpoint_diff"]["updated_buckets"], json!([]));
    assert!(
        other.next_within(Duration::from_millis(200)).await.is_err(),
        "another client's write checkpoint is not echoed"
    );

    let unauthenticated = http()
        .get(format!(
            "{}/write-checkpoint2.json?client_id=x",
            service.url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
}

#[tokio::test]
async fn checkpoint_requests_are_validated_acknowledged_and_echoed() {
    let service = TestSyncService::start().await.unwrap();
    service.put("b", "items", "a", json!({"v": 1}));
    service.commit();
    let token = service.token("u1");
    let mut mine = open_stream(&service, &token, request("client-a", &[])).await;
    mine.until_complete().await;
    let url = format!("{}/sync/checkpoint-request", service.url());
    let post = |body: Value| {
        http()
            .post(&url)
            .header("Authorization", format!("Token {token}"))
            .json(&body)
            .send()
    };
    for bad in [
        json!({"checkpoint_request_id": "1"}),
        json!({"client_id": "client-a", "checkpoint_request_id": "0"}),
        json!({"client_id": "client-a", "checkpoint_request_id": 9_007_199_254_740_993_u64}),
        json!({"client_id": "client-a", "checkpoint_request_id": "x"}),
    ] {
        assert_eq!(post(bad.clone()).await.unwrap().status(), 400, "{bad}");
    }
    let answer = |body: Value| async { post(body).await.unwrap().json::<Value>().await.unwrap() };
    assert_eq!(
        answer(json!({"client_id": "client-a", "checkpoint_request_id": 5})).await,
        json!({"data": {"checkpoint_request_id": "5"}})
    );
    let echo = mine.until_complete().await;
    assert_eq!(echo[0]["checkpoint_diff"]["write_checkpoint"], "5");
    // A stale id is acknowledged with the newer one the service holds.
    assert_eq!(
        answer(json!({"client_id": "client-a", "checkpoint_request_id": "3"})).await,
        json!({"data": {"checkpoint_request_id": "5"}})
    );
    assert_eq!(
        service.checkpoint_requests().len(),
        6,
        "every request is recorded"
    );

    let old = TestSyncService::builder()
        .checkpoint_requests(false)
        .start()
        .await
        .unwrap();
    let refused = http()
        .post(format!("{}/sync/checkpoint-request", old.url()))
        .header("Authorization", format!("Token {}", old.token("u1")))
        .json(&json!({"client_id": "c", "checkpoint_request_id": "1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 404, "like a service before 1.24.0");
}

#[tokio::test]
async fn uploads_update_the_backend_tables_and_flow_back_through_the_buckets() {
    let service = service_with_rules().await;
    service.reject_uploads_to("forbidden");
    let token = service.token("u1");
    let mut lines = open_stream(&service, &token, request("c", &[])).await;
    lines.until_complete().await;

    let upload = |batch: Value| {
        http()
            .post(format!("{}/upload", service.url()))
            .header("Authorization", format!("Token {token}"))
            .json(&json!({"client_id": "c", "batch": batch}))
            .send()
    };
    let response = upload(json!([
        {"op_id": 1, "op": "PUT", "type": "todos", "id": "t1", "tx_id": 1, "data": {"owner": "u1", "description": "a", "done": 0}},
        {"op_id": 2, "op": "PATCH", "type": "todos", "id": "t1", "tx_id": 1, "data": {"done": 1}},
        {"op_id": 3, "op": "PUT", "type": "forbidden", "id": "f1", "tx_id": 1, "data": {"x": 1}},
    ]))
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        service.rows("todos"),
        [json!({"id": "t1", "owner": "u1", "description": "a", "done": 1})]
    );
    assert!(
        service.rows("forbidden").is_empty(),
        "rejected writes are dropped"
    );
    // One checkpoint for the whole batch, carrying the final row.
    let update = lines.until_complete().await;
    let ops = data_ops(&update);
    let last = ops.last().unwrap();
    assert_eq!(last["object_id"], "t1");
    let data: Value = serde_json::from_str(last["data"].as_str().unwrap()).unwrap();
    assert_eq!(data, json!({"owner": "u1", "description": "a", "done": 1}));

    let response = upload(json!([{"op": "DELETE", "type": "todos", "id": "t1"}]))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(service.rows("todos").is_empty());
    let update = lines.until_complete().await;
    assert_eq!(data_ops(&update)[0]["op"], "REMOVE");
    assert_eq!(service.uploads().len(), 2);

    // A malformed batch is refused as a whole, naming the bad entry.
    let response = upload(json!([{"op": "PUT", "type": "todos", "id": "ok"}, {"op": "UPSERT", "type": "todos", "id": "x"}]))
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]["description"]
            .as_str()
            .unwrap()
            .contains("batch[1]")
    );
    assert!(service.rows("todos").is_empty());
}

#[tokio::test]
async fn clear_and_compaction_reach_clients_as_clear_and_move_ops() {
    let service = TestSyncService::start().await.unwrap();
    service.put("b", "items", "a", json!({"v": 1}));
    service.put("b", "items", "a", json!({"v": 2}));
    service.commit();
    service.compact("b");
    let mut fresh = open_stream(&service, &service.token("u"), request("c", &[])).await;
    let lines = fresh.until_complete().await;
    let ops = data_ops(&lines);
    assert_eq!(ops[0]["op"], "MOVE");
    assert!(ops[0].get("object_id").is_none());
    assert_eq!(ops[1]["op"], "PUT");
    let sum = ops
        .iter()
        .fold(0u32, |acc, op| acc.wrapping_add(checksum_of(op)));
    let entry = bucket_entry(&lines[0]["checkpoint"]["buckets"], "b");
    assert_eq!(entry["checksum"].as_i64().unwrap(), sum as i32 as i64);

    service.clear_bucket("b");
    service.commit();
    let update = fresh.until_complete().await;
    let ops = data_ops(&update);
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0]["op"], "CLEAR");
    assert_eq!(
        checksum_of(&ops[0]),
        sum,
        "a CLEAR carries what it replaced"
    );
    let entry = bucket_entry(&update[0]["checkpoint_diff"]["updated_buckets"], "b");
    assert_eq!(entry["count"], 1);

    service.delete_bucket("b");
    service.commit();
    let update = fresh.until_complete().await;
    assert_eq!(
        update[0]["checkpoint_diff"]["removed_buckets"],
        json!(["b"])
    );
}

#[tokio::test]
async fn injected_faults_statuses_drops_corrupt_checksums_and_bad_lines() {
    let service = TestSyncService::start().await.unwrap();
    service.put("b", "items", "a", json!({"v": 1}));
    service.commit();
    let token = service.token("u");
    let url = format!("{}/sync/stream", service.url());

    service.fail_next_requests(2, 503);
    for _ in 0..2 {
        let response = http()
            .post(&url)
            .header("Authorization", format!("Token {token}"))
            .json(&request("c", &[]))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 503);
    }

    service.drop_next_connection_after(2);
    let mut cut = open_stream(&service, &token, request("c", &[])).await;
    assert_eq!(
        cut.fails_within(10).await,
        (2, true),
        "reset after two lines"
    );

    service.corrupt_next_checksum("b");
    let mut corrupt = open_stream(&service, &token, request("c", &[])).await;
    let lines = corrupt.until_complete().await;
    let reported = bucket_entry(&lines[0]["checkpoint"]["buckets"], "b")["checksum"]
        .as_i64()
        .unwrap();
    let actual = checksum_of(&data_ops(&lines)[0]) as i32 as i64;
    assert_ne!(reported, actual);
    drop(corrupt);
    let mut healthy = open_stream(&service, &token, request("c", &[])).await;
    let lines = healthy.until_complete().await;
    let reported = bucket_entry(&lines[0]["checkpoint"]["buckets"], "b")["checksum"]
        .as_i64()
        .unwrap();
    assert_eq!(reported, actual, "the fault is one-shot");

    service.send_malformed_line();
    assert_eq!(
        healthy.next().await.unwrap(),
        Value::String("this is not a sync line".into())
    );
    service.inject_line(r#"{"some_future_line":{"x":1}}"#);
    assert_eq!(
        healthy.next().await.unwrap(),
        json!({"some_future_line": {"x": 1}})
    );

    service.set_line_delay(Duration::from_millis(300));
    service.put("b", "items", "z", json!({"v": 9}));
    service.commit();
    assert!(
        healthy
            .next_within(Duration::from_millis(150))
            .await
            .is_err()
    );
    assert!(
        healthy
            .next()
            .await
            .unwrap()
            .get("checkpoint_diff")
            .is_some()
    );
}

#[tokio::test]
async fn expired_tokens_end_streams_and_are_refused_until_refreshed() {
    let service = TestSyncService::start().await.unwrap();
    let old = service.token("u");
    let mut lines = open_stream(&service, &old, request("c", &[])).await;
    lines.until_complete().await;
    service.expire_tokens();
    assert_eq!(lines.next().await.unwrap(), json!({"token_expires_in": 0}));
    assert_eq!(lines.next().await, None, "the stream ends");
    let refused = http()
        .post(format!("{}/sync/stream", service.url()))
        .header("Authorization", format!("Token {old}"))
        .json(&request("c", &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let fresh = service.token("u");
    let mut lines = open_stream(&service, &fresh, request("c", &[])).await;
    lines.until_complete().await;
}

#[tokio::test]
async fn per_value_buckets_follow_token_and_client_parameters() {
    let service = TestSyncService::builder()
        .rule(BucketRule::per_value(
            "team",
            "docs",
            "team",
            ParameterSource::TokenParameter("team".into()),
        ))
        .rule(BucketRule::per_value(
            "region",
            "shops",
            "region",
            ParameterSource::ClientParameter("region".into()),
        ))
        .start()
        .await
        .unwrap();
    service.upsert_row("docs", "d1", json!({"team": "red"}));
    service.upsert_row("shops", "s1", json!({"region": "north"}));
    service.commit();
    let token = service.token_with("u", Duration::from_secs(60), Some(json!({"team": "red"})));
    let mut body = request("c", &[]);
    body["parameters"] = json!({"region": "north"});
    let mut lines = open_stream(&service, &token, body).await;
    let lines = lines.until_complete().await;
    let ops = data_ops(&lines);
    let ids: Vec<&str> = ops
        .iter()
        .map(|op| op["object_id"].as_str().unwrap())
        .collect();
    // Buckets go out in name order: region["north"], then team["red"].
    assert_eq!(ids, ["s1", "d1"]);
    let mut without = open_stream(&service, &service.token("u"), request("c", &[])).await;
    let lines = without.until_complete().await;
    assert_eq!(
        lines[0]["checkpoint"]["buckets"],
        json!([]),
        "no parameters, no buckets"
    );
}

#[tokio::test]
async fn shutdown_ends_open_streams() {
    let service = TestSyncService::start().await.unwrap();
    let mut lines = open_stream(&service, &service.token("u"), request("c", &[])).await;
    lines.until_complete().await;
    assert_eq!(service.open_streams(), 1);
    in_time("shutdown", service.shutdown()).await;
    assert_eq!(
        lines.next_within(WAIT).await,
        Ok(None),
        "the stream ended cleanly"
    );
    let refused = http()
        .post(format!("{}/sync/stream", service.url()))
        .json(&request("c", &[]))
        .send()
        .await;
    assert!(refused.is_err(), "no longer listening");
}

#[tokio::test]
async fn test_connector_uploads_local_transactions_in_order() {
    let service = TestSyncService::builder()
        .rule(BucketRule::global("global", ["todos"]))
        .start()
        .await
        .unwrap();
    let db = Database::in_memory(common::todo_schema()).await.unwrap();
    db.execute(
        "INSERT INTO todos(id, description, done) VALUES ('t1', 'milk', 0)",
        (),
    )
    .await
    .unwrap();
    db.execute("UPDATE todos SET done = 1 WHERE id = 't1'", ())
        .await
        .unwrap();
    db.execute(
        "INSERT INTO todos(id, description) VALUES ('t2', 'eggs')",
        (),
    )
    .await
    .unwrap();
    let connector = service.connector("u1");
    connector.upload_data(&db).await.unwrap();
    assert_eq!(
        service.rows("todos"),
        [
            json!({"id": "t1", "description": "milk", "done": 1}),
            json!({"id": "t2", "description": "eggs"}),
        ]
    );
    assert!(
        db.get_next_crud_transaction().await.unwrap().is_none(),
        "completed"
    );
    let uploads = service.uploads();
    assert_eq!(uploads.len(), 3, "one request per local transaction");
    assert_eq!(uploads[0]["client_id"], db.client_id().await.unwrap());
    assert_eq!(uploads[1]["batch"][0]["op"], "PATCH");

    // A refused upload is an error and nothing is completed.
    service.shutdown().await;
    db.execute("INSERT INTO todos(id) VALUES ('t3')", ())
        .await
        .unwrap();
    assert!(connector.upload_data(&db).await.is_err());
    assert!(db.get_next_crud_transaction().await.unwrap().is_some());
}

#[tokio::test]
async fn a_corrupt_checksum_also_reaches_an_open_stream_in_a_diff() {
    let service = TestSyncService::start().await.unwrap();
    service.put("b", "items", "a", json!({"v": 1}));
    service.commit();
    let mut lines = open_stream(&service, &service.token("u"), request("c", &[])).await;
    let first = lines.until_complete().await;
    let mut total = checksum_of(&data_ops(&first)[0]);
    service.corrupt_next_checksum("b");
    service.put("b", "items", "z", json!({"v": 2}));
    service.commit();
    let update = lines.until_complete().await;
    total = total.wrapping_add(checksum_of(&data_ops(&update)[0]));
    let reported = bucket_entry(&update[0]["checkpoint_diff"]["updated_buckets"], "b")["checksum"]
        .as_i64()
        .unwrap();
    assert_ne!(reported, total as i32 as i64, "{update:?}");
}

#[tokio::test]
async fn checksums_match_values_computed_by_hand() {
    // Computed outside Rust (Python hashlib): the first four bytes of SHA-256, little-endian.
    //   put.todos.t1.{"description":"milk"}            → 254119388
    //   delete.d1cc23c8-0750-e678-a3a1-e20f323aebc3    → 2214069045 (the subkey of todos/t1)
    //   bucket: 254119388 + 2214069045 = 2468188433 → as i32 −1826778863
    let service = TestSyncService::start().await.unwrap();
    service.put("b", "todos", "t1", json!({"description": "milk"}));
    service.remove("b", "todos", "t1");
    service.commit();
    let mut lines = open_stream(&service, &service.token("u"), request("c", &[])).await;
    let lines = lines.until_complete().await;
    let ops = data_ops(&lines);
    assert_eq!(ops[0]["data"], r#"{"description":"milk"}"#);
    assert_eq!(checksum_of(&ops[0]), 254_119_388);
    assert_eq!(ops[1]["subkey"], "d1cc23c8-0750-e678-a3a1-e20f323aebc3");
    assert_eq!(checksum_of(&ops[1]), 2_214_069_045);
    assert_eq!(
        bucket_entry(&lines[0]["checkpoint"]["buckets"], "b")["checksum"],
        -1_826_778_863
    );
}

#[tokio::test]
async fn a_compressed_sync_stream_brings_the_same_rows_in_fewer_bytes_and_stays_live() {
    let schema = || {
        livesync::Schema::new([livesync::Table::new(
            "todos",
            [livesync::Column::text("description")],
        )])
    };
    let mut counts = Vec::new();
    for compressed in [true, false] {
        let service = TestSyncService::builder()
            .rule(livesync::testing::BucketRule::global("todos", ["todos"]))
            .start()
            .await
            .unwrap();
        for i in 0..500 {
            service.upsert_row(
                "todos",
                &format!("t{i:03}"),
                json!({"description": format!("todo number {i} of the compression test")}),
            );
        }
        service.commit();
        let db = Database::in_memory(schema()).await.unwrap();
        let options = livesync::SyncOptions::default()
            .retry_delay(std::time::Duration::from_millis(50))
            .compressed(compressed);
        db.connect(service.connector("u1"), options).await.unwrap();
        in_time("the first sync", db.wait_for_first_sync())
            .await
            .unwrap();
        common::wait::eventually(&db, "SELECT count(*) FROM todos", &["500"]).await;
        let expected = if compressed { "zstd" } else { "identity" };
        assert_eq!(service.stream_encodings(), [expected]);
        counts.push(service.stream_bytes_sent());
        // A change made while the stream is open arrives at once: every line is flushed
        // through the encoder as it is sent.
        service.upsert_row("todos", "late", json!({"description": "late"}));
        service.commit();
        common::wait::eventually(&db, "SELECT count(*) FROM todos WHERE id = 'late'", &["1"]).await;
        db.close().await;
    }
    let (zstd, plain) = (counts[0], counts[1]);
    assert!(
        zstd * 3 < plain,
        "{zstd} compressed bytes against {plain} plain ones"
    );
}
