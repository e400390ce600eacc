//! The Mastodon client API over HTTP against the real binary, as clients send it: forms,
//! multipart and JSON; Mastodon's error shape and status codes; entities with every key;
//! paging with exact `Link` headers; the OAuth flows; and nobody acting as another user.

mod common;

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, RgbaImage};
use serde_json::{json, Value};

use common::{data_dir, Chirp, Reply};

const FORM: &str = "application/x-www-form-urlencoded";
const PASSWORD: &str = "a mastodon password";

fn png(width: u32, height: u32) -> Vec<u8> {
    let rgba = RgbaImage::from_fn(width, height, |x, y| {
        image::Rgba([(x * 9) as u8, (y * 7) as u8, 80, 255])
    });
    let mut out = Cursor::new(Vec::new());
    DynamicImage::ImageRgba8(rgba)
        .write_to(&mut out, ImageFormat::Png)
        .expect("encode");
    out.into_inner()
}

fn form(chirp: &Chirp, method: &str, path: &str, token: Option<&str>, body: &str) -> Reply {
    chirp.send(
        method,
        path,
        token,
        &[("Content-Type", FORM)],
        Some(body.as_bytes()),
    )
}

fn json_send(chirp: &Chirp, method: &str, path: &str, token: Option<&str>, body: Value) -> Reply {
    chirp.send(
        method,
        path,
        token,
        &[("Content-Type", "application/json")],
        Some(body.to_string().as_bytes()),
    )
}

fn get(chirp: &Chirp, path: &str, token: Option<&str>) -> Reply {
    chirp.send("GET", path, token, &[], None)
}

/// A multipart body of text fields and files (name, filename, type, bytes).
fn multipart(fields: &[(&str, &str)], files: &[(&str, &str, &str, &[u8])]) -> (String, Vec<u8>) {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--B0und\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    for (name, filename, ctype, bytes) in files {
        body.extend_from_slice(
            format!(
                "--B0und\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: {ctype}\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"--B0und--\r\n");
    ("multipart/form-data; boundary=B0und".into(), body)
}

/// An error as Mastodon renders it: JSON `{"error", "error_description"}`, no problem
/// document.
fn assert_mastodon_error(r: &Reply, status: u16, mentions: &str) {
    assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "{:?}",
        r.header("content-type")
    );
    let body = r.json();
    let error = body["error"].as_str().expect("an error string");
    let text = format!("{error} {}", body["error_description"]);
    assert!(text.contains(mentions), "{body} should mention {mentions}");
    assert!(body.get("type").is_none(), "not a problem document: {body}");
    if status == 422 {
        assert!(
            body["details"].is_object(),
            "a validation error has details: {body}"
        );
    }
}

struct Client {
    id: String,
    secret: String,
}

fn register(chirp: &Chirp) -> Client {
    let r = form(
        chirp,
        "POST",
        "/api/v1/apps",
        None,
        "client_name=tests&redirect_uris=urn%3Aietf%3Awg%3Aoauth%3A2.0%3Aoob&scopes=read+write+follow",
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let app = r.json();
    Client {
        id: app["client_id"].as_str().expect("client_id").into(),
        secret: app["client_secret"].as_str().expect("client_secret").into(),
    }
}

fn app_token(chirp: &Chirp, c: &Client) -> String {
    let r = json_send(
        chirp,
        "POST",
        "/oauth/token",
        None,
        json!({"grant_type": "client_credentials", "client_id": c.id,
               "client_secret": c.secret, "scope": "read write follow"}),
    );
    assert_eq!(r.status, 200);
    let body = r.json();
    assert_eq!(body["scope"], "read write follow", "the scope is echoed");
    body["access_token"].as_str().expect("token").into()
}

/// Signs `name` up through the Mastodon API; returns (account id, token).
fn sign_up(chirp: &Chirp, c: &Client, name: &str) -> (String, String) {
    let app = app_token(chirp, c);
    let r = json_send(
        chirp,
        "POST",
        "/api/v1/accounts",
        Some(&app),
        json!({"username": name, "email": format!("{name}@example.com"),
               "password": PASSWORD, "agreement": true, "locale": "en"}),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let token = r.json()["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    let me = get(chirp, "/api/v1/accounts/verify_credentials", Some(&token)).json();
    (me["id"].as_str().expect("id").into(), token)
}

#[test]
fn applications_tokens_and_errors_are_mastodons() {
    let (_tmp, dir) = data_dir();
    let chirp = Chirp::start(&dir, &[]);
    let c = register(&chirp);
    let app = app_token(&chirp, &c);

    // Sign-up needs the agreement and an application's token, not a user's.
    let r = form(
        &chirp,
        "POST",
        "/api/v1/accounts",
        Some(&app),
        "username=ada&email=ada%40example.com&password=a+mastodon+password&agreement=0",
    );
    assert_mastodon_error(&r, 422, "agreement");
    assert_eq!(r.json()["details"]["agreement"][0]["error"], "ERR_INVALID");
    let (_, ada) = sign_up(&chirp, &c, "ada");
    let r = json_send(
        &chirp,
        "POST",
        "/api/v1/accounts",
        Some(&ada),
        json!({"username": "eve", "email": "eve@example.com", "password": PASSWORD, "agreement": true}),
    );
    assert_mastodon_error(&r, 403, "application");
    // A taken handle or address is Mastodon's 422.
    let r = json_send(
        &chirp,
        "POST",
        "/api/v1/accounts",
        Some(&app),
        json!({"username": "ADA", "email": "other@example.com", "password": PASSWORD, "agreement": true}),
    );
    assert_mastodon_error(&r, 422, "handle");
    let r = json_send(
        &chirp,
        "POST",
        "/api/v1/accounts",
        Some(&app),
        json!({"username": "bea", "email": "Ada@Example.com", "password": PASSWORD, "agreement": true}),
    );
    assert_mastodon_error(&r, 422, "email");
    assert_eq!(r.json()["details"]["email"][0]["error"], "ERR_TAKEN");

    // An application's token is no user.
    let r = get(&chirp, "/api/v1/accounts/verify_credentials", Some(&app));
    assert_mastodon_error(&r, 401, "token");
    let r = get(&chirp, "/api/v1/apps/verify_credentials", Some(&app));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["name"], "tests");
    // A made-up application token is refused.
    let forged = format!("app.{}.not-the-secret", c.id);
    let r = get(&chirp, "/api/v1/apps/verify_credentials", Some(&forged));
    assert_mastodon_error(&r, 401, "token");

    // The password grant: by e-mail or handle, the client checked.
    let grant = |client_secret: &str, username: &str, password: &str| {
        form(
            &chirp,
            "POST",
            "/oauth/token",
            None,
            &format!(
                "grant_type=password&client_id={}&client_secret={client_secret}&username={username}&password={}&scope=read+write",
                c.id,
                password.replace(' ', "+")
            ),
        )
    };
    let r = grant(&c.secret, "ada%40example.com", PASSWORD);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["scope"], "read write");
    let token = r.json()["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    let me = get(&chirp, "/api/v1/accounts/verify_credentials", Some(&token)).json();
    assert_eq!(me["username"], "ada");
    assert_eq!(grant(&c.secret, "ada", PASSWORD).status, 200);
    let r = grant(&c.secret, "ada", "wrong password");
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (400, json!("invalid_grant"))
    );
    let r = grant("not-the-secret", "ada", PASSWORD);
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (401, json!("invalid_client"))
    );
    let r = form(
        &chirp,
        "POST",
        "/oauth/token",
        None,
        &format!(
            "grant_type=implicit&client_id={}&client_secret={}",
            c.id, c.secret
        ),
    );
    assert_eq!(r.json()["error"], "unsupported_grant_type");

    // Revoking ends the session.
    let r = form(
        &chirp,
        "POST",
        "/oauth/revoke",
        None,
        &format!(
            "client_id={}&client_secret={}&token={token}",
            c.id, c.secret
        ),
    );
    assert_eq!((r.status, r.json()), (200, json!({})));
    let r = get(&chirp, "/api/v1/accounts/verify_credentials", Some(&token));
    assert_mastodon_error(&r, 401, "token");

    // Unknown endpoints and ids, and missing features.
    assert_mastodon_error(
        &get(&chirp, "/api/v1/no/such/thing", None),
        404,
        "not found",
    );
    assert_mastodon_error(
        &get(&chirp, "/api/v1/statuses/12345", None),
        404,
        "not found",
    );
    assert_mastodon_error(&get(&chirp, "/api/v1/accounts/xyz", None), 404, "not found");
    let r = form(&chirp, "POST", "/api/v1/statuses/1/reblog", Some(&ada), "");
    assert_mastodon_error(&r, 422, "reblog");
    for empty in [
        "/api/v1/notifications",
        "/api/v1/lists",
        "/api/v1/mutes",
        "/api/v1/blocks",
    ] {
        let r = get(&chirp, empty, Some(&ada));
        assert_eq!((r.status, r.json()), (200, json!([])), "{empty}");
    }

    // The instance, with and without the trailing slash Mastodon.py adds.
    for path in ["/api/v1/instance", "/api/v1/instance/", "/api/v2/instance/"] {
        let r = get(&chirp, path, None);
        assert_eq!(r.status, 200, "{path}");
        let i = r.json();
        assert!(i["version"]
            .as_str()
            .is_some_and(|v| v.starts_with("4.2.0+chirp.")));
        assert_eq!(i["configuration"]["statuses"]["max_characters"], 140);
        assert_eq!(i["configuration"]["statuses"]["max_media_attachments"], 4);
    }
    let base = chirp.base.trim_start_matches("http://").to_string();
    assert_eq!(
        get(&chirp, "/api/v1/instance", None).json()["uri"],
        base.as_str()
    );
}

/// Every key a Status carries in Mastodon 4.2, present even when null.
const STATUS_KEYS: &[&str] = &[
    "id",
    "uri",
    "url",
    "created_at",
    "edited_at",
    "account",
    "content",
    "visibility",
    "sensitive",
    "spoiler_text",
    "media_attachments",
    "application",
    "mentions",
    "tags",
    "emojis",
    "reblogs_count",
    "favourites_count",
    "replies_count",
    "in_reply_to_id",
    "in_reply_to_account_id",
    "reblog",
    "poll",
    "card",
    "language",
    "favourited",
    "reblogged",
    "muted",
    "bookmarked",
    "pinned",
    "filtered",
];
const ACCOUNT_KEYS: &[&str] = &[
    "id",
    "username",
    "acct",
    "display_name",
    "locked",
    "bot",
    "discoverable",
    "group",
    "created_at",
    "note",
    "url",
    "avatar",
    "avatar_static",
    "header",
    "header_static",
    "followers_count",
    "following_count",
    "statuses_count",
    "last_status_at",
    "emojis",
    "fields",
];

#[test]
fn statuses_and_media_from_forms_multipart_and_json() {
    let (_tmp, dir) = data_dir();
    let chirp = Chirp::start(&dir, &[]);
    let c = register(&chirp);
    let (ada_id, ada) = sign_up(&chirp, &c, "ada");
    let (_, bob) = sign_up(&chirp, &c, "bob");

    let image = png(16, 9);
    let (ctype, body) = multipart(
        &[("description", "a gradient")],
        &[("file", "g.png", "image/png", &image)],
    );
    let r = chirp.send(
        "POST",
        "/api/v2/media",
        Some(&ada),
        &[("Content-Type", &ctype)],
        Some(&body),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let media = r.json();
    assert_eq!(media["type"], "image");
    assert_eq!(media["description"], "a gradient");
    assert_eq!(media["meta"]["original"]["width"], 16);
    let url = media["url"].as_str().expect("url");
    assert!(url.starts_with(&chirp.base), "{url}");
    let path = url.trim_start_matches(&chirp.base);
    assert_eq!(
        get(&chirp, path, None).status,
        200,
        "the URL serves the image"
    );
    let media_id = media["id"].as_str().expect("id");
    // Another user neither reads nor describes it.
    let r = get(&chirp, &format!("/api/v1/media/{media_id}"), Some(&bob));
    assert_mastodon_error(&r, 404, "not found");
    let r = form(
        &chirp,
        "PUT",
        &format!("/api/v1/media/{media_id}"),
        Some(&bob),
        "description=mine",
    );
    assert_mastodon_error(&r, 404, "not found");
    let r = form(
        &chirp,
        "PUT",
        &format!("/api/v1/media/{media_id}"),
        Some(&ada),
        "description=two+colours",
    );
    assert_eq!(r.json()["description"], "two colours");

    // A form post with the image; the text escaped, the hashtag linked.
    let r = form(
        &chirp,
        "POST",
        "/api/v1/statuses",
        Some(&ada),
        &format!("status=%3Cb%3Ebold%3C%2Fb%3E+%23Rust&media_ids%5B%5D={media_id}&visibility=public&language=PT"),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let status = r.json();
    for key in STATUS_KEYS {
        assert!(status.get(key).is_some(), "status lacks {key}: {status}");
    }
    for key in ACCOUNT_KEYS {
        assert!(status["account"].get(key).is_some(), "account lacks {key}");
    }
    assert!(
        status.get("scheduled_at").is_none(),
        "never a scheduled_at key"
    );
    assert!(status["id"].is_string() && status["account"]["id"] == ada_id.as_str());
    let content = status["content"].as_str().expect("content");
    assert!(
        content.starts_with("<p>&lt;b&gt;bold&lt;/b&gt; <a href=\""),
        "{content}"
    );
    assert!(
        content
            .contains("/tags/rust\" class=\"mention hashtag\" rel=\"tag\">#<span>Rust</span></a>"),
        "{content}"
    );
    assert_eq!(status["tags"][0]["name"], "Rust");
    assert_eq!(status["language"], "pt");
    assert_eq!(status["media_attachments"][0]["description"], "two colours");
    assert_eq!(status["in_reply_to_id"], Value::Null);
    let id = status["id"].as_str().expect("id").to_string();

    // JSON, with what Chirp does not do refused by name.
    for (body, field) in [
        (
            json!({"status": "hi", "visibility": "private"}),
            "visibility",
        ),
        (
            json!({"status": "hi", "in_reply_to_id": id}),
            "in_reply_to_id",
        ),
        (
            json!({"status": "hi", "poll": {"options": ["a", "b"], "expires_in": 60}}),
            "poll",
        ),
        (json!({"status": "x".repeat(141)}), "text"),
        (json!({"status": ""}), "text"),
        (json!({"status": "hi", "media_ids": ["1"]}), "media"),
        (
            json!({"status": "hi", "language": "not a language"}),
            "language",
        ),
    ] {
        let r = json_send(&chirp, "POST", "/api/v1/statuses", Some(&ada), body);
        assert_mastodon_error(&r, 422, field);
    }
    // An image alone makes a post; its content is empty.
    let r = json_send(
        &chirp,
        "POST",
        "/api/v1/statuses",
        Some(&ada),
        json!({"media_ids": [media_id]}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["content"], "");

    // Anyone reads it; only its author deletes it.
    assert_eq!(
        get(&chirp, &format!("/api/v1/statuses/{id}"), None).status,
        200
    );
    let r = chirp.send(
        "DELETE",
        &format!("/api/v1/statuses/{id}"),
        Some(&bob),
        &[],
        None,
    );
    assert_mastodon_error(&r, 403, "");
    let r = get(&chirp, &format!("/api/v1/statuses/{id}/context"), None);
    assert_eq!(r.json(), json!({"ancestors": [], "descendants": []}));
    let r = chirp.send(
        "DELETE",
        &format!("/api/v1/statuses/{id}"),
        Some(&ada),
        &[],
        None,
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json()["text"],
        "<b>bold</b> #Rust",
        "the source, to redraft"
    );
    assert_mastodon_error(
        &get(&chirp, &format!("/api/v1/statuses/{id}"), None),
        404,
        "not found",
    );
}

/// The `Link` header's URLs, by rel.
fn links(r: &Reply) -> Vec<(String, String)> {
    let Some(header) = r.header("link") else {
        return Vec::new();
    };
    header
        .split(", ")
        .map(|part| {
            let (url, rel) = part.split_once("; ").expect("`<url>; rel=\"x\"`");
            let url = url
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string();
            let rel = rel
                .trim_start_matches("rel=\"")
                .trim_end_matches('"')
                .to_string();
            (rel, url)
        })
        .collect()
}

fn ids(r: &Reply) -> Vec<String> {
    r.json()
        .as_array()
        .expect("a list")
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_string())
        .collect()
}

#[test]
fn timelines_page_by_max_since_and_min_id_with_exact_link_headers() {
    let (_tmp, dir) = data_dir();
    let chirp = Chirp::start(&dir, &[]);
    let c = register(&chirp);
    let (_, ada) = sign_up(&chirp, &c, "ada");
    let mut posted = Vec::new();
    for i in 0..5 {
        let r = form(
            &chirp,
            "POST",
            "/api/v1/statuses",
            Some(&ada),
            &format!("status=post+{i}+%23paging"),
        );
        posted.push(r.json()["id"].as_str().expect("id").to_string());
    }
    let newest: Vec<String> = posted.iter().rev().cloned().collect();

    let first = get(&chirp, "/api/v1/timelines/home?limit=2", Some(&ada));
    assert_eq!(ids(&first), newest[..2]);
    let header = first.header("link").expect("a Link header");
    let next = format!(
        "{}/api/v1/timelines/home?limit=2&max_id={}",
        chirp.base, newest[1]
    );
    let prev = format!(
        "{}/api/v1/timelines/home?limit=2&min_id={}",
        chirp.base, newest[0]
    );
    assert_eq!(
        header,
        format!("<{next}>; rel=\"next\", <{prev}>; rel=\"prev\"")
    );

    // Following next links pages down to the end; the empty page has no Link.
    let mut seen = ids(&first);
    let mut page = first;
    loop {
        let (_, url) = links(&page)
            .into_iter()
            .find(|(rel, _)| rel == "next")
            .expect("next");
        page = get(&chirp, url.trim_start_matches(&chirp.base), Some(&ada));
        if ids(&page).is_empty() {
            assert!(page.header("link").is_none(), "no Link on an empty page");
            break;
        }
        seen.extend(ids(&page));
    }
    assert_eq!(seen, newest);

    // min_id: the page just newer; since_id: the newest newer; both newest first.
    let r = get(
        &chirp,
        &format!("/api/v1/timelines/home?limit=2&min_id={}", newest[4]),
        Some(&ada),
    );
    assert_eq!(ids(&r), vec![newest[2].clone(), newest[3].clone()]);
    let r = get(
        &chirp,
        &format!("/api/v1/timelines/home?limit=2&since_id={}", newest[4]),
        Some(&ada),
    );
    assert_eq!(ids(&r), newest[..2]);
    let r = get(
        &chirp,
        &format!(
            "/api/v1/timelines/home?max_id={}&since_id={}",
            newest[0], newest[3]
        ),
        Some(&ada),
    );
    assert_eq!(ids(&r), newest[1..3]);
    // A limit past 40 is 40, as Mastodon caps it.
    assert_eq!(
        ids(&get(&chirp, "/api/v1/timelines/home?limit=500", Some(&ada))).len(),
        5
    );

    // The hashtag and public timelines need no token; the account timeline pages too.
    let r = get(&chirp, "/api/v1/timelines/tag/Paging?limit=3", None);
    assert_eq!(ids(&r), newest[..3]);
    let (_, bob) = sign_up(&chirp, &c, "bob");
    let bobs = form(
        &chirp,
        "POST",
        "/api/v1/statuses",
        Some(&bob),
        "status=hello",
    )
    .json()["id"]
        .clone();
    let r = get(&chirp, "/api/v1/timelines/public?limit=2", None);
    assert_eq!(
        ids(&r),
        vec![bobs.as_str().expect("id").to_string(), newest[0].clone()]
    );
    let me = get(&chirp, "/api/v1/accounts/verify_credentials", Some(&ada)).json();
    let r = get(
        &chirp,
        &format!(
            "/api/v1/accounts/{}/statuses?limit=10",
            me["id"].as_str().expect("id")
        ),
        None,
    );
    assert_eq!(ids(&r), newest);
    let r = get(&chirp, "/api/v1/timelines/home", None);
    assert_mastodon_error(&r, 401, "token");
}

#[test]
fn follows_relationships_and_follower_lists() {
    let (_tmp, dir) = data_dir();
    let chirp = Chirp::start(&dir, &[]);
    let c = register(&chirp);
    let (ada_id, ada) = sign_up(&chirp, &c, "ada");
    let mut fans = Vec::new();
    for name in ["bob", "cat", "dan"] {
        let (id, token) = sign_up(&chirp, &c, name);
        let r = form(
            &chirp,
            "POST",
            &format!("/api/v1/accounts/{ada_id}/follow"),
            Some(&token),
            "",
        );
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["following"], true);
        assert_eq!(r.json()["followed_by"], false);
        fans.push((id, token));
    }
    let (bob_id, bob) = &fans[0];
    let r = get(
        &chirp,
        &format!("/api/v1/accounts/relationships?id[]={ada_id}&id[]={bob_id}"),
        Some(bob),
    );
    let rels = r.json();
    assert_eq!(rels[0]["id"], ada_id.as_str());
    assert_eq!(
        (rels[0]["following"].clone(), rels[0]["followed_by"].clone()),
        (json!(true), json!(false))
    );
    let r = get(
        &chirp,
        &format!("/api/v1/accounts/relationships?id[]={bob_id}"),
        Some(&ada),
    );
    assert_eq!(
        (
            r.json()[0]["following"].clone(),
            r.json()[0]["followed_by"].clone()
        ),
        (json!(false), json!(true))
    );

    // A full page has a next link; the last (short) page has none.
    let r = get(
        &chirp,
        &format!("/api/v1/accounts/{ada_id}/followers?limit=2"),
        None,
    );
    let page: Vec<String> = r
        .json()
        .as_array()
        .expect("list")
        .iter()
        .map(|a| a["id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(page.len(), 2);
    let (rel, url) = links(&r)
        .into_iter()
        .next()
        .expect("a next link on a full page");
    assert_eq!(rel, "next");
    let rest = get(&chirp, url.trim_start_matches(&chirp.base), None);
    assert_eq!(rest.json().as_array().map(Vec::len), Some(1));
    assert!(
        rest.header("link").is_none(),
        "no Link on a page that is not full"
    );
    let r = get(
        &chirp,
        &format!("/api/v1/accounts/{ada_id}/followers?limit=5"),
        None,
    );
    assert!(r.header("link").is_none());
    assert_eq!(r.json().as_array().map(Vec::len), Some(3));

    // Unfollow; lookup by acct; account search.
    let r = form(
        &chirp,
        "POST",
        &format!("/api/v1/accounts/{ada_id}/unfollow"),
        Some(bob),
        "",
    );
    assert_eq!(r.json()["following"], false);
    assert_eq!(
        get(&chirp, &format!("/api/v1/accounts/{ada_id}"), None).json()["followers_count"],
        2
    );
    let host = chirp.base.trim_start_matches("http://").to_string();
    for acct in ["ada", "@ada", &format!("ada@{host}")] {
        let r = get(
            &chirp,
            &format!("/api/v1/accounts/lookup?acct={}", acct.replace('@', "%40")),
            None,
        );
        assert_eq!(r.json()["id"], ada_id.as_str(), "{acct}");
    }
    assert_mastodon_error(
        &get(
            &chirp,
            "/api/v1/accounts/lookup?acct=ada%40elsewhere.example",
            None,
        ),
        404,
        "not found",
    );
    let r = get(&chirp, "/api/v2/search?q=ada&type=accounts", Some(bob));
    assert_eq!(r.json()["accounts"][0]["username"], "ada");
}

#[test]
fn profile_fields_images_and_settings() {
    let (_tmp, dir) = data_dir();
    let chirp = Chirp::start(&dir, &[]);
    let c = register(&chirp);
    let (_, ada) = sign_up(&chirp, &c, "ada");
    let me = get(&chirp, "/api/v1/accounts/verify_credentials", Some(&ada)).json();
    assert_eq!(
        me["display_name"], "",
        "no display name yet, as Mastodon shows it"
    );
    assert_eq!(me["source"]["note"], "");

    let avatar = png(8, 8);
    let (ctype, body) = multipart(
        &[
            ("display_name", "Ada L."),
            ("note", "Counts <things>"),
            ("bot", "1"),
            ("source[language]", "pt"),
            ("fields_attributes[0][name]", "Home"),
            ("fields_attributes[0][value]", "Lisbon & <Porto>"),
            ("fields_attributes[1][name]", ""),
            ("fields_attributes[1][value]", ""),
            ("fields_attributes[2][name]", "Web"),
            ("fields_attributes[2][value]", "https://example.com"),
        ],
        &[("avatar", "me.png", "image/png", &avatar)],
    );
    let r = chirp.send(
        "PATCH",
        "/api/v1/accounts/update_credentials",
        Some(&ada),
        &[("Content-Type", &ctype)],
        Some(&body),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let me = r.json();
    assert_eq!(me["display_name"], "Ada L.");
    assert_eq!(me["note"], "<p>Counts &lt;things&gt;</p>");
    assert_eq!(me["source"]["note"], "Counts <things>");
    assert_eq!(me["bot"], true);
    assert_eq!(me["source"]["language"], "pt");
    let fields: Vec<(Value, Value)> = me["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .map(|f| (f["name"].clone(), f["value"].clone()))
        .collect();
    assert_eq!(
        fields,
        vec![
            (json!("Home"), json!("Lisbon &amp; &lt;Porto&gt;")),
            (json!("Web"), json!("https://example.com"))
        ]
    );
    assert_eq!(me["source"]["fields"][0]["value"], "Lisbon & <Porto>");
    let avatar_url = me["avatar"].as_str().expect("avatar");
    assert!(
        avatar_url.starts_with(&format!("{}/media/", chirp.base)),
        "{avatar_url}"
    );
    assert_eq!(
        get(&chirp, avatar_url.trim_start_matches(&chirp.base), None).status,
        200
    );

    // JSON works too; an empty display name is Mastodon's "none".
    let r = json_send(
        &chirp,
        "PATCH",
        "/api/v1/accounts/update_credentials",
        Some(&ada),
        json!({"display_name": "", "discoverable": false}),
    );
    assert_eq!(r.json()["display_name"], "");
    assert_eq!(r.json()["discoverable"], false);
    assert_eq!(
        r.json()["fields"].as_array().map(Vec::len),
        Some(2),
        "fields untouched"
    );
    // What Chirp does not have is refused by name; too many fields too.
    for (body, field) in [
        ("locked=true", "locked"),
        ("source%5Bprivacy%5D=private", "privacy"),
        ("source%5Bsensitive%5D=1", "sensitive"),
        ("fields_attributes[0][name]=a&fields_attributes[0][value]=1&fields_attributes[1][name]=b&fields_attributes[1][value]=1&fields_attributes[2][name]=c&fields_attributes[2][value]=1&fields_attributes[3][name]=d&fields_attributes[3][value]=1&fields_attributes[4][name]=e&fields_attributes[4][value]=1", "fields_attributes"),
    ] {
        let r = form(&chirp, "PATCH", "/api/v1/accounts/update_credentials", Some(&ada), body);
        assert_mastodon_error(&r, 422, field);
    }
    let long = format!("note={}", "x".repeat(161));
    let r = form(
        &chirp,
        "PATCH",
        "/api/v1/accounts/update_credentials",
        Some(&ada),
        &long,
    );
    assert_mastodon_error(&r, 422, "bio");
    // The untouched settings stay.
    let me = get(&chirp, "/api/v1/accounts/verify_credentials", Some(&ada)).json();
    assert_eq!(
        (me["bot"].clone(), me["locked"].clone()),
        (json!(true), json!(false))
    );
}

#[test]
fn wrong_passwords_lock_the_account_out_of_every_grant() {
    let (_tmp, dir) = data_dir();
    let chirp = Chirp::start(&dir, &["--login-failures-per-account", "3"]);
    let c = register(&chirp);
    sign_up(&chirp, &c, "ada");
    let grant = |password: &str| {
        form(
            &chirp,
            "POST",
            "/oauth/token",
            None,
            &format!(
                "grant_type=password&client_id={}&client_secret={}&username=ada%40example.com&password={}",
                c.id,
                c.secret,
                password.replace(' ', "+")
            ),
        )
    };
    // Three wrong passwords are allowed; the account locks at the next.
    for _ in 0..4 {
        assert_eq!(grant("wrong password").status, 400);
    }
    let r = grant(PASSWORD);
    assert_mastodon_error(&r, 429, "wrong passwords");
    assert!(r.header("retry-after").is_some());
    // The log-in page counts against the same account.
    let r = form(
        &chirp,
        "POST",
        "/oauth/authorize",
        None,
        &format!(
            "client_id={}&redirect_uri=urn%3Aietf%3Awg%3Aoauth%3A2.0%3Aoob&username=ada%40example.com&password={}",
            c.id,
            PASSWORD.replace(' ', "+")
        ),
    );
    assert_mastodon_error(&r, 429, "wrong passwords");
}

#[test]
fn the_out_of_band_code_flow_gives_one_token_per_code() {
    let (_tmp, dir) = data_dir();
    let chirp = Chirp::start(&dir, &[]);
    let c = register(&chirp);
    let other = register(&chirp);
    sign_up(&chirp, &c, "ada");
    let query = format!(
        "client_id={}&redirect_uri=urn%3Aietf%3Awg%3Aoauth%3A2.0%3Aoob&scope=read+write&response_type=code",
        c.id
    );
    let page = get(&chirp, &format!("/oauth/authorize?{query}"), None);
    assert_eq!(page.status, 200);
    let html = String::from_utf8_lossy(&page.body).to_string();
    assert!(
        html.contains("<form method=\"post\" action=\"/oauth/authorize\">"),
        "{html}"
    );
    assert!(html.contains("tests"), "names the application");
    let csp = page.header("content-security-policy").expect("a CSP");
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    // A redirect URI the application did not register is refused.
    let r = get(
        &chirp,
        &format!(
            "/oauth/authorize?client_id={}&redirect_uri=https%3A%2F%2Fevil.example%2F",
            c.id
        ),
        None,
    );
    assert_mastodon_error(&r, 422, "redirect_uri");

    let authorize = |password: &str| {
        form(
            &chirp,
            "POST",
            "/oauth/authorize",
            None,
            &format!(
                "{query}&username=ada&password={}",
                password.replace(' ', "+")
            ),
        )
    };
    assert_eq!(authorize("wrong password").status, 401);
    let code_of = |r: &Reply| {
        let html = String::from_utf8_lossy(&r.body).to_string();
        let start = html.find("<code id=\"code\">").expect("a code") + "<code id=\"code\">".len();
        html[start..start + html[start..].find('<').expect("end")].to_string()
    };
    let exchange = |client: &Client, code: &str| {
        form(
            &chirp,
            "POST",
            "/oauth/token",
            None,
            &format!(
                "grant_type=authorization_code&client_id={}&client_secret={}&code={code}&redirect_uri=urn%3Aietf%3Awg%3Aoauth%3A2.0%3Aoob",
                client.id, client.secret
            ),
        )
    };
    // A code another application presents is refused, and spent.
    let code = code_of(&authorize(PASSWORD));
    assert_eq!(exchange(&other, &code).json()["error"], "invalid_grant");
    assert_eq!(exchange(&c, &code).json()["error"], "invalid_grant");
    // A code works once.
    let code = code_of(&authorize(PASSWORD));
    let r = exchange(&c, &code);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["scope"], "read write");
    let token = r.json()["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    let me = get(&chirp, "/api/v1/accounts/verify_credentials", Some(&token)).json();
    assert_eq!(me["username"], "ada");
    assert_eq!(exchange(&c, &code).json()["error"], "invalid_grant");
}
