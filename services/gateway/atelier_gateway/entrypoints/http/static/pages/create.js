// Create a task: pick a type, fill its parameters, upload a photo straight to storage.
import * as Api from "../api.js";
import { h } from "../dom.js";
import { t } from "../i18n.js";
import { busy, errorText, field, heading, message, select } from "../ui.js";

const TYPES = ["text_to_image", "basic_clean", "model_pose12"];
const SCENES = ["street", "studio", "indoor"];
const CATEGORIES = ["shoes", "dress", "hoodie", "coat"];
const IMAGE_TYPES = ["image/jpeg", "image/png", "image/webp"];

export async function render(main, ctx) {
  main.append(heading(t("create")));
  const balance = await Api.get("/v1/me/balance");
  let type = TYPES.includes(ctx.params.get("type")) ? ctx.params.get("type") : "text_to_image";
  let uploadId = null;
  let previewUrl = null;

  const picker = h(
    "fieldset",
    { class: "types" },
    h("legend", null, t("task_type")),
    TYPES.map((ty) =>
      h(
        "label",
        { class: "radio" },
        h("input", { type: "radio", name: "type", value: ty, checked: ty === type, onchange: () => setType(ty) }),
        t(`type_${ty}`),
      ),
    ),
  );

  // text_to_image
  const prompt = h("textarea", { name: "prompt", maxlength: "2000", rows: "3", id: "prompt" });
  const negative = h("textarea", { name: "negative_prompt", maxlength: "2000", rows: "2", id: "negative" });
  const width = h("input", { type: "number", name: "width", min: "256", max: "2048", step: "8", value: "1024" });
  const height = h("input", { type: "number", name: "height", min: "256", max: "2048", step: "8", value: "1024" });
  const seed = h("input", { type: "number", name: "seed", min: "0", step: "1" });
  const textFields = h(
    "div",
    { class: "group" },
    field(t("prompt"), prompt),
    field(t("negative_prompt"), negative),
    h("div", { class: "row" }, field(t("width"), width), field(t("height"), height), field(t("seed"), seed)),
  );

  // model_pose12
  const scene = select("scene", SCENES.map((s) => [s, t(`scene_${s}`)]), "studio");
  const category = select("category", CATEGORIES.map((c) => [c, t(`cat_${c}`)]), "dress");
  const poseFields = h("div", { class: "row" }, field(t("scene"), scene), field(t("category"), category));

  // the photo
  const file = h("input", { type: "file", accept: IMAGE_TYPES.join(","), id: "photo", class: "sr-only" });
  const progress = h("progress", { max: "100", value: "0", id: "upload-progress", hidden: true });
  const uploadNote = h("p", { class: "muted", "aria-live": "polite", id: "upload-status" });
  const preview = h("img", { alt: "", id: "preview", hidden: true });
  const drop = h(
    "div",
    { class: "drop", id: "drop" },
    h("p", null, t("drop_here")),
    h("label", { for: "photo", class: "button secondary" }, t("choose_file")),
    file,
    preview,
    progress,
    uploadNote,
  );
  const photoFields = h("div", { class: "group" }, h("h2", null, t("photo")), drop);
  drop.addEventListener("dragover", (e) => {
    e.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files.length) upload(e.dataTransfer.files[0]);
  });
  file.addEventListener("change", () => file.files.length && upload(file.files[0]));

  async function upload(f) {
    uploadId = null;
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    previewUrl = URL.createObjectURL(f);
    preview.src = previewUrl;
    preview.alt = f.name;
    preview.hidden = false;
    progress.hidden = false;
    progress.value = 0;
    uploadNote.textContent = t("uploading");
    try {
      const target = await Api.post("/v1/uploads", { content_type: f.type || "application/octet-stream", size: f.size, filename: f.name });
      await sendToStorage(target, f, (fraction) => (progress.value = Math.round(fraction * 100)));
      progress.value = 100;
      uploadId = target.upload_id;
      uploadNote.textContent = t("uploaded");
      drop.dataset.uploaded = "true";
    } catch (e) {
      uploadNote.textContent = t("upload_failed", { why: e.message || e });
    }
  }

  // the local market's test switch (like the sandbox checkout's "Fail" button)
  const failBox = h("input", { type: "checkbox", id: "sandbox-fail" });
  const sandbox =
    ctx.config.market === "local"
      ? h("p", { class: "sandbox" }, h("label", null, failBox, " ", t("sandbox_fail")))
      : null;

  const costNote = h("p", { id: "cost", class: "cost" });
  const box = h("div", { "aria-live": "polite", id: "create-status" });
  const submit = h("button", { type: "submit", id: "create-submit" }, t("submit"));
  const form = h(
    "form",
    { id: "create-form", onsubmit: onSubmit },
    picker,
    textFields,
    poseFields,
    photoFields,
    costNote,
    h("p", { class: "muted" }, t("you_have", { n: balance.available })),
    sandbox,
    box,
    submit,
  );
  main.append(form);

  async function setType(ty) {
    type = ty;
    textFields.hidden = ty !== "text_to_image";
    poseFields.hidden = ty !== "model_pose12";
    photoFields.hidden = ty === "text_to_image";
    prompt.required = ty === "text_to_image";
    costNote.textContent = "";
    // No endpoint tells a type's cost before a task exists: show what the last task of the type cost.
    try {
      const last = await Api.get(`/v1/tasks${Api.query({ type: ty, page_size: 1 })}`);
      if (type !== ty) return;
      costNote.textContent = last.items.length ? t("cost_note", { n: last.items[0].cost }) : t("cost_unknown");
    } catch {
      costNote.textContent = t("cost_unknown");
    }
  }
  setType(type);

  async function onSubmit(e) {
    e.preventDefault();
    box.replaceChildren();
    const params = {};
    if (type === "text_to_image") {
      params.prompt = prompt.value.trim();
      if (negative.value.trim()) params.negative_prompt = negative.value.trim();
      params.width = Number(width.value);
      params.height = Number(height.value);
      if (seed.value !== "") params.seed = Number(seed.value);
    } else if (!uploadId) {
      box.replaceChildren(message(t("photo_needed"), "error"));
      return;
    }
    if (type === "model_pose12") {
      params.scene = scene.value;
      params.category = category.value;
    }
    if (failBox.checked) params.sandbox_outcome = "fail";
    const body = { type, params };
    if (type !== "text_to_image") body.input_upload_id = uploadId;
    busy(submit, true, t("submitting"));
    try {
      const task = await Api.post("/v1/tasks", body, { headers: { "Idempotency-Key": crypto.randomUUID() } });
      ctx.navigate(`#/tasks/${encodeURIComponent(task.id)}`);
    } catch (err) {
      busy(submit, false, t("submit"));
      if (err.code === "insufficient_credits") {
        box.replaceChildren(message(t("not_enough"), "error", " ", h("a", { href: "#/buy", id: "buy-link" }, t("buy_link"))));
      } else if (err.code === "content_rejected") {
        box.replaceChildren(message(t("content_rejected"), "error"));
      } else {
        box.replaceChildren(message(errorText(err), "error"));
      }
    }
  }

  return () => previewUrl && URL.revokeObjectURL(previewUrl);
}

// The direct upload: a multipart POST with the policy's fields then the file, or a PUT with the
// given headers. XMLHttpRequest, because fetch reports no upload progress.
function sendToStorage(target, f, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(target.method, target.url);
    xhr.upload.addEventListener("progress", (e) => e.lengthComputable && onProgress(e.loaded / e.total));
    xhr.addEventListener("load", () => (xhr.status < 300 ? resolve() : reject(new Error(`HTTP ${xhr.status}`))));
    xhr.addEventListener("error", () => reject(new Error("network error")));
    if (target.method === "PUT") {
      for (const [k, v] of Object.entries(target.headers || {})) xhr.setRequestHeader(k, v);
      xhr.send(f);
    } else {
      const form = new FormData();
      for (const [k, v] of Object.entries(target.fields || {})) form.append(k, v);
      form.append("file", f, f.name);
      xhr.send(form);
    }
  });
}
