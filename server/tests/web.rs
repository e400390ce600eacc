//! The embedded web client over HTTP: the page at `/`, its assets under `/app/` with their
//! types and caching, 404 for unknown files, and the API answering exactly as before.

mod common;

use std::io::Read;
use std::time::Duration;

use common::{data_dir, Chirp};
use serde_json::json;

struct Got {
    status: u16,
    header: std::collections::HashMap<String, String>,
    body: Vec<u8>,
}

fn get(base: &str, path: &str, headers: &[(&str, &str)], method: &str) -> Got {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build();
    let mut req = agent.request(method, &format!("{base}{path}"));
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let resp = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {path}: {e}"),
    };
    let status = resp.status();
    let header = resp
        .headers_names()
        .into_iter()
        .filter_map(|n| {
            resp.header(&n)
                .map(|v| (n.to_ascii_lowercase(), v.to_string()))
        })
        .collect();
    let mut body = Vec::new();
    resp.into_reader().read_to_end(&mut body).expect("body");
    Got {
        status,
        header,
        body,
    }
}

impl Got {
    fn h(&self, name: &str) -> &str {
        self.header.get(name).map_or("", String::as_str)
    }
}

/// The `/app/...` paths an HTML page references in `src="..."` or `href="..."`.
fn asset_paths(html: &str) -> Vec<String> {
    html.split(['"', '\''])
        .filter(|s| s.starts_with("/app/"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn page_and_assets_are_served_with_types_and_caching() {
    let (_tmp, dir) = data_dir();
    let chirp = Chirp::start(&dir, &[]);

    let page = get(&chirp.base, "/", &[], "GET");
    assert_eq!(page.status, 200);
    assert_eq!(page.h("content-type"), "text/html; charset=utf-8");
    assert_eq!(page.h("cache-control"), "no-cache");
    assert!(page
        .h("content-security-policy")
        .contains("default-src 'self'"));
    let html = String::from_utf8(page.body.clone()).expect("UTF-8 page");
    assert!(html.contains("<main"), "{html}");

    // Revalidation: the ETag answers 304 with no body.
    let etag = page.h("etag").to_string();
    assert!(etag.starts_with('"'), "{etag}");
    let again = get(&chirp.base, "/", &[("If-None-Match", &etag)], "GET");
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());

    // HEAD (monitoring, `curl -I`) answers like GET without the body.
    let head = get(&chirp.base, "/", &[], "HEAD");
    assert_eq!(head.status, 200);
    assert_eq!(head.h("content-type"), "text/html; charset=utf-8");
    assert!(head.body.is_empty());

    let assets = asset_paths(&html);
    let types: Vec<&str> = assets
        .iter()
        .map(|p| p.rsplit('.').next().unwrap_or(""))
        .collect();
    assert!(
        types.contains(&"js") && types.contains(&"css"),
        "{assets:?}"
    );
    for path in &assets {
        let got = get(&chirp.base, path, &[], "GET");
        assert_eq!(got.status, 200, "{path}");
        let want = if path.ends_with(".js") {
            "text/javascript; charset=utf-8"
        } else if path.ends_with(".css") {
            "text/css; charset=utf-8"
        } else {
            continue;
        };
        assert_eq!(got.h("content-type"), want, "{path}");
        assert_eq!(
            got.h("cache-control"),
            "public, max-age=31536000, immutable",
            "{path}"
        );
        assert_eq!(got.h("x-content-type-options"), "nosniff", "{path}");
        assert!(!got.body.is_empty(), "{path}");
    }
}

#[test]
fn unknown_assets_and_wrong_methods_are_problems() {
    let (_tmp, dir) = data_dir();
    let chirp = Chirp::start(&dir, &[]);

    for path in [
        "/app/nope.js",
        "/app/index.html",
        "/app/",
        "/index.html",
        "/app/a/b.js",
    ] {
        let got = get(&chirp.base, path, &[], "GET");
        assert_eq!(got.status, 404, "{path}");
        assert_eq!(got.h("content-type"), "application/problem+json", "{path}");
    }
    let (s, body) = chirp.call("POST", "/", None, Some(json!({})));
    assert_eq!(s, 405, "{body}");
    let (s, body) = chirp.call("DELETE", "/app/whatever.js", None, None);
    assert_eq!(s, 405, "{body}");
}

#[test]
fn api_routes_behave_as_before() {
    let (_tmp, dir) = data_dir();
    let chirp = Chirp::start(&dir, &[]);

    let (s, health) = chirp.call("GET", "/health", None, None);
    assert_eq!((s, &health["status"]), (200, &json!("ok")));
    let (alice, token) = chirp.user("alice");
    let id = chirp.tweet(&token, "hello #web");
    let (s, t) = chirp.call("GET", &format!("/tweets/{id}"), None, None);
    assert_eq!((s, &t["author_id"]), (200, &json!(alice)));
    let (s, p) = chirp.call("GET", "/@alice/profile", None, None);
    assert_eq!((s, &p["handle"]), (200, &json!("alice")));
    let (s, page) = chirp.call("GET", "/search/tags/web", None, None);
    assert_eq!(s, 200);
    assert_eq!(page["tweets"][0]["id"], json!(id));
    let (s, _) = chirp.call("GET", "/feed", None, None);
    assert_eq!(s, 401);
    let (s, _) = chirp.call("GET", "/@nobody/profile", None, None);
    assert_eq!(s, 404);
    let (s, _) = chirp.call("GET", "/no/such/route", None, None);
    assert_eq!(s, 404);
    // A user can be called "app": references are `@app`, never a bare `app`.
    let (_, app_token) = chirp.user("app");
    chirp.tweet(&app_token, "I am not a directory");
    let (s, page) = chirp.call("GET", "/@app/tweets", None, None);
    assert_eq!(s, 200);
    assert_eq!(page["tweets"][0]["text"], "I am not a directory");
}
