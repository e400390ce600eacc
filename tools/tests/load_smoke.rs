//! A short end-to-end run of `chirp-load`: generate a small network into a temp dir, serve it
//! with the real `chirp` binary, drive it for a few seconds and check the JSON report.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// The `chirp` binary cargo built next to this test (`target/<profile>/chirp`), if any.
/// `CARGO_BIN_EXE_chirp` only exists inside the server crate, and `cargo test --workspace`
/// builds that binary into the same directory as ours.
fn chirp_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let profile_dir = exe.parent()?.parent()?;
    let bin = profile_dir.join(format!("chirp{}", std::env::consts::EXE_SUFFIX));
    bin.is_file().then_some(bin)
}

/// A node under test: the real binary when it is built, else the same server in-process.
enum Server {
    Process(Child),
    InProcess(
        Option<tokio::sync::oneshot::Sender<()>>,
        Option<std::thread::JoinHandle<()>>,
    ),
}

impl Drop for Server {
    fn drop(&mut self) {
        match self {
            Server::Process(child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            Server::InProcess(stop, thread) => {
                if let Some(stop) = stop.take() {
                    let _ = stop.send(());
                }
                if let Some(t) = thread.take() {
                    let _ = t.join();
                }
            }
        }
    }
}

fn start(data: &Path) -> (Server, String, Option<u32>) {
    if let Some(bin) = chirp_binary() {
        let mut child = Command::new(bin)
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
        return (Server::Process(child), addr, Some(pid));
    }
    eprintln!("target/<profile>/chirp is not built; serving in-process instead");
    let node = chirp_engine::Node::open(chirp_engine::NodeConfig::new(data)).expect("open node");
    let app = std::sync::Arc::new(chirp_server::App {
        node: std::sync::Arc::new(node),
        metrics: std::sync::Arc::new(chirp_server::metrics::Metrics::new()),
        repl: None,
    });
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            addr_tx
                .send(listener.local_addr().expect("addr"))
                .expect("send addr");
            chirp_server::run(listener, app, 64, async {
                let _ = rx.await;
            })
            .await;
        });
    });
    let addr = addr_rx.recv().expect("addr").to_string();
    (Server::InProcess(Some(tx), Some(thread)), addr, None)
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
    .arg(data.join("chirp-load.json"));
    if let Some(pid) = pid {
        run.args(["--server-pid", &pid.to_string()]);
    }
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
