//! `GET /api/v1/instance` and `GET /api/v2/instance`: what clients read first, to learn the
//! server's limits and version.

use hyper::body::Incoming;
use hyper::Request;
use serde_json::{json, Value};

use chirp_engine::tweets::MAX_MEDIA;

use super::{base, json_ok};
use crate::http::ApiResult;
use crate::routes::App;

/// The version clients see: Mastodon's API level, then Chirp's own version as build metadata
/// (`4.2.0+chirp.0.1.0`). Mastodon.py reads the part before `+` as the API level and would
/// misread a bare version after it; masto.js needs the whole to be semver.
pub fn version() -> String {
    format!("4.2.0+chirp.{}", env!("CARGO_PKG_VERSION"))
}

/// Longest tweet, as Mastodon's `max_characters`.
const MAX_CHARACTERS: usize = 140;

/// Estimated users and tweets of this node's copies (RocksDB's key estimates).
async fn counts(app: &App) -> (u64, u64) {
    let stats = crate::api::blocking(app, |n| n.stats()).await;
    let Ok(stats) = stats else {
        return (0, 0);
    };
    let sum = |cf: &str| -> u64 {
        stats
            .shards
            .iter()
            .flat_map(|s| s.column_families.iter())
            .filter(|c| c.name == cf)
            .map(|c| c.estimate_keys)
            .sum()
    };
    (
        sum(chirp_engine::keys::CF_PROFILES),
        sum(chirp_engine::keys::CF_TWEETS),
    )
}

fn configuration(app: &App) -> Value {
    json!({
        "urls": {"streaming": null},
        "accounts": {"max_featured_tags": 0, "max_pinned_statuses": 0},
        "statuses": {
            "max_characters": MAX_CHARACTERS,
            "max_media_attachments": MAX_MEDIA,
            "characters_reserved_per_url": chirp_codec::text::URL_CHARS,
        },
        "media_attachments": {
            "supported_mime_types": ["image/png", "image/jpeg", "image/gif", "image/webp"],
            "image_size_limit": app.node.config().max_media_bytes,
            "image_matrix_limit": 16_777_216,
            "video_size_limit": 0,
            "video_frame_rate_limit": 0,
            "video_matrix_limit": 0,
        },
        "polls": {
            "max_options": 0,
            "max_characters_per_option": 0,
            "min_expiration": 0,
            "max_expiration": 0,
        },
        "translation": {"enabled": false},
    })
}

/// `GET /api/v1/instance` (also with a trailing slash).
pub async fn v1(app: &App, req: &Request<Incoming>) -> ApiResult {
    let base = base(req);
    let (users, statuses) = counts(app).await;
    let mut config = configuration(app);
    config["urls"] = json!({});
    json_ok(&json!({
        "uri": base.host,
        "title": "Chirp",
        "short_description": "A Chirp server",
        "description": "A Chirp server: short posts with images, follows, home feeds and hashtags.",
        "email": "",
        "version": version(),
        "urls": {"streaming_api": null},
        "stats": {"user_count": users, "status_count": statuses, "domain_count": 1},
        "thumbnail": null,
        "languages": ["en"],
        "registrations": true,
        "approval_required": false,
        "invites_enabled": false,
        "configuration": config,
        "contact_account": null,
        "rules": [],
    }))
}

/// `GET /api/v2/instance`.
pub async fn v2(app: &App, req: &Request<Incoming>) -> ApiResult {
    let base = base(req);
    let (users, _) = counts(app).await;
    json_ok(&json!({
        "domain": base.host,
        "title": "Chirp",
        "version": version(),
        "source_url": base.url("/"),
        "description": "A Chirp server: short posts with images, follows, home feeds and hashtags.",
        "usage": {"users": {"active_month": users}},
        "thumbnail": {"url": base.url(super::entities::MISSING_IMAGE), "blurhash": null, "versions": {}},
        "icon": [],
        "languages": ["en"],
        "configuration": configuration(app),
        "registrations": {"enabled": true, "approval_required": false, "message": null, "url": null},
        "api_versions": {"mastodon": 2},
        "contact": {"email": "", "account": null},
        "rules": [],
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_version_is_semver_with_chirp_as_build_metadata() {
        let v = super::version();
        let (api, build) = v.split_once('+').expect("build metadata");
        assert_eq!(api, "4.2.0");
        let ours = build.strip_prefix("chirp.").expect("chirp.");
        assert!(ours.split('.').all(|p| p.parse::<u64>().is_ok()), "{v}");
    }
}
