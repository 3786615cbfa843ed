// My live calls (from GET /me/calls and the call.* events), at the bottom of every screen,
// each with a hang-up button. The in-call screen of the softphone supersedes it.

import type { LiveCall } from "../api/types";
import { useT, type Key } from "../i18n";
import { useServices } from "../services";
import { useStore } from "../store";
import { useFormat } from "./components";
import { Icon } from "./icons";

const STATES: Record<LiveCall["state"], Key> = {
  ringing: "call_state_ringing",
  talking: "call_state_talking",
  "on hold": "call_state_on_hold",
  held: "call_state_held",
  conference: "call_state_conference",
};

export function CallStrip() {
  const { store, phone, notify } = useServices();
  const state = useStore(store);
  const t = useT();
  const format = useFormat();
  if (state.calls.length === 0) return null;
  return (
    <section class="call-strip" aria-label={t("your_calls")}>
      <ul>
        {state.calls.map((call) => {
          const name = call.other.name || format(call.other.number);
          return (
            <li class="call-strip-row" key={call.id} data-call={call.id}>
              <Icon name={call.state === "ringing" ? "bell" : "phone"} />
              <span class="call-strip-text">
                <span class="call-strip-name">{name}</span>
                <span class="call-strip-state" aria-live="polite">
                  {t(STATES[call.state] ?? "call_state_talking")}
                </span>
              </span>
              <button
                type="button"
                class="icon-button hang-up"
                aria-label={t("hang_up", { name })}
                onClick={() =>
                  phone
                    .hangUp(call.id)
                    .catch((error: Error) =>
                      notify(t("error_generic", { message: error.message }), "error"),
                    )
                }
              >
                <Icon name="hangUp" />
              </button>
            </li>
          );
        })}
      </ul>
    </section>
  );
}
