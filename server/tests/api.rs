//! The API contract, driven over HTTP against the real `chirp` binary.

mod common;

use common::{data_dir, newest_first, Chirp};
use serde_json::json;

fn assert_problem(resp: &(u16, serde_json::Value), status: u16, field: Option<&str>) {
    let (s, body) = resp;
    assert_eq!(*s, status, "{body}");
    assert_eq!(body["status"], status, "{body}");
    assert!(
        body["type"].is_string() && body["title"].is_string() && body["detail"].is_string(),
        "{body}"
    );
    if let Some(field) = field {
        assert_eq!(body["field"], field, "{body}");
        assert!(
            body["detail"].as_str().unwrap_or("").contains(field),
            "{body}"
        );
    }
}

#[test]
fn sign_up_log_in_and_profiles() {
    let (_tmp, dir) = data_dir();
    let chirp = Chirp::start(&dir, &[]);
    assert_eq!(chirp.call("GET", "/health", None, None).0, 200);

    let (s, p) = chirp.call(
        "POST",
        "/users",
        None,
        Some(json!({"handle": "Alice", "password": "password1", "display_name": "Alice A."})),
    );
    assert_eq!(s, 201, "{p}");
    assert_eq!(p["handle"], "Alice");
    assert_eq!(p["display_name"], "Alice A.");
    assert!(
        p["id"].as_str().is_some_and(|id| id.parse::<u64>().is_ok()),
        "{p}"
    );
    for key in [
        "bio",
        "avatar_url",
        "created_at",
        "followers_count",
        "following_count",
        "tweet_count",
        "extra",
    ] {
        assert!(p.get(key).is_some(), "missing {key} in {p}");
    }
    assert!(
        p["created_at"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{p}"
    );
    let alice = p["id"].as_str().unwrap_or_default().to_string();

    // Handles are unique case-insensitively; fields are validated by name.
    assert_problem(
        &chirp.call(
            "POST",
            "/users",
            None,
            Some(json!({"handle": "aLiCe", "password": "password1"})),
        ),
        409,
        Some("handle"),
    );
    assert_problem(
        &chirp.call(
            "POST",
            "/users",
            None,
            Some(json!({"handle": "bad-handle", "password": "password1"})),
        ),
        422,
        Some("handle"),
    );
    assert_problem(
        &chirp.call(
            "POST",
            "/users",
            None,
            Some(json!({"handle": "abcdefghijklmnop", "password": "password1"})),
        ),
        422,
        Some("handle"),
    );
    assert_problem(
        &chirp.call(
            "POST",
            "/users",
            None,
            Some(json!({"handle": "bob", "password": "short"})),
        ),
        422,
        Some("password"),
    );
    assert_problem(
        &chirp.call(
            "POST",
            "/users",
            None,
            Some(json!({"handle": "bob", "password": "x".repeat(257)})),
        ),
        422,
        Some("password"),
    );
    assert_problem(
        &chirp.call(
            "POST",
            "/users",
            None,
            Some(json!({"password": "password1"})),
        ),
        422,
        Some("handle"),
    );
    assert_problem(
        &chirp.call(
            "POST",
            "/users",
            None,
            Some(json!({"handle": 5, "password": "password1"})),
        ),
        422,
        Some("handle"),
    );
    assert_problem(
        &chirp.raw("POST", "/users", None, Some(b"{\"handle\": ")),
        400,
        None,
    );
    assert_problem(
        &chirp.raw("POST", "/users", None, Some(b"not json")),
        400,
        None,
    );
    let huge = format!(
        "{{\"handle\":\"x\",\"password\":\"{}\"}}",
        "a".repeat(200_000)
    );
    assert_problem(
        &chirp.raw("POST", "/users", None, Some(huge.as_bytes())),
        413,
        None,
    );

    // Log in.
    assert_problem(
        &chirp.call(
            "POST",
            "/sessions",
            None,
            Some(json!({"handle": "alice", "password": "wrong-password"})),
        ),
        401,
        None,
    );
    assert_problem(
        &chirp.call(
            "POST",
            "/sessions",
            None,
            Some(json!({"handle": "nobody", "password": "password1"})),
        ),
        401,
        None,
    );
    let (s, session) = chirp.call(
        "POST",
        "/sessions",
        None,
        Some(json!({"handle": "alice", "password": "password1"})),
    );
    assert_eq!(s, 200, "{session}");
    assert_eq!(session["user_id"], alice.as_str());
    let token = session["token"].as_str().unwrap_or_default().to_string();

    // Profiles by id and by handle.
    let (s, by_id) = chirp.call("GET", &format!("/{alice}/profile"), None, None);
    assert_eq!(s, 200);
    let (_, by_handle) = chirp.call("GET", "/@ALICE/profile", None, None);
    assert_eq!(by_id, by_handle);
    assert_problem(
        &chirp.call("GET", "/@nobody/profile", None, None),
        404,
        None,
    );
    assert_problem(&chirp.call("GET", "/12345/profile", None, None), 404, None);

    // Updates merge extra properties; null removes one.
    let path = format!("/{alice}/profile");
    let (s, p) = chirp.call(
        "PATCH",
        &path,
        Some(&token),
        Some(json!({"bio": "hello", "extra": {"city": "Oslo", "pets": ["cat"]}})),
    );
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["bio"], "hello");
    assert_eq!(p["extra"], json!({"city": "Oslo", "pets": ["cat"]}));
    let (_, p) = chirp.call("PATCH", &path, Some(&token), Some(json!({"avatar_url": "https://example.com/a.png", "extra": {"city": null, "lang": "no"}})));
    assert_eq!(p["extra"], json!({"pets": ["cat"], "lang": "no"}));
    assert_eq!(p["avatar_url"], "https://example.com/a.png");
    assert_eq!(p["display_name"], "Alice A.");
    assert_eq!(chirp.call("GET", &path, None, None).1, p);
    assert_problem(
        &chirp.call(
            "PATCH",
            &path,
            Some(&token),
            Some(json!({"bio": "x".repeat(161)})),
        ),
        422,
        Some("bio"),
    );
    assert_problem(
        &chirp.call(
            "PATCH",
            &path,
            Some(&token),
            Some(json!({"avatar_url": "javascript:alert(1)"})),
        ),
        422,
        Some("avatar_url"),
    );
    assert_problem(
        &chirp.call(
            "PATCH",
            &path,
            Some(&token),
            Some(json!({"extra": {"big": "x".repeat(5000)}})),
        ),
        422,
        Some("extra"),
    );
    assert_problem(
        &chirp.call(
            "PATCH",
            &path,
            Some(&token),
            Some(json!({"handle": "mallory"})),
        ),
        422,
        Some("handle"),
    );
    assert_problem(
        &chirp.call("PATCH", &path, None, Some(json!({"bio": "no token"}))),
        401,
        None,
    );
    assert_problem(
        &chirp.call(
            "PATCH",
            &path,
            Some("1.bogus"),
            Some(json!({"bio": "bad token"})),
        ),
        401,
        None,
    );

    // Logging out ends that session only, at once.
    let (_, second) = chirp.call(
        "POST",
        "/sessions",
        None,
        Some(json!({"handle": "alice", "password": "password1"})),
    );
    let second = second["token"].as_str().unwrap_or_default().to_string();
    assert_problem(&chirp.call("DELETE", "/sessions", None, None), 401, None);
    assert_eq!(
        chirp.call("DELETE", "/sessions", Some(&second), None).0,
        204
    );
    assert_problem(&chirp.call("GET", "/feed", Some(&second), None), 401, None);
    assert_problem(
        &chirp.call("DELETE", "/sessions", Some(&second), None),
        401,
        None,
    );
    assert_eq!(chirp.call("GET", "/feed", Some(&token), None).0, 200);

    // Nobody edits someone else's profile.
    let (_bob, bob_token) = chirp.user("bob");
    assert_problem(
        &chirp.call(
            "PATCH",
            &path,
            Some(&bob_token),
            Some(json!({"bio": "pwned"})),
        ),
        403,
        None,
    );
    assert_eq!(chirp.call("GET", &path, None, None).1["bio"], "hello");

    // Unknown routes and methods.
    assert_problem(&chirp.call("GET", "/no/such/thing", None, None), 404, None);
    assert_problem(
        &chirp.call("PUT", "/users", None, Some(json!({}))),
        405,
        None,
    );
}

#[test]
fn tweets_text_rules_and_deletion() {
    let (_tmp, dir) = data_dir();
    let chirp = Chirp::start(&dir, &[]);
    let (alice, token) = chirp.user("alice");
    let (_bob, bob_token) = chirp.user("bob");

    let (s, t) = chirp.call(
        "POST",
        "/tweet",
        Some(&token),
        Some(json!({"text": "Hello #Rust and #日本語!", "extra": {"client": "test"}})),
    );
    assert_eq!(s, 201, "{t}");
    assert_eq!(t["author_id"], alice.as_str());
    assert_eq!(t["author_handle"], "alice");
    assert_eq!(t["hashtags"], json!(["Rust", "日本語"]));
    assert_eq!(t["media"], json!([]));
    assert_eq!(t["extra"], json!({"client": "test"}));
    let id = t["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(chirp.call("GET", &format!("/tweets/{id}"), None, None).1, t);

    // 140 code points after NFC are fine (an e + combining accent is one character)...
    let composed = "e\u{301}".repeat(140);
    assert_eq!(
        chirp
            .call(
                "POST",
                "/tweet",
                Some(&token),
                Some(json!({"text": composed}))
            )
            .0,
        201
    );
    assert_eq!(
        chirp
            .call(
                "POST",
                "/tweet",
                Some(&token),
                Some(json!({"text": "🐱".repeat(140)}))
            )
            .0,
        201
    );
    // ...141 are not, nor empty, blank or forbidden characters.
    for bad in [
        "x".repeat(141),
        String::new(),
        " \n\t ".into(),
        "a\u{FEFF}b".into(),
        "a\u{FFFE}".into(),
    ] {
        assert_problem(
            &chirp.call("POST", "/tweet", Some(&token), Some(json!({"text": bad}))),
            422,
            Some("text"),
        );
    }
    assert_problem(
        &chirp.call("POST", "/tweet", Some(&token), Some(json!({"txt": "typo"}))),
        422,
        Some("txt"),
    );
    assert_problem(
        &chirp.call(
            "POST",
            "/tweet",
            Some(&token),
            Some(json!({"text": "hi", "media": ["nope"]})),
        ),
        422,
        Some("media"),
    );
    assert_problem(
        &chirp.call("POST", "/tweet", None, Some(json!({"text": "anon"}))),
        401,
        None,
    );
    assert_problem(
        &chirp.call(
            "POST",
            "/tweet",
            Some("garbage"),
            Some(json!({"text": "anon"})),
        ),
        401,
        None,
    );

    // Only the author deletes, and the tweet is gone everywhere.
    assert_problem(
        &chirp.call("DELETE", &format!("/tweets/{id}"), Some(&bob_token), None),
        403,
        None,
    );
    assert_problem(
        &chirp.call("DELETE", &format!("/tweets/{id}"), None, None),
        401,
        None,
    );
    assert_eq!(
        chirp
            .call("DELETE", &format!("/tweets/{id}"), Some(&token), None)
            .0,
        204
    );
    assert_problem(
        &chirp.call("GET", &format!("/tweets/{id}"), None, None),
        404,
        None,
    );
    assert_problem(
        &chirp.call("DELETE", &format!("/tweets/{id}"), Some(&token), None),
        404,
        None,
    );
    assert_problem(&chirp.call("GET", "/tweets/123", None, None), 404, None);
    assert_problem(
        &chirp.call("GET", "/tweets/not-a-number", None, None),
        404,
        None,
    );
    let timeline = chirp.all_ids(&format!("/{alice}/tweets"), None, 20);
    assert_eq!(timeline.len(), 2);
    assert!(!timeline.contains(&id));
    assert_eq!(
        chirp
            .call("GET", &format!("/{alice}/profile"), None, None)
            .1["tweet_count"],
        2
    );
}

#[test]
fn follows_feeds_and_pagination() {
    let (_tmp, dir) = data_dir();
    let chirp = Chirp::start(&dir, &[]);
    let (alice, alice_t) = chirp.user("alice");
    let (bob, bob_t) = chirp.user("bob");
    let (carol, carol_t) = chirp.user("carol");

    // Follow rules.
    let follow = |who: &str, token: &str, whom: &str| {
        chirp.call("POST", &format!("/{who}/follow/{whom}"), Some(token), None)
    };
    assert_eq!(
        follow(&bob, &bob_t, &alice),
        (200, json!({"following": true}))
    );
    assert_eq!(
        follow(&bob, &bob_t, &alice),
        (200, json!({"following": true}))
    );
    assert_eq!(
        follow(&bob, &bob_t, "@carol"),
        (200, json!({"following": true}))
    );
    assert_problem(&follow(&bob, &bob_t, &bob), 422, None);
    assert_problem(&follow(&alice, &bob_t, &carol), 403, None);
    assert_problem(
        &chirp.call("POST", &format!("/{bob}/follow/{alice}"), None, None),
        401,
        None,
    );
    assert_problem(&follow(&bob, &bob_t, "@ghost"), 404, None);
    assert_problem(&follow("@ghost", &bob_t, &alice), 404, None);

    let (_, a) = chirp.call("GET", &format!("/{alice}/profile"), None, None);
    assert_eq!(a["followers_count"], 1);
    let (_, b) = chirp.call("GET", &format!("/{bob}/profile"), None, None);
    assert_eq!(b["following_count"], 2);
    let (_, followers) = chirp.call("GET", &format!("/{alice}/followers"), None, None);
    assert_eq!(followers["users"][0]["id"], bob.as_str());
    assert_eq!(followers["next_cursor"], json!(null));
    let (_, following) = chirp.call("GET", &format!("/{bob}/following?limit=1"), None, None);
    assert_eq!(following["users"].as_array().map(Vec::len), Some(1));
    let cursor = following["next_cursor"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (_, rest) = chirp.call(
        "GET",
        &format!("/{bob}/following?limit=1&cursor={cursor}"),
        None,
        None,
    );
    assert_eq!(rest["users"].as_array().map(Vec::len), Some(1));
    assert_eq!(rest["next_cursor"], json!(null));
    assert_ne!(rest["users"][0]["id"], following["users"][0]["id"]);

    // Posts from both followees, interleaved.
    let mut posted = Vec::new();
    for i in 0..25 {
        posted.push(chirp.tweet(&alice_t, &format!("alice {i}")));
        if i % 3 == 0 {
            posted.push(chirp.tweet(&carol_t, &format!("carol {i}")));
        }
    }
    let own = chirp.tweet(&bob_t, "bob's own tweet");
    posted.push(own);
    let expected = newest_first(posted.clone());
    chirp.eventually("bob's feed to fill", || {
        chirp.all_ids("/feed", Some(&bob_t), 100) == expected
    });
    assert_eq!(chirp.all_ids("/feed", Some(&bob_t), 7), expected);

    // Paging while new tweets arrive still yields every old item once, in order.
    let (_, first) = chirp.call("GET", "/feed?limit=5", Some(&bob_t), None);
    let mut seen: Vec<String> = first["tweets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["id"].as_str().map(str::to_string))
        .collect();
    let mut cursor = first["next_cursor"].as_str().map(str::to_string);
    while let Some(c) = cursor {
        chirp.tweet(&alice_t, "arriving while paging");
        let (_, page) = chirp.call(
            "GET",
            &format!("/feed?limit=5&cursor={c}"),
            Some(&bob_t),
            None,
        );
        seen.extend(
            page["tweets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t["id"].as_str().map(str::to_string)),
        );
        cursor = page["next_cursor"].as_str().map(str::to_string);
    }
    assert_eq!(seen, expected);
    assert_problem(
        &chirp.call("GET", "/feed?limit=0", Some(&bob_t), None),
        422,
        Some("limit"),
    );
    assert_problem(
        &chirp.call("GET", "/feed?limit=101", Some(&bob_t), None),
        422,
        Some("limit"),
    );
    assert_problem(
        &chirp.call("GET", "/feed?cursor=%%%", Some(&bob_t), None),
        422,
        Some("cursor"),
    );
    assert_problem(&chirp.call("GET", "/feed", None, None), 401, None);

    // A user timeline holds only that user's tweets.
    let carol_ids = chirp.all_ids("/@carol/tweets", None, 3);
    assert_eq!(carol_ids.len(), 9);
    assert_eq!(carol_ids, newest_first(carol_ids.clone()));

    // Deleting a tweet takes it out of followers' feeds.
    // (Ids minted in the same millisecond on different shards order by shard, so pick the
    // tweet by author rather than by position in the feed.)
    let gone = carol_ids[1].clone();
    let (s, _) = chirp.call("DELETE", &format!("/tweets/{gone}"), Some(&carol_t), None);
    assert_eq!(s, 204);
    assert!(!chirp.all_ids("/feed", Some(&bob_t), 100).contains(&gone));

    // Following back-fills recent tweets; unfollowing removes them.
    let (dave, dave_t) = chirp.user("dave");
    follow(&dave, &dave_t, &carol);
    let dave_feed = chirp.all_ids("/feed", Some(&dave_t), 100);
    assert_eq!(
        dave_feed,
        carol_ids
            .iter()
            .filter(|id| **id != gone)
            .cloned()
            .collect::<Vec<_>>()
    );
    assert_eq!(
        chirp.call(
            "DELETE",
            &format!("/{bob}/follow/{alice}"),
            Some(&bob_t),
            None
        ),
        (200, json!({"following": false}))
    );
    assert_eq!(
        chirp.call(
            "DELETE",
            &format!("/{bob}/follow/{alice}"),
            Some(&bob_t),
            None
        ),
        (200, json!({"following": false}))
    );
    let feed = chirp.all_ids("/feed", Some(&bob_t), 100);
    assert!(!feed.is_empty());
    for id in &feed {
        let (_, t) = chirp.call("GET", &format!("/tweets/{id}"), None, None);
        assert_ne!(
            t["author_id"],
            alice.as_str(),
            "unfollowed author's tweet {id} still in the feed"
        );
    }
    assert_eq!(
        chirp
            .call("GET", &format!("/{alice}/profile"), None, None)
            .1["followers_count"],
        0
    );
}

#[test]
fn celebrities_are_merged_at_read_time() {
    let (_tmp, dir) = data_dir();
    let chirp = Chirp::start(&dir, &["--celebrity-threshold", "2"]);
    let (star, star_t) = chirp.user("star");
    let mut fans = Vec::new();
    for i in 0..3 {
        let (id, token) = chirp.user(&format!("fan{i}"));
        assert_eq!(
            chirp
                .call("POST", &format!("/{id}/follow/{star}"), Some(&token), None)
                .0,
            200
        );
        fans.push(token);
    }
    // Past the threshold: no fan-out rows, yet every fan sees the tweets at once.
    let ids: Vec<String> = (0..5)
        .map(|i| chirp.tweet(&star_t, &format!("famous {i}")))
        .collect();
    for token in &fans {
        assert_eq!(
            chirp.all_ids("/feed", Some(token), 2),
            newest_first(ids.clone())
        );
    }
    let (_, p) = chirp.call("GET", &format!("/{star}/profile"), None, None);
    assert_eq!(p["followers_count"], 3);
}

#[test]
fn sigterm_shuts_down_cleanly() {
    let (_tmp, dir) = data_dir();
    let mut chirp = Chirp::start(&dir, &[]);
    let (_, token) = chirp.user("alice");
    chirp.tweet(&token, "before shutdown");
    assert!(chirp.terminate().success());
    let chirp = Chirp::start(&dir, &[]);
    assert_eq!(chirp.all_ids("/@alice/tweets", None, 10).len(), 1);
}

/// The first page of a home feed is kept merged in memory (the home-page cache); whatever
/// changes the feed must show on the very next read, never a stale page.
#[test]
fn a_cached_first_page_never_hides_a_change() {
    let (_tmp, dir) = data_dir();
    let chirp = Chirp::start(&dir, &["--celebrity-threshold", "2"]);
    let (reader, reader_t) = chirp.user("reader");
    let (bob, bob_t) = chirp.user("bob");
    let (star, star_t) = chirp.user("star");
    let (dave, dave_t) = chirp.user("dave");
    let follow = |who: &str, token: &str, whom: &str, how: &str| {
        let (s, _) = chirp.call(how, &format!("/{who}/follow/{whom}"), Some(token), None);
        assert_eq!(s, 200);
    };
    for i in 0..2 {
        let (fan, fan_t) = chirp.user(&format!("fan{i}"));
        follow(&fan, &fan_t, &star, "POST");
    }
    follow(&reader, &reader_t, &star, "POST");
    follow(&reader, &reader_t, &bob, "POST");
    let page = || -> Vec<String> {
        let (s, p) = chirp.call("GET", "/feed?limit=5", Some(&reader_t), None);
        assert_eq!(s, 200, "{p}");
        p["tweets"]
            .as_array()
            .expect("tweets")
            .iter()
            .map(|t| t["id"].as_str().expect("id").to_string())
            .collect()
    };
    let hits = || -> u64 {
        let (s, st) = chirp.admin_call("GET", "/status", None);
        assert_eq!(s, 200, "{st}");
        st["home_cache"]["hits"].as_u64().expect("home_cache.hits")
    };
    let delete = |id: &str, token: &str| {
        let (s, _) = chirp.call("DELETE", &format!("/tweets/{id}"), Some(token), None);
        assert_eq!(s, 204);
    };

    // Reading twice with nothing in between is served from the cache.
    let before = hits();
    assert_eq!(page(), page());
    assert!(hits() > before, "the second read was not a cache hit");

    // A followed author's post shows once it is fanned out.
    page();
    let b1 = chirp.tweet(&bob_t, "bob one");
    chirp.eventually("bob's post in the reader's feed", || page().contains(&b1));
    // A celebrity's post shows on the next read (merged at read time), and so does its
    // deletion.
    page();
    let s1 = chirp.tweet(&star_t, "star one");
    assert_eq!(page().first(), Some(&s1));
    delete(&s1, &star_t);
    assert!(!page().contains(&s1));
    // A deleted fanned-out tweet is gone on the next read.
    assert!(page().contains(&b1));
    delete(&b1, &bob_t);
    assert!(!page().contains(&b1));
    // Unfollowing takes the author's tweets out at once.
    let b2 = chirp.tweet(&bob_t, "bob two");
    chirp.eventually("bob's second post", || page().contains(&b2));
    follow(&reader, &reader_t, &bob, "DELETE");
    assert!(!page().contains(&b2));
    // Following back-fills at once.
    let d1 = chirp.tweet(&dave_t, "dave one");
    assert!(!page().contains(&d1));
    follow(&reader, &reader_t, &dave, "POST");
    assert!(page().contains(&d1));
    // The reader's own post shows at once.
    let r1 = chirp.tweet(&reader_t, "mine");
    assert_eq!(page().first(), Some(&r1));
    // A user who passes the celebrity threshold stops being fanned out; the set's change
    // must not leave a page without their next post.
    for i in 0..2 {
        let (fan, fan_t) = chirp.user(&format!("dave_fan{i}"));
        follow(&fan, &fan_t, &dave, "POST");
    }
    page();
    let d2 = chirp.tweet(&dave_t, "dave, famous now");
    assert_eq!(page().first(), Some(&d2));
}
