//! Mastodon's entities as Chirp fills them: every field Mastodon 4.2 sends, with explicit
//! nulls and empty lists for what Chirp does not have (clients index keys without checking),
//! ids as strings, text as escaped HTML with hashtags linked.

use serde::Serialize;
use serde_json::{json, Value};

use chirp_engine::{MediaDoc, Profile, Tweet};

use crate::views::rfc3339;

/// Where this server is, as the request reached it: `http://host:port` and `host:port`.
#[derive(Debug, Clone)]
pub struct Base {
    /// Scheme, host and port.
    pub origin: String,
    /// Host and port.
    pub host: String,
}

impl Base {
    /// An absolute URL for a path of this server (a URL already absolute is kept).
    pub fn url(&self, path: &str) -> String {
        if path.starts_with('/') {
            format!("{}{path}", self.origin)
        } else {
            path.to_owned()
        }
    }
}

/// The profile's `extra` key holding Mastodon's profile fields: `[{name, value}]`.
pub const FIELDS_KEY: &str = "fields";
/// The profile's `extra` key holding the header image's URL.
pub const HEADER_KEY: &str = "header_url";
/// The profile's `extra` key of the Mastodon `bot` flag.
pub const BOT_KEY: &str = "bot";
/// The profile's `extra` key of the Mastodon `discoverable` flag.
pub const DISCOVERABLE_KEY: &str = "discoverable";
/// The profile's and a tweet's `extra` key of a language (ISO 639-1 or -3, lowercase): the
/// user's default for posts, or the post's.
pub const LANGUAGE_KEY: &str = "language";
/// Served for accounts without an avatar or header.
pub const MISSING_IMAGE: &str = "/avatars/original/missing.png";

/// Escapes text for HTML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escaped text with line breaks as `<br />`.
fn escape_lines(text: &str) -> String {
    escape(text).replace("\r\n", "\n").replace('\n', "<br />")
}

/// A tweet's text as Mastodon's `content`: one paragraph, escaped, hashtags linked to their
/// timelines; empty for a tweet of images only.
pub fn content_html(base: &Base, text: &str) -> String {
    if text.is_empty() {
        return String::new();
    }
    let mut out = String::from("<p>");
    let mut at = 0;
    for (whole, body) in chirp_codec::text::hashtag_ranges(text) {
        out.push_str(&escape_lines(text.get(at..whole.start).unwrap_or("")));
        let tag = text.get(body).unwrap_or("");
        let link = format!("{}/tags/{}", base.origin, percent_path(&tag.to_lowercase()));
        out.push_str(&format!(
            "<a href=\"{}\" class=\"mention hashtag\" rel=\"tag\">#<span>{}</span></a>",
            escape(&link),
            escape(tag)
        ));
        at = whole.end;
    }
    out.push_str(&escape_lines(text.get(at..).unwrap_or("")));
    out.push_str("</p>");
    out
}

fn percent_path(segment: &str) -> String {
    percent_encoding::utf8_percent_encode(segment, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The profile fields stored in `extra`, as (name, value) pairs.
pub fn profile_fields(p: &Profile) -> Vec<(String, String)> {
    p.extra
        .get(FIELDS_KEY)
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|f| {
                    Some((
                        f.get("name")?.as_str()?.to_owned(),
                        f.get("value")?.as_str()?.to_owned(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A display name as Mastodon shows it: Chirp's default (the handle, set when none was
/// given) is Mastodon's empty name, for which clients show the username.
pub fn display_name(p: &Profile) -> &str {
    if p.display_name == p.handle {
        ""
    } else {
        &p.display_name
    }
}

fn flag(p: &Profile, key: &str, default: bool) -> bool {
    p.extra.get(key).and_then(Value::as_bool).unwrap_or(default)
}

fn language(extra: &serde_json::Map<String, Value>) -> Option<&str> {
    extra.get(LANGUAGE_KEY).and_then(Value::as_str)
}

fn image_url(base: &Base, url: &str) -> String {
    base.url(if url.is_empty() { MISSING_IMAGE } else { url })
}

/// Serializes as `[]`: a list Chirp always has empty (emojis, mentions, roles, filters).
type Empty = [(); 0];
/// Serializes as `null`: a field Chirp never has a value for.
type Null = Option<()>;

/// A profile field: `{name, value, verified_at}`.
#[derive(Serialize)]
pub struct Field {
    name: String,
    value: String,
    verified_at: Null,
}

/// An `Account`; with `source` and `role`, a `CredentialAccount` (for its owner).
#[derive(Serialize)]
pub struct Account<'a> {
    id: String,
    username: &'a str,
    acct: &'a str,
    display_name: &'a str,
    locked: bool,
    bot: bool,
    discoverable: bool,
    indexable: bool,
    group: bool,
    created_at: String,
    note: String,
    url: String,
    uri: String,
    avatar: String,
    avatar_static: String,
    header: String,
    header_static: String,
    followers_count: u64,
    following_count: u64,
    statuses_count: u64,
    last_status_at: Null,
    hide_collections: Null,
    noindex: bool,
    emojis: Empty,
    roles: Empty,
    fields: Vec<Field>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<Source<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<Role>,
}

/// A `CredentialAccount`'s `source`: the plain-text note and fields, and the settings.
#[derive(Serialize)]
pub struct Source<'a> {
    privacy: &'static str,
    sensitive: bool,
    language: Option<&'a str>,
    note: &'a str,
    fields: Vec<Field>,
    follow_requests_count: u64,
    hide_collections: Null,
    discoverable: bool,
    indexable: bool,
    attribution_domains: Empty,
}

/// A `CredentialAccount`'s `role`: none.
#[derive(Serialize)]
pub struct Role {
    id: &'static str,
    name: &'static str,
    permissions: &'static str,
    color: &'static str,
    highlighted: bool,
}

/// An `Account`.
pub fn account<'a>(base: &Base, p: &'a Profile) -> Account<'a> {
    let avatar = image_url(base, &p.avatar_url);
    let header = image_url(
        base,
        p.extra
            .get(HEADER_KEY)
            .and_then(Value::as_str)
            .unwrap_or(""),
    );
    let url = format!("{}/@{}", base.origin, p.handle);
    let fields = profile_fields(p)
        .into_iter()
        .map(|(name, value)| Field {
            name,
            value: escape(&value),
            verified_at: None,
        })
        .collect();
    Account {
        id: p.id.to_string(),
        username: &p.handle,
        acct: &p.handle,
        display_name: display_name(p),
        locked: false,
        bot: flag(p, BOT_KEY, false),
        discoverable: flag(p, DISCOVERABLE_KEY, true),
        indexable: true,
        group: false,
        created_at: rfc3339(p.created_at_ms),
        note: if p.bio.is_empty() {
            String::new()
        } else {
            format!("<p>{}</p>", escape_lines(&p.bio))
        },
        uri: url.clone(),
        url,
        avatar_static: avatar.clone(),
        avatar,
        header_static: header.clone(),
        header,
        followers_count: p.followers_count,
        following_count: p.following_count,
        statuses_count: p.tweet_count,
        last_status_at: None,
        hide_collections: None,
        noindex: false,
        emojis: [],
        roles: [],
        fields,
        source: None,
        role: None,
    }
}

/// A `CredentialAccount`: the account with its `source` (plain-text note and fields) and
/// `role`, for its owner.
pub fn credential_account<'a>(base: &Base, p: &'a Profile) -> Account<'a> {
    let fields = profile_fields(p)
        .into_iter()
        .map(|(name, value)| Field {
            name,
            value,
            verified_at: None,
        })
        .collect();
    Account {
        source: Some(Source {
            privacy: "public",
            sensitive: false,
            language: language(&p.extra),
            note: &p.bio,
            fields,
            follow_requests_count: 0,
            hide_collections: None,
            discoverable: flag(p, DISCOVERABLE_KEY, true),
            indexable: true,
            attribution_domains: [],
        }),
        role: Some(Role {
            id: "-99",
            name: "",
            permissions: "0",
            color: "",
            highlighted: false,
        }),
        ..account(base, p)
    }
}

/// A `MediaAttachment`'s size: `meta.original` and `meta.small`.
#[derive(Serialize, Clone, Copy)]
pub struct Size {
    width: u32,
    height: u32,
    size: Dimensions,
    aspect: f64,
}

/// `"WxH"`, written without an allocation.
#[derive(Clone, Copy)]
struct Dimensions(u32, u32);

impl Serialize for Dimensions {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{}x{}", self.0, self.1))
    }
}

/// A `MediaAttachment`'s `meta`.
#[derive(Serialize)]
pub struct Meta {
    original: Size,
    small: Size,
}

/// A `MediaAttachment` of an uploaded image.
#[derive(Serialize)]
pub struct Media<'a> {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    url: String,
    preview_url: String,
    remote_url: Null,
    preview_remote_url: Null,
    text_url: Null,
    meta: Meta,
    description: Option<&'a str>,
    blurhash: Null,
}

/// A `MediaAttachment` of an uploaded image.
pub fn media<'a>(
    base: &Base,
    id: String,
    url: &str,
    (width, height): (u32, u32),
    description: Option<&'a str>,
) -> Media<'a> {
    let url = base.url(url);
    let size = Size {
        width,
        height,
        size: Dimensions(width, height),
        aspect: if height == 0 {
            1.0
        } else {
            f64::from(width) / f64::from(height)
        },
    };
    Media {
        id,
        kind: "image",
        preview_url: url.clone(),
        url,
        remote_url: None,
        preview_remote_url: None,
        text_url: None,
        meta: Meta {
            original: size,
            small: size,
        },
        description,
        blurhash: None,
    }
}

/// The `MediaAttachment` of a stored upload.
pub fn media_doc<'a>(base: &Base, m: &'a MediaDoc) -> Media<'a> {
    media(
        base,
        m.id.to_string(),
        &chirp_engine::media::media_url(m.id),
        (m.width, m.height),
        m.description.as_deref(),
    )
}

/// A `Tag` (its id is its name in matching form: Chirp numbers no hashtags).
#[derive(Serialize)]
pub struct Tag<'a> {
    id: String,
    name: &'a str,
    url: String,
    history: Empty,
    following: bool,
}

/// A `Tag`.
pub fn tag<'a>(base: &Base, name: &'a str) -> Tag<'a> {
    let key = chirp_codec::text::normalize_tag(name).unwrap_or_else(|| name.to_lowercase());
    Tag {
        url: format!("{}/tags/{}", base.origin, percent_path(&key)),
        id: key,
        name,
        history: [],
        following: false,
    }
}

/// A `Status`.
#[derive(Serialize)]
pub struct Status<'a> {
    id: String,
    uri: String,
    url: String,
    created_at: String,
    edited_at: Null,
    account: Account<'a>,
    content: String,
    visibility: &'static str,
    sensitive: bool,
    spoiler_text: &'static str,
    media_attachments: Vec<Media<'a>>,
    application: Null,
    mentions: Empty,
    tags: Vec<Tag<'a>>,
    emojis: Empty,
    reblogs_count: u64,
    favourites_count: u64,
    replies_count: u64,
    in_reply_to_id: Null,
    in_reply_to_account_id: Null,
    reblog: Null,
    poll: Null,
    card: Null,
    language: Option<&'a str>,
    /// The source text: only in the answer to a delete (for redrafting).
    pub text: Option<&'a str>,
    favourited: bool,
    reblogged: bool,
    muted: bool,
    bookmarked: bool,
    pinned: bool,
    filtered: Empty,
}

/// A `Status` of a tweet by `author`.
pub fn status<'a>(base: &Base, t: &'a Tweet, author: &'a Profile) -> Status<'a> {
    let url = format!("{}/@{}/{}", base.origin, t.author_handle, t.id);
    Status {
        id: t.id.to_string(),
        uri: url.clone(),
        url,
        created_at: rfc3339(t.created_at_ms),
        edited_at: None,
        account: account(base, author),
        content: content_html(base, &t.text),
        visibility: "public",
        sensitive: false,
        spoiler_text: "",
        media_attachments: t
            .media
            .iter()
            .map(|m| {
                media(
                    base,
                    m.id.clone(),
                    &m.url,
                    (m.width, m.height),
                    m.description.as_deref(),
                )
            })
            .collect(),
        application: None,
        mentions: [],
        tags: t.hashtags.iter().map(|h| tag(base, h)).collect(),
        emojis: [],
        reblogs_count: 0,
        favourites_count: 0,
        replies_count: 0,
        in_reply_to_id: None,
        in_reply_to_account_id: None,
        reblog: None,
        poll: None,
        card: None,
        language: language(&t.extra),
        text: None,
        favourited: false,
        reblogged: false,
        muted: false,
        bookmarked: false,
        pinned: false,
        filtered: [],
    }
}

/// A `Relationship` between the caller and `id`.
pub fn relationship(id: u64, following: bool, followed_by: bool) -> Value {
    json!({
        "id": id.to_string(),
        "following": following,
        "showing_reblogs": following,
        "notifying": false,
        "languages": null,
        "followed_by": followed_by,
        "blocking": false,
        "blocked_by": false,
        "muting": false,
        "muting_notifications": false,
        "requested": false,
        "requested_by": false,
        "domain_blocking": false,
        "endorsed": false,
        "note": "",
    })
}

/// An `Application` (without its secrets).
#[derive(Serialize)]
pub struct Application<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its web site.
    pub website: Option<&'a str>,
    /// The scopes it asked for.
    pub scopes: Vec<&'a str>,
    /// Where codes go.
    pub redirect_uri: &'a str,
    /// The same, as a list.
    pub redirect_uris: Vec<&'a str>,
    /// Deprecated by Mastodon, still read by clients.
    pub vapid_key: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Base {
        Base {
            origin: "http://localhost:3000".into(),
            host: "localhost:3000".into(),
        }
    }

    #[test]
    fn content_escapes_and_links_hashtags() {
        let html = content_html(&base(), "a <b> & #Rust\nnext #日本");
        assert_eq!(
            html,
            "<p>a &lt;b&gt; &amp; <a href=\"http://localhost:3000/tags/rust\" class=\"mention hashtag\" rel=\"tag\">#<span>Rust</span></a><br />next <a href=\"http://localhost:3000/tags/%E6%97%A5%E6%9C%AC\" class=\"mention hashtag\" rel=\"tag\">#<span>日本</span></a></p>"
        );
        assert_eq!(content_html(&base(), "plain"), "<p>plain</p>");
        assert_eq!(content_html(&base(), ""), "");
    }

    #[test]
    fn relative_urls_are_made_absolute() {
        assert_eq!(base().url("/media/1"), "http://localhost:3000/media/1");
        assert_eq!(
            base().url("https://x.example/a.png"),
            "https://x.example/a.png"
        );
    }
}
