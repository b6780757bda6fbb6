// Buying: the catalog, orders, and one order followed until it is paid (sandbox, Stripe, WeChat QR).
import * as Api from "../api.js";
import { h, safeUrl } from "../dom.js";
import { formatDate, formatMoney, t } from "../i18n.js";
import { badge, busy, empty, errorBox, errorText, heading, message, pager, table } from "../ui.js";

const CHANNEL_WORDS = { local: "ch_local", stripe: "ch_stripe", wechatpay: "ch_wechatpay" };
const channelName = (c) => (CHANNEL_WORDS[c] ? t(CHANNEL_WORDS[c]) : c);

export async function catalog(main, ctx) {
  main.append(heading(t("buy")));
  const cat = await Api.get("/v1/catalog");
  const renew = ctx.params.get("renew");
  let channel = cat.channels[0];
  const channels = h(
    "fieldset",
    { class: "channels" },
    h("legend", null, t("pay_with")),
    cat.channels.map((c, i) =>
      h(
        "label",
        { class: "radio" },
        h("input", { type: "radio", name: "channel", value: c, checked: i === 0, onchange: () => (channel = c) }),
        channelName(c),
      ),
    ),
  );
  const box = h("div", { "aria-live": "polite" });
  const items = cat.items.map((item) => {
    const button = h("button", { type: "button", "data-item": item.id }, item.kind === "membership" ? (renew === item.id ? t("renew") : t("subscribe")) : t("buy_now"));
    button.addEventListener("click", async () => {
      busy(button, true);
      box.replaceChildren();
      try {
        const order = await Api.post(
          "/v1/orders",
          { item_id: item.id, channel },
          { headers: { "Idempotency-Key": crypto.randomUUID() } },
        );
        if (order.checkout?.url && !order.checkout.code_url) {
          location.assign(safeUrl(order.checkout.url)); // the provider's page; it sends the buyer back
        } else {
          ctx.navigate(`#/orders/${encodeURIComponent(order.id)}`);
        }
      } catch (e) {
        box.replaceChildren(errorBox(e));
        busy(button, false);
      }
    });
    return h(
      "article",
      { class: `card product${renew === item.id ? " highlight" : ""}`, id: `item-${item.id}` },
      h("h2", null, item.name),
      h("p", { class: "muted" }, item.kind === "membership" ? t("membership_kind") : t("pack")),
      h("p", { class: "big" }, t("credits_n", { n: item.credits })),
      item.period_days ? h("p", null, t("per_days", { n: item.period_days })) : null,
      h("ul", { class: "prices" }, item.prices.map((p) => h("li", null, formatMoney(p.amount, p.currency)))),
      button,
    );
  });
  main.append(channels, box, h("div", { class: "cards" }, items));
}

export async function orders(main, ctx) {
  main.append(heading(t("orders")));
  const token = ctx.params.get("page") || "";
  const page = await Api.get(`/v1/orders${Api.query({ page_token: token })}`);
  if (!page.items.length && !token) {
    main.append(empty(t("no_orders"), "#/buy", t("buy_credits")));
    return;
  }
  main.append(
    table(
      [
        [t("order"), (o) => h("a", { href: `#/orders/${encodeURIComponent(o.id)}` }, o.number)],
        [t("item"), (o) => o.item_id],
        [t("amount"), (o) => formatMoney(o.amount, o.currency)],
        [t("channel"), (o) => channelName(o.channel)],
        [t("status"), (o) => badge(o.status)],
        [t("created"), (o) => formatDate(o.created_at)],
      ],
      page.items,
      t("orders"),
    ),
    pager(page.next_page_token, Boolean(token), (next) => ctx.navigate(`#/orders${next ? `?page=${encodeURIComponent(next)}` : ""}`)),
  );
}

export async function order(main, ctx) {
  const id = ctx.args[0];
  main.append(heading(t("order")));
  const body = h("div", { id: "order" });
  const note = h("div", { "aria-live": "polite" });
  main.append(body, note);
  let timer = null;
  let qrUrl = null;
  let stopped = false;

  async function load() {
    let o;
    try {
      o = await Api.get(`/v1/orders/${encodeURIComponent(id)}`);
    } catch (e) {
      body.replaceChildren(errorBox(e));
      return;
    }
    await show(o);
    if (o.status === "pending" && !stopped) timer = setTimeout(load, 2500);
  }

  async function show(o) {
    const rows = h(
      "dl",
      { class: "facts" },
      [
        [t("order"), o.number, "order-number"], [t("item"), o.item_id], [t("amount"), formatMoney(o.amount, o.currency)],
        [t("channel"), channelName(o.channel)], [t("created"), formatDate(o.created_at)],
      ].map(([k, v, id]) => h("div", null, h("dt", null, k), h("dd", { id }, v))),
      h("div", null, h("dt", null, t("status")), h("dd", { id: "order-status", "data-status": o.status }, badge(o.status))),
    );
    const parts = [rows, message(t(`order_${o.status}`), o.status === "paid" ? "ok" : o.status === "pending" ? "info" : "warn")];
    if (o.status === "pending" && o.checkout?.code_url) {
      if (!qrUrl) {
        try {
          const response = await fetchQr(o.id);
          qrUrl = URL.createObjectURL(await response.blob());
        } catch {
          qrUrl = "";
        }
      }
      const paid = h("button", { type: "button", id: "i-have-paid" }, t("i_have_paid"));
      paid.addEventListener("click", async () => {
        busy(paid, true);
        try {
          await show(await Api.post(`/v1/orders/${encodeURIComponent(o.id)}/refresh`));
          note.replaceChildren(message(t("checked")));
        } catch (e) {
          note.replaceChildren(message(errorText(e), "error"));
        } finally {
          busy(paid, false);
        }
      });
      parts.push(
        h(
          "figure",
          { class: "qr" },
          qrUrl ? h("img", { src: qrUrl, alt: t("scan_qr"), width: "240", height: "240", id: "qr" }) : null,
          h("figcaption", null, t("scan_qr")),
        ),
        paid,
      );
    } else if (o.status === "pending" && o.checkout?.url) {
      parts.push(h("a", { class: "button", href: safeUrl(o.checkout.url), id: "to-checkout" }, t("to_checkout")));
    }
    if (o.status === "paid") parts.push(h("a", { class: "button", href: "#/" }, t("nav_dashboard")));
    body.replaceChildren(...parts);
  }

  await load();
  return () => {
    stopped = true;
    clearTimeout(timer);
    if (qrUrl) URL.revokeObjectURL(qrUrl);
  };
}

async function fetchQr(id) {
  await Api.ensureFreshToken();
  const response = await fetch(`/v1/orders/${encodeURIComponent(id)}/qr.svg`, { headers: Api.authHeader() });
  if (!response.ok) throw new Error(String(response.status));
  return response;
}
