// The home feed: compose on top, newest first, "Load more" through cursors, and polling
// that slips new tweets in at the top without reloading the page.

import { api, newer, type Tweet } from "../api";
import { h } from "../dom";
import type { View } from "../router";
import { announce, PagedList } from "../ui";
import { composeView } from "./compose";
import { tweetView } from "./tweet";

/** How often the feed asks for new tweets while the page is visible. */
const POLL_MS = 3000;

export function homeView(): View {
  let newest: string | null = null;
  const seen = new Set<string>();
  const track = (tweets: Tweet[]) => {
    for (const t of tweets) {
      seen.add(t.id);
      if (newest === null || newer(t.id, newest)) newest = t.id;
    }
  };
  const list = new PagedList<Tweet>(
    "Your feed",
    "Your feed is empty. Post something, or follow people to see their tweets here.",
    async (cursor) => {
      const page = await api.feed(cursor);
      const fresh = page.tweets.filter((t) => !seen.has(t.id));
      track(fresh);
      return { items: fresh, next: page.next_cursor };
    },
    (t) => tweetView(t, () => seen.delete(t.id)),
  );
  const compose = composeView((t) => {
    track([t]);
    list.prepend([t]);
  });

  const poll = async () => {
    if (document.hidden) return;
    try {
      const page = await api.feed(null);
      const fresh = page.tweets.filter((t) => !seen.has(t.id) && (newest === null || newer(t.id, newest)));
      if (fresh.length === 0) return;
      if (fresh.length === page.tweets.length && page.next_cursor !== null) {
        // A whole page of new tweets may hide a gap before what is shown: start over.
        seen.clear();
        newest = null;
        await list.reload();
      } else {
        track(fresh);
        list.prepend(fresh);
      }
      announce(fresh.length === 1 ? "1 new tweet" : `${fresh.length} new tweets`);
    } catch {
      // Polling is best effort; the next round tries again and actions report their own errors.
    }
  };
  const timer = window.setInterval(() => void poll(), POLL_MS);
  void list.reload();

  const el = h(
    "div",
    {},
    h("h1", { tabindex: -1 }, "Home"),
    compose,
    h("h2", { class: "visually-hidden" }, "Feed"),
    list.el,
  );
  return { title: "Home", el, dispose: () => window.clearInterval(timer) };
}
