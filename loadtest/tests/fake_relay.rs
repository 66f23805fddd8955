//! End-to-end check of the load generator against the stand-in media plane
//! (`examples/fake_mediaplane.rs`): sessions are programmed over the real control channel,
//! packets flow, and the report files come out with the figures the run produced.

use std::path::PathBuf;
use std::process::Command;

fn fake_mediaplane() -> PathBuf {
    // Integration tests and examples land in the same profile directory: .../debug/{examples,}.
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_wavegate-loadtest"));
    bin.parent()
        .expect("bin dir")
        .join("examples")
        .join("fake_mediaplane")
}

#[test]
fn small_relay_run_writes_a_passing_report() {
    let fake = fake_mediaplane();
    assert!(fake.exists(), "build the example first: {}", fake.display());
    let out = std::env::temp_dir().join(format!("wavegate-loadtest-{}", std::process::id()));
    let status = Command::new(env!("CARGO_BIN_EXE_wavegate-loadtest"))
        .args([
            "relay",
            "--streams",
            "20",
            "--seconds",
            "2",
            "--warmup-secs",
            "1",
            "--drain-ms",
            "500",
        ])
        .args(["--name", "smoke", "--no-pin", "--max-loss", "0.05"])
        .arg("--mediaplane")
        .arg(&fake)
        .arg("--out")
        .arg(&out)
        .status()
        .expect("run loadtest");
    assert!(status.success(), "loadtest failed: {status}");
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("smoke.json")).expect("json report"),
    )
    .expect("valid json");
    // 20 streams x 2 directions x 50 pps x 3 s of sending.
    let sent = json["a_to_b"]["sent"].as_u64().unwrap() + json["b_to_a"]["sent"].as_u64().unwrap();
    assert!((5900..=6000).contains(&sent), "sent {sent}");
    assert!(json["a_to_b"]["received"].as_u64().unwrap() > 0);
    assert!(json["b_to_a"]["received"].as_u64().unwrap() > 0);
    assert!(json["latency"]["samples"].as_u64().unwrap() > 0);
    assert_eq!(json["failures"].as_array().unwrap().len(), 0);
    let md = std::fs::read_to_string(out.join("smoke.md")).expect("markdown report");
    assert!(md.contains("PASSED"));
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn missing_media_plane_is_a_clean_error() {
    let status = Command::new(env!("CARGO_BIN_EXE_wavegate-loadtest"))
        .args([
            "relay",
            "--streams",
            "1",
            "--seconds",
            "1",
            "--no-pin",
            "--mediaplane",
            "/nonexistent/mediaplane",
        ])
        .args(["--out", "/nonexistent-dir-never-written"])
        .status()
        .expect("run loadtest");
    assert_eq!(status.code(), Some(2));
}
