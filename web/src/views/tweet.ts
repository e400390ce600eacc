// One tweet as an <article>: author, time, text with hashtag and URL links, images, and a
// two-step delete for the author.

import { api, currentSession, type Tweet } from "../api";
import { append, h, timeAgo } from "../dom";
import { hashtagSpans, urlSpans } from "../text";
import { announce, busy, ErrorBox } from "../ui";

/** The hash route of a hashtag's search page. */
export const tagHref = (tag: string) => `#/tags/${encodeURIComponent(tag)}`;

/** The tweet text as nodes, with hashtags linking to their search and URLs to themselves. */
export function richText(text: string): Node[] {
  type Piece = { start: number; end: number; node: () => Node };
  const pieces: Piece[] = [
    ...hashtagSpans(text).map((t) => ({
      start: t.start,
      end: t.end,
      node: () => h("a", { href: tagHref(t.body), class: "tag" }, text.slice(t.start, t.end)),
    })),
    ...urlSpans(text).map((u) => {
      const raw = text.slice(u.start, u.end);
      const href = u.hasProtocol ? raw : `http://${raw}`;
      return { start: u.start, end: u.end, node: () => h("a", { href, rel: "noopener noreferrer nofollow ugc", target: "_blank" }, raw) };
    }),
  ].sort((a, b) => a.start - b.start);
  const out: Node[] = [];
  let at = 0;
  for (const p of pieces) {
    if (p.start < at) continue; // overlapping spans cannot happen, but never duplicate text
    if (p.start > at) out.push(document.createTextNode(text.slice(at, p.start)));
    out.push(p.node());
    at = p.end;
  }
  if (at < text.length) out.push(document.createTextNode(text.slice(at)));
  return out;
}

/** Renders a tweet; `onDeleted` runs after the author deletes it. */
export function tweetView(t: Tweet, onDeleted?: () => void): HTMLElement {
  const me = currentSession();
  const article = h("article", { class: "tweet", "data-tweet-id": t.id, "aria-labelledby": `tw-${t.id}-by` });
  const author = h("a", { href: `#/@${t.author_handle}`, class: "author", id: `tw-${t.id}-by`, "data-focus": true }, `@${t.author_handle}`);
  const images = t.media.length
    ? h(
        "div",
        { class: `media media-${Math.min(t.media.length, 4)}` },
        ...t.media.map((m) =>
          h("img", {
            src: m.url,
            alt: `Image attached by @${t.author_handle}`,
            width: m.width || null,
            height: m.height || null,
            loading: "lazy",
            decoding: "async",
          }),
        ),
      )
    : null;
  const errors = new ErrorBox(article);
  const actions = h("div", { class: "actions" });
  if (me && me.user_id === t.author_id) {
    const del = h("button", { type: "button", class: "link danger" }, "Delete");
    const confirm = h("button", { type: "button", class: "danger" }, "Delete this tweet");
    const cancel = h("button", { type: "button", class: "link" }, "Cancel");
    const confirmRow = h("span", { class: "confirm", hidden: true }, confirm, cancel);
    del.addEventListener("click", () => {
      del.hidden = true;
      confirmRow.hidden = false;
      confirm.focus();
    });
    cancel.addEventListener("click", () => {
      confirmRow.hidden = true;
      del.hidden = false;
      del.focus();
    });
    confirm.addEventListener("click", () =>
      void busy(confirm, async () => {
        try {
          await api.deleteTweet(t.id);
          announce("Tweet deleted");
          article.closest("li")?.remove();
          onDeleted?.();
        } catch (e) {
          errors.show(e);
        }
      }),
    );
    actions.append(del, confirmRow);
  }
  append(
    article,
    h("header", {}, author, " · ", timeAgo(t.created_at)),
    h("p", { class: "text" }, ...richText(t.text)),
    images,
    errors.el,
    actions,
  );
  return article;
}
