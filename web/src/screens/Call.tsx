// The softphone's call screens (F6-F15), full screen over the app: the incoming call
// (who calls, answer, decline; the ringtone; a notification when the app is in the
// background) and the call itself: who, the timer or how it is going, the quality bars
// (F9), mute, the keypad sending DTMF, the audio output (F8), hold with "on hold" under
// the number (F11), recording with its warning and countdown (F10), a new call (F12).
// With two calls, the other one waits in a box above: tap it to switch back, its green
// arrow transfers (F13), "conference" merges both (F15). Each call's other party plays
// through an <audio> element on the chosen output.

import { useEffect, useRef, useState } from "preact/hooks";
import type { LiveCall, Quality } from "../api/types";
import { useT, type Key, type Translate } from "../i18n";
import { audioOutput, canChooseOutput, listOutputs, type AudioOutput } from "../phone/output";
import {
  currentCall,
  otherCalls,
  type CallEnd,
  type EndReason,
  type SoftCall,
  type SoftphoneControls,
  type SoftphoneState,
} from "../phone/softphone";
import { Ringtone } from "../phone/ringtone";
import { navigate } from "../router";
import { useServices } from "../services";
import { useStore } from "../store";
import { KEYS } from "./Dialpad";
import { ConfirmDialog, initials, useFormat } from "../ui/components";

export { useSoftphone } from "../ui/components";
import { Icon } from "../ui/icons";

// F10: a recording stops by itself after five minutes (the server enforces it).
export const RECORDING_LIMIT_MS = 5 * 60 * 1000;
const NOBODY = { name: "", number: "", apiId: null };
const RECORD_WARNED_KEY = "nuage.record-warned";

export function CallScreen({ state, softphone }: { state: SoftphoneState; softphone: SoftphoneControls }) {
  const ringing = state.calls.find((call) => call.state === "incoming");
  const current = currentCall(state);
  return (
    <>
      {state.calls.map((call) => (
        <RemoteAudio key={call.id} stream={call.remote} current={call.id === state.current} />
      ))}
      {ringing !== undefined ? (
        <IncomingCall call={ringing} waiting={current !== ringing ? current : null} softphone={softphone} />
      ) : current !== null ? (
        <InCall call={current} others={otherCalls(state)} softphone={softphone} />
      ) : null}
    </>
  );
}

/** Back to the calls from the screens where the user chooses whom to call next (F12). */
export function BackToCall({ state, softphone }: { state: SoftphoneState; softphone: SoftphoneControls }) {
  const t = useT();
  const call = currentCall(state);
  const { name } = useCallName(call ?? NOBODY);
  if (call === null) return null;
  return (
    <div class="back-to-call">
      {state.calls.map((each) => (
        <RemoteAudio key={each.id} stream={each.remote} current={each.id === call.id} />
      ))}
      <button type="button" class="back-to-call-button" onClick={() => softphone.switchTo(call.id)}>
        <Icon name="back" />
        <span>{t("back_to_call", { name })}</span>
        {call.held && <span class="call-held">{t("call_state_on_hold")}</span>}
      </button>
    </div>
  );
}

function RemoteAudio({ stream, current }: { stream: MediaStream | null; current: boolean }) {
  const audio = useRef<HTMLAudioElement>(null);
  const sink = useOutput();
  useEffect(() => {
    const element = audio.current;
    if (element === null || element.srcObject === stream) return;
    element.srcObject = stream;
    if (stream !== null) void element.play().catch(() => undefined);
  }, [stream]);
  useEffect(() => {
    const element = audio.current;
    if (element === null || !canChooseOutput() || element.sinkId === sink) return;
    // An output that went away (a headset unplugged) leaves the device's default.
    element.setSinkId(sink).catch(() => audioOutput.set(""));
  }, [sink]);
  return <audio ref={audio} class="remote-audio" autoPlay data-sink={sink} data-current={current} />;
}

function useOutput(): string {
  const [sink, setSink] = useState(audioOutput.get());
  useEffect(() => audioOutput.subscribe(() => setSink(audioOutput.get())), []);
  return sink;
}

/** Who the other party is. The server's view of the call (its call.* events) first: a
 * menu or a transfer may have put someone else on the line than the number dialled.
 * Else the name the call carries, a colleague's of the directory, else the number. */
export function useCallName(call: Pick<SoftCall, "name" | "number" | "apiId">): { name: string; number: string } {
  const t = useT();
  const format = useFormat();
  const { store } = useServices();
  const state = useStore(store);
  const live = state.calls.find((each) => each.id === call.apiId);
  const other = live !== undefined && live.other.number ? live.other : call;
  const known =
    other.name ||
    Object.values(state.contacts).find((contact) => contact.extension === other.number)?.name ||
    state.calls.find((each) => each.other.number === other.number && each.other.name)?.other.name ||
    "";
  const number = other.number ? format(other.number) : "";
  const name = known || number || t("unknown_number");
  return { name, number: known ? number : "" };
}

/** The call as the server sees it (recording, quality, conference), by its API id. */
function useLiveCall(call: SoftCall): LiveCall | null {
  const { store } = useServices();
  const state = useStore(store);
  return call.apiId === null ? null : (state.calls.find((live) => live.id === call.apiId) ?? null);
}

function useFocusedHeading() {
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => heading.current?.focus({ preventScroll: true }), []);
  return heading;
}

function IncomingCall(props: { call: SoftCall; waiting: SoftCall | null; softphone: SoftphoneControls }) {
  const { call, waiting, softphone } = props;
  const t = useT();
  const { name, number } = useCallName(call);
  const waitingName = useCallName(waiting ?? NOBODY).name;
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
  const choices: [string, string, "round-red" | "round-green", "hangUp" | "phone", () => void][] = [
    [t("decline_call", { name }), t("decline"), "round-red", "hangUp", () => softphone.decline(call.id)],
    [t("answer_call", { name }), t("answer"), "round-green", "phone", () => softphone.answer(call.id)],
  ];
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
        {waiting !== null && <p class="call-waiting">{t("answer_holds", { name: waitingName })}</p>}
      </div>
      <div class="call-answer-row">
        {choices.map(([label, caption, colour, icon, act]) => (
          <div class="call-action" key={icon}>
            <button type="button" class={`round ${colour}`} aria-label={label} onClick={act}>
              <Icon name={icon} size={32} />
            </button>
            <span aria-hidden="true">{caption}</span>
          </div>
        ))}
      </div>
    </main>
  );
}

const PROGRESS: Partial<Record<SoftCall["state"], Key>> = {
  calling: "call_calling",
  ringing: "call_ringing_far",
  connecting: "call_connecting",
};

function InCall({ call, others, softphone }: { call: SoftCall; others: SoftCall[]; softphone: SoftphoneControls }) {
  const t = useT();
  const { api, notify } = useServices();
  const { name, number } = useCallName(call);
  const live = useLiveCall(call);
  const heading = useFocusedHeading();
  const [panel, setPanel] = useState<"keypad" | "output" | null>(null);
  const [warning, setWarning] = useState(false);
  const talking = call.state === "talking";
  const progress = PROGRESS[call.state];
  const conference = live?.state === "conference" ? live.participants : null;
  const failed = (error: Error) => notify(t("error_generic", { message: error.message }), "error");

  const record = () => {
    if (call.apiId === null) return;
    if (live?.recording) {
      void api.stopRecording(call.apiId).catch(failed);
    } else if (localStorage.getItem(RECORD_WARNED_KEY) === null) {
      setWarning(true);
    } else {
      void api.startRecording(call.apiId).catch(failed);
    }
  };
  const toggle = (which: "keypad" | "output") => setPanel(panel === which ? null : which);

  return (
    <main
      class="call-screen call-active"
      aria-labelledby="call-name"
      data-call-state={call.held ? "on hold" : call.state}
    >
      {others.map((other) => (
        <OtherCallBox key={other.id} call={other} current={call} softphone={softphone} />
      ))}
      <div class="call-head">
        <span class="avatar avatar-call" aria-hidden="true">
          {initials(name)}
        </span>
        <h1 id="call-name" class="call-name" tabIndex={-1} ref={heading}>
          {conference !== null ? t("conference_title") : name}
        </h1>
        {conference !== null ? (
          <ul class="call-participants" aria-label={t("participants")}>
            {conference.map((party) => (
              <li key={party.number}>{party.name || party.number}</li>
            ))}
          </ul>
        ) : (
          number && <p class="call-number">{number}</p>
        )}
        <p class="call-status" aria-live="polite">
          {call.held && <span class="call-held">{t("call_state_on_hold")}</span>}
          {progress !== undefined && <span>{t(progress)}</span>}
        </p>
        <div class="call-meters">
          {talking && call.answeredAt !== null && <CallTimer since={call.answeredAt} />}
          {talking && <QualityIndicator quality={live?.quality ?? null} />}
        </div>
        {live?.recording_since && <RecordingCountdown since={Date.parse(live.recording_since)} />}
      </div>
      {panel === "keypad" && (
        <section class="call-keypad" id="call-panel" aria-label={t("keypad")}>
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
                onClick={() => softphone.sendDtmf(call.id, key)}
              >
                <span class="key-digit">{key}</span>
                <span class="key-letters" aria-hidden="true">
                  {letters}
                </span>
              </button>
            ))}
          </div>
        </section>
      )}
      {panel === "output" && <OutputChooser onChosen={() => setPanel(null)} />}
      <div class="call-controls" role="group" aria-label={t("call_actions")}>
        <ControlButton
          icon={call.muted ? "micOff" : "mic"}
          label={t("mute")}
          pressed={call.muted}
          onClick={() => softphone.setMuted(call.id, !call.muted)}
        />
        <ControlButton
          icon="dialpad"
          label={panel === "keypad" ? t("keypad_hide") : t("keypad")}
          expanded={panel === "keypad"}
          onClick={() => toggle("keypad")}
        />
        <ControlButton
          icon="speaker"
          label={t("audio_output")}
          expanded={panel === "output"}
          onClick={() => toggle("output")}
        />
        <ControlButton
          icon="pause"
          label={t("hold")}
          pressed={call.held}
          disabled={!talking}
          onClick={() => softphone.setHeld(call.id, !call.held)}
        />
        <ControlButton
          icon="record"
          label={live?.recording ? t("record_stop") : t("record")}
          pressed={live?.recording ?? false}
          disabled={!talking || call.apiId === null}
          recording={live?.recording ?? false}
          onClick={record}
        />
        <ControlButton
          icon="addCall"
          label={t("new_call")}
          disabled={!talking || others.length > 0}
          onClick={() => {
            softphone.choose(true);
            navigate("/");
          }}
        />
      </div>
      <div class="call-hang-up">
        <button
          type="button"
          class="round round-red"
          aria-label={t("hang_up_now")}
          onClick={() => softphone.hangUp(call.id)}
        >
          <Icon name="hangUp" size={32} />
        </button>
      </div>
      {warning && (
        <ConfirmDialog
          title={t("record_warning_title")}
          confirm={t("record")}
          onCancel={() => setWarning(false)}
          onConfirm={() => {
            setWarning(false);
            localStorage.setItem(RECORD_WARNED_KEY, "1");
            if (call.apiId !== null) void api.startRecording(call.apiId).catch(failed);
          }}
        >
          {t("record_warning")}
        </ConfirmDialog>
      )}
    </main>
  );
}

function ControlButton(props: {
  icon: Parameters<typeof Icon>[0]["name"];
  label: string;
  onClick: () => void;
  pressed?: boolean;
  expanded?: boolean;
  disabled?: boolean;
  recording?: boolean;
}) {
  return (
    <button
      type="button"
      class={`call-toggle${props.recording ? " call-recording" : ""}`}
      aria-pressed={props.pressed}
      aria-expanded={props.expanded}
      aria-controls={props.expanded === undefined ? undefined : "call-panel"}
      disabled={props.disabled}
      onClick={props.onClick}
    >
      <Icon name={props.icon} size={28} />
      <span>{props.label}</span>
    </button>
  );
}

/** The other call (on hold, F12): tap to switch to it; the green arrow joins its party
 * with the one on screen and leaves both (F13); "conference" joins all three (F15). */
function OtherCallBox({ call, current, softphone }: { call: SoftCall; current: SoftCall; softphone: SoftphoneControls }) {
  const t = useT();
  const { api, notify } = useServices();
  const { name } = useCallName(call);
  const currentName = useCallName(current).name;
  const [busy, setBusy] = useState(false);
  const joinable = call.apiId !== null && current.apiId !== null && current.state === "talking" && call.state === "talking";

  const act = async (action: () => Promise<void>, done: Key, ends: EndReason, ending: SoftCall[]) => {
    setBusy(true);
    try {
      // The server ends these calls once it has done it: their end is this message.
      for (const each of ending) softphone.expectEnd(each.id, ends);
      await action();
      notify(t(done));
    } catch (error) {
      for (const each of ending) softphone.expectEnd(each.id, null);
      notify(t("error_generic", { message: (error as Error).message }), "error");
    } finally {
      setBusy(false);
    }
  };
  const transfer = () =>
    act(() => api.attendedTransfer(call.apiId as string, current.apiId as string), "transfer_done", "transferred", [
      call,
      current,
    ]);
  const merge = () =>
    act(() => api.conference(current.apiId as string, call.apiId as string), "conference_done", "merged", [call]);

  return (
    <section class="other-call" aria-label={t("other_call", { name })} data-call={call.apiId ?? call.id}>
      <button type="button" class="other-call-switch" onClick={() => softphone.switchTo(call.id)}>
        <span class="other-call-name">{name}</span>
        <span class="other-call-state">
          {call.state === "talking" ? t("call_state_on_hold") : t(PROGRESS[call.state] ?? "call_state_ringing")}
        </span>
        <span class="visually-hidden">{t("switch_to_call")}</span>
      </button>
      <button
        type="button"
        class="round round-green round-small"
        aria-label={t("transfer_to", { held: name, name: currentName })}
        disabled={!joinable || busy}
        onClick={() => void transfer()}
      >
        <Icon name="transfer" />
      </button>
      <button
        type="button"
        class="icon-button other-call-merge"
        aria-label={t("conference_join", { held: name, name: currentName })}
        disabled={!joinable || busy}
        onClick={() => void merge()}
      >
        <Icon name="merge" />
        <span aria-hidden="true">{t("conference")}</span>
      </button>
    </section>
  );
}

/** Bars from the live MOS (F9); tap for why: loss, jitter, latency. */
export function QualityIndicator({ quality }: { quality: Quality | null }) {
  const t = useT();
  const [open, setOpen] = useState(false);
  const bars = qualityBars(quality);
  const level = t(QUALITY_LEVELS[bars]);
  return (
    <div class="quality">
      <button
        type="button"
        class="quality-button"
        aria-expanded={open}
        aria-controls="quality-details"
        aria-label={t("quality_label", { level })}
        data-bars={bars}
        onClick={() => setOpen(!open)}
      >
        <svg class="quality-bars" width="22" height="18" viewBox="0 0 22 18" aria-hidden="true">
          {[0, 1, 2, 3].map((bar) => (
            <rect
              key={bar}
              x={bar * 6}
              y={12 - bar * 4}
              width="4"
              height={6 + bar * 4}
              rx="1"
              class={bar < bars ? "bar-on" : "bar-off"}
            />
          ))}
        </svg>
      </button>
      {open && (
        <p class="quality-details" id="quality-details" role="status">
          {quality === null ? t("quality_measuring") : qualityDetails(t, quality)}
        </p>
      )}
    </div>
  );
}

const QUALITY_LEVELS: Record<number, Key> = {
  0: "quality_measuring",
  1: "quality_poor",
  2: "quality_fair",
  3: "quality_good",
  4: "quality_excellent",
};

/** 1-4 bars from the MOS (ITU-T G.107's bands: 4.3 is the best G.711 gives); 0 unmeasured. */
export function qualityBars(quality: Quality | null): number {
  if (quality === null) return 0;
  if (quality.mos >= 4.0) return 4;
  if (quality.mos >= 3.6) return 3;
  if (quality.mos >= 3.1) return 2;
  return 1;
}

/** The measures, and what most degrades the call when something does. */
export function qualityDetails(t: Translate, quality: Quality): string {
  const measures = t("quality_measures", {
    loss: quality.loss_percent.toFixed(1),
    jitter: Math.round(quality.jitter_ms),
    rtt: quality.rtt_ms === null ? "?" : Math.round(quality.rtt_ms),
  });
  let reason: Key = "quality_reason_none";
  if (quality.loss_percent >= 2) reason = "quality_reason_loss";
  else if (quality.jitter_ms >= 30) reason = "quality_reason_jitter";
  else if (quality.rtt_ms !== null && quality.rtt_ms >= 300) reason = "quality_reason_latency";
  return `${t(reason)} ${measures}`;
}

function OutputChooser({ onChosen }: { onChosen: () => void }) {
  const t = useT();
  const chosen = useOutput();
  const [outputs, setOutputs] = useState<AudioOutput[] | null>(null);
  useEffect(() => {
    let live = true;
    void listOutputs()
      .then((found) => live && setOutputs(found))
      .catch(() => live && setOutputs([]));
    return () => {
      live = false;
    };
  }, []);
  const choosable = canChooseOutput();
  const options = [{ id: "", label: t("audio_output_default") }, ...(choosable ? (outputs ?? []) : [])];
  return (
    <section class="call-output" id="call-panel" aria-label={t("audio_output")}>
      <div class="call-output-list" role="radiogroup" aria-label={t("audio_output")}>
        {options.map((output) => (
          <button
            type="button"
            role="radio"
            key={output.id}
            aria-checked={chosen === output.id}
            onClick={() => {
              audioOutput.set(output.id);
              onChosen();
            }}
          >
            <Icon name={chosen === output.id ? "check" : "speaker"} />
            <span>{output.label}</span>
          </button>
        ))}
      </div>
      {!choosable && <p class="hint">{t("audio_output_unsupported")}</p>}
    </section>
  );
}

/** How long the recording may still go on (F10: five minutes at most). */
/** Counts down from the server's start of the recording: the same on every screen and
 * device, and after leaving the call screen and coming back. */
function RecordingCountdown({ since }: { since: number }) {
  const t = useT();
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, []);
  const left = Math.max(0, RECORDING_LIMIT_MS - (now - since));
  return (
    <p class="call-recording-left" role="timer" aria-live="off">
      <Icon name="record" size={14} />
      {t("recording_left", { time: duration(left) })}
    </p>
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

// The ends that need no message: the action that caused them said so, or the user
// answered on another device.
const UNTOLD: readonly EndReason[] = ["transferred", "merged", "elsewhere"];

const ENDS: Record<Exclude<EndReason, "transferred" | "merged" | "elsewhere">, Key> = {
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

/** How a call ended, in words; null when nothing needs saying (UNTOLD). */
export function endMessage(t: Translate, end: CallEnd, name: string): string | null {
  const reason = end.reason;
  if (UNTOLD.includes(reason)) return null;
  return t(ENDS[reason as keyof typeof ENDS], { name });
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
    const message = endMessage(t, ended, name);
    if (message === null) return;
    const failed = !["hangup", "missed"].includes(ended.reason);
    notify(message, failed ? "error" : "info");
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
