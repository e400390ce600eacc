//! Tweet text validation and hashtag extraction, following twitter-text's conformance suite.

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;
use unicode_normalization::UnicodeNormalization;

/// Maximum tweet length: code points after NFC, each URL counted as 23 (twitter-text's rule).
pub const MAX_TWEET_CHARS: usize = 140;

/// Why a tweet's text was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// The text has no characters at all.
    #[error("text is empty")]
    Empty,
    /// The text has only whitespace characters.
    #[error("text has only whitespace")]
    Blank,
    /// The text is longer than [`MAX_TWEET_CHARS`]; holds its length with each URL counted as 23.
    #[error("text is {0} characters; the limit is 140")]
    TooLong(usize),
    /// The text holds a code point that twitter-text forbids; holds that code point.
    #[error("text contains the invalid character U+{0:04X}")]
    InvalidChar(u32),
}

/// Non-letter characters that twitter-text still lets continue a hashtag (joiners, script
/// punctuation such as Hebrew geresh, Tibetan tsheg, Japanese wave dash and middle dots).
const HASHTAG_EXTRA: &str = r"_\x{200c}\x{200d}\x{a67e}\x{05be}\x{05f3}\x{05f4}\x{ff5e}\x{301c}\x{309b}\x{309c}\x{30a0}\x{30fb}\x{3003}\x{0f0b}\x{0f0c}\x{00b7}";

/// The longest run of hashtagAlphaNumeric characters at the start of the haystack.
static HASHTAG_RUN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r"\A[\p{{L}}\p{{M}}\p{{Nd}}{HASHTAG_EXTRA}]+")).expect("static regex")
});

/// A hashtagAlpha character anywhere in the haystack.
static HASHTAG_ALPHA: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[\p{L}\p{M}]").expect("static regex"));

/// A URL candidate: protocol (1) with a domain of any script (2), or a bare ASCII domain (3);
/// then optional port and path/query (4) limited to twitter-text's URL path characters.
/// Subdomains may hold '_', domain names may not, and no label starts or ends with '-' or '_'.
static URL: LazyLock<Regex> = LazyLock::new(|| {
    let tld = r"(?:xn--[a-z0-9-]+|[a-z]{2,})";
    let domain = |c: &str| format!(r"(?:[{c}](?:[{c}_-]*[{c}])?\.)*[{c}](?:[{c}-]*[{c}])?\.{tld}");
    let (unicode, ascii) = (domain(r"\p{L}\p{N}"), domain("a-z0-9"));
    let path = r"[/?][\p{Latin}\p{Cyrillic}0-9!*';:=+,.$/%#\[\]\-_~&|@()?\x{2013}]*";
    Regex::new(&format!(
        r"(?i)(?:(https?://)({unicode})|({ascii}))(?::[0-9]+)?({path})?"
    ))
    .expect("static regex")
});

/// Generic TLDs accepted without a protocol (twitter-text's classic list plus common newcomers).
const GTLDS: &[&str] = &[
    "aero", "app", "asia", "biz", "blog", "cat", "com", "coop", "dev", "edu", "gov", "info", "int",
    "jobs", "mil", "mobi", "museum", "name", "net", "org", "pro", "shop", "site", "tel", "travel",
    "xxx", "xyz",
];

/// How many characters one URL costs, whatever its length: twitter-text counts every link
/// as a t.co link, and the conformance suite's 140-character cases depend on it.
pub const URL_CHARS: usize = 23;

/// NFC-normalizes and validates tweet text; returns the normalized text.
pub fn validate_tweet(text: &str) -> Result<String, TextError> {
    let normalized: String = text.nfc().collect();
    if normalized.is_empty() {
        return Err(TextError::Empty);
    }
    // Byte-order marks and non-characters break clients that render or re-encode the text.
    if let Some(bad) = normalized
        .chars()
        .find(|c| matches!(c, '\u{fffe}' | '\u{feff}' | '\u{ffff}'))
    {
        return Err(TextError::InvalidChar(u32::from(bad)));
    }
    if normalized.chars().all(char::is_whitespace) {
        return Err(TextError::Blank);
    }
    let count = weighted_length(&normalized);
    if count > MAX_TWEET_CHARS {
        return Err(TextError::TooLong(count));
    }
    Ok(normalized)
}

/// A text's length by twitter-text's rule: code points after NFC, each URL counted as 23.
/// The web client's compose counter ports this; `server/tests/web_client.rs` compares the two.
pub fn tweet_length(text: &str) -> usize {
    let normalized: String = text.nfc().collect();
    weighted_length(&normalized)
}

/// The length of already-normalized text, each URL counted as [`URL_CHARS`].
fn weighted_length(normalized: &str) -> usize {
    let urls = url_spans(normalized);
    let url_chars: usize = urls
        .iter()
        .filter_map(|url| normalized.get(url.clone()))
        .map(|url| url.chars().count())
        .sum();
    normalized.chars().count() - url_chars + urls.len() * URL_CHARS
}

/// Hashtags in order of appearance, as written (without the '#'), per twitter-text rules.
pub fn extract_hashtags(text: &str) -> Vec<String> {
    hashtag_ranges(text)
        .into_iter()
        .filter_map(|(_, body)| text.get(body).map(str::to_owned))
        .collect()
}

/// The byte ranges of each hashtag in order of appearance, as [`extract_hashtags`] finds
/// them: from its '#' to the end of its body, and the body alone (for rendering the text
/// with its hashtags linked).
pub fn hashtag_ranges(text: &str) -> Vec<(Range<usize>, Range<usize>)> {
    let tags = hashtag_spans(text);
    if tags.is_empty() {
        return Vec::new();
    }
    // twitter-text drops hashtags that sit inside a URL, e.g. a fragment like `site.com/#top`.
    let urls = url_spans(text);
    tags.into_iter()
        .filter(|tag| {
            !urls
                .iter()
                .any(|url| tag.whole.start < url.end && url.start < tag.whole.end)
        })
        .map(|tag| (tag.whole, tag.body))
        .collect()
}

/// Normalizes a tag for matching: strips one leading '#' or '＃', NFC, then lowercases. Returns None if the result is not a valid hashtag body (e.g. empty, all digits, contains chars not allowed in a hashtag).
pub fn normalize_tag(tag: &str) -> Option<String> {
    let bare = tag
        .strip_prefix('#')
        .or_else(|| tag.strip_prefix('＃'))
        .unwrap_or(tag);
    let normalized = bare.nfc().collect::<String>().to_lowercase();
    let run = HASHTAG_RUN.find(&normalized)?;
    let whole_body = run.end() == normalized.len();
    (whole_body && HASHTAG_ALPHA.is_match(&normalized)).then_some(normalized)
}

/// Byte ranges of one hashtag: from its '#' to the end of its body, and the body alone.
struct TagSpan {
    whole: Range<usize>,
    body: Range<usize>,
}

/// Finds hashtags by hand, since twitter-text's pattern relies on lookahead the `regex`
/// crate lacks. Checking each '#' against its preceding character is equivalent to the
/// global regex scan: a consumed body always ends on a character that cannot precede '#'.
fn hashtag_spans(text: &str) -> Vec<TagSpan> {
    let mut spans = Vec::new();
    let mut prev: Option<char> = None;
    for (start, c) in text.char_indices() {
        let before = prev.replace(c);
        if !matches!(c, '#' | '＃') || !may_precede_hashtag(before) {
            continue;
        }
        let body_start = start + c.len_utf8();
        let Some(rest) = text.get(body_start..) else {
            continue;
        };
        // `#` + U+FE0F / U+20E3 is the keycap emoji, not a hashtag.
        if rest.starts_with(['\u{fe0f}', '\u{20e3}']) {
            continue;
        }
        let Some(run) = HASHTAG_RUN.find(rest) else {
            continue;
        };
        if !HASHTAG_ALPHA.is_match(run.as_str()) {
            continue;
        }
        // A body glued to another '#' or to "://" is part of something else (`#a#b`, `#http://`).
        let after = rest.get(run.end()..).unwrap_or("");
        if after.starts_with(['#', '＃']) || after.starts_with("://") {
            continue;
        }
        let body_end = body_start + run.end();
        spans.push(TagSpan {
            whole: start..body_end,
            body: body_start..body_end,
        });
    }
    spans
}

/// True when `before` (None at the start of text) allows a hashtag to begin right after it.
fn may_precede_hashtag(before: Option<char>) -> bool {
    match before {
        None => true,
        // Variation selectors are marks, yet an emoji + selector still ends a word.
        Some('\u{fe0e}' | '\u{fe0f}') => true,
        Some('&') => false,
        Some(c) => {
            let mut buf = [0u8; 4];
            !HASHTAG_RUN.is_match(c.encode_utf8(&mut buf))
        }
    }
}

/// Byte ranges of the URLs in `text`, approximating twitter-text's URL extractor.
fn url_spans(text: &str) -> Vec<Range<usize>> {
    URL.captures_iter(text)
        .filter(|caps| {
            let has_protocol = caps.get(1).is_some();
            let Some(domain) = caps.get(2).or_else(|| caps.get(3)) else {
                return false;
            };
            let start = caps.get(0).map_or(domain.start(), |m| m.start());
            let before = text.get(..start).and_then(|s| s.chars().next_back());
            // twitter-text refuses URLs glued to a word, a mention, hashtag or cashtag sign, or a
            // bidi embedding control; bare domains also may not continue a dotted or dashed word.
            let glued = before.is_some_and(|c| {
                c.is_ascii_alphanumeric()
                    || matches!(c, '@' | '＠' | '$' | '#' | '＃' | '\u{202a}'..='\u{202e}')
                    || (!has_protocol && matches!(c, '-' | '_' | '.' | '/'))
            });
            // Stands in for twitter-text's lookahead: a TLD must not run on into ASCII, '@' or
            // a dash (`name.com-typo`); CJK prose right after a domain is fine.
            let after = text.get(domain.end()..).and_then(|s| s.chars().next());
            let runs_on =
                after.is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '@' | '-' | '+'));
            !glued && !runs_on && (has_protocol || known_tld(domain.as_str()))
        })
        .filter_map(|caps| caps.get(0))
        .map(|m| m.start()..m.start() + trim_url_end(m.as_str()).len())
        .collect()
}

/// Whether a bare domain ends in a TLD twitter-text links without a protocol.
fn known_tld(domain: &str) -> bool {
    let tld = domain.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    // Any two-letter TLD stands in for twitter-text's ccTLD list.
    tld.len() == 2 || tld.starts_with("xn--") || GTLDS.contains(&tld.as_str())
}

/// Drops sentence punctuation that follows a link, keeping balanced parentheses
/// (`wiki/Foo_(bar)`).
fn trim_url_end(url: &str) -> &str {
    let mut kept = url;
    loop {
        let Some(last) = kept.chars().next_back() else {
            return kept;
        };
        let unbalanced_paren = last == ')' && kept.matches(')').count() > kept.matches('(').count();
        if !(unbalanced_paren || matches!(last, '.' | ',' | ';' | ':' | '!' | '?' | '\'' | '"')) {
            return kept;
        }
        kept = &kept[..kept.len() - last.len_utf8()];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_tag_lowercases_and_strips_hash() {
        assert_eq!(normalize_tag("#Rust").as_deref(), Some("rust"));
        assert_eq!(normalize_tag("＃日本語").as_deref(), Some("日本語"));
        assert_eq!(normalize_tag("Café").as_deref(), Some("café"));
    }

    #[test]
    fn normalize_tag_rejects_invalid_bodies() {
        assert_eq!(normalize_tag("#16"), None);
        assert_eq!(normalize_tag(""), None);
        assert_eq!(normalize_tag("#"), None);
        assert_eq!(normalize_tag("a b"), None);
        assert_eq!(normalize_tag("##rust"), None);
    }

    #[test]
    fn normalize_tag_applies_nfc() {
        assert_eq!(normalize_tag("#Cafe\u{301}").as_deref(), Some("caf\u{e9}"));
    }

    #[test]
    fn special_chars_are_invalid() {
        for c in ['\u{fffe}', '\u{feff}', '\u{ffff}'] {
            let text = format!("hello {c} world");
            assert_eq!(
                validate_tweet(&text),
                Err(TextError::InvalidChar(u32::from(c)))
            );
        }
        assert_eq!(
            TextError::InvalidChar(0xfeff).to_string(),
            "text contains the invalid character U+FEFF"
        );
    }

    #[test]
    fn validate_reports_each_failure() {
        assert_eq!(validate_tweet(""), Err(TextError::Empty));
        assert_eq!(validate_tweet(" \n\t"), Err(TextError::Blank));
        assert_eq!(
            validate_tweet(&"a".repeat(141)),
            Err(TextError::TooLong(141))
        );
        assert_eq!(validate_tweet(&"a".repeat(140)).map(|s| s.len()), Ok(140));
    }

    #[test]
    fn validate_counts_after_nfc() {
        // 140 decomposed "é" are 280 code points but 140 once composed.
        let text = "e\u{301}".repeat(140);
        assert_eq!(validate_tweet(&text), Ok("\u{e9}".repeat(140)));
    }

    #[test]
    fn urls_count_as_23_chars() {
        let pad = "a".repeat(116);
        assert!(validate_tweet(&format!("{pad} https://example.com/a/very/long/path")).is_ok());
        assert_eq!(
            validate_tweet(&format!("{pad}x http://t.co/x")),
            Err(TextError::TooLong(141))
        );
        // Prose with dots is not a link and counts as written.
        assert_eq!(validate_tweet("Mr.Smith e.g."), Ok("Mr.Smith e.g.".into()));
        assert_eq!(url_spans("Mr.Smith e.g. a.b"), Vec::<Range<usize>>::new());
    }

    #[test]
    fn tweet_length_matches_validation() {
        assert_eq!(tweet_length("e\u{301}".repeat(3).as_str()), 3);
        assert_eq!(
            tweet_length("see https://example.com/a/very/long/path"),
            4 + 23
        );
        assert_eq!(tweet_length(""), 0);
    }

    #[test]
    fn url_spans_trim_trailing_punctuation() {
        let text = "(see example.com/a_(b)). and foo.co.jp/x?q=1, 見てexample.comだよ";
        let found: Vec<&str> = url_spans(text)
            .into_iter()
            .filter_map(|r| text.get(r))
            .collect();
        assert_eq!(
            found,
            ["example.com/a_(b)", "foo.co.jp/x?q=1", "example.com"]
        );
    }

    #[test]
    fn keycap_and_url_fragments_are_not_hashtags() {
        assert!(extract_hashtags("#\u{fe0f}\u{20e3} #\u{20e3}").is_empty());
        assert!(extract_hashtags("see https://example.com/#intro").is_empty());
        assert_eq!(extract_hashtags("a&#b #c"), vec!["c"]);
    }
}
