// The personal call log (F16): tabs All, Missed and Inbox (the recordings made during
// calls), newest first, older pages on demand; new calls appear as they end.

import { useEffect, useRef, useState } from "preact/hooks";
import type { LogEntry, LogFilter } from "../api/types";
import { useI18n, type Key } from "../i18n";
import { navigate } from "../router";
import { useServices } from "../services";
import { useStore } from "../store";
import { AudioPlayer, EmptyState, Screen, useCall, useFormat } from "../ui/components";
import { callLength, formatDuration, formatWhen } from "../ui/format";
import { Icon } from "../ui/icons";

const PAGE = 50;

const TABS: { filter: LogFilter; path: string; label: Key; empty: Key }[] = [
  { filter: "all", path: "/calls", label: "tab_all", empty: "calllog_empty_all" },
  { filter: "missed", path: "/calls/missed", label: "tab_missed", empty: "calllog_empty_missed" },
  {
    filter: "recordings",
    path: "/calls/inbox",
    label: "tab_inbox",
    empty: "calllog_empty_recordings",
  },
];

function belongs(entry: LogEntry, filter: LogFilter): boolean {
  if (filter === "missed") return entry.missed;
  if (filter === "recordings") return entry.recordings.length > 0;
  return true;
}

export function CallLog({ filter }: { filter: LogFilter }) {
  const { api, store, notify } = useServices();
  const { t } = useI18n();
  const [entries, setEntries] = useState<LogEntry[] | null>(null);
  const [more, setMore] = useState(false);
  const tabs = useRef<HTMLDivElement>(null);
  // Answers for another tab than the one shown are dropped.
  const generation = useRef(0);

  async function load(before?: number) {
    const asked = generation.current;
    try {
      const page = await api.callLog(filter, before, PAGE);
      if (asked !== generation.current) return;
      setEntries((current) => (before && current ? [...current, ...page] : page));
      setMore(page.length === PAGE);
    } catch (error) {
      notify(t("error_generic", { message: (error as Error).message }), "error");
      setEntries((current) => current ?? []);
    }
  }

  useEffect(() => {
    generation.current++;
    setEntries(null);
    void load();
    return store.onEvent((event) => {
      if (event.type === "sync") void load();
      if (event.type === "call_log.created" && belongs(event.data as LogEntry, filter)) {
        const entry = event.data as LogEntry;
        setEntries((current) =>
          current && !current.some((e) => e.id === entry.id) ? [entry, ...current] : current,
        );
      }
    });
  }, [filter]);

  function onTabKey(event: KeyboardEvent) {
    const index = TABS.findIndex((tab) => tab.filter === filter);
    const step = event.key === "ArrowRight" ? 1 : event.key === "ArrowLeft" ? -1 : 0;
    if (step === 0) return;
    event.preventDefault();
    const next = TABS[(index + step + TABS.length) % TABS.length];
    navigate(next.path, { replace: true });
    setTimeout(() => tabs.current?.querySelector<HTMLElement>('[aria-selected="true"]')?.focus());
  }

  const current = TABS.find((tab) => tab.filter === filter) ?? TABS[0];
  return (
    <Screen title={t("calllog_title")}>
      <div class="tabs" role="tablist" aria-label={t("calllog_title")} ref={tabs} onKeyDown={onTabKey}>
        {TABS.map((tab) => (
          <button
            type="button"
            role="tab"
            id={`tab-${tab.filter}`}
            key={tab.filter}
            aria-selected={tab.filter === filter}
            aria-controls="calllog-panel"
            tabIndex={tab.filter === filter ? 0 : -1}
            onClick={() => navigate(tab.path, { replace: true })}
          >
            {t(tab.label)}
          </button>
        ))}
      </div>
      <div id="calllog-panel" role="tabpanel" aria-labelledby={`tab-${filter}`}>
        {entries === null ? (
          <p class="loading">{t("loading")}</p>
        ) : entries.length === 0 ? (
          <EmptyState icon={filter === "recordings" ? "inbox" : "history"}>{t(current.empty)}</EmptyState>
        ) : (
          <ul class="log-list">
            {entries.map((entry) => (
              <LogRow entry={entry} inbox={filter === "recordings"} key={entry.id} />
            ))}
          </ul>
        )}
        {more && entries && (
          <button
            type="button"
            class="button button-secondary load-more"
            onClick={() => void load(entries[entries.length - 1]?.id)}
          >
            {t("load_more")}
          </button>
        )}
      </div>
    </Screen>
  );
}

const OUTCOMES: Record<string, Key> = {
  answered: "outcome_answered",
  missed: "outcome_missed",
  busy: "outcome_busy",
  failed: "outcome_failed",
  cancelled: "outcome_cancelled",
  rejected: "outcome_rejected",
  voicemail: "outcome_voicemail",
};

function LogRow({ entry, inbox }: { entry: LogEntry; inbox: boolean }) {
  const { api, store } = useServices();
  const state = useStore(store);
  const { t, lang } = useI18n();
  const call = useCall();
  const format = useFormat();
  // Outgoing entries carry no name (the API gives the number): a colleague's is known here.
  const colleague = Object.values(state.contacts).find(
    (contact) => contact.extension === entry.other.number,
  );
  const number = entry.other.number;
  const name = entry.other.name || colleague?.name || (number ? format(number) : t("unknown_number"));
  const kind = entry.missed ? "missed" : entry.direction;
  const length = callLength(entry.answered_at, entry.ended_at);
  const outcome = entry.outcome ? OUTCOMES[entry.outcome] : undefined;
  const detail = [
    t(kind === "missed" ? "missed" : kind === "incoming" ? "incoming" : "outgoing"),
    outcome && entry.outcome !== "answered" && entry.outcome !== "missed" ? t(outcome) : null,
    length !== null ? formatDuration(length) : null,
  ]
    .filter(Boolean)
    .join(" · ");
  return (
    <li class={`log-row log-${kind}`} data-entry={entry.id}>
      <span class="log-icon">
        <Icon name={kind === "missed" ? "missed" : kind === "incoming" ? "incoming" : "outgoing"} />
      </span>
      <span class="log-text">
        <span class="log-name">{name}</span>
        {name !== format(number) && number && <span class="log-number">{format(number)}</span>}
        <span class="log-detail">
          {detail} · <time dateTime={entry.started_at}>{formatWhen(entry.started_at, lang, t)}</time>
        </span>
        {inbox &&
          entry.recordings.map((recording) => (
            <span class="log-recording" key={recording.id}>
              <AudioPlayer
                label={t("recording", { duration: formatDuration(recording.duration_ms) })}
                load={() => api.recording(recording.id)}
              />
            </span>
          ))}
      </span>
      {number && (
        <button
          type="button"
          class="icon-button call-button"
          aria-label={t("call_back", { name })}
          onClick={() => void call(number)}
        >
          <Icon name="phone" />
        </button>
      )}
    </li>
  );
}
