//! Acknowledged writes survive a power cut, not only SIGKILL: the data dir sits on the
//! power-cut FUSE filesystem (`chirp-testkit`), which throws away everything not fsynced.
//! Users upload images, writers run concurrently, the node is SIGKILLed mid-stream, the power
//! is cut, and a new node on what was durable must show every write that got a 2xx, also when
//! directory entries need a directory fsync (strict POSIX). With `--no-sync` some writes must
//! be missing, which shows the harness can fail. All skip (and pass) without FUSE.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use chirp_testkit::powercut::{self, DirDurability, Mounted, PowerCutFs};
use common::{try_call, Chirp};
use serde_json::{json, Value};

const USERS: usize = 8;
const WRITERS: usize = 4;
const WRITE_FOR: Duration = Duration::from_millis(1500);

/// A small PNG, different per `seed`.
fn picture(seed: u8) -> Vec<u8> {
    let rgba = image::RgbaImage::from_fn(16, 16, |x, y| {
        image::Rgba([(x * 16) as u8 ^ seed, (y * 16) as u8, seed, 255])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgba8(rgba)
        .write_to(&mut out, image::ImageFormat::Png)
        .expect("encode test image");
    out.into_inner()
}

/// The writes one writer got a 2xx for.
#[derive(Default)]
struct Acked {
    /// (tweet id, text).
    tweets: Vec<(String, String)>,
    /// (follower, followee).
    follows: Vec<(String, String)>,
    /// The writer's user, its last acknowledged bio and the bio of an edit in flight at the
    /// kill (which may or may not have landed).
    bio: Option<(String, String, Option<String>)>,
}

/// What the node on the durable state was missing.
struct Outcome {
    checked: usize,
    lost: Vec<String>,
}

fn mount(mnt: &Path, dirs: DirDurability) -> Option<Mounted> {
    if let Some(why) = powercut::unavailable() {
        println!("skipping the power-loss test: {why}");
        return None;
    }
    std::fs::create_dir_all(mnt).expect("mountpoint");
    match PowerCutFs::mount_with(mnt, dirs) {
        Ok(m) => Some(m),
        Err(e) => {
            println!("skipping the power-loss test: {e} (needs /dev/fuse and root or fusermount3)");
            None
        }
    }
}

/// A second node on the same dir must fail: RocksDB's LOCK file works on the mount.
fn assert_locked_out(data: &Path, log: &Path) {
    let log = std::fs::File::create(log).expect("log");
    let mut second = Command::new(env!("CARGO_BIN_EXE_chirp"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .args(["--shards", "4", "--data"])
        .arg(data)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = second.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = second.kill();
            panic!("a second node opened a locked data dir");
        }
        thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success());
}

fn writer(base: String, me: (String, String), others: Vec<String>, stop: Arc<AtomicBool>) -> Acked {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    let (user, token) = me;
    let mut acked = Acked::default();
    let mut last_bio: Option<String> = None;
    for n in 0.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let (method, path, body) = match n % 3 {
            0 => (
                "POST",
                "/tweet".to_string(),
                json!({"text": format!("{user} says {n}")}),
            ),
            1 => {
                let to = &others[n % others.len()];
                ("POST", format!("/{user}/follow/{to}"), Value::Null)
            }
            _ => (
                "PATCH",
                format!("/{user}/profile"),
                json!({"bio": format!("bio {n}")}),
            ),
        };
        let body = (!body.is_null()).then_some(body);
        let sent = body.clone();
        let Ok((status, reply)) = try_call(&agent, &base, method, &path, Some(&token), body) else {
            // The node is gone: an edit in flight may or may not have landed.
            let in_flight = sent
                .filter(|_| n % 3 == 2)
                .and_then(|b| b["bio"].as_str().map(str::to_string));
            if last_bio.is_some() || in_flight.is_some() {
                acked.bio = Some((user, last_bio.unwrap_or_default(), in_flight));
            }
            return acked;
        };
        assert!(status < 300, "{method} {path} -> {status}: {reply}");
        match n % 3 {
            0 => {
                let id = reply["id"].as_str().expect("tweet id").to_string();
                let text = reply["text"].as_str().expect("text").to_string();
                acked.tweets.push((id, text));
            }
            1 => acked.follows.push((
                user.clone(),
                path.rsplit('/').next().unwrap_or_default().to_string(),
            )),
            _ => last_bio = sent.and_then(|b| b["bio"].as_str().map(str::to_string)),
        }
    }
    if let Some(bio) = last_bio {
        acked.bio = Some((user, bio, None));
    }
    acked
}

/// Runs the workload on a power-cut mount with `flags`; `None` when FUSE is unavailable.
fn run(dirs: DirDurability, flags: &[&str]) -> Option<Outcome> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mnt = tmp.path().join("mnt");
    let mounted = mount(&mnt, dirs)?;
    let data = mnt.join("data");
    let log = tmp.path().join("chirp.log");
    // The writers go as fast as the node lets them: no write rate limit here.
    let flags = [flags, &["--writes-per-user-per-minute", "0"][..]].concat();
    let flags = flags.as_slice();
    let mut chirp = Chirp::start_logged(&data, &log, flags);
    assert_locked_out(&data, &tmp.path().join("second.log"));

    let users: Vec<(String, String)> = (0..USERS)
        .map(|i| chirp.user(&format!("user{i}")))
        .collect();
    let mut setup_follows = Vec::new();
    for (i, (id, token)) in users.iter().enumerate() {
        let next = &users[(i + 1) % USERS].0;
        let (s, body) = chirp.call("POST", &format!("/{id}/follow/{next}"), Some(token), None);
        assert_eq!(s, 200, "{body}");
        setup_follows.push((id.clone(), next.clone()));
    }

    // One image each: blob files and their fan-out directories under `media/`.
    let mut images = Vec::new();
    for (i, (_, token)) in users.iter().enumerate() {
        let r = chirp.send(
            "POST",
            "/media",
            Some(token),
            &[("Content-Type", "image/png")],
            Some(&picture(i as u8)),
        );
        assert_eq!(r.status, 201, "{}", r.json());
        images.push(r.json()["id"].as_str().expect("media id").to_string());
    }

    let stop = Arc::new(AtomicBool::new(false));
    let ids: Vec<String> = users.iter().map(|(id, _)| id.clone()).collect();
    let writers: Vec<_> = users
        .iter()
        .take(WRITERS)
        .map(|me| {
            let others: Vec<String> = ids.iter().filter(|id| **id != me.0).cloned().collect();
            let (base, me, stop) = (chirp.base.clone(), me.clone(), Arc::clone(&stop));
            thread::spawn(move || writer(base, me, others, stop))
        })
        .collect();
    // Kill mid-stream: requests in flight get no answer and are not counted.
    thread::sleep(WRITE_FOR);
    chirp.kill();
    stop.store(true, Ordering::Relaxed);
    let acked: Vec<Acked> = writers
        .into_iter()
        .map(|w| w.join().expect("writer"))
        .collect();
    let fsyncs = mounted.fsyncs();

    let durable = mounted.cut().expect("power cut");
    let _mounted = durable.mount(&mnt).expect("remount the durable state");
    let chirp = Chirp::start_logged(&data, &log, flags);
    let mut outcome = Outcome {
        checked: 0,
        lost: Vec::new(),
    };
    let mut check = |ok: bool, what: String| {
        outcome.checked += 1;
        if !ok {
            outcome.lost.push(what);
        }
    };
    for (id, _) in &users {
        let (s, _) = chirp.call("GET", &format!("/{id}/profile"), None, None);
        check(s == 200, format!("user {id}"));
    }
    let follows = setup_follows
        .iter()
        .chain(acked.iter().flat_map(|a| &a.follows));
    for (from, to) in follows {
        let (s, page) = chirp.call("GET", &format!("/{from}/following?limit=100"), None, None);
        let found = s == 200
            && page["users"]
                .as_array()
                .is_some_and(|u| u.iter().any(|u| u["id"] == to.as_str()));
        check(found, format!("{from} follows {to}"));
    }
    for id in &images {
        let r = chirp.send("GET", &format!("/media/{id}"), None, &[], None);
        check(r.status == 200 && !r.body.is_empty(), format!("image {id}"));
    }
    for (id, text) in acked.iter().flat_map(|a| &a.tweets) {
        let (s, tweet) = chirp.call("GET", &format!("/tweets/{id}"), None, None);
        check(
            s == 200 && tweet["text"] == text.as_str(),
            format!("tweet {id}"),
        );
    }
    for (user, bio, in_flight) in acked.iter().filter_map(|a| a.bio.as_ref()) {
        let (s, profile) = chirp.call("GET", &format!("/{user}/profile"), None, None);
        let got = profile["bio"].as_str().unwrap_or_default();
        let ok = s == 200 && (got == bio || Some(got) == in_flight.as_deref());
        check(ok, format!("bio of {user}: {bio:?}, found {got:?}"));
    }
    println!(
        "{dirs:?}, flags {flags:?}: {} acknowledged writes checked, {} lost ({fsyncs} fsyncs before the cut)",
        outcome.checked,
        outcome.lost.len()
    );
    Some(outcome)
}

#[test]
fn acknowledged_writes_survive_a_power_cut() {
    let Some(outcome) = run(DirDurability::Immediate, &[]) else {
        return;
    };
    assert!(
        outcome.lost.is_empty(),
        "{} of {} acknowledged writes lost, first: {:?}",
        outcome.lost.len(),
        outcome.checked,
        &outcome.lost[..outcome.lost.len().min(10)]
    );
    assert!(
        outcome.checked > 50,
        "too few writes to mean anything: {}",
        outcome.checked
    );
}

#[test]
fn no_sync_loses_acknowledged_writes_at_a_power_cut() {
    let Some(outcome) = run(DirDurability::Immediate, &["--no-sync"]) else {
        return;
    };
    assert!(
        !outcome.lost.is_empty(),
        "--no-sync lost nothing of {} writes: the harness cannot see a missing fsync",
        outcome.checked
    );
}

#[test]
fn acknowledged_writes_survive_a_power_cut_with_strict_directories() {
    let Some(outcome) = run(DirDurability::OnFsync, &[]) else {
        return;
    };
    assert!(
        outcome.lost.is_empty(),
        "{} of {} acknowledged writes lost, first: {:?}",
        outcome.lost.len(),
        outcome.checked,
        &outcome.lost[..outcome.lost.len().min(10)]
    );
}

/// A checkpoint is durable once `POST /checkpoint` answers: after a power cut that keeps
/// only what was fsynced (directory entries too), a node started on the checkpoint shows
/// every user, tweet and image written before it. Its image files are hard links to the
/// node's, not copies.
#[test]
fn a_checkpoint_survives_a_power_cut() {
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().expect("tempdir");
    let mnt = tmp.path().join("mnt");
    let Some(mounted) = mount(&mnt, DirDurability::OnFsync) else {
        return;
    };
    let data = mnt.join("data");
    let log = tmp.path().join("chirp.log");
    let mut chirp = Chirp::start_logged(&data, &log, &[]);
    let mut written = Vec::new();
    for i in 0..4u8 {
        let (id, token) = chirp.user(&format!("kept{i}"));
        let png = picture(100 + i);
        let r = chirp.send(
            "POST",
            "/media",
            Some(&token),
            &[("Content-Type", "image/png")],
            Some(&png),
        );
        assert_eq!(r.status, 201, "{}", r.json());
        let media = r.json()["id"].as_str().expect("media id").to_string();
        let text = format!("kept in the checkpoint {i}");
        let (s, t) = chirp.call(
            "POST",
            "/tweet",
            Some(&token),
            Some(json!({"text": text, "media": [media]})),
        );
        assert_eq!(s, 201, "{t}");
        let served = chirp.send("GET", &format!("/media/{media}"), None, &[], None);
        written.push((
            id,
            t["id"].as_str().expect("id").to_string(),
            text,
            media,
            served.body,
        ));
    }
    let backup = mnt.join("backup");
    let (s, report) = chirp.admin_call(
        "POST",
        "/checkpoint",
        Some(json!({"dir": backup.display().to_string()})),
    );
    assert_eq!(s, 200, "{report}");
    assert!(report["linked_files"].as_u64() >= Some(4), "{report}");
    // The same inode: a hard link, not a copy.
    let blobs = |root: &Path| {
        let mut out = Vec::new();
        for a in std::fs::read_dir(root.join("media")).expect("media") {
            let a = a.expect("entry").path();
            if a.file_name().is_some_and(|n| n == "tmp") {
                continue;
            }
            for b in std::fs::read_dir(&a).expect("fan-out") {
                for f in std::fs::read_dir(b.expect("entry").path()).expect("fan-out") {
                    let f = f.expect("entry");
                    out.push((f.file_name(), f.metadata().expect("meta").ino()));
                }
            }
        }
        out.sort();
        out
    };
    assert_eq!(
        blobs(&data),
        blobs(&backup),
        "image files are linked into the checkpoint"
    );
    chirp.kill();

    let durable = mounted.cut().expect("power cut");
    let _mounted = durable.mount(&mnt).expect("remount the durable state");
    let chirp = Chirp::start_logged(&backup, &log, &[]);
    for (user, tweet, text, media, bytes) in &written {
        let (s, p) = chirp.call("GET", &format!("/{user}/profile"), None, None);
        assert_eq!(s, 200, "user {user} in the checkpoint: {p}");
        let (s, t) = chirp.call("GET", &format!("/tweets/{tweet}"), None, None);
        assert_eq!(s, 200, "tweet {tweet} in the checkpoint: {t}");
        assert_eq!(t["text"], text.as_str());
        let r = chirp.send("GET", &format!("/media/{media}"), None, &[], None);
        assert_eq!(r.status, 200, "image {media} in the checkpoint");
        assert!(&r.body == bytes, "image {media}'s bytes");
    }
}
