// Shared pieces of the pages: headings, messages, tables, empty states, paging.
import { h } from "./dom.js";
import { t } from "./i18n.js";

export function heading(text) {
  const el = h("h1", { tabindex: "-1", id: "page-title" }, text);
  document.title = `${text} · Atelier`;
  return el;
}

export function message(text, kind = "info", ...extra) {
  return h("p", { class: `msg msg-${kind}`, role: kind === "error" ? "alert" : "status" }, text, ...extra);
}

export function errorText(e) {
  if (e && e.status === 0) return t("offline");
  return t("error", { why: e?.message || String(e) });
}

export function errorBox(e) {
  return message(errorText(e), "error");
}

export function empty(text, href, linkText) {
  return h("div", { class: "empty" }, h("p", null, text), href ? h("a", { href, class: "button" }, linkText) : null);
}

export function badge(status) {
  return h("span", { class: `badge badge-${status}` }, t(`st_${status}`));
}

// columns: [[header, row => cell]]
export function table(columns, rows, caption) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      null,
      caption ? h("caption", { class: "sr-only" }, caption) : null,
      h("thead", null, h("tr", null, columns.map(([head]) => h("th", { scope: "col" }, head)))),
      h("tbody", null, rows.map((row) => h("tr", null, columns.map(([, cell]) => h("td", null, cell(row)))))),
    ),
  );
}

// "Next page" / "First page" for a list answered with next_page_token.
export function pager(nextToken, hasPrevious, go) {
  return h(
    "nav",
    { class: "pager", "aria-label": "pages" },
    hasPrevious ? h("button", { type: "button", class: "secondary", onclick: () => go("") }, t("first_page")) : null,
    nextToken ? h("button", { type: "button", onclick: () => go(nextToken) }, t("next_page")) : null,
  );
}

export function field(label, input, hint) {
  const id = input.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  input.id = id;
  const hintEl = hint ? h("small", { id: `${id}-hint` }, hint) : null;
  if (hintEl) input.setAttribute("aria-describedby", hintEl.id);
  return h("div", { class: "field" }, h("label", { for: id }, label), input, hintEl);
}

export function select(name, options, value) {
  return h(
    "select",
    { name },
    options.map(([v, label]) => h("option", { value: v, selected: v === value }, label)),
  );
}

export function busy(button, on, text) {
  button.disabled = on;
  if (text) button.textContent = text;
}
