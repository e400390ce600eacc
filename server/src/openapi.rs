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

static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    // Serializing a tree of plain values cannot fail; an empty document would fail the test.
    doc.to_pretty_json().unwrap_or_default()
});

/// The document as JSON, built once.
pub fn document() -> &'static str {
    &DOCUMENT
}
