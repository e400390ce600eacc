//! A short end-to-end run of `chirp-load`: generate a small network into a temp dir, serve it
//! with the real `chirp` binary, drive it for a few seconds and check the JSON report.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// A `chirp serve` on `data` (the real binary, from the shared test kit), killed on drop;
/// with its address and process id.
fn start(data: &Path) -> (Server, String, u32) {
    let mut child = Command::new(chirp_testkit::bin::chirp())
        // A free admin port too: the default 8081 may be taken by another node or test.
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .arg("--data")
        .arg(data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn chirp");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("listen line");
    let addr = line
        .trim()
        .strip_prefix("chirp listening on http://")
        .expect("listen line")
        .to_string();
    let pid = child.id();
    (Server(child), addr, pid)
}

/// The node process, killed on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

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

    let (server, addr, pid) = start(&data);
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
