// Hashtag search: a form, and results newest first with "Load more".

import { api, type Tweet } from "../api";
import { h } from "../dom";
import type { View } from "../router";
import { normalizeTag } from "../text";
import { ErrorBox, field, PagedList } from "../ui";
import { tagHref, tweetView } from "./tweet";

export function searchView(tag: string | null): View {
  const input = field("Hashtag", h("input", { name: "hashtag", type: "search", value: tag ? `#${tag}` : "", placeholder: "#rust" }));
  const submit = h("button", { type: "submit" }, "Search");
  const form = h("form", { role: "search", class: "search", novalidate: true }, input.row);
  const errors = new ErrorBox(form);
  form.append(errors.el, submit);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const wanted = normalizeTag(input.control.value.trim());
    if (wanted === null) {
      errors.message("Enter a hashtag: letters or digits, not only digits, without spaces (for example #rust).");
      input.control.setAttribute("aria-invalid", "true");
      input.control.focus();
      return;
    }
    location.hash = tagHref(wanted);
  });
  const title = tag ? `#${tag}` : "Search";
  const el = h("div", {}, h("h1", { tabindex: -1 }, tag ? `Tweets with #${tag}` : "Search hashtags"), form);
  if (tag) {
    const list = new PagedList<Tweet>(
      `Tweets with #${tag}`,
      `No tweets with #${tag} yet.`,
      async (cursor) => {
        const page = await api.searchTag(tag, cursor);
        return { items: page.tweets, next: page.next_cursor };
      },
      (t) => tweetView(t),
    );
    el.append(list.el);
    void list.reload();
  }
  return { title, el };
}
