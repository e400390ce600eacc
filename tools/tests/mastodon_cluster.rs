//! The Mastodon client API on a cluster: every node answers it, whichever node holds the
//! user, the application, the e-mail address or the hashtag (a real etcd, three real nodes,
//! 8 shards, 2 copies each).

mod support;

use serde_json::{json, Value};

use chirp_testkit::node::{Chirp, Reply};
use support::{three, Three};

const FORM: &str = "application/x-www-form-urlencoded";
const PASSWORD: &str = "a cluster password";

fn form(node: &Chirp, method: &str, path: &str, token: Option<&str>, body: &str) -> Reply {
    node.send(
        method,
        path,
        token,
        &[("Content-Type", FORM)],
        Some(body.as_bytes()),
    )
}

fn get(node: &Chirp, path: &str, token: Option<&str>) -> Reply {
    node.send("GET", path, token, &[], None)
}

fn ok(r: Reply) -> Value {
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

fn status_ids(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("a list")
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_string())
        .collect()
}

#[test]
fn every_node_speaks_the_mastodon_api_for_every_user() {
    let Three { nodes, _ca, .. } = three("m3", 8, 2);

    // An application registered at one node is known at every other.
    let app = ok(form(
        &nodes[0],
        "POST",
        "/api/v1/apps",
        None,
        "client_name=cluster&redirect_uris=urn%3Aietf%3Awg%3Aoauth%3A2.0%3Aoob&scopes=read+write+follow",
    ));
    let (id, secret) = (
        app["client_id"].as_str().expect("id").to_string(),
        app["client_secret"].as_str().expect("secret").to_string(),
    );
    let app_token = |via: &Chirp| {
        ok(form(
            via,
            "POST",
            "/oauth/token",
            None,
            &format!("grant_type=client_credentials&client_id={id}&client_secret={secret}"),
        ))["access_token"]
            .as_str()
            .expect("token")
            .to_string()
    };

    // Sign-ups through different nodes; log-ins by e-mail through others.
    let mut tokens = Vec::new();
    for (i, name) in ["ada", "bob", "cat", "dan"].iter().enumerate() {
        let token = app_token(&nodes[(i + 1) % 3]);
        let body = json!({"username": name, "email": format!("{name}@example.com"),
                          "password": PASSWORD, "agreement": true});
        let r = nodes[i % 3].send(
            "POST",
            "/api/v1/accounts",
            Some(&token),
            &[("Content-Type", "application/json")],
            Some(body.to_string().as_bytes()),
        );
        ok(r);
        let login = ok(form(
            &nodes[(i + 2) % 3],
            "POST",
            "/oauth/token",
            None,
            &format!(
                "grant_type=password&client_id={id}&client_secret={secret}&username={name}%40example.com&password={}",
                PASSWORD.replace(' ', "+")
            ),
        ));
        let token = login["access_token"].as_str().expect("token").to_string();
        for node in &nodes {
            let me = ok(get(
                node,
                "/api/v1/accounts/verify_credentials",
                Some(&token),
            ));
            assert_eq!(me["username"], *name);
        }
        tokens.push(token);
    }
    let (ada, bob) = (&tokens[0], &tokens[1]);
    let ada_id = ok(get(&nodes[2], "/api/v1/accounts/lookup?acct=ada", None))["id"]
        .as_str()
        .expect("id")
        .to_string();

    // Ada posts an image through one node and the status through another; Bob follows her
    // through a third.
    let image = support::picture(3);
    let mut body = b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"p.png\"\r\nContent-Type: image/png\r\n\r\n".to_vec();
    body.extend_from_slice(&image);
    body.extend_from_slice(b"\r\n--B--\r\n");
    let media = ok(nodes[0].send(
        "POST",
        "/api/v2/media",
        Some(ada),
        &[("Content-Type", "multipart/form-data; boundary=B")],
        Some(&body),
    ));
    let status = ok(form(
        &nodes[1],
        "POST",
        "/api/v1/statuses",
        Some(ada),
        &format!(
            "status=hello+cluster+%23m3tag&media_ids[]={}",
            media["id"].as_str().expect("id")
        ),
    ));
    let sid = status["id"].as_str().expect("id").to_string();
    let rel = ok(form(
        &nodes[2],
        "POST",
        &format!("/api/v1/accounts/{ada_id}/follow"),
        Some(bob),
        "",
    ));
    assert_eq!(rel["following"], true);

    for node in &nodes {
        node.eventually("ada's status in bob's home", || {
            let home = get(node, "/api/v1/timelines/home", Some(bob));
            home.status == 200 && status_ids(&home.json()).contains(&sid)
        });
        assert_eq!(
            status_ids(&ok(get(node, "/api/v1/timelines/public?limit=5", None)))[0],
            sid
        );
        assert_eq!(
            status_ids(&ok(get(node, "/api/v1/timelines/tag/m3tag", None))),
            vec![sid.clone()]
        );
        let found = ok(get(node, "/api/v2/search?q=m3ta&type=hashtags", Some(bob)));
        assert_eq!(found["hashtags"][0]["name"], "m3tag", "{found}");
        let rels = ok(get(
            node,
            &format!("/api/v1/accounts/relationships?id[]={ada_id}"),
            Some(bob),
        ));
        assert_eq!(rels[0]["following"], true);
        let url = ok(get(node, &format!("/api/v1/statuses/{sid}"), None))["media_attachments"][0]
            ["url"]
            .as_str()
            .expect("url")
            .to_string();
        let path = &url[url.find("/media/").expect("a media path")..];
        assert_eq!(
            get(node, path, None).status,
            200,
            "the image through {}",
            node.base
        );
    }

    // The browser flow: the code is issued and exchanged at the user's primary, through any
    // node.
    let query = format!(
        "client_id={id}&redirect_uri=urn%3Aietf%3Awg%3Aoauth%3A2.0%3Aoob&scope=read&response_type=code"
    );
    let page = form(
        &nodes[0],
        "POST",
        "/oauth/authorize",
        None,
        &format!(
            "{query}&username=cat&password={}",
            PASSWORD.replace(' ', "+")
        ),
    );
    assert_eq!(page.status, 200, "{}", String::from_utf8_lossy(&page.body));
    let html = String::from_utf8_lossy(&page.body).to_string();
    let start = html.find("<code id=\"code\">").expect("a code") + 16;
    let code = &html[start..start + html[start..].find('<').expect("end")];
    let token = ok(form(
        &nodes[2],
        "POST",
        "/oauth/token",
        None,
        &format!(
            "grant_type=authorization_code&client_id={id}&client_secret={secret}&code={code}&redirect_uri=urn%3Aietf%3Awg%3Aoauth%3A2.0%3Aoob"
        ),
    ))["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    let me = ok(get(
        &nodes[1],
        "/api/v1/accounts/verify_credentials",
        Some(&token),
    ));
    assert_eq!(me["username"], "cat");
}
