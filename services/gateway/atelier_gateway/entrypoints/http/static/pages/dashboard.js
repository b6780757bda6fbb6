// Dashboard: credits, membership, grants, and the activity charts (inline SVG from /v1/me/stats).
import * as Api from "../api.js";
import { h, svg } from "../dom.js";
import { formatDate, t } from "../i18n.js";
import { empty, heading, table } from "../ui.js";

export async function render(main) {
  main.append(heading(t("dashboard")), h("p", { class: "muted" }, t("loading")));
  const [balance, stats, catalog] = await Promise.all([
    Api.get("/v1/me/balance"),
    Api.get("/v1/me/stats"),
    Api.get("/v1/catalog").catch(() => ({ items: [] })),
  ]);
  const names = Object.fromEntries(catalog.items.map((item) => [item.id, item.name]));
  main.lastChild.remove();
  main.append(
    h(
      "div",
      { class: "cards" },
      h("section", { class: "card stat" }, h("h2", null, t("available")), h("p", { class: "big", id: "available" }, balance.available)),
      h("section", { class: "card stat" }, h("h2", null, t("held")), h("p", { class: "big", id: "held" }, balance.held)),
      membershipCard(balance.membership, names),
    ),
    grantsSection(balance.grants),
    statsSection(stats),
  );
}

function membershipCard(m, names) {
  if (!m || !m.active) {
    return h(
      "section",
      { class: "card stat", id: "membership" },
      h("h2", null, t("membership")),
      h("p", null, t("no_membership")),
      h("a", { class: "button", href: "#/buy" }, t("get_membership")),
    );
  }
  const meter = h("meter", { min: "0", max: String(m.quota_total), value: String(m.quota_left), "aria-label": t("quota_left", { left: m.quota_left, total: m.quota_total }) });
  return h(
    "section",
    { class: "card stat", id: "membership" },
    h("h2", null, t("membership")),
    h("p", null, h("strong", { id: "plan" }, names[m.plan_id] || m.plan_id)),
    h("p", { id: "quota" }, t("quota_left", { left: m.quota_left, total: m.quota_total })),
    meter,
    h("p", { class: "muted" }, t("period_end", { date: formatDate(m.period_end) })),
    h("a", { class: "button", href: `#/buy?renew=${encodeURIComponent(m.plan_id)}`, id: "renew" }, t("renew")),
  );
}

function grantsSection(grants) {
  const live = grants.filter((g) => g.remaining > 0);
  return h(
    "section",
    { class: "card" },
    h("h2", null, t("grants")),
    live.length
      ? table(
          [
            [t("source"), (g) => sourceName(g.source)],
            [t("remaining"), (g) => `${g.remaining} / ${g.amount}`],
            [t("expires"), (g) => (g.expires_at ? formatDate(g.expires_at) : t("never"))],
          ],
          live,
          t("grants"),
        )
      : empty(t("no_grants"), "#/buy", t("buy_credits")),
  );
}

export function sourceName(source) {
  const key = `src_${source}`;
  const text = t(key);
  return text === key ? source : text;
}

function statsSection(stats) {
  const section = h("section", { class: "card", id: "stats" }, h("h2", null, t("stats")));
  if (!stats.total_tasks) {
    section.append(empty(t("no_stats"), "#/create", t("nav_create")));
    return section;
  }
  section.append(
    h(
      "dl",
      { class: "figures" },
      [
        ["total_tasks", stats.total_tasks], ["succeeded", stats.succeeded], ["failed_n", stats.failed],
        ["total_images", stats.total_images], ["credits_spent", stats.credits_spent],
      ].map(([key, value]) => h("div", null, h("dt", null, t(key)), h("dd", null, value))),
    ),
    h(
      "div",
      { class: "charts" },
      h("figure", null, h("figcaption", null, t("credits_per_month")), monthChart(stats.by_month)),
      h("figure", null, h("figcaption", null, t("tasks_by_type")), typeChart(stats.by_type)),
    ),
  );
  return section;
}

// Vertical bars: credits spent per month (the last 12 months that have data).
function monthChart(months) {
  const data = [...months].sort((a, b) => a.month.localeCompare(b.month)).slice(-12);
  const W = 360, H = 180, pad = 28, max = Math.max(1, ...data.map((d) => d.credits));
  const step = (W - pad * 2) / Math.max(1, data.length);
  const bars = data.map((d, i) => {
    const bh = ((H - pad * 2) * d.credits) / max;
    const bw = Math.min(step * 0.7, 40);
    const mid = pad + i * step + step / 2;
    const y = H - pad - bh;
    return svg(
      "g",
      null,
      svg("rect", { x: mid - bw / 2, y, width: bw, height: Math.max(bh, 1), class: "bar" }, svg("title", null, `${d.month}: ${d.credits}`)),
      svg("text", { x: mid, y: y - 4, "text-anchor": "middle", class: "val" }, d.credits),
      svg("text", { x: mid, y: H - pad + 14, "text-anchor": "middle", class: "lbl" }, data.length > 6 ? d.month.slice(2) : d.month),
    );
  });
  const label = data.map((d) => `${d.month}: ${d.credits}`).join(", ");
  return svg(
    "svg",
    { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `${t("credits_per_month")}: ${label}`, class: "chart", id: "chart-months" },
    svg("line", { x1: pad, y1: H - pad, x2: W - pad, y2: H - pad, class: "axis" }),
    bars,
  );
}

// Horizontal bars: tasks by type.
function typeChart(types) {
  const data = types.filter((d) => d.tasks > 0);
  const W = 360, row = 34, H = Math.max(row, data.length * row) + 8, left = 130, max = Math.max(1, ...data.map((d) => d.tasks));
  const label = data.map((d) => `${t(`type_${d.type}`)}: ${d.tasks}`).join(", ");
  return svg(
    "svg",
    { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `${t("tasks_by_type")}: ${label}`, class: "chart", id: "chart-types" },
    data.map((d, i) => {
      const w = ((W - left - 40) * d.tasks) / max;
      const y = 4 + i * row;
      return svg(
        "g",
        null,
        svg("text", { x: left - 6, y: y + row / 2 + 4, "text-anchor": "end", class: "lbl" }, t(`type_${d.type}`)),
        svg("rect", { x: left, y: y + 6, width: Math.max(w, 1), height: row - 12, class: `bar bar-${i % 3}` }),
        svg("text", { x: left + w + 6, y: y + row / 2 + 4, class: "val" }, d.tasks),
      );
    }),
  );
}
