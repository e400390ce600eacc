//! Starts the real `chirp` binary on a temp data dir and free ports, and talks to it over
//! HTTP: what every integration test (server, tools, load smoke) uses to run a node.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A response read whole: status, headers and raw body.
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers, names lowercase.
    pub headers: Vec<(String, String)>,
    /// The body bytes.
    pub body: Vec<u8>,
}

impl Reply {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (Null if empty).
    pub fn json(&self) -> Value {
        if self.body.is_empty() {
            return Value::Null;
        }
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{}: not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// A running `chirp serve`, killed on drop.
pub struct Chirp {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The admin listener, `http://127.0.0.1:PORT`.
    pub admin: String,
    /// The admin listener's bearer token (the node made `DATA/admin.token` at start).
    pub admin_token: String,
    agent: ureq::Agent,
}

impl Chirp {
    /// Starts a node on `dir` with 4 shards and the extra flags, logging to `DIR.log`.
    pub fn start(dir: &Path, extra: &[&str]) -> Chirp {
        Chirp::start_logged(dir, &dir.with_extension("log"), extra)
    }

    /// Starts a node on `dir` logging to `log`: for a data dir on a filesystem the test
    /// throws away (the power-cut mount), whose log must outlive it.
    pub fn start_logged(dir: &Path, log: &Path, extra: &[&str]) -> Chirp {
        let log_path = log;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .expect("log file");
        let mut command = Command::new(crate::bin::chirp());
        command.arg("serve");
        // Loopback on a free port unless the caller names the addresses.
        for flag in ["--listen", "--admin-listen"] {
            if !extra.contains(&flag) {
                command.args([flag, "127.0.0.1:0"]);
            }
        }
        let mut child = command
            .args(["--shards", "4", "--data"])
            .arg(dir)
            .args(extra)
            .env("RUST_LOG", "info,chirp_server=debug")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn chirp");
        let stdout = child.stdout.take().expect("stdout");
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader.read_line(&mut line).expect("read listen line");
        let mut admin_line = String::new();
        reader
            .read_line(&mut admin_line)
            .expect("read admin listen line");
        let admin = admin_line
            .trim()
            .strip_prefix("chirp admin listening on ")
            .unwrap_or_else(|| panic!("unexpected second line {admin_line:?}"))
            .to_string();
        let base = line
            .trim()
            .strip_prefix("chirp listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}; see {}", log_path.display()))
            .to_string();
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(30))
            .build();
        let admin_token = std::fs::read_to_string(dir.join("admin.token"))
            .map(|t| t.trim().to_string())
            .unwrap_or_default();
        Chirp {
            child,
            base,
            admin,
            admin_token,
            agent,
        }
    }

    /// Kills the process with SIGKILL and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The exit status if the process has already ended (does not wait).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        self.child.wait().expect("wait")
    }

    /// Sends a request; returns the status and the JSON body (Null if empty).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let raw = body.map(|b| b.to_string());
        self.raw(method, path, token, raw.as_deref().map(str::as_bytes))
    }

    /// Sends a request to the admin listener; returns the status and the JSON body.
    pub fn admin_call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        try_call(
            &self.agent,
            &self.admin,
            method,
            path,
            Some(&self.admin_token),
            body,
        )
        .unwrap_or_else(|e| panic!("admin {method} {path}: {e}"))
    }

    /// Sends a request without panicking on transport errors (for a node that may be dying).
    pub fn try_call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<(u16, Value), String> {
        try_call(&self.agent, &self.base, method, path, token, body)
    }

    /// The OS process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends raw body bytes; returns the status and the JSON body (Null if empty).
    pub fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&[u8]>,
    ) -> (u16, Value) {
        let mut req = self
            .agent
            .request(method, &format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        let result = match body {
            Some(b) => req.set("Content-Type", "application/json").send_bytes(b),
            None => req.call(),
        };
        let resp = match result {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {path}: {e}"),
        };
        let status = resp.status();
        let ctype = resp.content_type().to_string();
        let mut text = String::new();
        resp.into_reader().read_to_string(&mut text).expect("body");
        if status >= 400 {
            assert_eq!(
                ctype, "application/problem+json",
                "{method} {path} -> {status}: {text}"
            );
        }
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).expect("JSON body")
        };
        (status, value)
    }

    /// Sends any body with the given headers (none added but the bearer token) and returns
    /// the whole response, whatever its status.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Reply {
        let mut req = self
            .agent
            .request(method, &format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        for (name, value) in headers {
            req = req.set(name, value);
        }
        let result = match body {
            Some(b) => req.send_bytes(b),
            None => req.call(),
        };
        let resp = match result {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {path}: {e}"),
        };
        let status = resp.status();
        let headers = resp
            .headers_names()
            .into_iter()
            .filter_map(|n| {
                let v = resp.header(&n)?.to_string();
                Some((n.to_ascii_lowercase(), v))
            })
            .collect();
        let mut body = Vec::new();
        resp.into_reader().read_to_end(&mut body).expect("body");
        Reply {
            status,
            headers,
            body,
        }
    }

    /// Signs up and logs in; returns (user id, token).
    pub fn user(&self, handle: &str) -> (String, String) {
        let (s, p) = self.call(
            "POST",
            "/users",
            None,
            Some(serde_json::json!({"handle": handle, "password": "correct horse"})),
        );
        assert_eq!(s, 201, "{p}");
        let (s, session) = self.call(
            "POST",
            "/sessions",
            None,
            Some(serde_json::json!({"handle": handle, "password": "correct horse"})),
        );
        assert_eq!(s, 200, "{session}");
        assert_eq!(session["user_id"], p["id"]);
        (
            p["id"].as_str().expect("id").to_string(),
            session["token"].as_str().expect("token").to_string(),
        )
    }

    /// Posts a tweet; returns its id.
    pub fn tweet(&self, token: &str, text: &str) -> String {
        let (s, t) = self.call(
            "POST",
            "/tweet",
            Some(token),
            Some(serde_json::json!({"text": text})),
        );
        assert_eq!(s, 201, "{t}");
        t["id"].as_str().expect("id").to_string()
    }

    /// Every tweet id of a paginated timeline, walking all pages with `limit`.
    pub fn all_ids(&self, path: &str, token: Option<&str>, limit: usize) -> Vec<String> {
        self.all_items(path, token, "tweets", limit)
            .iter()
            .map(|t| t["id"].as_str().expect("id").to_string())
            .collect()
    }

    /// Every item of a paginated list (the array under `field`: `tweets`, `users`), walking
    /// all pages with `limit`.
    pub fn all_items(
        &self,
        path: &str,
        token: Option<&str>,
        field: &str,
        limit: usize,
    ) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let sep = if path.contains('?') { '&' } else { '?' };
            let url = match &cursor {
                Some(c) => format!("{path}{sep}limit={limit}&cursor={c}"),
                None => format!("{path}{sep}limit={limit}"),
            };
            let (s, page) = self.call("GET", &url, token, None);
            assert_eq!(s, 200, "GET {url}: {page}");
            let list = page[field]
                .as_array()
                .unwrap_or_else(|| panic!("GET {url}: no {field:?} array: {page}"));
            assert!(list.len() <= limit);
            items.extend(list.iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return items,
            }
        }
    }

    /// Polls `f` until it returns true or 10 s pass.
    pub fn eventually(&self, what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if f() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("timed out waiting for {what}");
    }
}

impl Drop for Chirp {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A fresh data dir under a temp dir that lives as long as the returned guard.
pub fn data_dir() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    (tmp, dir)
}

/// Sorts ids numerically, newest (largest) first.
pub fn newest_first(mut ids: Vec<String>) -> Vec<String> {
    ids.sort_by_key(|id| std::cmp::Reverse(id.parse::<u64>().expect("numeric id")));
    ids
}

/// A request to `base` that reports transport errors instead of panicking.
pub fn try_call(
    agent: &ureq::Agent,
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Result<(u16, Value), String> {
    let mut req = agent.request(method, &format!("{base}{path}"));
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    let result = match body {
        Some(b) => req
            .set("Content-Type", "application/json")
            .send_string(&b.to_string()),
        None => req.call(),
    };
    let resp = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(e.to_string()),
    };
    let status = resp.status();
    let text = resp.into_string().map_err(|e| e.to_string())?;
    let value = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok((status, value))
}
