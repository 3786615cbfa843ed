import { render } from "preact";
import { Api } from "./api/client";
import { App } from "./app";
import { EventStream } from "./events";
import { createPhone } from "./phone";
import { Softphone } from "./phone/softphone";
import { Session } from "./session";
import { installShellWorker } from "./shell_worker";
import { Store } from "./store";
import "./styles.css";

const session = new Session();
const api = new Api(session);
const store = new Store(api);
const softphone = new Softphone(session, {
  nameOf: (number) =>
    Object.values(store.get().contacts).find((contact) => contact.extension === number)?.name,
});
const phone = createPhone(api, softphone);
// Once I am known (and again if my extension changes): this browser registers as my phone.
store.subscribe(() => {
  const me = store.get().me;
  if (me !== null && session.active) {
    void softphone.start({ extension: me.extension, domain: me.company.domain, name: me.name });
  }
});
let fallback: ReturnType<typeof setTimeout> | undefined;
const stream = new EventStream(session, {
  onSync: () => void store.sync(),
  onEvent: (event) => store.apply(event),
  onState: (state) => {
    store.set({ stream: state });
    clearTimeout(fallback);
    // No event stream for a while (a proxy refusing WebSockets?): the screens load through
    // the REST API alone, and the banner says the live updates are missing.
    if (state === "connecting" && !store.get().ready) {
      fallback = setTimeout(() => {
        if (!store.get().ready && session.active) void store.sync();
      }, 5000);
    }
  },
});

// Back online, or back to the app after a while: reconnect now rather than at the backoff.
window.addEventListener("online", () => stream.poke());
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") stream.poke();
});

render(<App services={{ session, api, store, phone, softphone }} stream={stream} />, document.getElementById("app")!);

if ("serviceWorker" in navigator && import.meta.env.PROD) {
  window.addEventListener("load", () => void installShellWorker(navigator.serviceWorker));
}
