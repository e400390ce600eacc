// Shared pieces of the interface: error display, the live announcer, lists that page.

import { ApiError } from "./api";
import { h, uid } from "./dom";

/** Says something to screen readers without moving focus (new tweets, completed actions). */
export function announce(message: string): void {
  const region = document.getElementById("announcer");
  if (!region) return;
  // Clearing first makes repeated identical messages announce again.
  region.textContent = "";
  window.setTimeout(() => (region.textContent = message), 50);
}

/** A message area for a form; shows API errors and marks the offending input. */
export class ErrorBox {
  readonly el: HTMLParagraphElement;
  private marked: HTMLElement[] = [];

  constructor(private readonly scope: HTMLElement) {
    this.el = h("p", { class: "error", role: "alert", id: uid("error"), hidden: true });
  }

  /** Shows `detail` and highlights the input named by `field`, if the form has one. */
  show(err: unknown): void {
    this.clear();
    const e = err instanceof ApiError ? err : new ApiError(0, "Error", String(err), null);
    this.el.textContent = e.detail ? capitalize(e.detail) : e.title;
    this.el.hidden = false;
    if (e.field) {
      // Fields come as JSON paths ("extra.city", "media[0]"): the first name picks the input.
      const name = e.field.split(/[.[]/)[0];
      const input = this.scope.querySelector<HTMLElement>(`[name="${CSS.escape(name)}"]`);
      if (input) {
        input.setAttribute("aria-invalid", "true");
        const described = input.getAttribute("aria-describedby") ?? "";
        input.setAttribute("aria-describedby", `${described} ${this.el.id}`.trim());
        input.focus();
        this.marked.push(input);
      }
    }
  }

  /** Shows a message that is not from the API. */
  message(text: string): void {
    this.clear();
    this.el.textContent = text;
    this.el.hidden = false;
  }

  clear(): void {
    this.el.hidden = true;
    this.el.textContent = "";
    for (const input of this.marked) {
      input.removeAttribute("aria-invalid");
      const rest = (input.getAttribute("aria-describedby") ?? "").split(" ").filter((id) => id && id !== this.el.id);
      if (rest.length) input.setAttribute("aria-describedby", rest.join(" "));
      else input.removeAttribute("aria-describedby");
    }
    this.marked = [];
  }
}

const capitalize = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

/** A labelled input with an optional hint; returns the wrapper and the control. */
export function field<T extends HTMLInputElement | HTMLTextAreaElement>(
  label: string,
  control: T,
  hint?: string,
): { row: HTMLDivElement; control: T } {
  const id = control.id || uid("f");
  control.id = id;
  const hintEl = hint ? h("small", { id: `${id}-hint`, class: "hint" }, hint) : null;
  if (hintEl) control.setAttribute("aria-describedby", hintEl.id);
  return { row: h("div", { class: "field" }, h("label", { for: id }, label), control, hintEl), control };
}

/** Disables a button while `work` runs, so a double click does not send twice. */
export async function busy<T>(button: HTMLButtonElement, work: () => Promise<T>): Promise<T> {
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    return await work();
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}

/** A list fed page by page through `next_cursor`, with a "Load more" button. */
export class PagedList<T> {
  readonly el: HTMLElement;
  readonly list: HTMLOListElement;
  private readonly more: HTMLButtonElement;
  private readonly errors: ErrorBox;
  private cursor: string | null = null;
  private readonly empty: HTMLParagraphElement;

  constructor(
    label: string,
    emptyText: string,
    private readonly fetchPage: (cursor: string | null) => Promise<{ items: T[]; next: string | null }>,
    private readonly render: (item: T) => HTMLElement,
  ) {
    this.list = h("ol", { class: "items", "aria-label": label });
    this.more = h("button", { type: "button", class: "more", hidden: true, onclick: () => void this.loadMore() }, "Load more");
    this.empty = h("p", { class: "empty", hidden: true }, emptyText);
    this.el = h("section", { class: "paged" }, this.list, this.empty, this.more);
    this.errors = new ErrorBox(this.el);
    this.el.insertBefore(this.errors.el, this.more);
  }

  /** Loads the first page, replacing what is shown. */
  async reload(): Promise<void> {
    this.cursor = null;
    this.list.replaceChildren();
    await this.page(null);
  }

  private async loadMore(): Promise<void> {
    const before = this.list.children.length;
    await busy(this.more, () => this.page(this.cursor));
    // Keyboard users land on the first new item rather than losing their place.
    const first = this.list.children[before]?.querySelector<HTMLElement>("[data-focus]");
    first?.focus();
  }

  private async page(cursor: string | null): Promise<void> {
    this.errors.clear();
    try {
      const { items, next } = await this.fetchPage(cursor);
      for (const item of items) this.list.append(h("li", {}, this.render(item)));
      this.cursor = next;
      this.more.hidden = next === null;
      this.empty.hidden = this.list.children.length > 0;
    } catch (e) {
      this.errors.show(e);
    }
  }

  /** Puts items at the top (newest first), e.g. fresh tweets from polling. */
  prepend(items: T[]): void {
    const nodes = items.map((item) => h("li", {}, this.render(item)));
    this.list.prepend(...nodes);
    this.empty.hidden = this.list.children.length > 0;
  }
}
