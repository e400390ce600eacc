//! After a restart: compares what the node shows with what the clients know.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::Chirp;
use crate::model::{Model, PostState};

/// Longest wait for fan-out (resumed from the outbox at start) to reach every due feed.
const FANOUT_TIMEOUT: Duration = Duration::from_secs(10);
/// Page size for every list walked.
const PAGE: usize = 100;

/// What one round of checks found.
#[derive(Default)]
pub struct Findings {
    /// Acknowledged writes (tweets, edges, profiles, feed deliveries) checked.
    pub checked: usize,
    /// Acknowledged writes not shown: each should never happen.
    pub lost: Vec<String>,
    /// Anything else that breaks a rule (a tweet nobody posted, a counter that disagrees
    /// with its rows, a tweet that came back, a shown state nobody wrote).
    pub wrong: Vec<String>,
}

/// Checks every acknowledged write, settles the unanswered ones by what the node shows, then
/// waits for every due tweet to reach its feeds.
pub fn run(node: &Chirp, model: &mut Model) -> Findings {
    let mut f = Findings::default();
    let profiles: Vec<Value> = model
        .users
        .iter()
        .map(|u| {
            let (s, p) = node.call("GET", &format!("/{}/profile", u.id), None, None);
            assert_eq!(s, 200, "profile of {}: {p}", u.id);
            p
        })
        .collect();
    timelines(node, model, &profiles, &mut f);
    tweets_by_id(node, model, &mut f);
    edges(node, model, &profiles, &mut f);
    profile_edits(model, &profiles, &mut f);
    feeds(node, model, &mut f);
    f
}

/// Each author's timeline holds exactly their acknowledged and found tweets, plus unanswered
/// ones, which are settled here as found or absent.
fn timelines(node: &Chirp, model: &mut Model, profiles: &[Value], f: &mut Findings) {
    for (author, user) in model.users.iter().enumerate() {
        let shown = node.all_items(&format!("/{}/tweets", user.id), None, "tweets", PAGE);
        let mut by_text: HashMap<&str, &str> = HashMap::new();
        let mut last = u64::MAX;
        for t in &shown {
            let (id, text) = (t["id"].as_str().unwrap_or(""), t["text"].as_str());
            let n: u64 = id.parse().unwrap_or(u64::MAX);
            if n >= last {
                f.wrong
                    .push(format!("timeline of user {author} out of order at {id}"));
            }
            last = n;
            if by_text.insert(text.unwrap_or(""), id).is_some() {
                f.wrong
                    .push(format!("tweet {text:?} shown twice by user {author}"));
            }
        }
        let mut claimed = HashSet::new();
        for post in model.posts.iter_mut().filter(|p| p.author == author) {
            let found = by_text.get(post.text.as_str()).copied();
            match (post.state, found) {
                (PostState::Acked | PostState::Found, Some(id)) if post.id.as_deref() == Some(id) => {
                    f.checked += 1;
                }
                (PostState::Acked | PostState::Found, _) => f.lost.push(format!(
                    "tweet {:?} {:?} ({:?}, cycle {}) missing from its author's timeline",
                    post.id, post.text, post.state, post.cycle
                )),
                (PostState::Unknown, Some(id)) => {
                    post.state = PostState::Found;
                    post.id = Some(id.to_string());
                }
                (PostState::Unknown, None) => post.state = PostState::Absent,
                (PostState::Absent, Some(id)) => f.wrong.push(format!(
                    "unanswered tweet {id} {:?} (cycle {}) appeared after a restart that had not shown it",
                    post.text, post.cycle
                )),
                (PostState::Absent, None) => {}
            }
            if let Some(id) = found {
                claimed.insert(id);
            }
        }
        for (text, id) in &by_text {
            if !claimed.contains(id) {
                f.wrong.push(format!(
                    "user {author} shows tweet {id} {text:?} nobody posted"
                ));
            }
        }
        if profiles[author]["tweet_count"] != shown.len() {
            f.wrong.push(format!(
                "user {author}: tweet_count {} but {} tweets in the timeline",
                profiles[author]["tweet_count"],
                shown.len()
            ));
        }
    }
}

/// `GET /tweets/{id}` answers each tweet that must exist with its text and author.
fn tweets_by_id(node: &Chirp, model: &Model, f: &mut Findings) {
    for post in model.posts.iter().filter(|p| p.must_exist()) {
        let Some(id) = &post.id else { continue };
        let (s, t) = node.call("GET", &format!("/tweets/{id}"), None, None);
        let author = &model.users[post.author].id;
        if s == 200 && t["text"] == post.text.as_str() && t["author_id"] == author.as_str() {
            f.checked += 1;
        } else {
            f.lost.push(format!(
                "GET /tweets/{id} ({:?}, cycle {}) -> {s} {t}",
                post.state, post.cycle
            ));
        }
    }
}

/// Both sides of every edge whose last write was answered show that write; counters equal
/// the rows they count.
fn edges(node: &Chirp, model: &Model, profiles: &[Value], f: &mut Findings) {
    let list = |user: &str, which: &str| -> HashSet<String> {
        node.all_items(&format!("/{user}/{which}"), None, "users", PAGE)
            .iter()
            .filter_map(|u| u["id"].as_str().map(str::to_string))
            .collect()
    };
    let following: Vec<_> = model
        .users
        .iter()
        .map(|u| list(&u.id, "following"))
        .collect();
    let followers: Vec<_> = model
        .users
        .iter()
        .map(|u| list(&u.id, "followers"))
        .collect();
    for (i, user) in model.users.iter().enumerate() {
        for (count, rows) in [
            ("following_count", &following[i]),
            ("followers_count", &followers[i]),
        ] {
            if profiles[i][count] != rows.len() {
                f.wrong.push(format!(
                    "user {i}: {count} {} but {} rows",
                    profiles[i][count],
                    rows.len()
                ));
            }
        }
        for (j, other) in model.users.iter().enumerate() {
            if i == j {
                continue;
            }
            let Some(expected) = model.edge_state(i, j) else {
                continue;
            };
            let sides = (
                following[i].contains(&other.id),
                followers[j].contains(&user.id),
            );
            if sides == (expected, expected) {
                f.checked += 1;
            } else {
                f.lost.push(format!(
                    "edge {i} -> {j}: last acknowledged write says following={expected}, \
                     node shows (following row, followers row) = {sides:?}"
                ));
            }
        }
    }
}

/// Each profile shows its last acknowledged edit, or the unanswered edit sent after it; the
/// one shown becomes the settled state.
fn profile_edits(model: &mut Model, profiles: &[Value], f: &mut Findings) {
    for (i, known) in model.profiles.iter_mut().enumerate() {
        let shown = &profiles[i];
        if known.maybe.as_ref().is_some_and(|m| m.shown_by(shown)) {
            known.settled = known.maybe.take();
        } else if known.settled.as_ref().is_some_and(|s| s.shown_by(shown)) {
            known.maybe = None;
            f.checked += 1;
        } else {
            f.lost.push(format!(
                "profile of user {i} shows {shown}, expected {:?} (or unanswered {:?})",
                known.settled, known.maybe
            ));
        }
    }
}

/// Every due tweet reaches each due feed within `FANOUT_TIMEOUT`; a feed never shows a
/// tweet of someone its owner surely does not follow, nor one that does not exist.
fn feeds(node: &Chirp, model: &Model, f: &mut Findings) {
    let ids: HashMap<&str, usize> = model
        .posts
        .iter()
        .filter(|p| p.must_exist())
        .filter_map(|p| Some((p.id.as_deref()?, p.author)))
        .collect();
    let mut waiting: Vec<(usize, Vec<&str>)> = (0..model.users.len())
        .map(|u| {
            let due = model.feed_due(u);
            let due: Vec<&str> = due.iter().filter_map(|p| p.id.as_deref()).collect();
            (u, due)
        })
        .collect();
    let deadline = Instant::now() + FANOUT_TIMEOUT;
    let mut first_pass = true;
    loop {
        for (user, due) in waiting.iter_mut() {
            let feed = node.all_items(
                "/feed",
                Some(model.users[*user].token.as_str()),
                "tweets",
                PAGE,
            );
            let shown: HashSet<&str> = feed.iter().filter_map(|t| t["id"].as_str()).collect();
            if first_pass {
                feed_rules(model, *user, &feed, &ids, f);
            }
            due.retain(|id| !shown.contains(id));
        }
        first_pass = false;
        waiting.retain(|(_, due)| !due.is_empty());
        if waiting.is_empty() || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let missing: usize = waiting.iter().map(|(_, due)| due.len()).sum();
    f.checked += (0..model.users.len())
        .map(|u| model.feed_due(u).len())
        .sum::<usize>()
        - missing;
    for (user, due) in waiting {
        for id in due {
            f.lost.push(format!(
                "tweet {id} by user {} not in the feed of user {user} after {FANOUT_TIMEOUT:?}",
                ids.get(id).copied().unwrap_or(usize::MAX)
            ));
        }
    }
}

/// What a feed must never show, at any moment.
fn feed_rules(
    model: &Model,
    user: usize,
    feed: &[Value],
    ids: &HashMap<&str, usize>,
    f: &mut Findings,
) {
    let mut last = u64::MAX;
    for t in feed {
        let id = t["id"].as_str().unwrap_or("");
        let n: u64 = id.parse().unwrap_or(u64::MAX);
        if n >= last {
            f.wrong
                .push(format!("feed of user {user} out of order at {id}"));
        }
        last = n;
        match ids.get(id) {
            None => f.wrong.push(format!(
                "feed of user {user} shows tweet {id} that is in no timeline"
            )),
            Some(&author) if author != user && model.edge_state(user, author) == Some(false) => {
                f.wrong.push(format!(
                    "feed of user {user} shows tweet {id} by user {author}, whom they do not follow"
                ))
            }
            Some(_) => {}
        }
    }
}
