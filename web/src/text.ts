// Tweet length and hashtag rules, ported from engine/src/text.rs so the compose counter and
// the server agree on every text. Keep the two in step: server/tests/web_client.rs feeds the
// same texts to both and compares. Indices here are UTF-16 offsets; lengths are code points.

/** Maximum tweet length: code points after NFC, each URL counted as 23 (twitter-text's rule). */
export const MAX_TWEET_CHARS = 140;

/** What one URL costs, whatever its length (every link counts as a t.co link). */
export const URL_CHARS = 23;

/** Non-letter characters that may still continue a hashtag (joiners, script punctuation). */
const HASHTAG_EXTRA =
  "_\\u{200c}\\u{200d}\\u{a67e}\\u{05be}\\u{05f3}\\u{05f4}\\u{ff5e}\\u{301c}\\u{309b}\\u{309c}\\u{30a0}\\u{30fb}\\u{3003}\\u{0f0b}\\u{0f0c}\\u{00b7}";
const HASHTAG_CLASS = `[\\p{L}\\p{M}\\p{Nd}${HASHTAG_EXTRA}]`;
const HASHTAG_RUN = new RegExp(`^${HASHTAG_CLASS}+`, "u");
const HASHTAG_CHAR = new RegExp(`^${HASHTAG_CLASS}$`, "u");
const HASHTAG_ALPHA = /[\p{L}\p{M}]/u;
const WHITESPACE = /^\p{White_Space}*$/u;

const TLD = "(?:xn--[a-z0-9-]+|[a-z]{2,})";
const domain = (c: string) =>
  `(?:[${c}](?:[${c}_-]*[${c}])?\\.)*[${c}](?:[${c}-]*[${c}])?\\.${TLD}`;
const URL_PATH =
  "[/?][\\p{Script=Latin}\\p{Script=Cyrillic}0-9!*';:=+,.$/%#\\[\\]\\-_~&|@()?\\u{2013}]*";
// Group 1: protocol; 2: a domain of any script after a protocol; 3: a bare ASCII domain.
// The `d` flag gives group offsets, which the run-on check needs.
const URL_SOURCE = `(?:(https?://)(${domain("\\p{L}\\p{N}")})|(${domain("a-z0-9")}))(?::[0-9]+)?(${URL_PATH})?`;

/** Generic TLDs linked without a protocol (the same list as the server's). */
const GTLDS = new Set([
  "aero", "app", "asia", "biz", "blog", "cat", "com", "coop", "dev", "edu", "gov", "info", "int",
  "jobs", "mil", "mobi", "museum", "name", "net", "org", "pro", "shop", "site", "tel", "travel",
  "xxx", "xyz",
]);

/** A span of text: [start, end) in UTF-16 offsets. */
export interface Span {
  start: number;
  end: number;
}

/** A URL found in text, and whether it was written with its protocol. */
export interface UrlSpan extends Span {
  hasProtocol: boolean;
}

/** A hashtag: `start` is at its '#', `bodyStart` just after it. */
export interface TagSpan extends Span {
  bodyStart: number;
  body: string;
}

/** Why a text cannot be posted, mirroring the server's `TextError`. */
export type TextProblem = "empty" | "blank" | "invalid-char" | "too-long";

/** The counter's view of a draft. */
export interface TweetCheck {
  /** Length by the server's rule. */
  length: number;
  /** Characters left (negative when over). */
  remaining: number;
  problem: TextProblem | null;
  /** A sentence for people, when there is a problem worth showing. */
  message: string | null;
}

const codePoints = (s: string): number => {
  let n = 0;
  for (const _ of s) n++;
  return n;
};

const firstChar = (s: string): string | undefined => {
  const cp = s.codePointAt(0);
  return cp === undefined ? undefined : String.fromCodePoint(cp);
};

const lastChar = (s: string): string | undefined => {
  if (s.length === 0) return undefined;
  const low = s.charCodeAt(s.length - 1);
  const isLowSurrogate = low >= 0xdc00 && low <= 0xdfff;
  return isLowSurrogate && s.length >= 2 ? s.slice(-2) : s.slice(-1);
};

const isAsciiAlnum = (c: string) => /^[A-Za-z0-9]$/.test(c);

/** UTF-8 length, since the server compares a TLD's byte length. */
const utf8Len = (s: string) => new TextEncoder().encode(s).length;

function knownTld(domainText: string): boolean {
  const parts = domainText.split(".");
  const tld = (parts[parts.length - 1] ?? "").replace(/[A-Z]/g, (c) => c.toLowerCase());
  // Any two-letter TLD stands in for twitter-text's ccTLD list.
  return utf8Len(tld) === 2 || tld.startsWith("xn--") || GTLDS.has(tld);
}

/** Drops sentence punctuation after a link, keeping balanced parentheses. */
function trimUrlEnd(url: string): string {
  let kept = url;
  for (;;) {
    const last = lastChar(kept);
    if (last === undefined) return kept;
    const count = (ch: string) => kept.split(ch).length - 1;
    const unbalancedParen = last === ")" && count(")") > count("(");
    if (!(unbalancedParen || ".,;:!?'\"".includes(last))) return kept;
    kept = kept.slice(0, kept.length - last.length);
  }
}

/** The URLs in `text`, approximating twitter-text's URL extractor exactly as the server does. */
export function urlSpans(text: string): UrlSpan[] {
  const spans: UrlSpan[] = [];
  for (const m of text.matchAll(new RegExp(URL_SOURCE, "giud"))) {
    const hasProtocol = m[1] !== undefined;
    const domainIndex = m[2] !== undefined ? 2 : 3;
    const domainText = m[domainIndex];
    const domainRange = m.indices?.[domainIndex];
    if (domainText === undefined || domainRange === undefined) continue;
    const start = m.index;
    const before = lastChar(text.slice(0, start));
    // Refuse URLs glued to a word, a mention/hashtag/cashtag sign or a bidi embedding control;
    // bare domains also may not continue a dotted or dashed word.
    const glued =
      before !== undefined &&
      (isAsciiAlnum(before) ||
        ["@", "＠", "$", "#", "＃"].includes(before) ||
        (before >= "\u202a" && before <= "\u202e") ||
        (!hasProtocol && ["-", "_", ".", "/"].includes(before)));
    const after = firstChar(text.slice(domainRange[1]));
    const runsOn = after !== undefined && (isAsciiAlnum(after) || ["@", "-", "+"].includes(after));
    if (!glued && !runsOn && (hasProtocol || knownTld(domainText))) {
      spans.push({ start, end: start + trimUrlEnd(m[0]).length, hasProtocol });
    }
  }
  return spans;
}

function mayPrecedeHashtag(before: string | undefined): boolean {
  if (before === undefined) return true;
  // Variation selectors are marks, yet an emoji + selector still ends a word.
  if (before === "\ufe0e" || before === "\ufe0f") return true;
  if (before === "&") return false;
  return !HASHTAG_CHAR.test(before);
}

/** Every '#tag' candidate, before URLs are taken out. */
function rawHashtagSpans(text: string): TagSpan[] {
  const spans: TagSpan[] = [];
  let prev: string | undefined;
  let i = 0;
  while (i < text.length) {
    const c = String.fromCodePoint(text.codePointAt(i) ?? 0);
    const start = i;
    i += c.length;
    const before = prev;
    prev = c;
    if ((c !== "#" && c !== "＃") || !mayPrecedeHashtag(before)) continue;
    const rest = text.slice(i);
    // '#' + U+FE0F / U+20E3 is the keycap emoji, not a hashtag.
    if (rest.startsWith("\ufe0f") || rest.startsWith("\u20e3")) continue;
    const run = HASHTAG_RUN.exec(rest);
    if (!run || !HASHTAG_ALPHA.test(run[0])) continue;
    // A body glued to another '#' or to "://" is part of something else.
    const after = rest.slice(run[0].length);
    if (after.startsWith("#") || after.startsWith("＃") || after.startsWith("://")) continue;
    spans.push({ start, end: i + run[0].length, bodyStart: i, body: run[0] });
  }
  return spans;
}

/** Hashtags of `text` with their positions, leaving out those inside URLs. */
export function hashtagSpans(text: string): TagSpan[] {
  const tags = rawHashtagSpans(text);
  if (tags.length === 0) return tags;
  const urls = urlSpans(text);
  return tags.filter((t) => !urls.some((u) => t.start < u.end && u.start < t.end));
}

/** Hashtags in order of appearance, as written (without '#'). */
export function extractHashtags(text: string): string[] {
  return hashtagSpans(text).map((t) => t.body);
}

/** Normalizes a search tag as the server does; null if it cannot be a hashtag. */
export function normalizeTag(tag: string): string | null {
  const bare = tag.startsWith("#") || tag.startsWith("＃") ? tag.slice(1) : tag;
  const normalized = bare.normalize("NFC").toLowerCase();
  const run = HASHTAG_RUN.exec(normalized);
  if (!run || run[0].length !== normalized.length || !HASHTAG_ALPHA.test(normalized)) return null;
  return normalized;
}

/** Length of a tweet by the server's rule: code points after NFC, each URL as 23. */
export function tweetLength(text: string): number {
  const normalized = text.normalize("NFC");
  const urls = urlSpans(normalized);
  const urlChars = urls.reduce((n, u) => n + codePoints(normalized.slice(u.start, u.end)), 0);
  return codePoints(normalized) - urlChars + urls.length * URL_CHARS;
}

/** Checks a draft in the server's order: empty, forbidden characters, blank, too long. */
export function checkTweet(text: string): TweetCheck {
  const normalized = text.normalize("NFC");
  const length = tweetLength(normalized);
  const remaining = MAX_TWEET_CHARS - length;
  const result = (problem: TextProblem | null, message: string | null): TweetCheck => ({
    length,
    remaining,
    problem,
    message,
  });
  if (normalized.length === 0) return result("empty", null);
  const bad = [...normalized].find((c) => c === "\ufffe" || c === "\ufeff" || c === "\uffff");
  if (bad !== undefined) {
    const hex = (bad.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, "0");
    return result("invalid-char", `The text contains the invalid character U+${hex}; remove it.`);
  }
  if (WHITESPACE.test(normalized)) return result("blank", null);
  if (length > MAX_TWEET_CHARS) {
    const over = length - MAX_TWEET_CHARS;
    return result(
      "too-long",
      `Your tweet is ${length} characters; the limit is ${MAX_TWEET_CHARS}. Remove ${over} character${over === 1 ? "" : "s"} to post it.`,
    );
  }
  return result(null, null);
}
