// Hash routing (`#/`, `#/@alice`, `#/tags/rust`), so no client route can collide with an API
// path: the server only ever sees `/` and `/app/...` for the page itself.

/** What a route renders: a title, the content, and what to stop when leaving it. */
export interface View {
  title: string;
  el: HTMLElement;
  dispose?: () => void;
}

/** A parsed route. */
export type Route =
  | { name: "home" }
  | { name: "login" }
  | { name: "signup" }
  | { name: "search"; tag: string | null }
  | { name: "profile"; handle: string }
  | { name: "users"; handle: string; which: "followers" | "following" }
  | { name: "missing"; path: string };

/** Parses `location.hash`; null for in-page anchors such as `#main`. */
export function parseRoute(hash: string): Route | null {
  if (hash !== "" && hash !== "#" && !hash.startsWith("#/")) return null;
  const path = hash.replace(/^#\/?/, "");
  const parts = path.split("/").map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return p;
    }
  });
  const [first = "", second, third] = parts;
  if (first === "") return { name: "home" };
  if (first === "login" && parts.length === 1) return { name: "login" };
  if (first === "signup" && parts.length === 1) return { name: "signup" };
  if (first === "search" && parts.length === 1) return { name: "search", tag: null };
  if (first === "tags" && second && parts.length === 2) return { name: "search", tag: second.replace(/^[#＃]/, "") };
  if (first.startsWith("@") && first.length > 1) {
    const handle = first.slice(1);
    if (parts.length === 1) return { name: "profile", handle };
    if ((second === "followers" || second === "following") && third === undefined) return { name: "users", handle, which: second };
  }
  return { name: "missing", path };
}

/** Goes to a route, re-rendering even when it is already the current one (logging in at `#/`
 * shows the login form there, and must then show the feed at the same address). */
export function go(hash: string): void {
  const here = location.hash === "" ? "#/" : location.hash;
  if (here === hash) window.dispatchEvent(new HashChangeEvent("hashchange"));
  else location.hash = hash;
}
