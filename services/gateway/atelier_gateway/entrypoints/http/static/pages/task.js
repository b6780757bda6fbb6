// One task: live status from the event stream, results, downloads, cancel, run again.
import * as Api from "../api.js";
import { h, safeUrl } from "../dom.js";
import { formatDate, t } from "../i18n.js";
import { badge, busy, empty, errorText, heading, message } from "../ui.js";

const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
const STEPS = ["pending", "processing", "succeeded"];

export async function render(main, ctx) {
  const id = ctx.args[0];
  main.append(heading(t("task")));
  const view = h("div", { id: "task" });
  const note = h("div", { "aria-live": "polite", id: "task-note" });
  main.append(view, note);
  const abort = new AbortController();
  let task = await Api.get(`/v1/tasks/${encodeURIComponent(id)}`);
  show(task);
  if (!TERMINAL.has(task.status)) follow(task, abort.signal);
  return () => abort.abort();

  function show(tk) {
    task = tk;
    view.replaceChildren(
      ...[
      h("p", null, h("strong", null, t(`type_${tk.type}`)), " · ", h("span", { id: "task-status", "data-status": tk.status }, badge(tk.status)), " · ", `${t("cost")}: ${tk.cost}`),
      progressView(tk.status),
      outcome(tk),
      actions(tk),
      h("details", null, h("summary", null, t("params")), h("pre", null, JSON.stringify(tk.params, null, 2)), h("p", { class: "muted" }, `${t("created")}: ${formatDate(tk.created_at)}`)),
      tk.status === "succeeded" ? results(tk) : null,
      ].filter(Boolean),
    );
  }

  function progressView(status) {
    const steps = status === "failed" ? ["pending", "processing", "failed"] : status === "cancelled" ? ["pending", "cancelled"] : STEPS;
    const index = steps.indexOf(status);
    return h(
      "div",
      { class: "progress", id: "progress" },
      h("ol", { class: "steps", "aria-label": t("progress") }, steps.map((s, i) => h("li", { class: `${i <= index ? "done" : ""} step-${s}`, "aria-current": i === index ? "step" : null }, t(`st_${s}`)))),
      TERMINAL.has(status) ? null : h("progress", { "aria-label": t("progress") }),
    );
  }

  function outcome(tk) {
    if (tk.status === "failed") {
      return h(
        "div",
        { id: "failure" },
        message(t("failed_reason", { why: tk.error_message || tk.error || "?" }), "error"),
        message(t("credits_returned", { n: tk.cost }), "ok"),
      );
    }
    if (tk.status === "cancelled") return message(t("cancelled_returned", { n: tk.cost }), "ok");
    return null;
  }

  function actions(tk) {
    const bar = h("div", { class: "actions" });
    if (!TERMINAL.has(tk.status)) {
      const cancel = h("button", { type: "button", class: "danger", id: "cancel" }, t("cancel"));
      cancel.addEventListener("click", async () => {
        busy(cancel, true);
        try {
          show(await Api.post(`/v1/tasks/${encodeURIComponent(tk.id)}/cancel`));
        } catch (e) {
          note.replaceChildren(message(errorText(e), "error"));
          busy(cancel, false);
        }
      });
      bar.append(cancel);
    } else {
      const again = h("button", { type: "button", class: "secondary", id: "run-again" }, t("run_again"));
      again.addEventListener("click", async () => {
        busy(again, true);
        const body = { type: tk.type, params: tk.params };
        if (tk.input_upload_ids?.length) body.input_upload_id = tk.input_upload_ids[0];
        try {
          const created = await Api.post("/v1/tasks", body, { headers: { "Idempotency-Key": crypto.randomUUID() } });
          ctx.navigate(`#/tasks/${encodeURIComponent(created.id)}`);
        } catch (e) {
          busy(again, false);
          note.replaceChildren(
            e.code === "insufficient_credits"
              ? message(t("not_enough"), "error", " ", h("a", { href: "#/buy" }, t("buy_link")))
              : message(errorText(e), "error"),
          );
        }
      });
      bar.append(again);
    }
    if (tk.status === "succeeded" && tk.images.length) {
      const zip = h("button", { type: "button", id: "download-all" }, t("download_all"));
      zip.addEventListener("click", async () => {
        busy(zip, true);
        try {
          await Api.download(`/v1/tasks/${encodeURIComponent(tk.id)}/archive`, `atelier-${tk.id}.zip`);
        } catch (e) {
          note.replaceChildren(message(errorText(e), "error"));
        } finally {
          busy(zip, false);
        }
      });
      bar.append(zip);
    }
    return bar;
  }

  function results(tk) {
    if (!tk.images.length) return empty(t("no_results"));
    return h(
      "section",
      null,
      h("h2", null, t("results")),
      h(
        "ul",
        { class: "grid", id: "results" },
        tk.images.map((img, i) =>
          h(
            "li",
            { class: "tile" },
            h("a", { href: safeUrl(img.url), target: "_blank", rel: "noopener" }, h("img", { src: safeUrl(img.thumbnail_url), alt: `${t(`type_${tk.type}`)} ${i + 1}`, loading: "lazy", width: "256", height: "256" })),
            h("a", { href: safeUrl(img.url), download: `atelier-${tk.id}-${i + 1}`, class: "download", "data-image": img.id }, `${t("download")} (${img.width}×${img.height})`),
          ),
        ),
      ),
    );
  }

  // The event stream, read with fetch so the Authorization header goes along; after a dropped
  // connection it resumes with Last-Event-ID, so nothing is missed or repeated.
  async function follow(tk, signal) {
    let lastId = "";
    let delay = 1000;
    while (!signal.aborted) {
      let ended = false;
      try {
        await Api.ensureFreshToken();
        const headers = { ...Api.authHeader(), Accept: "text/event-stream" };
        if (lastId) headers["Last-Event-ID"] = lastId;
        const response = await fetch(`/v1/tasks/${encodeURIComponent(tk.id)}/events`, { headers, signal });
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        note.replaceChildren();
        delay = 1000;
        for await (const event of events(response.body, signal)) {
          if (event.id) lastId = event.id;
          if (event.event !== "status") continue;
          const data = JSON.parse(event.data);
          if (data.terminal) {
            ended = true;
            show(await Api.get(`/v1/tasks/${encodeURIComponent(tk.id)}`));
            return;
          }
          show({ ...task, status: data.status, attempts: data.attempts });
        }
      } catch (e) {
        if (signal.aborted) return;
      }
      if (ended || signal.aborted) return;
      // The stream ended without the terminal event: read the task, then resume.
      try {
        const now = await Api.get(`/v1/tasks/${encodeURIComponent(tk.id)}`);
        show(now);
        if (TERMINAL.has(now.status)) return;
      } catch {
        note.replaceChildren(message(t("reconnecting"), "warn"));
      }
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 15000);
    }
  }
}

// Server-sent events from a byte stream: yields {id, event, data} per blank-line-ended block.
async function* events(body, signal) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    while (!signal.aborted) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const event = { id: "", event: "message", data: "" };
        const data = [];
        for (const line of block.split("\n")) {
          if (!line || line.startsWith(":")) continue;
          const colon = line.indexOf(":");
          const name = colon < 0 ? line : line.slice(0, colon);
          const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (name === "id") event.id = value;
          else if (name === "event") event.event = value;
          else if (name === "data") data.push(value);
        }
        event.data = data.join("\n");
        if (data.length) yield event;
      }
    }
  } finally {
    try {
      reader.releaseLock();
    } catch {
      // a read was still pending (the page was left)
    }
  }
}
