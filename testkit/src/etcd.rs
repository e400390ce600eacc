//! A real `etcd` for tests: one member on loopback free ports, its data in a temp dir,
//! killed on drop. The binary is `etcd` on `PATH` or `/usr/bin/etcd` (Debian's
//! `etcd-server`, which `scripts/setup-deps` installs).
//!
//! It runs with a 10 ms heartbeat and a 100 ms election timeout, so it is leader within a
//! moment of starting and leases as short as 1 s are honoured (etcd's shortest lease is 1.5
//! election timeouts), and with `--max-txn-ops 4096` so a transaction can write every shard
//! of a 1024-shard map.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running etcd, killed on drop.
pub struct Etcd {
    child: Child,
    /// The client URL, `http://127.0.0.1:PORT`.
    pub url: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// Where the etcd binary is, or a panic naming the fix.
pub fn binary() -> PathBuf {
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join("etcd");
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    let debian = PathBuf::from("/usr/bin/etcd");
    if debian.is_file() {
        return debian;
    }
    panic!("no etcd binary on PATH or at /usr/bin/etcd: run scripts/setup-deps (it installs Debian's etcd-server)");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Etcd {
    /// Starts etcd and waits until it answers (panics after 20 s, with its log).
    pub fn start() -> Etcd {
        // A port found free can be taken before etcd binds it; try again on new ones.
        let mut last = String::new();
        for _ in 0..3 {
            match Etcd::try_start() {
                Ok(etcd) => return etcd,
                Err(e) => last = e,
            }
        }
        panic!("etcd did not start: {last}");
    }

    fn try_start() -> Result<Etcd, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let (client, peer) = (free_port(), free_port());
        let url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log = dir.path().join("etcd.log");
        let log_file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let mut child = Command::new(binary())
            .arg("--name=test")
            .arg(format!("--data-dir={}", dir.path().join("data").display()))
            .arg(format!("--listen-client-urls={url}"))
            .arg(format!("--advertise-client-urls={url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=test={peer_url}"))
            .args([
                "--heartbeat-interval=10",
                "--election-timeout=100",
                "--max-txn-ops=4096",
                "--log-level=warn",
                "--logger=zap",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .map_err(|e| format!("spawning {}: {e}", binary().display()))?;
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(2))
            .build();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(format!("etcd exited with {status}: {text}"));
            }
            if let Ok(resp) = agent.get(&format!("{url}/health")).call() {
                if resp.into_string().is_ok_and(|body| body.contains("true")) {
                    return Ok(Etcd {
                        child,
                        url,
                        log,
                        _dir: dir,
                    });
                }
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(format!("etcd did not answer within 20 s: {text}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What etcd has logged so far (warnings and errors).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
