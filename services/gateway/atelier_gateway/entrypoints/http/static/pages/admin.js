// Admin console (role admin): users, a user's page and timeline, credit adjustments, refunds, tasks,
// the content moderation review (rejections, overturns).
import * as Api from "../api.js";
import { h } from "../dom.js";
import { formatDate, formatMoney, t } from "../i18n.js";
import { badge, busy, empty, errorText, field, heading, message, pager, select, table } from "../ui.js";
import { sourceName } from "./dashboard.js";
import { referenceLink } from "./lists.js";

const STATUSES = ["pending", "processing", "succeeded", "failed", "cancelled"];

function adminNav() {
  return h(
    "nav",
    { class: "subnav", "aria-label": t("admin") },
    h("a", { href: "#/admin" }, t("search_users")),
    h("a", { href: "#/admin/tasks" }, t("all_tasks")),
    h("a", { href: "#/admin/moderation" }, t("moderation")),
  );
}

export async function users(main, ctx) {
  main.append(heading(t("admin")), adminNav());
  const q = ctx.params.get("query") || "";
  const token = ctx.params.get("page") || "";
  const input = h("input", { type: "search", name: "query", value: q, id: "user-query" });
  main.append(
    h(
      "form",
      {
        role: "search",
        class: "filters",
        id: "user-search",
        onsubmit: (e) => {
          e.preventDefault();
          ctx.navigate(`#/admin?query=${encodeURIComponent(input.value.trim())}`);
        },
      },
      field(t("search_users"), input, t("query_hint")),
      h("button", { type: "submit" }, t("search")),
    ),
  );
  const page = await Api.get(`/v1/admin/users${Api.query({ query: q, page_token: token })}`);
  if (!page.items.length) {
    main.append(empty(t("no_users")));
    return;
  }
  main.append(
    table(
      [
        [t("user"), (u) => h("a", { href: `#/admin/users/${encodeURIComponent(u.id)}`, class: "user-link" }, u.email || u.phone || u.id)],
        [t("name"), (u) => u.name],
        [t("role"), (u) => u.role],
        [t("created"), (u) => formatDate(u.created_at)],
      ],
      page.items,
      t("search_users"),
    ),
    pager(page.next_page_token, Boolean(token), (next) => ctx.navigate(`#/admin?query=${encodeURIComponent(q)}&page=${encodeURIComponent(next)}`)),
  );
}

export async function user(main, ctx) {
  const id = ctx.args[0];
  main.append(heading(t("user")), adminNav());
  const detail = await Api.get(`/v1/admin/users/${encodeURIComponent(id)}`);
  const profile = detail.user || detail.profile || detail;
  const balance = detail.balance || {};
  const grants = detail.grants || balance.grants || [];
  const orders = detail.orders || detail.recent_orders || [];
  const tasks = detail.tasks || detail.recent_tasks || [];
  const balanceView = h("p", { class: "big", id: "admin-balance" }, String(balance.available ?? "—"));
  main.append(
    h(
      "div",
      { class: "cards" },
      h(
        "section",
        { class: "card" },
        h("h2", null, profile.name || profile.email || profile.phone || id),
        h("dl", { class: "facts" }, [
          [t("email"), profile.email || "—"], [t("phone"), profile.phone || "—"], [t("role"), profile.role || "—"],
          [t("created"), formatDate(profile.created_at)],
        ].map(([k, v]) => h("div", null, h("dt", null, k), h("dd", null, v)))),
      ),
      h("section", { class: "card stat" }, h("h2", null, t("balance")), balanceView, h("p", { class: "muted" }, `${t("held")}: ${balance.held ?? 0}`)),
      adjustForm(id, balanceView),
    ),
  );
  if (grants.length) {
    main.append(h("section", { class: "card" }, h("h2", null, t("grants_admin")), table([
      [t("source"), (g) => sourceName(g.source)], [t("remaining"), (g) => `${g.remaining} / ${g.amount ?? g.remaining}`],
      [t("expires"), (g) => (g.expires_at ? formatDate(g.expires_at) : t("never"))],
    ], grants)));
  }
  main.append(h("section", { class: "card" }, h("h2", null, t("recent_orders")), orders.length ? table([
    [t("order"), (o) => o.number || o.id], [t("item"), (o) => o.item_id], [t("amount"), (o) => formatMoney(o.amount, o.currency)],
    [t("status"), (o) => badge(o.status)], [t("created"), (o) => formatDate(o.created_at)],
    ["", (o) => (o.status === "paid" ? refundButton(o) : "")],
  ], orders) : empty(t("no_orders"))));
  main.append(
    h(
      "section",
      { class: "card" },
      h("h2", null, t("recent_tasks")),
      tasks.length ? tasksTable(tasks) : empty(t("no_tasks")),
      h("a", { href: `#/admin/tasks?user_id=${encodeURIComponent(id)}`, id: "user-tasks" }, t("all_tasks_of_user")),
    ),
  );
  const timeline = h("section", { class: "card", id: "timeline" }, h("h2", null, t("timeline")));
  main.append(timeline);
  await loadTimeline(timeline, id, "");
}

function adjustForm(userId, balanceView) {
  const amount = h("input", { type: "number", name: "amount", step: "1", required: true, id: "adjust-amount" });
  const reason = h("input", { type: "text", name: "reason", required: true, maxlength: "500", id: "adjust-reason" });
  const box = h("div", { "aria-live": "polite" });
  const button = h("button", { type: "submit", id: "adjust-submit" }, t("adjust"));
  return h(
    "form",
    {
      class: "card",
      id: "adjust-form",
      onsubmit: async (e) => {
        e.preventDefault();
        busy(button, true);
        try {
          const result = await Api.post(
            `/v1/admin/users/${encodeURIComponent(userId)}/credits`,
            { amount: Number(amount.value), reason: reason.value.trim() },
            { headers: { "Idempotency-Key": crypto.randomUUID() } },
          );
          const available = result?.balance?.available ?? result?.available;
          if (available !== undefined) balanceView.textContent = String(available);
          box.replaceChildren(message(t("adjusted"), "ok"));
          amount.value = "";
          reason.value = "";
          const timeline = document.getElementById("timeline");
          if (timeline) await loadTimeline(timeline, userId, "");
        } catch (err) {
          box.replaceChildren(message(errorText(err), "error"));
        } finally {
          busy(button, false);
        }
      },
    },
    h("h2", null, t("adjust_credits")),
    field(t("amount"), amount),
    field(t("reason"), reason),
    box,
    button,
  );
}

function refundButton(order) {
  const button = h("button", { type: "button", class: "danger small", "data-order": order.id }, t("refund"));
  button.addEventListener("click", async () => {
    busy(button, true);
    try {
      await Api.post(`/v1/admin/orders/${encodeURIComponent(order.id)}/refund`);
      button.replaceWith(message(t("refunded_ok"), "ok"));
    } catch (e) {
      button.replaceWith(message(errorText(e), "error"));
    }
  });
  return button;
}

async function loadTimeline(section, userId, token) {
  const page = await Api.get(`/v1/admin/users/${encodeURIComponent(userId)}/timeline${Api.query({ page_token: token })}`);
  const title = section.firstChild;
  section.replaceChildren(title);
  if (!page.items.length) {
    section.append(empty(t("no_timeline")));
    return;
  }
  section.append(
    h("ol", { class: "timeline" }, page.items.map(timelineEntry)),
    pager(page.next_page_token, Boolean(token), (next) => loadTimeline(section, userId, next)),
  );
}

// One timeline entry: when, what, the credits or money it moved, and what caused it.
function timelineEntry(item) {
  const credits = item.credits ?? null;
  const parts = [
    h("time", { datetime: item.at || "" }, formatDate(item.at)),
    " ",
    h("strong", { class: `kind kind-${item.kind}` }, KINDS[item.kind] ? t(KINDS[item.kind]) : item.kind),
  ];
  if (credits !== null) parts.push(" ", h("span", { class: credits > 0 ? "plus" : credits < 0 ? "minus" : "" }, credits > 0 ? `+${credits}` : String(credits)));
  if (item.balance_after !== null && item.balance_after !== undefined) parts.push(` → ${item.balance_after}`);
  if (item.amount !== null && item.amount !== undefined && item.currency) parts.push(" · ", formatMoney(item.amount, item.currency));
  if (item.task_type) parts.push(" · ", t(`type_${item.task_type}`));
  if (item.status) parts.push(" · ", badge(item.status));
  if (item.reason) parts.push(" · ", h("q", null, item.reason));
  const cause = item.caused_by;
  const causeText = cause ? `${t(`cause_${cause.type}`)}${cause.id ? ` ${cause.id}` : ""}` : item.reference;
  if (causeText) parts.push(h("div", { class: "muted cause" }, `${t("caused_by")}: `, causeText));
  return h("li", { "data-kind": item.kind }, parts);
}

const KINDS = {
  grant: "k_grant", hold: "k_hold", capture: "k_capture", release: "k_release", expire: "k_expire",
  adjust: "k_adjust", payment: "k_payment", refund: "k_refund", task: "task", moderation: "k_moderation",
};

function tasksTable(tasks) {
  return table(
    [
      [t("type"), (tk) => t(`type_${tk.type}`)],
      [t("status"), (tk) => badge(tk.status)],
      [t("owner"), (tk) => (tk.user_id ? h("a", { href: `#/admin/users/${encodeURIComponent(tk.user_id)}` }, tk.user_id) : "—")],
      [t("cost"), (tk) => tk.cost],
      [t("created"), (tk) => formatDate(tk.created_at)],
      ["", (tk) => tk.error || ""],
    ],
    tasks,
  );
}

export async function tasks(main, ctx) {
  main.append(heading(t("all_tasks")), adminNav());
  const status = ctx.params.get("status") || "";
  const userId = ctx.params.get("user_id") || "";
  const token = ctx.params.get("page") || "";
  const here = (extra) => `#/admin/tasks?${new URLSearchParams(Object.entries({ status, user_id: userId, ...extra }).filter(([, v]) => v))}`;
  const statusSel = select("status", [["", t("all")], ...STATUSES.map((s) => [s, t(`st_${s}`)])], status);
  statusSel.id = "admin-status";
  statusSel.addEventListener("change", () => ctx.navigate(here({ status: statusSel.value })));
  main.append(
    h(
      "div",
      { class: "filters" },
      h("label", { for: "admin-status" }, t("status")),
      statusSel,
      userId ? h("span", null, `${t("owner")}: `, h("a", { href: `#/admin/users/${encodeURIComponent(userId)}` }, userId), " ", h("a", { href: here({ user_id: "" }) }, `(${t("all")})`)) : null,
    ),
  );
  const page = await Api.get(`/v1/admin/tasks${Api.query({ status, user_id: userId, page_token: token })}`);
  if (!page.items.length) {
    main.append(empty(t("no_tasks")));
    return;
  }
  main.append(
    tasksTable(page.items),
    pager(page.next_page_token, Boolean(token), (next) => ctx.navigate(here({ page: next }))),
  );
}

// A task of a user, for the admin: the admin's list of that user's tasks (the task page is the
// owner's own: GET /v1/tasks/{id} answers the owner only).
function taskLink(userId, taskId) {
  return h("a", { href: `#/admin/tasks?user_id=${encodeURIComponent(userId)}`, class: "mono", title: taskId }, shortId(taskId));
}

// An id in a narrow column: its start (the whole id in the title).
function shortId(id) {
  return id.length > 14 ? `${id.slice(0, 13)}…` : id;
}

function labelsText(labels) {
  return labels.map((l) => `${l.name} ${Math.round(l.confidence * 100)} %`).join(", ") || "—";
}

// What became of a decision: overturned (when, and the re-run task), or the Overturn button for a
// rejection not overturned yet.
function decisionState(d) {
  if (d.overturned_at) {
    return h(
      "span",
      { class: "overturned" },
      t("overturned_at", { when: formatDate(d.overturned_at) }),
      d.rerun_task_id ? [" · ", t("rerun"), " ", taskLink(d.user_id, d.rerun_task_id)] : null,
    );
  }
  return d.verdict === "rejected" ? overturnButton(d) : badge(d.verdict);
}

// Two steps, in the page: Overturn, then "Overturn this decision?" Yes / Keep.
function overturnButton(d) {
  const cell = h("span", { class: "overturn", "data-decision": d.id });
  const ask = h("button", { type: "button", class: "danger small" }, t("overturn"));
  const yes = h("button", { type: "button", class: "danger small confirm" }, t("overturn_yes"));
  const no = h("button", { type: "button", class: "secondary small" }, t("keep"));
  const question = h("span", { class: "confirm-box", role: "group" }, `${t("overturn_ask")} `, yes, " ", no);
  ask.addEventListener("click", () => {
    cell.replaceChildren(question);
    yes.focus();
  });
  no.addEventListener("click", () => {
    cell.replaceChildren(ask);
    ask.focus();
  });
  yes.addEventListener("click", async () => {
    busy(yes, true);
    busy(no, true);
    try {
      const done = await Api.post(
        `/v1/admin/moderation/${encodeURIComponent(d.id)}/overturn`,
        undefined,
        { headers: { "Idempotency-Key": crypto.randomUUID() } },
      );
      cell.replaceChildren(h("span", { role: "status" }, decisionState(done)));
    } catch (e) {
      cell.replaceChildren(message(errorText(e), "error"));
    }
  });
  cell.append(ask);
  return cell;
}

export async function moderation(main, ctx) {
  main.append(heading(t("moderation")), adminNav());
  const verdict = ctx.params.get("verdict") === "all" ? "all" : "rejected";
  const token = ctx.params.get("page") || "";
  const here = (extra) => `#/admin/moderation?${new URLSearchParams({ verdict, ...extra })}`;
  const verdictSel = select("verdict", [["rejected", t("verdict_rejected")], ["all", t("all")]], verdict);
  verdictSel.id = "moderation-verdict";
  verdictSel.addEventListener("change", () => ctx.navigate(`#/admin/moderation?verdict=${verdictSel.value}`));
  main.append(h("div", { class: "filters" }, h("label", { for: "moderation-verdict" }, t("verdict")), verdictSel));
  const page = await Api.get(
    `/v1/admin/moderation${Api.query({ verdict: verdict === "all" ? "" : verdict, page_token: token })}`,
  );
  if (!page.items.length) {
    main.append(empty(t("no_decisions")));
    return;
  }
  const list = table(
    [
      [t("when"), (d) => formatDate(d.created_at)],
      [t("subject"), (d) => t(`subj_${d.subject}`)],
      [t("labels"), (d) => labelsText(d.labels)],
      [t("provider"), (d) => d.provider],
      [t("request_id"), (d) => h("span", { class: "mono" }, d.request_id || "—")],
      [t("user"), (d) => h("a", { href: `#/admin/users/${encodeURIComponent(d.user_id)}`, class: "mono", title: d.user_id }, shortId(d.user_id))],
      [t("task"), (d) => (d.task_id ? taskLink(d.user_id, d.task_id) : "—")],
      [t("state"), decisionState],
    ],
    page.items,
    t("moderation"),
  );
  list.id = "moderation";
  main.append(list, pager(page.next_page_token, Boolean(token), (next) => ctx.navigate(here({ page: next }))));
}
