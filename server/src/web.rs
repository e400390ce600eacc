//! The web client: the files `web/` builds, embedded in the binary at compile time (see
//! `build.rs`) and served as `GET /` (the page) and `GET /app/{file}` (its scripts and styles).
//! Client routes live after `#`, so they never reach the server and cannot shadow the API.

use hyper::header::{HeaderValue, CACHE_CONTROL, ETAG, IF_NONE_MATCH};
use hyper::{HeaderMap, Response, StatusCode};

use crate::http::{bytes_response, empty, Body};

/// One embedded file.
pub struct Asset {
    /// File name inside `web/dist`.
    pub name: &'static str,
    /// The file's contents.
    pub bytes: &'static [u8],
    /// A quoted content hash.
    pub etag: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

/// The page's policy: everything from this origin, images also from wherever avatars live.
const CSP: &str = "default-src 'self'; img-src 'self' data: blob: https: http:; \
                   object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// Hashed file names change with their contents, so browsers may keep them forever.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The page must be revalidated each time so a new release's asset names are picked up.
const REVALIDATE: &str = "no-cache";

fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

/// `GET /`: the single page, or None if the build embedded no index (build.rs refuses that).
pub fn index(headers: &HeaderMap) -> Option<Response<Body>> {
    let mut resp = serve(find("index.html")?, REVALIDATE, headers);
    let h = resp.headers_mut();
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    Some(resp)
}

/// `GET /app/{name}`: a script, style sheet or image of the page; None if there is no such
/// file. The page itself is only served at `/`, so it has one address.
pub fn asset(name: &str, headers: &HeaderMap) -> Option<Response<Body>> {
    if name == "index.html" {
        return None;
    }
    find(name).map(|a| serve(a, IMMUTABLE, headers))
}

fn serve(asset: &'static Asset, cache: &'static str, headers: &HeaderMap) -> Response<Body> {
    let fresh = headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|tag| tag.trim() == asset.etag || tag.trim() == "*")
        });
    let mut resp = if fresh {
        empty(StatusCode::NOT_MODIFIED)
    } else {
        bytes_response(StatusCode::OK, content_type(asset.name), asset.bytes)
    };
    let h = resp.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(ETAG, HeaderValue::from_static(asset.etag));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// The Content-Type of a built file, by extension (vite emits a small, known set).
pub fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map_or("", |(_, ext)| ext) {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_build_embedded_a_page_and_its_assets() {
        assert!(find("index.html").is_some());
        assert!(ASSETS.iter().any(|a| a.name.ends_with(".js")));
        assert!(ASSETS.iter().any(|a| a.name.ends_with(".css")));
    }

    #[test]
    fn content_types_by_extension() {
        assert_eq!(
            content_type("index-abc.js"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type("index-abc.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("noextension"), "application/octet-stream");
    }

    #[test]
    fn if_none_match_answers_304() {
        let Some(page) = find("index.html") else {
            panic!("no index.html embedded");
        };
        let mut headers = HeaderMap::new();
        headers.insert(IF_NONE_MATCH, HeaderValue::from_static(page.etag));
        let resp = serve(page, REVALIDATE, &headers);
        assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(resp.headers()[ETAG], page.etag);
    }
}
