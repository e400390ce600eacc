// Chirp's web client: the page shell (header, navigation, live region) and the router that
// swaps views in <main>.

import "../style.css";
import { api, clearSession, currentSession, setExpiredHandler } from "./api";
import { h } from "./dom";
import { go, parseRoute, type Route, type View } from "./router";
import { announce } from "./ui";
import { loginView, signupView } from "./views/auth";
import { homeView } from "./views/home";
import { profileView, userListView } from "./views/profile";
import { searchView } from "./views/search";

const main = document.getElementById("main") as HTMLElement;
const nav = document.getElementById("nav") as HTMLElement;
let current: View | null = null;
let notice: string | null = null;

function renderNav(route: Route): void {
  const me = currentSession();
  const link = (href: string, label: string, active: boolean) =>
    h("li", {}, h("a", { href, "aria-current": active ? "page" : null }, label));
  const items = me
    ? [
        link("#/", "Home", route.name === "home"),
        link("#/search", "Search", route.name === "search"),
        link(`#/@${me.handle}`, "Profile", route.name === "profile" && route.handle.toLowerCase() === me.handle.toLowerCase()),
        h("li", {}, h("button", { type: "button", class: "link", onclick: logOut }, `Log out @${me.handle}`)),
      ]
    : [
        link("#/search", "Search", route.name === "search"),
        link("#/login", "Log in", route.name === "login"),
        link("#/signup", "Sign up", route.name === "signup"),
      ];
  nav.replaceChildren(h("ul", {}, ...items));
}

function logOut(): void {
  // End the session on the server too (the token stops working at once); the page logs out
  // whatever the answer, so a server that cannot be reached does not keep anyone logged in.
  void api
    .logOut()
    .catch(() => undefined)
    .finally(() => {
      clearSession();
      notice = "You are logged out.";
      go("#/login");
    });
}

function viewFor(route: Route): View {
  const me = currentSession();
  switch (route.name) {
    case "home":
      return me ? homeView() : loginView();
    case "login":
      return loginView();
    case "signup":
      return signupView();
    case "search":
      return searchView(route.tag);
    case "profile":
      return profileView(route.handle);
    case "users":
      return userListView(route.handle, route.which);
    case "missing":
      return {
        title: "Not found",
        el: h("div", {}, h("h1", { tabindex: -1 }, "Page not found"), h("p", {}, "Nothing lives at this address. ", h("a", { href: "#/" }, "Go home"), ".")),
      };
  }
}

function render(first: boolean): void {
  // An in-page anchor (`#main`) is not a route: keep the view, or show home on first load.
  const route = parseRoute(location.hash) ?? (first ? parseRoute("") : null);
  if (route === null) return;
  current?.dispose?.();
  current = viewFor(route);
  renderNav(route);
  const parts: HTMLElement[] = [];
  if (notice) {
    parts.push(h("p", { class: "notice", role: "status" }, notice));
    notice = null;
  }
  main.replaceChildren(...parts, current.el);
  document.title = `${current.title} · Chirp`;
  // Move focus to the new heading so screen readers and keyboards start at the new content;
  // not on first load, where the browser's own focus order should win.
  if (!first) {
    main.querySelector<HTMLElement>("h1")?.focus();
    window.scrollTo(0, 0);
  }
}

setExpiredHandler(() => {
  notice = "Your session has ended. Log in again.";
  announce(notice);
  go("#/login");
});

// The skip link focuses <main> without touching the hash, which holds the route.
document.querySelector(".skip")?.addEventListener("click", (e) => {
  e.preventDefault();
  main.focus();
});

window.addEventListener("hashchange", () => render(false));
render(true);
