//! A short end-to-end run of `chirp-load`: generate a small network into a temp dir, serve it
//! with the real `chirp` binary, drive it for a few seconds and check the JSON report.

use std::process::Command;

use chirp_testkit::node::Chirp;

use serde_json::Value;

#[test]
fn generate_and_drive_a_small_network() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let load = env!("CARGO_BIN_EXE_chirp-load");
    let out = Command::new(load)
        .args(["generate", "--users", "3000", "--json", "--data"])
        .arg(&data)
        .output()
        .expect("run generate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let gen: Value = serde_json::from_slice(&out.stdout).expect("generate JSON");
    assert_eq!(gen["users"], 3000);
    assert!(gen["follows"].as_u64().expect("follows") > 100_000);

    let server = Chirp::start(&data, &[]);
    let addr = server
        .base
        .strip_prefix("http://")
        .expect("an http base")
        .to_string();
    let pid = server.pid();
    let mut run = Command::new(load);
    run.args([
        "run",
        "--json",
        "--mix",
        "seed",
        "--duration",
        "2",
        "--warmup",
        "0.5",
    ])
    .args(["--sessions", "6", "--connections", "4", "--addr", &addr])
    .arg("--network")
    .arg(data.join("chirp-load.json"))
    .args(["--server-pid", &pid.to_string()]);
    let out = run.output().expect("run load");
    drop(server);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("run JSON");
    let ops = report["main"]["ops"].as_array().expect("ops");
    let all = ops.iter().find(|o| o["op"] == "all").expect("all row");
    assert!(all["ok"].as_u64().expect("ok") > 0, "{report}");
    assert_eq!(all["errors"], 0, "{report}");
    for op in ["home_feed", "user_timeline", "profile", "post", "follow"] {
        assert!(ops.iter().any(|o| o["op"] == op), "{op} missing: {report}");
    }
    let base = &report["baseline"]["ops"][0];
    assert!(base["ok"].as_u64().expect("baseline ok") > 0);
    assert!(report["ratios"].as_array().is_some_and(|r| !r.is_empty()));
    let lag = report["fanout_lag"].as_array().expect("lag");
    assert!(
        lag.iter().any(|l| l["samples"].as_u64() > Some(0)),
        "{report}"
    );
}
