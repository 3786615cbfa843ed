// The app shell: the login until there is a session, then the screens by path, the live
// event stream's state, my live calls and the messages at the bottom.

import { useEffect, useLayoutEffect, useMemo, useState } from "preact/hooks";
import type { EventStream } from "./events";
import {
  I18nContext,
  resolveLang,
  saveLang,
  savedLang,
  translator,
  useT,
  type I18n,
  type Lang,
} from "./i18n";
import { navigate, usePath } from "./router";
import { BackToCall, CallEnds, CallScreen, useSoftphone } from "./screens/Call";
import { CallLog } from "./screens/CallLog";
import { ContactCard } from "./screens/ContactCard";
import { Dialpad } from "./screens/Dialpad";
import { GroupVoicemail, Groups } from "./screens/Groups";
import { Home } from "./screens/Home";
import { Login } from "./screens/Login";
import { Menu } from "./screens/Menu";
import { Settings } from "./screens/Settings";
import { StatusMenu } from "./screens/StatusMenu";
import { Voicemail } from "./screens/Voicemail";
import { ServicesContext, useServices, type NoticeKind, type Services } from "./services";
import { useStore } from "./store";
import { CallStrip } from "./ui/CallStrip";

const NOTICE_MS = 6000;
const COMPANY_LANG = "nuage.company-lang";

interface Notice {
  id: number;
  text: string;
  kind: NoticeKind;
}

export function App({ services, stream }: { services: Omit<Services, "notify">; stream: EventStream }) {
  const { session, store } = services;
  const state = useStore(store);
  const [loggedIn, setLoggedIn] = useState(session.active);
  const [chosen, setChosen] = useState<Lang | null>(savedLang());
  const [notices, setNotices] = useState<Notice[]>([]);

  // The company's language is remembered: the next start (offline too) speaks it at once.
  const company = state.me?.company.language ?? localStorage.getItem(COMPANY_LANG);
  const lang = resolveLang(chosen, company ?? undefined);
  useEffect(() => {
    if (state.me) localStorage.setItem(COMPANY_LANG, state.me.company.language);
  }, [state.me?.company.language]);
  const i18n = useMemo<I18n>(
    () => ({
      lang,
      chosen,
      t: translator(lang),
      choose(next) {
        saveLang(next);
        setChosen(next);
      },
    }),
    [lang, chosen],
  );
  useLayoutEffect(() => {
    document.documentElement.lang = lang;
    document.title = i18n.t("app_name");
  }, [lang]);

  const all = useMemo<Services>(
    () => ({
      ...services,
      notify(text, kind = "info") {
        const id = Date.now() + Math.random();
        setNotices((current) => [...current.slice(-2), { id, text, kind }]);
        setTimeout(() => setNotices((current) => current.filter((n) => n.id !== id)), NOTICE_MS);
      },
    }),
    [services],
  );

  useEffect(
    () =>
      session.subscribe((change) => {
        if (change === "logged-out") {
          localStorage.removeItem(COMPANY_LANG);
          stream.stop();
          store.reset();
          setLoggedIn(false);
        } else if (change === "logged-in") {
          setLoggedIn(true);
        }
      }),
    [],
  );
  useEffect(() => {
    if (loggedIn) stream.start();
  }, [loggedIn]);

  return (
    <I18nContext.Provider value={i18n}>
      <ServicesContext.Provider value={all}>
        <div class="app">
          {loggedIn ? <Shell /> : <Login />}
          <div class="notices" role="status" aria-live="polite">
            {notices
              .filter((notice) => notice.kind === "info")
              .map((notice) => (
                <p class="toast" key={notice.id}>
                  {notice.text}
                </p>
              ))}
          </div>
          <div class="notices notices-errors" role="alert">
            {notices
              .filter((notice) => notice.kind === "error")
              .map((notice) => (
                <p class="toast toast-error" key={notice.id}>
                  {notice.text}
                </p>
              ))}
          </div>
        </div>
      </ServicesContext.Provider>
    </I18nContext.Provider>
  );
}

function Shell() {
  const { store, softphone } = useServices();
  const state = useStore(store);
  const soft = useSoftphone(softphone);
  const path = usePath();
  const t = useT();

  if (!state.ready) {
    return (
      <main class="splash" aria-busy={state.syncError === null}>
        <img src="/icons/icon.svg" alt="" width={72} height={72} />
        {state.syncError !== null ? (
          <>
            <p role="alert">{t("error_generic", { message: state.syncError })}</p>
            <button type="button" class="button button-primary" onClick={() => void store.sync()}>
              {t("retry")}
            </button>
          </>
        ) : (
          <p>{state.stream === "connecting" ? t("reconnecting") : t("loading")}</p>
        )}
      </main>
    );
  }
  const calls = soft?.calls ?? [];
  // A call of this browser's: its screen, full screen, until it ends; the app's screens
  // while the user chooses whom to call next (a call ringing in comes first).
  const onCall =
    calls.length > 0 && (!soft?.choosing || calls.some((call) => call.state === "incoming"));
  return (
    <>
      {state.stream !== "open" && (
        <p class="banner" role="status">
          {t("reconnecting")}
        </p>
      )}
      {soft !== null && softphone !== undefined && onCall ? (
        <CallScreen state={soft} softphone={softphone} />
      ) : (
        <>
          {soft !== null && softphone !== undefined && calls.length > 0 && (
            <BackToCall state={soft} softphone={softphone} />
          )}
          <Route path={path} />
          <CallStrip />
        </>
      )}
      <CallEnds ended={soft?.ended ?? null} />
    </>
  );
}

function Route({ path }: { path: string }) {
  let match: RegExpExecArray | null;
  if (path === "/" || path === "/login") return <Home />;
  if (path === "/menu")
    return (
      <>
        <Home menuOpen />
        <Menu />
      </>
    );
  if (path === "/status") return <StatusMenu />;
  if (path === "/dial") return <Dialpad />;
  if ((match = /^\/contact\/(\d+)$/.exec(path))) return <ContactCard id={Number(match[1])} key={path} />;
  if (path === "/calls") return <CallLog filter="all" />;
  if (path === "/calls/missed") return <CallLog filter="missed" />;
  if (path === "/calls/inbox") return <CallLog filter="recordings" />;
  if (path === "/voicemail") return <Voicemail />;
  if (path === "/groups") return <Groups />;
  if ((match = /^\/groups\/(\d+)$/.exec(path))) return <GroupVoicemail id={Number(match[1])} key={path} />;
  if (path === "/settings") return <Settings />;
  return <Redirect to="/" />;
}

function Redirect({ to }: { to: string }) {
  useEffect(() => navigate(to, { replace: true }), [to]);
  return null;
}
