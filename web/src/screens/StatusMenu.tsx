// The status menu (F2, F3): the current status; tapped, the company's statuses; one tapped
// becomes mine (PUT /me/status) and colleagues see it at once (presence.status).

import { useState } from "preact/hooks";
import type { Status } from "../api/types";
import { useT, type Translate } from "../i18n";
import { back } from "../router";
import { useServices } from "../services";
import { useStore } from "../store";
import { statusColour, statusIcon, textOn } from "../ui/colours";
import { Screen, useFormat } from "../ui/components";
import { Icon } from "../ui/icons";

export function StatusMenu() {
  const { api, store, notify } = useServices();
  const state = useStore(store);
  const t = useT();
  const format = useFormat();
  const [open, setOpen] = useState(false);
  const [saving, setSaving] = useState<string | null>(null);
  const current = state.myStatus ?? undefined;
  const colour = statusColour(current);

  async function choose(status: Status) {
    setSaving(status.key);
    try {
      const now = await api.setStatus(status.key);
      store.set({ myStatus: now });
      notify(t("status_set", { name: now.name }));
      back("/");
    } catch (error) {
      notify(t("error_generic", { message: (error as Error).message }), "error");
    } finally {
      setSaving(null);
    }
  }

  return (
    <Screen title={t("status_title")}>
      <button
        type="button"
        class="status-current"
        style={{ background: colour, color: textOn(colour) }}
        aria-expanded={open}
        aria-controls="status-list"
        onClick={() => setOpen(!open)}
      >
        <Icon name={statusIcon(current)} />
        <span class="status-current-text">
          <span class="status-current-name">{t("status_current", { name: current?.name ?? "…" })}</span>
          {!open && <span class="status-current-hint">{t("status_show_all")}</span>}
        </span>
        <Icon name="expand" />
      </button>
      {open && (
        <section aria-labelledby="status-list-heading">
          <h2 id="status-list-heading" class="section-title">
            {t("status_list")}
          </h2>
          <ul class="status-list" id="status-list">
            {state.statuses.map((status) => {
              const selected = status.key === current?.key;
              const background = statusColour(status);
              return (
                <li key={status.key}>
                  <button
                    type="button"
                    class="status-option"
                    data-status={status.key}
                    aria-current={selected ? "true" : undefined}
                    disabled={saving !== null}
                    onClick={() => void choose(status)}
                  >
                    <span
                      class="status-dot status-dot-large"
                      style={{ background, color: textOn(background) }}
                    >
                      <Icon name={statusIcon(status)} size={20} />
                    </span>
                    <span class="status-option-text">
                      <span class="status-option-name">
                        {status.name}
                        {selected && <span class="tag">{t("status_now")}</span>}
                      </span>
                      <span class="status-option-hint">{behaviour(status, t, format)}</span>
                    </span>
                    {selected && <Icon name="check" />}
                  </button>
                </li>
              );
            })}
          </ul>
        </section>
      )}
    </Screen>
  );
}

function behaviour(status: Status, t: Translate, format: (n: string) => string): string {
  const what =
    status.behaviour === "forward"
      ? t("behaviour_forward", { target: format(status.forward_to ?? "") })
      : status.behaviour === "voicemail"
        ? t("behaviour_voicemail")
        : status.behaviour === "busy"
          ? t("behaviour_busy")
          : t("behaviour_ring");
  return status.pause_acd ? `${what} ${t("pauses_groups")}` : what;
}
