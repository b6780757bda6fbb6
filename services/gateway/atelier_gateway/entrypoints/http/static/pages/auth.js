// Sign up, log in (email and password, or phone and SMS code).
import * as Api from "../api.js";
import { h } from "../dom.js";
import { t } from "../i18n.js";
import { busy, errorText, field, heading, message } from "../ui.js";
import { applyPreferences } from "../app.js";

function card(title, form, ...links) {
  return h("section", { class: "auth card" }, heading(title), form, h("p", { class: "links" }, links));
}

function status() {
  return h("div", { class: "form-status", "aria-live": "polite" });
}

function show(box, text, kind) {
  box.replaceChildren(message(text, kind));
}

async function done(ctx) {
  await applyPreferences();
  ctx.navigate(`#${ctx.params.get("next") || "/"}`);
}

function withNext(hash, ctx) {
  const next = ctx.params.get("next");
  return next ? `${hash}?next=${encodeURIComponent(next)}` : hash;
}

export function login(main, ctx) {
  const email = h("input", { type: "email", name: "email", autocomplete: "username", required: true });
  const password = h("input", { type: "password", name: "password", autocomplete: "current-password", required: true });
  const button = h("button", { type: "submit", id: "login-submit" }, t("login"));
  const box = status();
  const form = h(
    "form",
    {
      id: "login-form",
      onsubmit: async (e) => {
        e.preventDefault();
        busy(button, true);
        try {
          await Api.logIn(email.value.trim(), password.value);
          await done(ctx);
        } catch (err) {
          show(box, errorText(err), "error");
          busy(button, false);
        }
      },
    },
    field(t("email"), email),
    field(t("password"), password),
    box,
    button,
  );
  main.append(
    card(
      t("login_title"),
      form,
      h("a", { href: withNext("#/signup", ctx) }, t("no_account")),
      h("br"),
      h("a", { href: withNext("#/phone", ctx) }, t("use_phone")),
    ),
  );
}

export function signup(main, ctx) {
  const name = h("input", { type: "text", name: "name", autocomplete: "name", maxlength: "100" });
  const email = h("input", { type: "email", name: "email", autocomplete: "username", required: true });
  const password = h("input", {
    type: "password", name: "password", autocomplete: "new-password", required: true, minlength: "8",
  });
  const button = h("button", { type: "submit", id: "signup-submit" }, t("signup"));
  const box = status();
  const form = h(
    "form",
    {
      id: "signup-form",
      onsubmit: async (e) => {
        e.preventDefault();
        busy(button, true);
        try {
          await Api.signUp(email.value.trim(), password.value, name.value.trim());
          await done(ctx);
        } catch (err) {
          show(box, errorText(err), "error");
          busy(button, false);
        }
      },
    },
    h("p", null, t("signup_bonus")),
    field(t("name"), name),
    field(t("email"), email),
    field(t("password"), password, t("password_hint")),
    box,
    button,
  );
  main.append(card(t("signup_title"), form, h("a", { href: withNext("#/login", ctx) }, t("have_account"))));
}

export function phone(main, ctx) {
  const number = h("input", { type: "tel", name: "phone", autocomplete: "tel", required: true, placeholder: "+86 138 0013 8000" });
  const code = h("input", {
    type: "text", name: "code", inputmode: "numeric", autocomplete: "one-time-code", pattern: "[0-9]{6}", maxlength: "6",
  });
  const send = h("button", { type: "button", class: "secondary", id: "sms-send" }, t("send_code"));
  const button = h("button", { type: "submit", id: "sms-verify" }, t("verify"));
  const box = status();
  send.addEventListener("click", async () => {
    if (!number.reportValidity()) return;
    busy(send, true);
    try {
      await Api.sendSms(number.value.trim());
      show(box, t("code_sent"), "ok");
      code.focus();
    } catch (err) {
      show(box, errorText(err), "error");
    } finally {
      setTimeout(() => busy(send, false), 1000);
    }
  });
  const form = h(
    "form",
    {
      id: "phone-form",
      onsubmit: async (e) => {
        e.preventDefault();
        busy(button, true);
        try {
          await Api.verifySms(number.value.trim(), code.value.trim());
          await done(ctx);
        } catch (err) {
          show(box, errorText(err), "error");
          busy(button, false);
        }
      },
    },
    field(t("phone"), number),
    send,
    field(t("sms_code"), code),
    box,
    button,
  );
  main.append(card(t("phone_title"), form, h("a", { href: withNext("#/login", ctx) }, t("use_email"))));
}
