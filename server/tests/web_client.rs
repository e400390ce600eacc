//! The web client's own tests, run by `cargo test` so CI cannot forget them: the TypeScript
//! unit tests (including the compose counter against this engine's lengths), a check that the
//! committed `web/dist` is what the sources build, and the browser end-to-end test against the
//! real `chirp`. They need Node and `web/node_modules` (scripts/test runs `npm ci`) and, for
//! the browser test, /usr/bin/chromium. Set CHIRP_SKIP_E2E=1 to skip them all.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chirp_engine::text::{extract_hashtags, tweet_length, validate_tweet};
use serde_json::{json, Value};

fn web_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../web")
}

/// False (with a note) when CHIRP_SKIP_E2E=1; otherwise Node and the packages must be there.
fn web_tests_enabled(what: &str) -> bool {
    if std::env::var("CHIRP_SKIP_E2E").is_ok_and(|v| v == "1") {
        println!("skipping {what}: CHIRP_SKIP_E2E=1");
        return false;
    }
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|o| o.status.success()),
        "{what} needs Node.js on PATH (scripts/test installs it); set CHIRP_SKIP_E2E=1 to skip"
    );
    assert!(
        web_dir().join("node_modules/.package-lock.json").exists(),
        "{what} needs web/node_modules: run `cd web && npm ci` (scripts/test does); \
         set CHIRP_SKIP_E2E=1 to skip"
    );
    true
}

/// Runs `node args...` in web/ with a deadline; returns (success, combined output).
fn node(args: &[&str], envs: &[(&str, &str)], limit: Duration) -> (bool, String) {
    let out = tempfile::NamedTempFile::new().expect("temp file");
    let mut child = Command::new("node")
        .args(args)
        .envs(envs.iter().copied())
        .current_dir(web_dir())
        .stdin(Stdio::null())
        .stdout(out.reopen().expect("reopen"))
        .stderr(out.reopen().expect("reopen"))
        .spawn()
        .expect("spawn node");
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for node") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut text = String::new();
    let _ = out.reopen().expect("reopen").read_to_string(&mut text);
    if status.is_none() {
        text.push_str(&format!("\n(killed after {limit:?})"));
    }
    (status.is_some_and(|s| s.success()), text)
}

/// Every `text:` of twitter-text's conformance files, when this machine has them.
fn conformance_texts() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/twitter-text");
    let dir = std::env::var_os("CHIRP_CONFORMANCE_DIR").map_or(dir, PathBuf::from);
    let mut texts = Vec::new();
    for file in ["validate.yml", "extract.yml"] {
        let Ok(raw) = std::fs::read_to_string(dir.join(file)) else {
            println!(
                "note: {} absent; using the built-in texts only",
                dir.join(file).display()
            );
            continue;
        };
        let doc: Value = serde_yaml::from_str(&raw).expect("conformance YAML");
        let sections = doc["tests"].as_object().cloned().unwrap_or_default();
        for cases in sections.values() {
            for case in cases.as_array().into_iter().flatten() {
                if let Some(text) = case["text"].as_str() {
                    texts.push(text.to_owned());
                }
            }
        }
    }
    texts
}

/// Texts whose edges the two implementations could disagree on.
const BUILT_IN: &[&str] = &[
    "Hello #chirp",
    "e\u{301}e\u{301} caf\u{e9} #Cafe\u{301}",
    "😀😀 #emoji😀 #日本語 #한국어 #русский",
    "(see example.com/a_(b)). and foo.co.jp/x?q=1, 見てexample.comだよ",
    "http://example.com/#fragment #tag https://EXAMPLE.COM/Path?q=1&r=2.",
    "name.com-typo a.b Mr.Smith e.g. x@example.com $cash.tag http://ああ.com",
    "www.example.xyz/path!! t.co/abc, sub_domain.example.com/ok a-b.co:8080/x",
    "#1 #123abc #_ #a_b #\u{fe0f}\u{20e3} a&#b #c#d #e://",
    "\u{202a}http://example.com\u{202c} \u{85}\u{a0}",
];

#[test]
fn unit_tests_and_counter_agree_with_the_engine() {
    if !web_tests_enabled("the web client's unit tests") {
        return;
    }
    let mut texts: Vec<String> = BUILT_IN.iter().map(|s| (*s).to_owned()).collect();
    texts.extend(conformance_texts());
    let long = format!("{} https://example.com/{}", "b".repeat(100), "x".repeat(60));
    texts.extend([long, "a".repeat(140), "a".repeat(141)]);
    let cases: Vec<Value> = texts
        .iter()
        .map(|t| {
            json!({
                "text": t,
                "length": tweet_length(t),
                "valid": validate_tweet(t).is_ok(),
                "hashtags": extract_hashtags(t),
            })
        })
        .collect();
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), serde_json::to_vec(&cases).expect("JSON")).expect("write cases");
    let path = file.path().to_str().expect("UTF-8 temp path");
    let (ok, out) = node(
        &["node_modules/vitest/vitest.mjs", "run"],
        &[("CHIRP_COUNTER_CASES", path)],
        Duration::from_secs(120),
    );
    println!("{out}");
    assert!(ok, "web unit tests failed ({} engine cases)", cases.len());
}

#[test]
fn committed_dist_matches_the_sources() {
    if !web_tests_enabled("the web/dist freshness check") {
        return;
    }
    let out_dir = tempfile::tempdir().expect("temp dir");
    let out = out_dir.path().to_str().expect("UTF-8 temp path");
    let (ok, log) = node(
        &["node_modules/typescript/bin/tsc", "--noEmit"],
        &[],
        Duration::from_secs(120),
    );
    assert!(ok, "type check failed:\n{log}");
    let (ok, log) = node(
        &[
            "node_modules/vite/bin/vite.js",
            "build",
            "--logLevel",
            "warn",
        ],
        &[("CHIRP_WEB_OUT_DIR", out)],
        Duration::from_secs(120),
    );
    assert!(ok, "vite build failed:\n{log}");
    let read = |dir: &Path| {
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
            .expect("read dist")
            .map(|e| {
                let path = e.expect("dist entry").path();
                let name = path
                    .file_name()
                    .expect("name")
                    .to_string_lossy()
                    .into_owned();
                (name, std::fs::read(&path).expect("read asset"))
            })
            .collect();
        files.sort();
        files
    };
    let built = read(out_dir.path());
    let committed = read(&web_dir().join("dist"));
    let names = |f: &[(String, Vec<u8>)]| f.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert!(
        built == committed,
        "web/dist is stale: the sources build {:?}, the repository has {:?}; \
         run `cd web && npm run build` and commit web/dist",
        names(&built),
        names(&committed)
    );
}

#[test]
fn browser_end_to_end() {
    if !web_tests_enabled("the browser end-to-end test") {
        return;
    }
    assert!(
        Path::new("/usr/bin/chromium").exists() || std::env::var_os("CHIRP_CHROMIUM").is_some(),
        "the browser test needs Debian's chromium (apt-get install chromium; scripts/test does); \
         set CHIRP_SKIP_E2E=1 to skip"
    );
    let started = Instant::now();
    let (ok, out) = node(
        &["e2e/run.mjs", env!("CARGO_BIN_EXE_chirp")],
        &[],
        Duration::from_secs(150),
    );
    println!("{out}");
    println!("browser end-to-end test took {:?}", started.elapsed());
    assert!(
        ok,
        "the browser end-to-end test failed; its output is above"
    );
}
