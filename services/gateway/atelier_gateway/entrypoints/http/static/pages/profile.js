// Profile: name, avatar, language preference (PATCH /v1/me).
import * as Api from "../api.js";
import { h, safeUrl } from "../dom.js";
import { setLanguage, t } from "../i18n.js";
import { busy, errorText, field, heading, message, select } from "../ui.js";

export async function render(main, ctx) {
  main.append(heading(t("profile")));
  const me = await Api.get("/v1/me");
  const name = h("input", { type: "text", name: "name", maxlength: "100", value: me.name || "", autocomplete: "name" });
  const avatar = h("input", { type: "url", name: "avatar_url", maxlength: "2000", value: me.avatar_url || "", placeholder: "https://…" });
  const lang = select("language", [["", t("lang_auto")], ["en", "English"], ["zh", "简体中文"]], me.preferences?.language || "");
  const picture = me.avatar_url ? h("img", { src: safeUrl(me.avatar_url), alt: "", class: "avatar", width: "64", height: "64" }) : null;
  const box = h("div", { "aria-live": "polite" });
  const save = h("button", { type: "submit", id: "profile-save" }, t("save"));
  main.append(
    h(
      "form",
      {
        id: "profile-form",
        class: "card narrow",
        onsubmit: async (e) => {
          e.preventDefault();
          busy(save, true);
          const preferences = { ...(me.preferences || {}) };
          if (lang.value) preferences.language = lang.value;
          else delete preferences.language;
          try {
            const updated = await Api.patch("/v1/me", {
              name: name.value.trim(),
              avatar_url: avatar.value.trim() || null,
              preferences,
            });
            Api.updateUser(updated);
            if (lang.value) setLanguage(lang.value);
            else setLanguage(ctx.config.defaultLanguage);
            ctx.navigate("#/profile");
            document.getElementById("main").append(message(t("saved"), "ok"));
          } catch (err) {
            box.replaceChildren(message(errorText(err), "error"));
            busy(save, false);
          }
        },
      },
      picture,
      h("p", { class: "muted" }, me.email || me.phone || ""),
      field(t("name"), name),
      field(t("avatar_url"), avatar),
      field(t("pref_language"), lang),
      box,
      save,
    ),
  );
}
