// History (tasks with filters), gallery, ledger: paged lists, newest first.
import * as Api from "../api.js";
import { h, safeUrl } from "../dom.js";
import { formatDate, t } from "../i18n.js";
import { badge, empty, heading, pager, select, table } from "../ui.js";

const TYPES = ["text_to_image", "basic_clean", "model_pose12"];
const STATUSES = ["pending", "processing", "succeeded", "failed", "cancelled"];

function hashWith(base, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
  const s = q.toString();
  return s ? `${base}?${s}` : base;
}

export async function history(main, ctx) {
  main.append(heading(t("history")));
  const status = ctx.params.get("status") || "";
  const type = ctx.params.get("type") || "";
  const token = ctx.params.get("page") || "";
  const typeSel = select("type", [["", t("all")], ...TYPES.map((ty) => [ty, t(`type_${ty}`)])], type);
  const statusSel = select("status", [["", t("all")], ...STATUSES.map((s) => [s, t(`st_${s}`)])], status);
  typeSel.id = "filter-type";
  statusSel.id = "filter-status";
  const apply = () => ctx.navigate(hashWith("#/history", { type: typeSel.value, status: statusSel.value }));
  typeSel.addEventListener("change", apply);
  statusSel.addEventListener("change", apply);
  main.append(
    h(
      "form",
      { class: "filters", role: "search", onsubmit: (e) => (e.preventDefault(), apply()) },
      h("label", { for: "filter-type" }, t("type")), typeSel,
      h("label", { for: "filter-status" }, t("status")), statusSel,
    ),
  );
  const page = await Api.get(`/v1/tasks${Api.query({ type, status, page_token: token })}`);
  if (!page.items.length) {
    main.append(empty(t("no_tasks"), "#/create", t("nav_create")));
    return;
  }
  main.append(
    table(
      [
        [t("type"), (tk) => h("a", { href: `#/tasks/${encodeURIComponent(tk.id)}` }, t(`type_${tk.type}`))],
        [t("status"), (tk) => badge(tk.status)],
        [t("cost"), (tk) => tk.cost],
        [t("results"), (tk) => tk.images.length],
        [t("created"), (tk) => formatDate(tk.created_at)],
      ],
      page.items,
      t("history"),
    ),
    pager(page.next_page_token, Boolean(token), (next) => ctx.navigate(hashWith("#/history", { type, status, page: next }))),
  );
}

export async function gallery(main, ctx) {
  main.append(heading(t("gallery")));
  const token = ctx.params.get("page") || "";
  const page = await Api.get(`/v1/images${Api.query({ page_token: token, page_size: 24 })}`);
  if (!page.items.length) {
    main.append(empty(t("no_images"), "#/create", t("nav_create")));
    return;
  }
  const full = h("img", { alt: "" });
  const closeButton = h("button", { type: "button", class: "secondary" }, t("close"));
  const dialog = h("dialog", { id: "viewer", "aria-label": t("gallery") }, full, h("p", null, closeButton));
  closeButton.addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => full.removeAttribute("src"));
  main.append(
    h(
      "ul",
      { class: "grid", id: "gallery" },
      page.items.map((img) =>
        h(
          "li",
          { class: "tile" },
          h(
            "button",
            {
              type: "button",
              class: "thumb",
              onclick: () => {
                full.src = safeUrl(img.url);
                full.alt = `${t(`type_${img.task_type}`)} ${img.width}×${img.height}`;
                dialog.showModal();
              },
            },
            h("img", { src: safeUrl(img.thumbnail_url), alt: `${t(`type_${img.task_type}`)} ${formatDate(img.created_at)}`, loading: "lazy", width: "256", height: "256" }),
          ),
          h("a", { href: `#/tasks/${encodeURIComponent(img.task_id)}`, class: "muted" }, formatDate(img.created_at)),
        ),
      ),
    ),
    dialog,
    pager(page.next_page_token, Boolean(token), (next) => ctx.navigate(hashWith("#/gallery", { page: next }))),
  );
}

export async function ledger(main, ctx) {
  main.append(heading(t("ledger")));
  const token = ctx.params.get("page") || "";
  const page = await Api.get(`/v1/me/ledger${Api.query({ page_token: token })}`);
  if (!page.items.length) {
    main.append(empty(t("no_ledger")));
    return;
  }
  main.append(
    h(
      "div",
      { id: "ledger" },
      table(
        [
          [t("when"), (e) => formatDate(e.created_at)],
          [t("kind"), (e) => h("span", { class: `kind kind-${e.kind}` }, t(`k_${e.kind}`))],
          [t("amount"), (e) => h("span", { class: e.amount > 0 ? "plus" : e.amount < 0 ? "minus" : "" }, e.amount > 0 ? `+${e.amount}` : String(e.amount))],
          [t("balance_after"), (e) => e.balance_after],
          [t("reference"), (e) => referenceLink(e.reference)],
          [t("reason"), (e) => e.reason || ""],
        ],
        page.items,
        t("ledger"),
      ),
    ),
    pager(page.next_page_token, Boolean(token), (next) => ctx.navigate(hashWith("#/ledger", { page: next }))),
  );
}

// A ledger reference names what caused the movement: a task links to its page, an order to the
// orders (references carry the order's number, not its id).
export function referenceLink(reference) {
  const text = reference || "";
  const task = /\b(task_[A-Za-z0-9]+)/.exec(text);
  if (task) return h("a", { href: `#/tasks/${task[1]}` }, text);
  if (/^order\b/.test(text)) return h("a", { href: "#/orders" }, text);
  return text;
}
