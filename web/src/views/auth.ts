// Sign-up and log-in forms. The token goes to localStorage; logging out forgets it.

import { api, saveSession } from "../api";
import { h } from "../dom";
import { busy, ErrorBox, field } from "../ui";
import { go, type View } from "../router";

async function logInAs(handle: string, password: string): Promise<void> {
  const session = await api.logIn(handle, password);
  // The profile has the handle as it was registered, whatever case was typed.
  const profile = await api.profile(session.user_id);
  saveSession({ token: session.token, user_id: session.user_id, handle: profile.handle });
}

function authForm(kind: "login" | "signup"): View {
  const signup = kind === "signup";
  const handle = field(
    "Handle",
    h("input", { name: "handle", autocomplete: "username", required: true, autocapitalize: "none", spellcheck: "false", maxlength: 15 }),
    signup ? "1–15 letters, digits or _." : undefined,
  );
  const display = signup
    ? field("Display name (optional)", h("input", { name: "display_name", autocomplete: "name", maxlength: 50 }))
    : null;
  const password = field(
    "Password",
    h("input", { name: "password", type: "password", required: true, autocomplete: signup ? "new-password" : "current-password" }),
    signup ? "At least 8 characters." : undefined,
  );
  const submit = h("button", { type: "submit" }, signup ? "Sign up" : "Log in");
  const form = h("form", { class: "card", novalidate: true }, handle.row, display?.row, password.row);
  const errors = new ErrorBox(form);
  form.append(errors.el, submit);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    void busy(submit, async () => {
      errors.clear();
      try {
        if (signup) {
          await api.signUp(handle.control.value.trim(), password.control.value, display?.control.value.trim() || undefined);
        }
        await logInAs(handle.control.value.trim(), password.control.value);
        go("#/");
      } catch (err) {
        errors.show(err);
      }
    });
  });
  const other = signup
    ? h("p", {}, "Already have an account? ", h("a", { href: "#/login" }, "Log in"))
    : h("p", {}, "New to Chirp? ", h("a", { href: "#/signup" }, "Sign up"));
  const title = signup ? "Sign up" : "Log in";
  return { title, el: h("div", { class: "narrow" }, h("h1", { tabindex: -1 }, title), form, other) };
}

export const loginView = () => authForm("login");
export const signupView = () => authForm("signup");
