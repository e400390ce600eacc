// A profile: name, bio, extra fields, counts, follow/unfollow, the person's tweets, and an
// edit form on your own profile.

import { api, currentSession, type Profile, type Tweet } from "../api";
import { append, count, h } from "../dom";
import type { View } from "../router";
import { announce, busy, ErrorBox, PagedList } from "../ui";
import { extraText, profileEditor } from "./profile_edit";
import { tweetView } from "./tweet";

/** How many pages of your own following list are read to learn whether you follow someone. */
const FOLLOW_SCAN_PAGES = 10;

/** Whether the logged-in user follows `id`; null when the list is too long to tell cheaply. */
async function follows(me: string, id: string): Promise<boolean | null> {
  let cursor: string | null = null;
  for (let i = 0; i < FOLLOW_SCAN_PAGES; i++) {
    const page = await api.following(me, cursor, 100);
    if (page.users.some((u) => u.id === id)) return true;
    if (page.next_cursor === null) return false;
    cursor = page.next_cursor;
  }
  return null;
}

function header(p: Profile, onChange: () => void): HTMLElement {
  const me = currentSession();
  const el = h("section", { class: "profile card", "aria-labelledby": "profile-name" });
  const errors = new ErrorBox(el);
  const extras = Object.entries(p.extra);
  append(
    el,
    p.avatar_url ? h("img", { class: "avatar", src: p.avatar_url, alt: "", width: 64, height: 64 }) : null,
    h("h1", { id: "profile-name", tabindex: -1 }, p.display_name || p.handle),
    h("p", { class: "handle" }, `@${p.handle}`),
    p.bio ? h("p", { class: "bio" }, p.bio) : null,
    extras.length
      ? h("dl", { class: "extra" }, ...extras.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, extraText(v))]))
      : null,
    h(
      "ul",
      { class: "counts", "aria-label": "Counts" },
      h("li", {}, h("strong", {}, count(p.tweet_count)), " tweets"),
      h("li", {}, h("a", { href: `#/@${p.handle}/followers` }, h("strong", { "data-count": "followers" }, count(p.followers_count)), " followers")),
      h("li", {}, h("a", { href: `#/@${p.handle}/following` }, h("strong", {}, count(p.following_count)), " following")),
    ),
  );
  if (me && me.user_id !== p.id) {
    const button = h("button", { type: "button", class: "follow", "aria-pressed": "false" }, "Follow");
    let following = false;
    const show = (on: boolean) => {
      following = on;
      button.textContent = on ? "Unfollow" : "Follow";
      button.setAttribute("aria-pressed", String(on));
      button.classList.toggle("secondary", on);
    };
    button.addEventListener("click", () =>
      void busy(button, async () => {
        errors.clear();
        try {
          await api.follow(me.user_id, p.id, !following);
          show(!following);
          announce(following ? `You follow @${p.handle}` : `You unfollowed @${p.handle}`);
          onChange();
        } catch (e) {
          errors.show(e);
        }
      }),
    );
    // Follow is idempotent, so when the answer is unknown showing "Follow" is harmless.
    void follows(me.user_id, p.id).then((on) => show(on === true), () => show(false));
    el.append(button);
  }
  el.append(errors.el);
  return el;
}

export function profileView(handle: string): View {
  const el = h("div", { class: "profile-page" }, h("p", { class: "loading" }, "Loading…"));
  const top = h("div", {});
  const load = async (focus: boolean) => {
    try {
      const p = await api.profile(handle);
      const me = currentSession();
      top.replaceChildren(header(p, () => void load(false)));
      if (me && me.user_id === p.id) top.append(profileEditor(p, () => void load(true)));
      if (focus) top.querySelector<HTMLElement>("h1")?.focus();
      document.title = `${p.display_name || p.handle} (@${p.handle}) · Chirp`;
      return true;
    } catch (e) {
      const errors = new ErrorBox(top);
      top.replaceChildren(h("h1", { tabindex: -1 }, `@${handle}`), errors.el);
      errors.show(e);
      return false;
    }
  };
  void load(false).then((found) => {
    el.replaceChildren(top);
    if (!found) return;
    const tweets = new PagedList<Tweet>(
      `Tweets by @${handle}`,
      `@${handle} has not tweeted yet.`,
      async (cursor) => {
        const page = await api.userTweets(handle, cursor);
        return { items: page.tweets, next: page.next_cursor };
      },
      (t) => tweetView(t, () => void load(false)),
    );
    el.append(h("h2", {}, "Tweets"), tweets.el);
    void tweets.reload();
  });
  return { title: `@${handle}`, el };
}

export function userListView(handle: string, which: "followers" | "following"): View {
  const title = which === "followers" ? `People following @${handle}` : `People @${handle} follows`;
  const list = new PagedList<Profile>(
    title,
    which === "followers" ? `Nobody follows @${handle} yet.` : `@${handle} does not follow anyone yet.`,
    async (cursor) => {
      const page = which === "followers" ? await api.followers(handle, cursor) : await api.following(handle, cursor);
      return { items: page.users, next: page.next_cursor };
    },
    (u) =>
      h(
        "div",
        { class: "user" },
        h("a", { href: `#/@${u.handle}`, "data-focus": true }, h("strong", {}, u.display_name || u.handle), ` @${u.handle}`),
        u.bio ? h("p", {}, u.bio) : null,
      ),
  );
  void list.reload();
  const el = h("div", {}, h("h1", { tabindex: -1 }, title), h("p", {}, h("a", { href: `#/@${handle}` }, `Back to @${handle}`)), list.el);
  return { title, el };
}
