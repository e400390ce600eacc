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
    peer_url: String,
    /// More addresses it serves clients on (the same port), see [`Etcd::start_on`].
    also: Vec<std::net::IpAddr>,
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

/// Starts one etcd member on `dir` serving clients on `listen` (comma-separated URLs) and
/// advertising `url`, logging (appended) to `log`.
fn spawn(
    dir: &std::path::Path,
    listen: &str,
    url: &str,
    peer_url: &str,
    log: &std::path::Path,
) -> Result<Child, String> {
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| e.to_string())?;
    Command::new(binary())
        .arg("--name=test")
        .arg(format!("--data-dir={}", dir.join("data").display()))
        .arg(format!("--listen-client-urls={listen}"))
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
        .map_err(|e| format!("spawning {}: {e}", binary().display()))
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
        Etcd::start_on(&[])
    }

    /// Starts etcd serving clients on 127.0.0.1 and on each of `also` (the same port), so
    /// each node can be given its own address of etcd ([`Etcd::url_at`]) and cut off from
    /// it alone with drop rules on that address.
    pub fn start_on(also: &[std::net::IpAddr]) -> Etcd {
        // A port found free can be taken before etcd binds it; try again on new ones.
        let mut last = String::new();
        for _ in 0..3 {
            match Etcd::try_start(also) {
                Ok(etcd) => return etcd,
                Err(e) => last = e,
            }
        }
        panic!("etcd did not start: {last}");
    }

    /// The client URL at one of the addresses given to [`Etcd::start_on`].
    pub fn url_at(&self, ip: std::net::IpAddr) -> String {
        let port = self.url.rsplit(':').next().expect("a port");
        format!("http://{ip}:{port}")
    }

    fn client_urls(&self) -> String {
        std::iter::once(self.url.clone())
            .chain(self.also.iter().map(|ip| self.url_at(*ip)))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn try_start(also: &[std::net::IpAddr]) -> Result<Etcd, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let (client, peer) = (free_port(), free_port());
        let url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log = dir.path().join("etcd.log");
        let listen: Vec<String> = std::iter::once(url.clone())
            .chain(also.iter().map(|ip| format!("http://{ip}:{client}")))
            .collect();
        let child = spawn(dir.path(), &listen.join(","), &url, &peer_url, &log)?;
        let mut etcd = Etcd {
            child,
            url,
            peer_url,
            also: also.to_vec(),
            log,
            _dir: dir,
        };
        etcd.wait_healthy()?;
        Ok(etcd)
    }

    /// Waits (up to 20 s) until etcd answers its health check; kills it if it does not.
    fn wait_healthy(&mut self) -> Result<(), String> {
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(2))
            .build();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("etcd exited with {status}: {}", self.log()));
            }
            if let Ok(resp) = agent.get(&format!("{}/health", self.url)).call() {
                if resp.into_string().is_ok_and(|body| body.contains("true")) {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err(format!("etcd did not answer within 20 s: {}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The etcd process's id (to pause it with SIGSTOP, say).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills etcd (SIGKILL) and waits for it to exit; [`Etcd::restart`] brings it back on
    /// the same data and addresses.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts etcd again on its data dir and addresses (after [`Etcd::kill`]) and waits
    /// until it answers; panics if it does not.
    pub fn restart(&mut self) {
        self.kill();
        let dir = self._dir.path().to_path_buf();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            // The ports were just released; another process may hold one for a moment.
            let started = spawn(
                &dir,
                &self.client_urls(),
                &self.url,
                &self.peer_url,
                &self.log,
            )
            .and_then(|child| {
                self.child = child;
                self.wait_healthy()
            });
            match started {
                Ok(()) => return,
                Err(e) if Instant::now() > deadline => panic!("etcd did not restart: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
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
