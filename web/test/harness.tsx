// Renders a screen with the app's contexts around it: a store over a fake API, a phone
// that records calls, the English dictionary.
import { render } from "@testing-library/preact";
import type { ComponentChildren } from "preact";
import { vi } from "vitest";
import type { Api } from "../src/api/client";
import type { Contact, Me, Status } from "../src/api/types";
import { I18nContext, translator } from "../src/i18n";
import type { CallOutcome, Phone } from "../src/phone";
import type { SoftphoneControls } from "../src/phone/softphone";
import { ServicesContext, type Services } from "../src/services";
import type { Session } from "../src/session";
import { Store } from "../src/store";

export const STATUSES: Status[] = [
  { key: "available", name: "Available", colour: "#2e7d32", behaviour: "ring", forward_to: null, pause_acd: false },
  { key: "meeting", name: "In a meeting", colour: "#ef6c00", behaviour: "voicemail", forward_to: null, pause_acd: false },
  { key: "dnd", name: "Do not disturb", colour: "#c62828", behaviour: "busy", forward_to: null, pause_acd: true },
];

export const ME: Me = {
  id: 1,
  name: "Élodie Martin",
  extension: "1001",
  email: "elodie@acme.example",
  role: "user",
  company: { id: 1, name: "Acme", domain: "acme.example", country: "BE", language: "fr" },
};

export function contact(id: number, name: string, extra: Partial<Contact> = {}): Contact {
  return {
    id,
    name,
    extension: String(1000 + id),
    email: `${name.split(" ")[0].toLowerCase()}@acme.example`,
    numbers: [],
    status: "available",
    status_name: "Available",
    line_state: "available",
    ...extra,
  };
}

export function setup(
  options: { api?: Partial<Api>; outcome?: CallOutcome; softphone?: SoftphoneControls } = {},
) {
  const api = { ...options.api } as Api;
  const store = new Store(api);
  store.set({
    me: ME,
    statuses: STATUSES,
    myStatus: STATUSES[0],
    contacts: { 1: contact(1, "Élodie Martin", { numbers: ["+3225550100"] }) },
    ready: true,
    stream: "open",
  });
  const calls: string[] = [];
  const phone: Phone = {
    mode: "click-to-call",
    async call(target) {
      calls.push(target);
      return options.outcome ?? { ok: true, callId: "c1" };
    },
    hangUp: vi.fn(async () => undefined),
  };
  const notices: string[] = [];
  const services: Services = {
    session: {} as Session,
    api,
    store,
    phone,
    softphone: options.softphone,
    notify: (text) => notices.push(text),
  };
  const wrap = (ui: ComponentChildren) => (
    <I18nContext.Provider value={{ lang: "en", chosen: "en", t: translator("en"), choose: () => undefined }}>
      <ServicesContext.Provider value={services}>{ui}</ServicesContext.Provider>
    </I18nContext.Provider>
  );
  return {
    store,
    calls,
    notices,
    render: (ui: ComponentChildren) => render(wrap(ui)),
  };
}
