// What every screen uses: the session, the API, the shared state, the phone, and a way
// to tell the user something (a message at the bottom of the screen, read out too).

import { createContext } from "preact";
import { useContext } from "preact/hooks";
import type { Api } from "./api/client";
import type { Phone } from "./phone";
import type { SoftphoneControls } from "./phone/softphone";
import type { Session } from "./session";
import type { Store } from "./store";

export type NoticeKind = "info" | "error";

export interface Services {
  session: Session;
  api: Api;
  store: Store;
  phone: Phone;
  /** The phone in this browser (its calls' screens); absent in some tests. */
  softphone?: SoftphoneControls;
  notify(text: string, kind?: NoticeKind): void;
}

export const ServicesContext = createContext<Services | null>(null);

export function useServices(): Services {
  const services = useContext(ServicesContext);
  if (services === null) throw new Error("useServices outside ServicesContext");
  return services;
}
