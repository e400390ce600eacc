// The compose box: a live counter that measures exactly as the server does, an image
// attachment with preview, and errors from the API shown beside the field they concern.

import { api, ApiError, type Tweet } from "../api";
import { h, uid } from "../dom";
import { checkTweet, MAX_TWEET_CHARS } from "../text";
import { announce, busy, ErrorBox } from "../ui";

const IMAGE_TYPES = "image/png,image/jpeg,image/gif,image/webp";

/** A compose form; `onPosted` receives the created tweet. */
export function composeView(onPosted: (t: Tweet) => void): HTMLElement {
  const textId = uid("compose");
  const counterId = `${textId}-count`;
  const text = h("textarea", {
    id: textId,
    name: "text",
    rows: 3,
    placeholder: "What's happening?",
    "aria-describedby": counterId,
  });
  const counter = h("output", { id: counterId, class: "counter", for: textId, "aria-live": "off" }, String(MAX_TWEET_CHARS));
  const counterLabel = h("span", { class: "visually-hidden" }, " characters left");
  const file = h("input", { type: "file", name: "media", accept: IMAGE_TYPES, id: `${textId}-file`, class: "visually-hidden" });
  const fileLabel = h("label", { for: file.id, class: "button secondary" }, "Add image");
  const preview = h("div", { class: "preview", hidden: true });
  const post = h("button", { type: "submit", disabled: true }, "Post");
  const form = h(
    "form",
    { class: "compose", "aria-label": "Compose a tweet", novalidate: true },
    h("label", { for: textId, class: "visually-hidden" }, "Tweet text"),
    text,
    preview,
  );
  const errors = new ErrorBox(form);
  form.append(errors.el, h("div", { class: "compose-bar" }, file, fileLabel, h("span", { class: "spacer" }), h("span", {}, counter, counterLabel), post));

  let image: File | null = null;
  let previewUrl: string | null = null;
  let wasOver = false;

  const update = () => {
    const check = checkTweet(text.value);
    counter.textContent = String(check.remaining);
    counter.classList.toggle("warn", check.remaining <= 20 && check.remaining >= 0);
    counter.classList.toggle("over", check.remaining < 0);
    post.disabled = check.problem !== null;
    const over = check.message !== null;
    if (over) {
      errors.message(check.message ?? "");
      text.setAttribute("aria-invalid", "true");
      text.setAttribute("aria-describedby", `${counterId} ${errors.el.id}`);
    } else if (wasOver) {
      errors.clear();
      text.removeAttribute("aria-invalid");
      text.setAttribute("aria-describedby", counterId);
    }
    wasOver = over;
  };
  text.addEventListener("input", update);
  // Ctrl/Cmd+Enter posts, as in most compose boxes.
  text.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey) && !post.disabled) form.requestSubmit();
  });

  const clearImage = () => {
    image = null;
    file.value = "";
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    previewUrl = null;
    preview.replaceChildren();
    preview.hidden = true;
  };
  file.addEventListener("change", () => {
    const chosen = file.files?.[0] ?? null;
    clearImage();
    if (!chosen) return;
    if (!IMAGE_TYPES.split(",").includes(chosen.type)) {
      errors.message(`"${chosen.name}" is not a PNG, JPEG, GIF or WebP image.`);
      return;
    }
    image = chosen;
    previewUrl = URL.createObjectURL(chosen);
    const remove = h("button", { type: "button", class: "link" }, "Remove image");
    remove.addEventListener("click", () => {
      clearImage();
      fileLabel.focus();
    });
    preview.append(h("img", { src: previewUrl, alt: `Preview of ${chosen.name}` }), remove);
    preview.hidden = false;
  });

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (checkTweet(text.value).problem !== null) return;
    void busy(post, async () => {
      errors.clear();
      try {
        const media: string[] = [];
        if (image) media.push((await uploadImage(image)).id);
        const tweet = await api.post(text.value, media);
        text.value = "";
        clearImage();
        update();
        announce("Your tweet was posted");
        onPosted(tweet);
      } catch (err) {
        errors.show(err);
      }
    }).then(update);
  });
  return form;
}

/** Uploads one image; a server without media support gets a clear message. */
async function uploadImage(image: File) {
  try {
    return await api.upload(image);
  } catch (e) {
    if (e instanceof ApiError && (e.status === 404 || e.status === 405)) {
      throw new ApiError(e.status, e.title, "This Chirp server does not accept images yet. Remove the image to post.", "media");
    }
    // The upload's own field names (`file`, `content_type`) all mean the image input here.
    if (e instanceof ApiError && e.status !== 0 && e.status !== 401) throw new ApiError(e.status, e.title, e.detail, "media");
    throw e;
  }
}
