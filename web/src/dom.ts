// A tiny element builder. Text always goes in through text nodes, never innerHTML, so
// nothing a user typed can become markup.

type Child = Node | string | null | undefined | false;
type Attrs = Record<string, string | number | boolean | null | undefined | EventListener>;

/** Creates an element: `on*` attributes become listeners, `false`/null attributes are left out. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (value === true) {
      el.setAttribute(key, "");
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, ...children);
  return el;
}

/** Appends children, skipping empty ones. */
export function append(el: Node, ...children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
  }
}

let ids = 0;
/** A document-unique id for label/aria wiring. */
export const uid = (prefix: string) => `${prefix}-${++ids}`;

/** "3 minutes ago"-style time, with the exact time in the title. */
export function timeAgo(iso: string): HTMLTimeElement {
  const when = new Date(iso);
  const secs = Math.max(0, Math.round((Date.now() - when.getTime()) / 1000));
  const label =
    secs < 60 ? `${secs}s` : secs < 3600 ? `${Math.floor(secs / 60)}m` : secs < 86400 ? `${Math.floor(secs / 3600)}h` : when.toLocaleDateString();
  return h("time", { datetime: iso, title: when.toLocaleString() }, label);
}

/** Formats a count for people: 1234 → "1,234". */
export const count = (n: number) => n.toLocaleString();
