//! The README's demo runs to completion and shows what it promises: a write on device A
//! reaching device B's live query, and an offline write arriving after reconnecting.
#![cfg(feature = "testing")]

mod common;

use std::time::Duration;

use common::example_binary;

#[tokio::test]
async fn the_demo_syncs_two_devices_including_an_offline_write() {
    let run = tokio::process::Command::new(example_binary("demo"))
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the demo finishes within a minute")
        .expect("the demo starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "demo failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("device B renders: [x] milk | [ ] bread | [ ] coffee"),
        "{stdout}"
    );
    assert!(stdout.contains("1 write(s)"), "{stdout}");
    assert!(stdout.contains("device B still shows 3 todos"), "{stdout}");
    assert!(stdout.contains("[ ] tea (written offline)"), "{stdout}");
}
