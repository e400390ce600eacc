//! Hashtag search over HTTP against the real binary: normalization, deletes, paging,
//! multi-tag queries and surviving SIGKILL.

mod common;

use common::{data_dir, newest_first, Chirp};
use serde_json::json;

fn ids_of(chirp: &Chirp, path: &str) -> Vec<String> {
    chirp.all_ids(path, None, 100)
}

#[test]
fn tags_match_across_case_scripts_and_punctuation() {
    let (_tmp, dir) = data_dir();
    let chirp = Chirp::start(&dir, &[]);
    let (_, alice) = chirp.user("alice");
    let (_, bob) = chirp.user("bob");
    let a = chirp.tweet(&alice, "Loving #Rust today");
    let b = chirp.tweet(&bob, "(#rust) and #RUST, again!");
    let c = chirp.tweet(&alice, "日本語のテスト #日本語");
    let d = chirp.tweet(&bob, "cafe time: #café.");
    let _e = chirp.tweet(&bob, "not a tag: http://example.com/#rust and #123");

    let rust = newest_first(vec![a.clone(), b.clone()]);
    for path in [
        "/search/tags/rust",
        "/search/tags/RuSt",
        "/search/tags/%23rust",
        "/search/tags/%23Rust",
    ] {
        assert_eq!(ids_of(&chirp, path), rust, "{path}");
    }
    assert_eq!(
        ids_of(&chirp, "/search/tags/%E6%97%A5%E6%9C%AC%E8%AA%9E"),
        vec![c.clone()]
    );
    assert_eq!(ids_of(&chirp, "/search/tags/CAF%C3%89"), vec![d]);
    assert_eq!(ids_of(&chirp, "/search/tags/nothing"), Vec::<String>::new());
    let (s, tweet) = chirp.call("GET", &format!("/tweets/{b}"), None, None);
    assert_eq!(s, 200);
    assert_eq!(tweet["hashtags"], json!(["rust", "RUST"]));

    // Bad tags are 422 naming the field.
    let (s, p) = chirp.call("GET", "/search/tags/123", None, None);
    assert_eq!((s, p["field"].as_str()), (422, Some("hashtag")), "{p}");
    let (s, p) = chirp.call("GET", "/search/tags?all=rust,%20", None, None);
    assert_eq!((s, p["field"].as_str()), (422, Some("all")), "{p}");
    let (s, p) = chirp.call("GET", "/search/tags", None, None);
    assert_eq!(s, 422, "{p}");

    // Deleted tweets leave search at once.
    assert_eq!(
        chirp
            .call("DELETE", &format!("/tweets/{a}"), Some(&alice), None)
            .0,
        204
    );
    assert_eq!(ids_of(&chirp, "/search/tags/rust"), vec![b]);
}

#[test]
fn paging_and_multi_tag_queries() {
    let (_tmp, dir) = data_dir();
    let chirp = Chirp::start(&dir, &[]);
    let (_, alice) = chirp.user("alice");
    let (_, bob) = chirp.user("bob");
    let mut all_posts = Vec::new();
    let (mut both, mut only_a, mut only_b) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..35 {
        let token = if i % 2 == 0 { &alice } else { &bob };
        let id = match i % 3 {
            0 => {
                let id = chirp.tweet(token, &format!("{i} #alpha #beta"));
                both.push(id.clone());
                id
            }
            1 => {
                let id = chirp.tweet(token, &format!("{i} #alpha"));
                only_a.push(id.clone());
                id
            }
            _ => {
                let id = chirp.tweet(token, &format!("{i} #Beta"));
                only_b.push(id.clone());
                id
            }
        };
        all_posts.push(id);
    }
    let alpha = newest_first([both.clone(), only_a.clone()].concat());
    // More than 3 pages, every item once, newest first.
    assert!(alpha.len() > 3 * 5);
    assert_eq!(chirp.all_ids("/search/tags/alpha", None, 5), alpha);
    assert_eq!(
        chirp.all_ids("/search/tags?all=alpha,BETA", None, 4),
        newest_first(both.clone())
    );
    assert_eq!(
        chirp.all_ids("/search/tags?any=%23alpha,beta", None, 6),
        newest_first(all_posts)
    );
    assert_eq!(
        chirp.all_ids("/search/tags?any=beta", None, 6),
        newest_first([both, only_b].concat())
    );
}

#[test]
fn search_survives_sigkill() {
    let (_tmp, dir) = data_dir();
    let mut chirp = Chirp::start(&dir, &[]);
    let (_, alice) = chirp.user("alice");
    let mut ids: Vec<String> = (0..30)
        .map(|i| chirp.tweet(&alice, &format!("#durable {i}")))
        .collect();
    // A clean restart saves the index; then more posts and a delete, then a crash.
    assert!(chirp.terminate().success());
    let mut chirp = Chirp::start(&dir, &[]);
    ids.extend((0..10).map(|i| chirp.tweet(&alice, &format!("after restart #Durable {i}"))));
    let gone = ids.remove(3);
    assert_eq!(
        chirp
            .call("DELETE", &format!("/tweets/{gone}"), Some(&alice), None)
            .0,
        204
    );
    chirp.kill();
    let chirp = Chirp::start(&dir, &[]);
    assert_eq!(
        chirp.all_ids("/search/tags/durable", None, 7),
        newest_first(ids)
    );
}

#[test]
fn the_tweet_cache_serves_reads_and_forgets_deletes() {
    let (_tmp, dir) = data_dir();
    let chirp = Chirp::start(&dir, &["--tweet-cache-mb", "1"]);
    let (_, alice) = chirp.user("alice");
    let id = chirp.tweet(&alice, "cached #tweet");
    let before = chirp.call("GET", "/health", None, None).1["tweet_cache"].clone();
    for _ in 0..5 {
        assert_eq!(
            chirp.call("GET", &format!("/tweets/{id}"), None, None).0,
            200
        );
    }
    let after = chirp.call("GET", "/health", None, None).1["tweet_cache"].clone();
    let hits = |v: &serde_json::Value| v["hits"].as_u64().unwrap_or(0);
    assert!(hits(&after) >= hits(&before) + 5, "{before} -> {after}");
    assert!(after["entries"].as_u64().unwrap_or(0) >= 1, "{after}");
    assert_eq!(after["capacity_bytes"], 1 << 20);
    // After a delete returns, no read path serves the cached copy.
    assert_eq!(
        chirp
            .call("DELETE", &format!("/tweets/{id}"), Some(&alice), None)
            .0,
        204
    );
    assert_eq!(
        chirp.call("GET", &format!("/tweets/{id}"), None, None).0,
        404
    );
    assert!(chirp.all_ids("/search/tags/tweet", None, 10).is_empty());
    assert!(chirp.all_ids("/feed", Some(&alice), 10).is_empty());
    assert!(chirp.all_ids("/@alice/tweets", None, 10).is_empty());
}
