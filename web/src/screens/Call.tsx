// The softphone's call screens (F6, F7, F11), full screen over the app: the incoming call
// (who calls, answer, decline; the ringtone; a notification when the app is in the
// background) and the call itself (who, the timer or how it is going, mute, the keypad
// sending DTMF, hold with "on hold" under the number, hang up). The other party's audio
// plays through an <audio> element.

import { useEffect, useRef, useState } from "preact/hooks";
import { useT, type Key, type Translate } from "../i18n";
import type { CallEnd, EndReason, SoftCall, SoftphoneControls } from "../phone/softphone";
import { Ringtone } from "../phone/ringtone";
import { useServices } from "../services";
import { useStore } from "../store";
import { KEYS } from "./Dialpad";
import { initials, useFormat } from "../ui/components";

export { useSoftphone } from "../ui/components";
import { Icon } from "../ui/icons";

export function CallScreen({ call, softphone }: { call: SoftCall; softphone: SoftphoneControls }) {
  return (
    <>
      <RemoteAudio stream={call.remote} />
      {call.state === "incoming" ? (
        <IncomingCall call={call} softphone={softphone} />
      ) : (
        <InCall call={call} softphone={softphone} />
      )}
    </>
  );
}

function RemoteAudio({ stream }: { stream: MediaStream | null }) {
  const audio = useRef<HTMLAudioElement>(null);
  useEffect(() => {
    const element = audio.current;
    if (element === null || element.srcObject === stream) return;
    element.srcObject = stream;
    if (stream !== null) void element.play().catch(() => undefined);
  }, [stream]);
  return <audio ref={audio} class="remote-audio" autoPlay />;
}

/** Who the other party is: the name the call carries, else a colleague's of the directory
 * or the one the server gives the call (its call.* events), else the number. */
function useCallName(call: Pick<SoftCall, "name" | "number">): { name: string; number: string } {
  const t = useT();
  const format = useFormat();
  const { store } = useServices();
  const state = useStore(store);
  const known =
    call.name ||
    Object.values(state.contacts).find((contact) => contact.extension === call.number)?.name ||
    state.calls.find((live) => live.other.number === call.number && live.other.name)?.other.name ||
    "";
  const number = call.number ? format(call.number) : "";
  const name = known || number || t("unknown_number");
  return { name, number: known ? number : "" };
}

function useFocusedHeading() {
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => heading.current?.focus({ preventScroll: true }), []);
  return heading;
}

function IncomingCall({ call, softphone }: { call: SoftCall; softphone: SoftphoneControls }) {
  const t = useT();
  const { name, number } = useCallName(call);
  const heading = useFocusedHeading();
  useEffect(() => {
    const ringtone = new Ringtone();
    ringtone.start();
    const notification = notifyIncoming(t("incoming_call"), t("notification_body", { name }));
    return () => {
      ringtone.stop();
      notification?.close();
    };
  }, [call.id]);
  return (
    <main class="call-screen call-incoming" aria-labelledby="call-name" data-call-state="incoming">
      <div class="call-head">
        <p class="call-kind">{t("incoming_call")}</p>
        <span class="avatar avatar-call" aria-hidden="true">
          {initials(name)}
        </span>
        <h1 id="call-name" class="call-name" tabIndex={-1} ref={heading}>
          {name}
        </h1>
        {number && <p class="call-number">{number}</p>}
      </div>
      <div class="call-answer-row">
        <div class="call-action">
          <button
            type="button"
            class="round round-red"
            aria-label={t("decline_call", { name })}
            onClick={() => softphone.decline()}
          >
            <Icon name="hangUp" size={32} />
          </button>
          <span aria-hidden="true">{t("decline")}</span>
        </div>
        <div class="call-action">
          <button
            type="button"
            class="round round-green"
            aria-label={t("answer_call", { name })}
            onClick={() => softphone.answer()}
          >
            <Icon name="phone" size={32} />
          </button>
          <span aria-hidden="true">{t("answer")}</span>
        </div>
      </div>
    </main>
  );
}

const PROGRESS: Partial<Record<SoftCall["state"], Key>> = {
  calling: "call_calling",
  ringing: "call_ringing_far",
  connecting: "call_connecting",
};

function InCall({ call, softphone }: { call: SoftCall; softphone: SoftphoneControls }) {
  const t = useT();
  const { name, number } = useCallName(call);
  const heading = useFocusedHeading();
  const [keypad, setKeypad] = useState(false);
  const talking = call.state === "talking";
  const progress = PROGRESS[call.state];
  return (
    <main
      class="call-screen call-active"
      aria-labelledby="call-name"
      data-call-state={call.held ? "on hold" : call.state}
    >
      <div class="call-head">
        <span class="avatar avatar-call" aria-hidden="true">
          {initials(name)}
        </span>
        <h1 id="call-name" class="call-name" tabIndex={-1} ref={heading}>
          {name}
        </h1>
        {number && <p class="call-number">{number}</p>}
        <p class="call-status" aria-live="polite">
          {call.held && <span class="call-held">{t("call_state_on_hold")}</span>}
          {progress !== undefined && <span>{t(progress)}</span>}
        </p>
        {talking && call.answeredAt !== null && <CallTimer since={call.answeredAt} />}
      </div>
      {keypad ? (
        <section class="call-keypad" id="call-keypad" aria-label={t("keypad")}>
          <output class="call-keys" aria-label={t("keys_sent")}>
            {call.keys}
          </output>
          <div class="keypad">
            {KEYS.map(([key, letters]) => (
              <button
                type="button"
                class="key"
                key={key}
                disabled={!talking}
                onClick={() => softphone.sendDtmf(key)}
              >
                <span class="key-digit">{key}</span>
                <span class="key-letters" aria-hidden="true">
                  {letters}
                </span>
              </button>
            ))}
          </div>
        </section>
      ) : null}
      <div class="call-controls" role="group" aria-label={t("call_actions")}>
        <button
          type="button"
          class="call-toggle"
          aria-pressed={call.muted}
          onClick={() => softphone.setMuted(!call.muted)}
        >
          <Icon name={call.muted ? "micOff" : "mic"} size={28} />
          <span>{t("mute")}</span>
        </button>
        <button
          type="button"
          class="call-toggle"
          aria-expanded={keypad}
          aria-controls="call-keypad"
          onClick={() => setKeypad(!keypad)}
        >
          <Icon name="dialpad" size={28} />
          <span>{keypad ? t("keypad_hide") : t("keypad")}</span>
        </button>
        <button
          type="button"
          class="call-toggle"
          aria-pressed={call.held}
          disabled={!talking}
          onClick={() => softphone.setHeld(!call.held)}
        >
          <Icon name="pause" size={28} />
          <span>{t("hold")}</span>
        </button>
      </div>
      <div class="call-hang-up">
        <button
          type="button"
          class="round round-red"
          aria-label={t("hang_up_now")}
          onClick={() => softphone.hangUp()}
        >
          <Icon name="hangUp" size={32} />
        </button>
      </div>
    </main>
  );
}

export function duration(ms: number): string {
  const total = Math.max(0, Math.floor(ms / 1000));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = String(total % 60).padStart(2, "0");
  return hours > 0 ? `${hours}:${String(minutes).padStart(2, "0")}:${seconds}` : `${minutes}:${seconds}`;
}

function CallTimer({ since }: { since: number }) {
  const t = useT();
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, []);
  return (
    <p class="call-timer">
      <span class="visually-hidden">{t("call_duration")} </span>
      <span role="timer">{duration(now - since)}</span>
    </p>
  );
}

const ENDS: Record<EndReason, Key> = {
  hangup: "call_ended",
  busy: "call_end_busy",
  declined: "call_end_declined",
  unavailable: "call_end_unavailable",
  not_found: "call_end_not_found",
  no_answer: "call_end_no_answer",
  missed: "call_end_missed",
  microphone: "call_end_microphone",
  failed: "call_end_failed",
};

export function endMessage(t: Translate, end: CallEnd, name: string): string {
  return t(ENDS[end.reason], { name });
}

/** Says how each call of the softphone ended (once each). */
export function CallEnds({ ended }: { ended: CallEnd | null }) {
  const { notify } = useServices();
  const t = useT();
  const format = useFormat();
  const told = useRef(ended?.seq ?? 0);
  useEffect(() => {
    if (ended === null || ended.seq <= told.current) return;
    told.current = ended.seq;
    const name = ended.name || (ended.number ? format(ended.number) : t("unknown_number"));
    const failed = !["hangup", "missed"].includes(ended.reason);
    notify(endMessage(t, ended, name), failed ? "error" : "info");
  }, [ended?.seq]);
  return null;
}

/** A system notification of the incoming call while the app is not in view (closed
 * when the call is answered or ends); nothing when the user has not allowed them. */
function notifyIncoming(title: string, body: string): { close(): void } | null {
  if (typeof Notification === "undefined" || Notification.permission !== "granted") return null;
  if (document.visibilityState !== "hidden") return null;
  const options: NotificationOptions = {
    body,
    tag: "nuage-incoming-call",
    requireInteraction: true,
    icon: "/icons/icon-192.png",
  };
  try {
    const notification = new Notification(title, options);
    notification.onclick = () => {
      window.focus();
      notification.close();
    };
    return notification;
  } catch {
    // Mobile browsers show notifications through the service worker only.
    let closed = false;
    const worker = navigator.serviceWorker;
    if (worker === undefined) return null;
    const shown = worker.getRegistration().then(async (registration) => {
      if (registration === undefined || closed) return [];
      await registration.showNotification(title, options);
      return registration.getNotifications({ tag: options.tag });
    });
    return {
      close() {
        closed = true;
        void shown.then((list) => list.forEach((notification) => notification.close()));
      },
    };
  }
}
