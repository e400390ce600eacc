// The compose counter must agree with the server. Three sources of truth: cases mirrored from
// engine/src/text.rs, twitter-text's conformance files (when ../shared/conformance is present),
// and, when CHIRP_COUNTER_CASES names a file, lengths the Rust engine computed for many texts
// (server/tests/web_client.rs writes it).
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";

import { checkTweet, extractHashtags, normalizeTag, tweetLength, urlSpans } from "./text";

const here = dirname(fileURLToPath(import.meta.url));

function conformanceDir(): string | null {
  const configured = process.env.CHIRP_CONFORMANCE_DIR;
  const base = configured ?? resolve(here, "../../../shared/conformance/twitter-text");
  const nested = join(base, "twitter-text");
  const dir = existsSync(join(base, "extract.yml")) || !existsSync(nested) ? base : nested;
  return existsSync(dir) ? dir : null;
}

interface Case<E> {
  description: string;
  text: string;
  expected: E;
}

function loadSection<E>(file: string, section: string): Case<E>[] | null {
  const dir = conformanceDir();
  if (dir === null || !existsSync(join(dir, file))) {
    console.log(`note: ${file} is absent; skipping its ${section} conformance cases`);
    return null;
  }
  const doc = parse(readFileSync(join(dir, file), "utf8")) as { tests: Record<string, Case<E>[]> };
  return doc.tests[section] ?? [];
}

const found = (text: string) => urlSpans(text).map((u) => text.slice(u.start, u.end));

describe("tweet length (mirrors engine/src/text.rs)", () => {
  it("counts code points after NFC", () => {
    expect(tweetLength("a".repeat(140))).toBe(140);
    expect(checkTweet("a".repeat(140)).problem).toBeNull();
    expect(checkTweet("a".repeat(141))).toMatchObject({ problem: "too-long", length: 141, remaining: -1 });
    // 140 decomposed "é" are 280 code points but 140 once composed.
    expect(checkTweet("e\u0301".repeat(140)).problem).toBeNull();
    // Astral characters are one code point each, two UTF-16 units.
    expect(tweetLength("😀".repeat(70))).toBe(70);
  });

  it("counts each URL as 23", () => {
    const pad = "a".repeat(116);
    expect(checkTweet(`${pad} https://example.com/a/very/long/path`).problem).toBeNull();
    expect(checkTweet(`${pad}x http://t.co/x`)).toMatchObject({ problem: "too-long", length: 141 });
    expect(tweetLength("Mr.Smith e.g.")).toBe(13);
    expect(found("Mr.Smith e.g. a.b")).toEqual([]);
  });

  it("trims trailing punctuation from URLs", () => {
    const text = "(see example.com/a_(b)). and foo.co.jp/x?q=1, 見てexample.comだよ";
    expect(found(text)).toEqual(["example.com/a_(b)", "foo.co.jp/x?q=1", "example.com"]);
  });

  it("reports empty, blank and forbidden text like the server", () => {
    expect(checkTweet("").problem).toBe("empty");
    expect(checkTweet(" \n\t").problem).toBe("blank");
    expect(checkTweet("\u0085").problem).toBe("blank");
    for (const c of ["\ufffe", "\ufeff", "\uffff"]) {
      expect(checkTweet(`hello ${c} world`).problem).toBe("invalid-char");
    }
  });
});

describe("hashtags (mirrors engine/src/text.rs)", () => {
  it("skips keycaps, URL fragments and entities", () => {
    expect(extractHashtags("#\ufe0f\u20e3 #\u20e3")).toEqual([]);
    expect(extractHashtags("see https://example.com/#intro")).toEqual([]);
    expect(extractHashtags("a&#b #c")).toEqual(["c"]);
    expect(extractHashtags("Hello #Chirp and #日本語!")).toEqual(["Chirp", "日本語"]);
  });

  it("normalizes search tags", () => {
    expect(normalizeTag("#Rust")).toBe("rust");
    expect(normalizeTag("＃日本語")).toBe("日本語");
    expect(normalizeTag("#Cafe\u0301")).toBe("caf\u00e9");
    for (const bad of ["#16", "", "#", "a b", "##rust"]) expect(normalizeTag(bad)).toBeNull();
  });
});

describe("twitter-text conformance", () => {
  const tweets = loadSection<boolean>("validate.yml", "tweets");
  it.skipIf(tweets === null)("validate.tweets", () => {
    const failures = (tweets ?? []).filter((c) => (checkTweet(c.text).problem === null) !== c.expected);
    expect(failures.map((c) => c.description)).toEqual([]);
  });

  for (const section of ["hashtags", "hashtags_from_astral"]) {
    const cases = loadSection<string[]>("extract.yml", section);
    it.skipIf(cases === null)(`extract.${section}`, () => {
      const failures = (cases ?? [])
        .filter((c) => JSON.stringify(extractHashtags(c.text)) !== JSON.stringify(c.expected))
        .map((c) => `${c.description}: ${JSON.stringify(extractHashtags(c.text))}`);
      expect(failures).toEqual([]);
    });
  }
});

interface EngineCase {
  text: string;
  length: number;
  valid: boolean;
  hashtags: string[];
}

describe("agreement with the Rust engine", () => {
  const path = process.env.CHIRP_COUNTER_CASES;
  it.skipIf(!path)("every text the engine measured", () => {
    const cases = JSON.parse(readFileSync(path ?? "", "utf8")) as EngineCase[];
    expect(cases.length).toBeGreaterThan(0);
    const failures = cases
      .map((c) => {
        const check = checkTweet(c.text);
        const got = { length: check.length, valid: check.problem === null, hashtags: extractHashtags(c.text) };
        const want = { length: c.length, valid: c.valid, hashtags: c.hashtags };
        return JSON.stringify(got) === JSON.stringify(want)
          ? null
          : `${JSON.stringify(c.text)}: engine ${JSON.stringify(want)}, client ${JSON.stringify(got)}`;
      })
      .filter((f) => f !== null);
    expect(failures).toEqual([]);
  });
});
