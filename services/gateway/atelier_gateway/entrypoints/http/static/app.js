// The workbench: header, language switch, hash routing to the pages, and session restore.
import * as Api from "./api.js";
import { clear, h } from "./dom.js";
import { language, setLanguage, t } from "./i18n.js";
import { errorBox } from "./ui.js";
import * as auth from "./pages/auth.js";
import * as dashboard from "./pages/dashboard.js";
import * as buy from "./pages/buy.js";
import * as create from "./pages/create.js";
import * as task from "./pages/task.js";
import * as lists from "./pages/lists.js";
import * as profile from "./pages/profile.js";
import * as admin from "./pages/admin.js";

const root = document.documentElement;
const config = { market: root.dataset.market || "local", defaultLanguage: root.dataset.lang || "en" };
setLanguage(config.defaultLanguage);

// [pattern, page, needs a session, admin only]
const ROUTES = [
  [/^\/login$/, auth.login, false],
  [/^\/signup$/, auth.signup, false],
  [/^\/phone$/, auth.phone, false],
  [/^\/$/, dashboard.render, true],
  [/^\/buy$/, buy.catalog, true],
  [/^\/orders$/, buy.orders, true],
  [/^\/orders\/([^/]+)$/, buy.order, true],
  [/^\/create$/, create.render, true],
  [/^\/tasks\/([^/]+)$/, task.render, true],
  [/^\/history$/, lists.history, true],
  [/^\/gallery$/, lists.gallery, true],
  [/^\/ledger$/, lists.ledger, true],
  [/^\/profile$/, profile.render, true],
  [/^\/admin$/, admin.users, true, true],
  [/^\/admin\/users\/([^/]+)$/, admin.user, true, true],
  [/^\/admin\/tasks$/, admin.tasks, true, true],
  [/^\/admin\/moderation$/, admin.moderation, true, true],
];

const NAV = [
  ["#/", "nav_dashboard"], ["#/create", "nav_create"], ["#/history", "nav_history"],
  ["#/gallery", "nav_gallery"], ["#/buy", "nav_buy"], ["#/orders", "nav_orders"],
  ["#/ledger", "nav_ledger"], ["#/profile", "nav_profile"],
];

let cleanup = null;
let restored = false;
let navigated = false;

export function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, search = ""] = raw.split("?");
  return { path, params: new URLSearchParams(search) };
}

function header() {
  const me = Api.currentUser();
  const langSwitch = h(
    "select",
    { id: "lang", "aria-label": t("language"), onchange: (e) => switchLanguage(e.target.value) },
    h("option", { value: "en", selected: language() === "en" }, "English"),
    h("option", { value: "zh", selected: language() === "zh" }, "简体中文"),
  );
  const { path } = parseHash();
  const links = me
    ? [...NAV, ...(me.role === "admin" ? [["#/admin", "nav_admin"]] : [])].map(([href, key]) =>
        h("a", { href, "aria-current": path === href.slice(1) ? "page" : null }, t(key)),
      )
    : [];
  return h(
    "div",
    { class: "bar" },
    h("a", { class: "brand", href: "#/" }, t("app_name")),
    me ? h("nav", { "aria-label": "main", class: "nav" }, links) : null,
    h(
      "div",
      { class: "bar-end" },
      langSwitch,
      me ? h("span", { class: "who", id: "who" }, me.name || me.email || me.phone || "") : null,
      me ? h("button", { type: "button", id: "logout", class: "secondary", onclick: logOut }, t("logout")) : null,
    ),
  );
}

async function switchLanguage(lang) {
  setLanguage(lang);
  route();
  if (Api.currentUser()) {
    try {
      const me = await Api.get("/v1/me");
      await Api.patch("/v1/me", { preferences: { ...(me.preferences || {}), language: lang } });
    } catch {
      // The switch still applies to this page; saving the preference is best effort.
    }
  }
}

async function logOut() {
  await Api.logOut().catch(() => null); // the session listener below goes to the log-in page
}

export async function applyPreferences() {
  try {
    const me = await Api.get("/v1/me");
    const lang = me.preferences?.language;
    if (lang === "en" || lang === "zh") setLanguage(lang);
    Api.updateUser(me);
  } catch {
    // The profile is read again by the pages that need it.
  }
}

async function route() {
  if (cleanup) {
    cleanup();
    cleanup = null;
  }
  const { path, params } = parseHash();
  if (!restored) {
    restored = true;
    if (Api.mayHaveSession() && (await Api.refresh().catch(() => false))) await applyPreferences();
  }
  const found = ROUTES.find(([pattern]) => pattern.test(path));
  const main = document.getElementById("main");
  const top = document.getElementById("top");
  if (!found) {
    navigate("#/");
    return;
  }
  const [pattern, page, needsSession, adminOnly] = found;
  const me = Api.currentUser();
  if (needsSession && !me) {
    const next = path === "/" ? "" : `?next=${encodeURIComponent(location.hash.slice(1))}`;
    navigate(`#/login${next}`);
    return;
  }
  if (!needsSession && me) {
    navigate(`#${params.get("next") || "/"}`);
    return;
  }
  clear(top).append(header());
  clear(main);
  if (adminOnly && me.role !== "admin") {
    main.append(errorBox({ message: t("forbidden") }));
    return;
  }
  const args = path.match(pattern).slice(1).map(decodeURIComponent);
  try {
    const result = await page(main, { args, params, config, navigate });
    if (typeof result === "function") cleanup = result;
  } catch (e) {
    main.append(errorBox(e));
  }
  // After a navigation inside the app, the focus goes to the new page's heading (screen readers
  // announce it); on the first page it stays at the top, so Tab reaches "Skip to content" first.
  const title = document.getElementById("page-title");
  if (title && navigated && document.activeElement === document.body) title.focus({ preventScroll: true });
  navigated = true;
}

Api.onSessionChange((me) => {
  if (!me && parseHash().path !== "/login") navigate("#/login");
});
// The skip link moves the focus; it must not become a route (the routes live in the hash).
document.querySelector(".skip")?.addEventListener("click", (e) => {
  e.preventDefault();
  document.getElementById("main").focus();
});
window.addEventListener("hashchange", route);
route();
