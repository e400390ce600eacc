//! The OpenAPI 3.1 description of the public API, assembled from the handlers' annotations
//! (`api::*`) and the view types, so it changes when the code does. A test checks that every
//! route of [`crate::routes::ROUTES`] is described and nothing else is.

use std::sync::LazyLock;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::api;

/// The generated description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Chirp",
        description = "A Twitter-like service: tweets, follows, home feeds and profiles. \
            64-bit ids are JSON strings; times are RFC 3339 UTC; errors are RFC 9457 problem \
            details; lists take `limit` and an opaque `cursor`.",
    ),
    paths(
        api::meta::web_index,
        api::meta::web_index_head,
        api::meta::web_asset,
        api::meta::web_asset_head,
        api::meta::health,
        api::meta::openapi,
        api::replication::status,
        api::accounts::sign_up,
        api::accounts::log_in,
        api::accounts::log_out,
        api::sessions::list,
        api::sessions::end,
        api::accounts::get_profile,
        api::accounts::patch_profile,
        api::tweets::post_tweet,
        api::tweets::feed,
        api::tweets::get_tweet,
        api::tweets::delete_tweet,
        api::tweets::user_tweets,
        api::search::by_tag,
        api::search::by_tags,
        crate::media::upload,
        crate::media::serve,
        crate::media::serve_head,
        api::social::follow,
        api::social::unfollow,
        api::social::followers,
        api::social::following,
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "accounts", description = "Sign-up, log-in and profiles"),
        (name = "tweets", description = "Tweets, feeds and timelines"),
        (name = "social", description = "The follow graph"),
        (name = "search", description = "Hashtag search"),
        (name = "media", description = "Images: uploads and serving"),
        (name = "meta", description = "The service itself"),
        (name = "web", description = "The embedded web client (HTML, scripts, styles)"),
    )
)]
pub struct ApiDoc;

/// Declares the bearer-token scheme the `security` of the handlers names.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A token from `POST /sessions`"))
                    .build(),
            ),
        );
    }
}

/// Renames the fields of every response's `links` to the spelling OpenAPI defines: utoipa 5
/// serializes its `Link` with Rust's field names (`operation_id`, `request_body`), which
/// tools following the links (Schemathesis's stateful phase) do not recognise.
fn camel_case_links(doc: &mut serde_json::Value) {
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    let operations = paths
        .values_mut()
        .filter_map(|item| item.as_object_mut())
        .flat_map(|item| item.values_mut());
    let responses = operations
        .filter_map(|op| op.get_mut("responses").and_then(|r| r.as_object_mut()))
        .flat_map(|r| r.values_mut());
    let links = responses
        .filter_map(|r| r.get_mut("links").and_then(|l| l.as_object_mut()))
        .flat_map(|l| l.values_mut())
        .filter_map(|link| link.as_object_mut());
    for link in links {
        for (from, to) in [
            ("operation_id", "operationId"),
            ("operation_ref", "operationRef"),
            ("request_body", "requestBody"),
        ] {
            if let Some(value) = link.remove(from) {
                link.insert(to.to_string(), value);
            }
        }
    }
}

static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    // Serializing a tree of plain values cannot fail; an empty document would fail the test.
    let mut value = serde_json::to_value(&doc).unwrap_or_default();
    camel_case_links(&mut value);
    serde_json::to_string_pretty(&value).unwrap_or_default()
});

/// The document as JSON, built once.
pub fn document() -> &'static str {
    &DOCUMENT
}
