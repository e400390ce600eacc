//! What operators and API clients rely on besides the API itself: the OpenAPI document
//! matches the router, request ids, the admin listener and its metrics, the configuration.

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use chirp_server::routes::ROUTES;
use common::{data_dir, Chirp};
use serde_json::Value;

/// A GET's status, body, `x-request-id` and content type.
fn get(url: &str, headers: &[(&str, &str)]) -> (u16, String, Head) {
    let mut req = ureq::get(url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let resp = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("GET {url}: {e}"),
    };
    let status = resp.status();
    let head = Head {
        request_id: resp.header("x-request-id").map(str::to_owned),
        content_type: resp.content_type().to_owned(),
    };
    let body = resp.into_string().expect("body");
    (status, body, head)
}

struct Head {
    request_id: Option<String>,
    content_type: String,
}

/// Every `$ref` in the document, so each can be checked to resolve.
fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[test]
fn openapi_describes_exactly_the_routes_served() {
    let (_tmp, dir) = data_dir();
    let chirp = Chirp::start(&dir, &[]);
    let (status, doc) = chirp.call("GET", "/openapi.json", None, None);
    assert_eq!(status, 200);

    // Structure: an OpenAPI 3.1 document whose operations all have responses and whose
    // references all resolve.
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1.")),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["title"], "Chirp");
    assert!(doc["info"]["version"].is_string());
    let paths = doc["paths"].as_object().expect("paths");
    let mut described = BTreeSet::new();
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("path item") {
            if method == "parameters" {
                continue;
            }
            let responses = op["responses"].as_object().expect("responses");
            assert!(!responses.is_empty(), "{method} {path} has no responses");
            for name in path.split('/').filter(|s| s.starts_with('{')) {
                let name = name.trim_matches(|c| c == '{' || c == '}');
                let params = op["parameters"].as_array().expect("parameters");
                assert!(
                    params
                        .iter()
                        .any(|p| p["name"] == name && p["in"] == "path" && p["required"] == true),
                    "{method} {path} does not describe its {name} parameter"
                );
            }
            described.insert((method.to_uppercase(), path.clone()));
        }
    }
    let mut all_refs = Vec::new();
    refs(&doc, &mut all_refs);
    assert!(!all_refs.is_empty());
    for r in all_refs {
        let pointer = r.strip_prefix('#').expect("local reference");
        assert!(doc.pointer(pointer).is_some(), "dangling $ref {r}");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());

    // Links (followed by Schemathesis's stateful phase) name operations that exist, with
    // the field names OpenAPI defines, and pass only parameters those operations take.
    let operations: Vec<&Value> = paths
        .values()
        .flat_map(|item| item.as_object().expect("path item").values())
        .collect();
    let mut links = 0;
    for op in &operations {
        for response in op["responses"].as_object().expect("responses").values() {
            let Some(map) = response["links"].as_object() else {
                continue;
            };
            for (name, link) in map {
                links += 1;
                assert!(link.get("operation_id").is_none(), "{name}: {link}");
                let target = operations
                    .iter()
                    .find(|o| o["operationId"] == link["operationId"])
                    .unwrap_or_else(|| panic!("link {name} names no operation: {link}"));
                for param in link["parameters"]
                    .as_object()
                    .into_iter()
                    .flat_map(|p| p.keys())
                {
                    let takes = target["parameters"]
                        .as_array()
                        .is_some_and(|ps| ps.iter().any(|p| p["name"] == *param));
                    assert!(takes, "link {name} passes {param}, which its target lacks");
                }
            }
        }
    }
    assert!(links >= 10, "{links} links");

    // Every route the router serves is described, and nothing else is.
    let served: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.to_string(), r.pattern.to_string()))
        .collect();
    assert_eq!(described, served);

    // And every route in the table reaches a handler (none falls through to "no route").
    for route in ROUTES {
        let path = route
            .pattern
            .split('/')
            .map(|p| if p.starts_with('{') { "1" } else { p })
            .collect::<Vec<_>>()
            .join("/");
        let url = format!("{}{path}", chirp.base);
        let text = match ureq::request(route.method, &url).call() {
            Ok(r) => r.into_string().unwrap_or_default(),
            Err(ureq::Error::Status(_, r)) => r.into_string().unwrap_or_default(),
            Err(e) => panic!("{} {path}: {e}", route.method),
        };
        assert!(
            !text.contains("/problems/no-route"),
            "{} {path}: {text}",
            route.method
        );
    }
}

#[test]
fn request_ids_are_echoed_or_minted() {
    let (_tmp, dir) = data_dir();
    let chirp = Chirp::start(&dir, &[]);
    let url = format!("{}/health", chirp.base);
    let (_, _, resp) = get(&url, &[("x-request-id", "trace-abc-123")]);
    assert_eq!(resp.request_id.as_deref(), Some("trace-abc-123"));
    let (_, _, resp) = get(&url, &[]);
    let minted = resp.request_id.as_deref().expect("minted id").to_string();
    assert_eq!(minted.len(), 16, "{minted}");
    // An id that could forge log lines is replaced.
    let (_, _, resp) = get(&url, &[("x-request-id", "a b")]);
    assert_ne!(resp.request_id.as_deref(), Some("a b"));
    // Errors carry one too.
    let (s, _, resp) = get(
        &format!("{}/nope", chirp.base),
        &[("x-request-id", "r-404")],
    );
    assert_eq!(s, 404);
    assert_eq!(resp.request_id.as_deref(), Some("r-404"));
}

#[test]
fn metrics_live_on_the_admin_listener_only() {
    let (_tmp, dir) = data_dir();
    let chirp = Chirp::start(&dir, &[]);
    assert_ne!(chirp.admin, chirp.base);
    let (_, token) = chirp.user("alice");
    chirp.tweet(&token, "metrics #ops");
    chirp.call("GET", "/@alice/profile", None, None);
    chirp.call("GET", "/@nobody/profile", None, None);
    chirp.call("GET", "/no/such/path", None, None);

    let (status, _) = chirp.call("GET", "/metrics", None, None);
    assert_eq!(status, 404, "metrics must not be served on the public port");

    let bearer = format!("Bearer {}", chirp.admin_token);
    let auth = [("authorization", bearer.as_str())];
    assert_eq!(get(&format!("{}/metrics", chirp.admin), &[]).0, 401);
    let (status, text, resp) = get(&format!("{}/metrics", chirp.admin), &auth);
    assert_eq!(status, 200);
    assert!(resp.content_type.starts_with("text/plain"));
    for series in [
        r#"chirp_http_requests_total{route="/users",method="POST",status="201"} 1"#,
        r#"chirp_http_requests_total{route="/{userId}/profile",method="GET",status="200"} 1"#,
        r#"chirp_http_requests_total{route="/{userId}/profile",method="GET",status="404"} 1"#,
        r#"chirp_http_requests_total{route="unmatched",method="GET",status="404"} 2"#,
        r#"chirp_http_request_duration_seconds_count{route="/tweet",method="POST",status="201"} 1"#,
        "# TYPE chirp_http_request_duration_seconds histogram",
        "chirp_fanout_pending_jobs ",
        "chirp_fanout_lag_seconds ",
        "chirp_fanout_failures_total 0",
        "chirp_fanout_retries_total 0",
        "chirp_fanout_overflows_total 0",
        "chirp_rocksdb_block_cache_usage_bytes ",
        r#"chirp_rocksdb_pending_compaction_bytes{shard="3"}"#,
        r#"chirp_rocksdb_write_stopped{shard="0"} 0"#,
        r#"chirp_rocksdb_estimated_keys{shard="0",cf="tweets"}"#,
        "chirp_uptime_seconds ",
        "chirp_tweet_cache_hits_total ",
        "chirp_tweet_cache_misses_total ",
        r#"chirp_oplog_last_lsn{shard="0"}"#,
    ] {
        assert!(text.contains(series), "missing {series} in\n{text}");
    }
    // No raw paths as labels.
    assert!(!text.contains("alice"), "{text}");

    let (status, body, _) = get(&format!("{}/status", chirp.admin), &auth);
    assert_eq!(status, 200);
    let status: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(status["shards"].as_array().map(Vec::len), Some(4));
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn config_file_env_and_flags_in_that_order() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("chirp.toml");
    std::fs::write(
        &file,
        "shards = 8\nhome_cap = 50\nbackfill = 7\nlog_format = \"json\"\n",
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_chirp"))
        .args(["serve", "--print-config", "--config"])
        .arg(&file)
        .args(["--home-cap", "70"])
        .env("CHIRP_HOME_CAP", "60")
        .env("CHIRP_BACKFILL", "9")
        .env_remove("CHIRP_SHARDS")
        .output()
        .expect("run chirp");
    assert!(out.status.success(), "{out:?}");
    let printed: toml::Table = toml::from_str(&String::from_utf8_lossy(&out.stdout)).expect("toml");
    assert_eq!(
        printed["shards"].as_integer(),
        Some(8),
        "file beats default"
    );
    assert_eq!(printed["backfill"].as_integer(), Some(9), "env beats file");
    assert_eq!(printed["home_cap"].as_integer(), Some(70), "flag beats env");
    assert_eq!(printed["log_format"].as_str(), Some("json"));
    assert_eq!(printed["admin_listen"].as_str(), Some("127.0.0.1:8081"));

    std::fs::write(&file, "shards = 8\nnot_a_setting = 1\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_chirp"))
        .args(["serve", "--print-config", "--config"])
        .arg(&file)
        .output()
        .expect("run chirp");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not_a_setting"),
        "{out:?}"
    );
}
