// Pieces the screens share.

import type { ComponentChildren, JSX } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import type { Contact, LineState, Status } from "../api/types";
import { useI18n, useT, type Key } from "../i18n";
import { callingCodeOf, callingCodeOfCountry, formatNumber } from "../numbers";
import { back, navigate } from "../router";
import type { SoftphoneControls, SoftphoneState, SoftphoneStatus } from "../phone/softphone";
import { useServices } from "../services";
import { useStore, type AppState } from "../store";
import { LINE_ICONS, statusColour, statusIcon, textOn } from "./colours";
import { Icon, type IconName } from "./icons";

/** A link to a screen of the app (a real link: middle-click, "open in new tab" work). */
export function Link(
  props: JSX.HTMLAttributes<HTMLAnchorElement> & { href: string; replace?: boolean },
) {
  const { href, onClick, replace, ...rest } = props;
  return (
    <a
      {...rest}
      href={href}
      onClick={(event) => {
        onClick?.(event as JSX.TargetedMouseEvent<HTMLAnchorElement>);
        if (event.defaultPrevented || event.button !== 0) return;
        if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
        event.preventDefault();
        navigate(href, { replace });
      }}
    />
  );
}

/** A screen with a top bar: back, the title (focused when the screen opens), actions. */
export function Screen(props: {
  title: string;
  backTo?: string;
  actions?: ComponentChildren;
  children: ComponentChildren;
  class?: string;
}) {
  const t = useT();
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => heading.current?.focus({ preventScroll: true }), []);
  return (
    <div class={`screen ${props.class ?? ""}`}>
      <header class="topbar">
        <button
          type="button"
          class="icon-button"
          aria-label={t("back")}
          onClick={() => back(props.backTo ?? "/")}
        >
          <Icon name="back" />
        </button>
        <h1 tabIndex={-1} ref={heading}>
          {props.title}
        </h1>
        <div class="topbar-actions">{props.actions}</div>
      </header>
      <main class="screen-body">{props.children}</main>
    </div>
  );
}

export function statusOf(state: AppState, key: string | undefined): Status | undefined {
  return state.statuses.find((status) => status.key === key);
}

/** A status: its colour, its shape (what it does) and its name. */
export function StatusBadge({ statusKey, name }: { statusKey: string; name: string }) {
  const { store } = useServices();
  const state = useStore(store);
  const status = statusOf(state, statusKey);
  const colour = statusColour(status);
  return (
    <span class="status-badge" data-status={statusKey}>
      <span class="status-dot" style={{ background: colour, color: textOn(colour) }}>
        <Icon name={statusIcon(status)} size={14} />
      </span>
      <span class="status-name">{name}</span>
    </span>
  );
}

const LINE_KEYS: Record<LineState, Key> = {
  offline: "line_offline",
  available: "line_available",
  ringing: "line_ringing",
  "in call": "line_in_call",
  "on hold": "line_on_hold",
};

export function LineBadge({ state }: { state: LineState }) {
  const t = useT();
  return (
    <span class={`line-badge line-${state.replace(" ", "-")}`} data-line={state}>
      <Icon name={LINE_ICONS[state] ?? "offline"} size={14} />
      <span>{t(LINE_KEYS[state] ?? "line_offline")}</span>
    </span>
  );
}

export function initials(name: string): string {
  const words = name.trim().split(/\s+/).filter(Boolean);
  const letters = words.length > 1 ? [words[0], words[words.length - 1]] : words;
  return letters.map((word) => word[0]?.toUpperCase() ?? "").join("");
}

export function Avatar({ name, statusKey, large }: { name: string; statusKey?: string; large?: boolean }) {
  const { store } = useServices();
  const state = useStore(store);
  const colour = statusColour(statusOf(state, statusKey));
  return (
    <span class={`avatar${large ? " avatar-large" : ""}`} style={{ borderColor: colour }} aria-hidden="true">
      {initials(name)}
    </span>
  );
}

/** A colleague in a list: opens their card; the phone button calls their extension. */
export function ContactRow({ contact }: { contact: Contact }) {
  const t = useT();
  const call = useCall();
  return (
    <li class="contact-row" data-contact={contact.id}>
      <Link href={`/contact/${contact.id}`} class="contact-link">
        <Avatar name={contact.name} statusKey={contact.status} />
        <span class="contact-text">
          <span class="contact-name">{contact.name}</span>
          <span class="contact-meta">
            <StatusBadge statusKey={contact.status} name={contact.status_name} />
            <LineBadge state={contact.line_state} />
          </span>
        </span>
      </Link>
      <button
        type="button"
        class="icon-button call-button"
        aria-label={t("call_target", { name: contact.name, number: contact.extension })}
        onClick={() => void call(contact.extension)}
      >
        <Icon name="phone" />
      </button>
    </li>
  );
}

/** The company's calling code: its country's (GET /me), else that of the numbers seen. */
export function useHomeCode(): string | null {
  const { store } = useServices();
  const state = useStore(store);
  const fromCountry = callingCodeOfCountry(state.me?.company.country);
  if (fromCountry !== null) return fromCountry;
  const own = state.me ? (state.contacts[state.me.id]?.numbers ?? []) : [];
  return callingCodeOf([...own, ...Object.values(state.contacts).flatMap((c) => c.numbers)]);
}

export function useFormat(): (number: string) => string {
  const home = useHomeCode();
  return (number) => formatNumber(number, home);
}

/** Places a call through the phone and tells the user how it went. */
export function useCall(): (target: string) => Promise<boolean> {
  const { phone, notify } = useServices();
  const t = useT();
  const format = useFormat();
  return async (target) => {
    const shown = format(target);
    const mode = phone.mode;
    const outcome = await phone.call(target);
    if (outcome.ok) {
      // The softphone shows its call screen; click-to-call rings the user's phone first.
      if (mode === "click-to-call") notify(t("calling", { target: shown }));
      return true;
    }
    const text =
      outcome.reason === "no_device"
        ? t("call_no_device")
        : outcome.reason === "invalid"
          ? t("call_invalid", { target: shown })
          : outcome.reason === "offline"
            ? t("error_offline")
            : t("call_failed", { message: outcome.message });
    notify(text, "error");
    return false;
  };
}

/** A notice in the page (not a passing message): the user has no registered phone. */
export function NoDeviceNotice() {
  const { store, softphone } = useServices();
  const state = useStore(store);
  const soft = useSoftphoneStatus(softphone);
  const t = useT();
  const mine = state.me ? state.contacts[state.me.id] : undefined;
  if (mine === undefined || mine.line_state !== "offline") return null;
  // This browser is becoming (or just became) one of my phones.
  if (soft === "connecting" || soft === "registered") return null;
  return (
    <p class="notice notice-warning" data-testid="no-device">
      {t("no_device")}
    </p>
  );
}

/** Plays an audio file of the API (fetched with the bearer token, then a blob URL). */
export function AudioPlayer(props: {
  label: string;
  load: () => Promise<Blob>;
  onPlay?: () => void;
}) {
  const { notify } = useServices();
  const t = useT();
  const [url, setUrl] = useState<string | null>(null);
  const [loading, setLoading] = useState(false);
  useEffect(() => () => {
    if (url) URL.revokeObjectURL(url);
  }, [url]);
  if (url) {
    return (
      <audio
        class="player"
        controls
        autoPlay
        src={url}
        aria-label={props.label}
        onPlay={props.onPlay}
      />
    );
  }
  return (
    <button
      type="button"
      class="button button-secondary"
      disabled={loading}
      aria-label={t("play", { what: props.label })}
      onClick={async () => {
        setLoading(true);
        try {
          setUrl(URL.createObjectURL(await props.load()));
        } catch (error) {
          notify(t("error_generic", { message: (error as Error).message }), "error");
        } finally {
          setLoading(false);
        }
      }}
    >
      <Icon name="play" />
      <span>{loading ? t("loading") : t("play_short")}</span>
    </button>
  );
}

export function EmptyState({ icon, children }: { icon: IconName; children: ComponentChildren }) {
  return (
    <div class="empty">
      <Icon name={icon} size={40} />
      <p>{children}</p>
    </div>
  );
}

export function useLang() {
  return useI18n().lang;
}

/** The softphone's state in a component, re-rendered at each change; null without one. */
export function useSoftphone(softphone: SoftphoneControls | undefined): SoftphoneState | null {
  const [state, setState] = useState(softphone?.get() ?? null);
  useEffect(() => {
    if (softphone === undefined) return;
    setState(softphone.get());
    return softphone.subscribe(() => setState(softphone.get()));
  }, [softphone]);
  return state;
}

/** The softphone's status ("off" without one). */
export function useSoftphoneStatus(softphone: SoftphoneControls | undefined): SoftphoneStatus {
  return useSoftphone(softphone)?.status ?? "off";
}

/** A question before an action that cannot be undone (a transfer, recording someone):
 * modal, focus on the confirm button, Escape cancels. */
export function ConfirmDialog(props: {
  title: string;
  confirm: string;
  onConfirm: () => void;
  onCancel: () => void;
  children: ComponentChildren;
}) {
  const t = useT();
  const confirm = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    const opener = document.activeElement as HTMLElement | null;
    confirm.current?.focus();
    const onKey = (event: KeyboardEvent) => {
      if (event.key === "Escape") props.onCancel();
    };
    document.addEventListener("keydown", onKey);
    return () => {
      document.removeEventListener("keydown", onKey);
      opener?.focus?.();
    };
  }, []);
  return (
    <div class="dialog-backdrop">
      <div class="dialog" role="alertdialog" aria-modal="true" aria-labelledby="dialog-title" aria-describedby="dialog-text">
        <h2 id="dialog-title">{props.title}</h2>
        <p id="dialog-text">{props.children}</p>
        <div class="dialog-actions">
          <button type="button" class="button" onClick={props.onCancel}>
            {t("cancel")}
          </button>
          <button type="button" class="button button-primary" ref={confirm} onClick={props.onConfirm}>
            {props.confirm}
          </button>
        </div>
      </div>
    </div>
  );
}
