// Settings: calls in this browser (the softphone, on by default; and notifications of
// incoming calls), the language (the company's by default; the choice applies at once and
// is kept on this device) and logging out.

import { useState } from "preact/hooks";
import { LANG_NAMES, LANGS, isLang, useI18n, type Lang } from "../i18n";
import { useServices } from "../services";
import { useStore } from "../store";
import type { SoftphoneControls, SoftphoneStatus } from "../phone/softphone";
import { Screen, useSoftphone } from "../ui/components";
import { Icon } from "../ui/icons";

export function Settings() {
  const { session, store, softphone } = useServices();
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
      {softphone !== undefined && <SoftphoneSettings softphone={softphone} />}
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

const STATUS_KEYS = {
  off: "softphone_off",
  unsupported: "softphone_unsupported",
  connecting: "softphone_connecting",
  registered: "softphone_registered",
  failed: "softphone_failed",
} as const satisfies Record<SoftphoneStatus, string>;

function SoftphoneSettings({ softphone }: { softphone: SoftphoneControls }) {
  const { t } = useI18n();
  const state = useSoftphone(softphone) ?? softphone.get();
  const { status, enabled } = state;
  const [permission, setPermission] = useState(
    typeof Notification === "undefined" ? "unsupported" : Notification.permission,
  );
  return (
    <section class="settings-section" aria-labelledby="softphone-heading">
      <h2 id="softphone-heading" class="section-title">
        {t("settings_softphone")}
      </h2>
      <label class="radio">
        <input
          type="checkbox"
          checked={enabled}
          onChange={(event) => softphone.setEnabled(event.currentTarget.checked)}
        />
        <span>{t("softphone_toggle")}</span>
      </label>
      <p class="setting-state" role="status" data-softphone={status}>
        {t(STATUS_KEYS[status])}
      </p>
      {enabled && permission === "default" && (
        <button
          type="button"
          class="button button-secondary"
          onClick={() => void Notification.requestPermission().then(setPermission)}
        >
          {t("notifications_allow")}
        </button>
      )}
      {enabled && permission === "granted" && <p class="setting-state">{t("notifications_on")}</p>}
      {enabled && permission === "denied" && <p class="setting-state">{t("notifications_blocked")}</p>}
    </section>
  );
}
