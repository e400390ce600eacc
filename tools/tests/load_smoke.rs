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

/// A real `redis-server` on a free loopback port, without persistence, stopped on drop.
struct Redis {
    child: std::process::Child,
    port: u16,
}

impl Redis {
    fn start() -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (scripts/setup-deps installs it)");
        let redis = Redis { child, port };
        for _ in 0..200 {
            if redis.cli(&["ping"]).trim() == "PONG" {
                return redis;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("redis-server did not answer");
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run_json(cmd: &mut Command) -> Value {
    let out = cmd.output().expect("run chirp-load");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON report")
}

/// The Redis timeline peer holds the very pages the node serves, and reads them back; a
/// fan-out burst is counted row for row by the node.
#[test]
fn the_redis_peer_serves_the_nodes_pages_and_fanout_rows_are_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let load = env!("CARGO_BIN_EXE_chirp-load");
    run_json(
        Command::new(load)
            .args(["generate", "--users", "2000", "--json", "--data"])
            .arg(&data),
    );
    let network = data.join("chirp-load.json");
    let redis = Redis::start();
    let loaded = run_json(
        Command::new(load)
            .args(["redis-load", "--json", "--redis", &redis.addr(), "--data"])
            .arg(&data),
    );
    assert_eq!(loaded["feeds"], 2000, "{loaded}");

    let server = Chirp::start(&data, &[]);
    let addr = server
        .base
        .strip_prefix("http://")
        .expect("http")
        .to_string();
    let sidecar: Value =
        serde_json::from_slice(&std::fs::read(&network).expect("sidecar")).expect("sidecar");
    let password = sidecar["password"].as_str().expect("password");
    let http = ureq::agent();
    for i in [0, 17, 1999] {
        let session: Value = http
            .post(&format!("{}/sessions", server.base))
            .send_json(serde_json::json!({"handle": format!("u{i}"), "password": password}))
            .expect("log in")
            .into_json()
            .expect("session");
        let feed: Value = http
            .get(&format!("{}/feed?limit=20", server.base))
            .set(
                "Authorization",
                &format!("Bearer {}", session["token"].as_str().expect("token")),
            )
            .call()
            .expect("feed")
            .into_json()
            .expect("feed JSON");
        let served: Vec<String> = feed["tweets"]
            .as_array()
            .expect("items")
            .iter()
            .map(|t| t["id"].as_str().expect("id").to_string())
            .collect();
        assert!(!served.is_empty(), "u{i} has an empty feed");
        let listed: Vec<String> = redis
            .cli(&["lrange", &format!("home:u{i}"), "0", "19"])
            .lines()
            .map(str::to_string)
            .collect();
        assert_eq!(listed, served, "u{i}'s page in Redis");
        let doc: Value =
            serde_json::from_str(redis.cli(&["get", &format!("tweet:{}", served[0])]).trim())
                .expect("tweet JSON in Redis");
        assert_eq!(doc, feed["tweets"][0], "the tweet as the API shows it");
    }

    let read = run_json(
        Command::new(load)
            .args(["redis-run", "--json", "--redis", &redis.addr()])
            .args(["--duration", "1", "--warmup", "0.2", "--connections", "4"])
            .args(["--pipeline", "3", "--network"])
            .arg(&network),
    );
    let page = &read["ops"][0];
    assert!(page["ok"].as_u64() > Some(0), "{read}");
    assert_eq!(page["errors"], 0, "{read}");

    let burst = run_json(
        Command::new(load)
            .args(["fanout", "--json", "--posts", "12", "--connections", "3"])
            .args(["--class", "typical", "--addr", &addr])
            .args([
                "--admin-addr",
                server.admin.strip_prefix("http://").expect("http"),
            ])
            .arg("--admin-token-file")
            .arg(data.join("admin.token"))
            .arg("--network")
            .arg(&network),
    );
    assert_eq!(burst["posts"], 12, "{burst}");
    let followers = burst["author_followers"].as_u64().expect("followers");
    assert!(followers > 0, "{burst}");
    assert_eq!(burst["rows"].as_u64(), Some(12 * followers), "{burst}");
}
