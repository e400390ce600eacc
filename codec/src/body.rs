//! The JSON request bodies of the public API and their parsing, kept free of the HTTP stack
//! so they can be fuzzed: a syntax error is [`Error::MalformedJson`], a missing, unknown or
//! mistyped field [`Error::InvalidField`] naming the field. The rules on values (handle
//! characters, password length, the tweet text rule of [`crate::text`]) are checked by the
//! engine when it acts on a body.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::error::{Error, Result};

/// A sign-up request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignUpBody {
    /// 1–15 of `A-Z a-z 0-9 _`, unique ignoring case.
    #[schema(pattern = "^[A-Za-z0-9_]{1,15}$", min_length = 1, max_length = 15)]
    pub handle: String,
    /// 8–256 bytes.
    #[schema(min_length = 8, max_length = 256)]
    pub password: String,
    /// 1–50 characters, not only spaces, no control characters; defaults to the handle.
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 50,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub display_name: Option<String>,
}

/// A log-in request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogInBody {
    /// The handle (any case), or the e-mail address the account signed up with through the
    /// Mastodon client API.
    pub handle: String,
    /// The password.
    pub password: String,
}

/// A profile update; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileBody {
    /// 1–50 characters, not only spaces, no control characters.
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 50,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub display_name: Option<String>,
    /// Up to 160 characters.
    #[serde(default)]
    #[schema(max_length = 160)]
    pub bio: Option<String>,
    /// An http(s) URL without spaces of at most 512 bytes, the path of an image uploaded
    /// here (`/media/ID`), or `""` to clear it.
    #[serde(default)]
    #[schema(max_length = 512, pattern = r"^(https?://\S*|/media/[0-9]+)?$")]
    pub avatar_url: Option<String>,
    /// Merged into the stored properties; a property set to null is removed (4 KiB at most).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub extra: Option<Map<String, Value>>,
}

/// A tweet to post.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TweetBody {
    /// 1–140 characters by twitter-text's rule (NFC code points, URLs count 23); a tweet
    /// with images may leave it empty.
    #[schema(min_length = 1)]
    pub text: String,
    /// Ids of uploaded images (at most 4).
    #[serde(default)]
    #[schema(max_items = 4)]
    pub media: Vec<String>,
    /// Free-form metadata (4 KiB of JSON at most).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub extra: Map<String, Value>,
}

/// Parses a JSON body into `T`: syntax errors are [`Error::MalformedJson`], wrong or missing
/// fields [`Error::InvalidField`] naming the field (a JSON path).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(v) => match de.end() {
            Ok(()) => Ok(v),
            Err(e) => Err(Error::MalformedJson(e.to_string())),
        },
        Err(e) => {
            let inner = e.inner();
            if inner.is_syntax() || inner.is_eof() {
                return Err(Error::MalformedJson(inner.to_string()));
            }
            let path = e.path().to_string();
            let message = inner.to_string();
            // An unknown field's path is its own name, which may be empty.
            let field = if path == "." || path.is_empty() {
                named_field(&message)
                    .filter(|name| !name.is_empty())
                    .unwrap_or("body")
                    .to_string()
            } else {
                path
            };
            Err(Error::InvalidField { field, message })
        }
    }
}

/// The field a top-level error names only in its message: "missing field `x` at line 1
/// column 2" or "unknown field `x`, expected ...". The name is taken whole: it may hold
/// backticks, and an empty one names nothing.
fn named_field(message: &str) -> Option<&str> {
    if let Some(rest) = message.strip_prefix("missing field `") {
        return rest.rsplit_once('`').map(|(name, _)| name);
    }
    let rest = message.strip_prefix("unknown field `")?;
    rest.split_once("`, expected")
        .or_else(|| rest.split_once("`, there are no fields"))
        .map(|(name, _)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Found by the request_body fuzz target: `{"":1}` answered 422 with `"field": ""`.
    #[test]
    fn an_empty_unknown_field_is_named_as_the_body() {
        assert!(matches!(
            parse_json::<TweetBody>(br#"{"":1}"#),
            Err(Error::InvalidField { field, .. }) if field == "body"
        ));
    }

    #[test]
    fn bodies_parse_and_name_bad_fields() {
        let b: TweetBody = parse_json(br#"{"text":"hi #rust"}"#).expect("parses");
        assert_eq!((b.text.as_str(), b.media.len()), ("hi #rust", 0));
        assert!(matches!(
            parse_json::<TweetBody>(br#"{"text":"a","media":[1]}"#),
            Err(Error::InvalidField { field, .. }) if field == "media[0]"
        ));
        assert!(matches!(
            parse_json::<LogInBody>(br#"{"handle":"a"}"#),
            Err(Error::InvalidField { field, .. }) if field == "password"
        ));
        assert!(matches!(
            parse_json::<SignUpBody>(br#"{"handle":"a","password":"p","x":1}"#),
            Err(Error::InvalidField { field, .. }) if field == "x"
        ));
        assert!(matches!(
            parse_json::<LogInBody>(br#"{"handle":"a","password":"p","a`b":1}"#),
            Err(Error::InvalidField { field, .. }) if field == "a`b"
        ));
        assert!(matches!(
            parse_json::<ProfileBody>(b"{} {}"),
            Err(Error::MalformedJson(_))
        ));
        assert!(matches!(
            parse_json::<ProfileBody>(b"{\"bio\":"),
            Err(Error::MalformedJson(_))
        ));
    }
}
