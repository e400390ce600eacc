// Editing your own profile: display name, bio, avatar URL and free-form extra fields.

import { api, type Profile } from "../api";
import { h } from "../dom";
import { announce, busy, ErrorBox, field } from "../ui";

/** Display value of an extra property: strings as written, anything else as JSON. */
export const extraText = (v: unknown) => (typeof v === "string" ? v : JSON.stringify(v));

interface ExtraRow {
  row: HTMLElement;
  key: HTMLInputElement;
  value: HTMLInputElement;
  original: { key: string; value: unknown } | null;
}

/** A collapsible form that PATCHes the profile and calls `onSaved`. */
export function profileEditor(p: Profile, onSaved: () => void): HTMLElement {
  const display = field("Display name", h("input", { name: "display_name", value: p.display_name, maxlength: 50 }));
  const bio = field("Bio", h("textarea", { name: "bio", rows: 3 }), "Up to 160 characters.");
  bio.control.value = p.bio;
  const avatar = field("Avatar URL", h("input", { name: "avatar_url", type: "url", value: p.avatar_url ?? "" }), "An http(s) link to an image, or empty.");
  const rows: ExtraRow[] = [];
  const extraList = h("div", { class: "extra-rows" });
  const extraSet = h("fieldset", { name: "extra" }, h("legend", {}, "Extra fields"), extraList);
  const addRow = (key: string, value: unknown, original: boolean) => {
    const n = rows.length + 1;
    const k = h("input", { "aria-label": `Field ${n} name`, value: key, class: "extra-key" });
    const v = h("input", { "aria-label": `Field ${n} value`, value: extraText(value), class: "extra-value" });
    const remove = h("button", { type: "button", class: "link", "aria-label": `Remove field ${n}` }, "Remove");
    const row = h("div", { class: "extra-row" }, k, v, remove);
    const entry: ExtraRow = { row, key: k, value: v, original: original ? { key, value } : null };
    remove.addEventListener("click", () => {
      row.hidden = true;
      k.value = "";
      add.focus();
    });
    rows.push(entry);
    extraList.append(row);
    return entry;
  };
  for (const [k, v] of Object.entries(p.extra)) addRow(k, v, true);
  const add = h("button", { type: "button", class: "secondary" }, "Add field");
  add.addEventListener("click", () => addRow("", "", false).key.focus());
  extraSet.append(add);

  const save = h("button", { type: "submit" }, "Save profile");
  const form = h("form", { class: "edit", novalidate: true }, display.row, bio.row, avatar.row, extraSet);
  const errors = new ErrorBox(form);
  form.append(errors.el, save);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    // Extra is merged on the server: send changed keys, and null for the ones removed.
    const extra: Record<string, unknown> = {};
    for (const r of rows) {
      const key = r.key.value.trim();
      if (r.original && r.original.key !== key) extra[r.original.key] = null;
      if (!key) continue;
      const unchanged = r.original && r.original.key === key && extraText(r.original.value) === r.value.value;
      extra[key] = unchanged ? r.original?.value : r.value.value;
    }
    void busy(save, async () => {
      errors.clear();
      try {
        await api.updateProfile(p.id, {
          display_name: display.control.value,
          bio: bio.control.value,
          avatar_url: avatar.control.value.trim(),
          extra,
        });
        announce("Profile saved");
        onSaved();
      } catch (err) {
        errors.show(err);
      }
    });
  });
  return h("details", { class: "card" }, h("summary", {}, "Edit profile"), form);
}
