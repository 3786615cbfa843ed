// Settings: the language (the company's by default; the choice applies at once and is kept
// on this device) and logging out.

import { LANG_NAMES, LANGS, isLang, useI18n, type Lang } from "../i18n";
import { useServices } from "../services";
import { useStore } from "../store";
import { Screen } from "../ui/components";
import { Icon } from "../ui/icons";

export function Settings() {
  const { session, store } = useServices();
  const state = useStore(store);
  const { t, chosen, choose } = useI18n();
  const company = state.me?.company.language;
  const companyName = isLang(company) ? LANG_NAMES[company] : (company ?? "");
  const options: { value: Lang | "auto"; label: string }[] = [
    { value: "auto", label: t("language_auto", { language: companyName }) },
    ...LANGS.map((code) => ({ value: code, label: LANG_NAMES[code] })),
  ];

  return (
    <Screen title={t("settings_title")}>
      {state.me && (
        <section class="settings-section" aria-labelledby="account-heading">
          <h2 id="account-heading" class="section-title">
            {t("account")}
          </h2>
          <p class="account">
            <span class="account-name">{state.me.name}</span>
            <span>
              {t("extension")} {state.me.extension} · {state.me.email}
            </span>
            <span>{state.me.company.name}</span>
          </p>
        </section>
      )}
      <fieldset class="settings-section">
        <legend class="section-title">{t("language")}</legend>
        {options.map((option) => (
          <label class="radio" key={option.value}>
            <input
              type="radio"
              name="language"
              value={option.value}
              checked={(chosen ?? "auto") === option.value}
              onChange={() => choose(option.value === "auto" ? null : option.value)}
            />
            <span lang={option.value === "auto" ? undefined : option.value}>{option.label}</span>
          </label>
        ))}
      </fieldset>
      <button type="button" class="button button-danger logout" onClick={() => void session.logout()}>
        <Icon name="logout" />
        <span>{t("logout")}</span>
      </button>
    </Screen>
  );
}
