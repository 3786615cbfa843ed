// The softphone: the browser itself is one of the user's phones. JsSIP, loaded on demand
// after login (it weighs more than the rest of the app), registers over the /sip WebSocket
// of the same server with the app's access token (RFC 8898: `Authorization: Bearer`, the
// server keeps no SIP password the browser could know), and places and answers calls with
// WebRTC; the server bridges them to any phone, trunk, menu or voicemail.
//
// Two calls at a time (F12): one on screen, the other on hold; a third gets "busy" (486).
// In-call actions JsSIP cannot do (transfers, conference, recording) go through the REST
// API, which names each call by the id the server gives it (X-Nuage-Call in its INVITE,
// or our own INVITE's Call-ID). The screens read the state (get/subscribe) and act
// through SoftphoneControls only.

import type { EndEvent, RTCSession } from "jssip/lib/RTCSession";
import type { RTCSessionEvent, UA, UAConfiguration } from "jssip/lib/UA";
import type { Session } from "../session";
import type { CallOutcome } from "./index";

export type SoftphoneStatus = "off" | "unsupported" | "connecting" | "registered" | "failed";

/** calling: our INVITE is out; ringing: the far end rings; incoming: it rings here;
 * connecting: answered here, media starting; talking: answered. */
export type SoftCallState = "calling" | "ringing" | "incoming" | "connecting" | "talking";

export type EndReason =
  | "hangup"
  | "busy"
  | "declined"
  | "unavailable"
  | "not_found"
  | "no_answer"
  | "missed"
  | "microphone"
  | "failed"
  // Ended by the server after an action of the user's that said so already.
  | "transferred"
  | "merged"
  // Answered on another of the user's devices (another tab, a desk phone).
  | "elsewhere";

export interface SoftCall {
  id: string;
  /** The call's id in the REST API (and its call.* events); null until known. */
  apiId: string | null;
  incoming: boolean;
  /** The other party's extension or number (the user part of their SIP URI). */
  number: string;
  /** Their name, when the server or the directory gives one ("" otherwise). */
  name: string;
  state: SoftCallState;
  /** Date.now() when the call was answered. */
  answeredAt: number | null;
  muted: boolean;
  held: boolean;
  /** The keys sent during the call (DTMF). */
  keys: string;
  /** What the other party sends, for an <audio> element. */
  remote: MediaStream | null;
}

export interface CallEnd {
  /** Counts the calls ended, so that each end is told once. */
  seq: number;
  number: string;
  name: string;
  incoming: boolean;
  reason: EndReason;
}

export interface SoftphoneState {
  status: SoftphoneStatus;
  /** In settings: whether the user wants calls in this browser. */
  enabled: boolean;
  /** The calls of this browser, oldest first. */
  calls: SoftCall[];
  /** The one on screen (the others are on hold); null without calls. */
  current: string | null;
  /** The user left the call screen to choose whom to call next (F12), calls on hold. */
  choosing: boolean;
  ended: CallEnd | null;
}

/** The call on screen. */
export function currentCall(state: SoftphoneState): SoftCall | null {
  return state.calls.find((call) => call.id === state.current) ?? null;
}

/** The calls not on screen (on hold, or ringing in while the user talks). */
export function otherCalls(state: SoftphoneState): SoftCall[] {
  return state.calls.filter((call) => call.id !== state.current);
}

/** What the call screens use; every action names its call. */
export interface SoftphoneControls {
  get(): SoftphoneState;
  subscribe(listener: () => void): () => void;
  setEnabled(on: boolean): void;
  /** Answers a ringing call; the call on screen, if any, is held. */
  answer(id: string): void;
  decline(id: string): void;
  hangUp(id: string): void;
  setMuted(id: string, on: boolean): void;
  setHeld(id: string, on: boolean): void;
  sendDtmf(id: string, key: string): void;
  /** Puts the call on screen (resumed), holding the one that was. */
  switchTo(id: string): void;
  /** Leaves (or comes back to) the call screen to choose another party; leaving holds
   * the call on screen. */
  choose(on: boolean): void;
  /** The server will end the call because of an action of the user's (a transfer, a
   * merge): its end is told as ``reason``; null: the action failed, the call goes on. */
  expectEnd(id: string, reason: EndReason | null): void;
}

export interface Account {
  extension: string;
  /** The company's SIP domain. */
  domain: string;
  name: string;
}

type JsSip = typeof import("jssip");

export interface SoftphoneOptions {
  /** Loads JsSIP (a separate chunk of the build). */
  load?: () => Promise<JsSip>;
  /** The SIP WebSocket's URL; by default /sip on the page's own host. */
  url?: () => string;
  /** A colleague's name from their extension, when the call does not carry one. */
  nameOf?: (number: string) => string | undefined;
  storage?: Storage;
  supported?: () => boolean;
}

const ENABLED_KEY = "nuage.softphone";
// One on screen, one on hold: what a transfer or a conference of two needs (F12-F15).
const MAX_CALLS = 2;
// Names, in an INVITE from the server, the call it belongs to in the REST API.
const API_CALL_HEADER = "X-Nuage-Call";
const MEDIA: MediaStreamConstraints = { audio: true, video: false };
// No STUN or TURN: the server is an ICE-lite agent with a public address, and gathering
// host candidates only is quick (JsSIP sends the SDP once gathering is over).
const PC_CONFIG: RTCConfiguration = { iceServers: [], bundlePolicy: "max-bundle", rtcpMuxPolicy: "require" };
const DTMF_OPTIONS = { duration: 160, interToneGap: 80 };

async function loadJsSip(): Promise<JsSip> {
  const module = (await import("jssip")) as JsSip & { default?: JsSip };
  return module.default ?? module;
}

function defaultUrl(): string {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/sip`;
}

/** WebRTC with a microphone: a secure context (HTTPS, or localhost) is needed. */
export function webRtcSupported(): boolean {
  return (
    typeof window !== "undefined" &&
    window.isSecureContext === true &&
    typeof RTCPeerConnection !== "undefined" &&
    typeof navigator !== "undefined" &&
    typeof navigator.mediaDevices?.getUserMedia === "function"
  );
}

/** The user part to dial for a number as typed (separators dropped); null if it is no
 * extension or number. */
export function dialTarget(target: string): string | null {
  const user = target.replace(/[\s().\-/]/g, "");
  return /^\+?[0-9*#]{1,32}$/.test(user) ? user : null;
}

/** Why a call ended, from JsSIP's cause (and the CANCEL's Reason, RFC 3326: cause 200
 * says another device answered) and whether it was ever answered. */
export function endReason(
  event: { cause: string; originator: string; message?: { getHeader?(name: string): string } | null },
  incoming: boolean,
  answered: boolean,
): EndReason {
  if (answered) return "hangup";
  if (event.cause === "Canceled" && /cause=200\b/.test(event.message?.getHeader?.("Reason") ?? "")) {
    return "elsewhere";
  }
  switch (event.cause) {
    case "Busy":
      return "busy";
    case "Rejected":
      return incoming ? "hangup" : "declined";
    case "Unavailable":
    case "Redirected":
      return "unavailable";
    case "Not Found":
    case "Address Incomplete":
      return "not_found";
    case "No Answer":
    case "Expires":
      return incoming ? "missed" : "no_answer";
    case "Canceled":
      return incoming && event.originator === "remote" ? "missed" : "hangup";
    case "User Denied Media Access":
      return "microphone";
    case "Terminated":
    case "BYE":
      return "hangup";
    default:
      return "failed";
  }
}

export class Softphone implements SoftphoneControls {
  private state: SoftphoneState;
  private readonly listeners = new Set<() => void>();
  private ua: UA | null = null;
  // JsSIP's session of each call, by the call's id.
  private readonly sessions = new Map<string, RTCSession>();
  private account: Account | null = null;
  // Bumped at each start and stop: a start still loading JsSIP sees it was superseded.
  private generation = 0;
  // The outgoing call being set up (JsSIP announces it from inside ua.call).
  private dialling: { number: string; name: string } | null = null;
  // A refused token is refreshed once, then registration is given up until a new one.
  private refreshedAfterRefusal = false;
  private ends = 0;
  // Why the server will end some calls (expectEnd), by call id.
  private readonly expected = new Map<string, EndReason>();
  private readonly load: () => Promise<JsSip>;
  private readonly url: () => string;
  private readonly nameOf: (number: string) => string | undefined;
  private readonly storage: Storage;
  private readonly supported: () => boolean;

  constructor(
    private readonly session: Session,
    options: SoftphoneOptions = {},
  ) {
    this.load = options.load ?? loadJsSip;
    this.url = options.url ?? defaultUrl;
    this.nameOf = options.nameOf ?? (() => undefined);
    this.storage = options.storage ?? localStorage;
    this.supported = options.supported ?? webRtcSupported;
    this.state = {
      status: "off",
      enabled: this.storage.getItem(ENABLED_KEY) !== "off",
      calls: [],
      current: null,
      choosing: false,
      ended: null,
    };
    session.subscribe((change) => {
      if (change === "tokens") void this.renewToken();
      else if (change === "logged-out") this.stop();
    });
  }

  get(): SoftphoneState {
    return this.state;
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Registered: calls from the app go through this browser. */
  get ready(): boolean {
    return this.state.status === "registered";
  }

  /** This softphone's call that ``callId`` names (its own id or the API's), if any. */
  find(callId: string): SoftCall | null {
    return this.state.calls.find((call) => call.id === callId || call.apiId === callId) ?? null;
  }

  /** Registers as ``account`` (again only if the account changed). */
  async start(account: Account): Promise<void> {
    const same =
      this.account !== null &&
      this.account.extension === account.extension &&
      this.account.domain === account.domain;
    this.account = account;
    if (!this.state.enabled) return;
    // Started already; but a start that failed before JsSIP was up (offline) is tried
    // again at the next occasion.
    const retry = this.state.status === "failed" && this.ua === null;
    if (same && this.state.status !== "off" && !retry) return;
    if (!this.supported()) {
      this.set({ status: "unsupported" });
      return;
    }
    this.shutDown();
    const generation = ++this.generation;
    this.set({ status: "connecting" });
    let JsSIP: JsSip;
    let token: string | null;
    try {
      JsSIP = await this.load();
      token = await this.session.token();
    } catch {
      if (generation === this.generation) this.set({ status: "failed" });
      return;
    }
    if (generation !== this.generation) return;
    if (token === null) {
      this.set({ status: "off" });
      return;
    }
    const configuration: UAConfiguration = {
      sockets: [new JsSIP.WebSocketInterface(this.url())],
      uri: `sip:${account.extension}@${account.domain}`,
      display_name: account.name,
      authorization_jwt: `Bearer ${token}`,
      register: true,
      register_expires: 600,
      session_timers: false,
      user_agent: "Nuage web",
      connection_recovery_min_interval: 2,
      connection_recovery_max_interval: 30,
    };
    const ua = new JsSIP.UA(configuration);
    this.ua = ua;
    const current = () => this.ua === ua;
    ua.on("registered", () => {
      if (!current()) return;
      this.refreshedAfterRefusal = false;
      this.set({ status: "registered" });
    });
    ua.on("disconnected", () => {
      if (current() && this.state.status === "registered") this.set({ status: "connecting" });
    });
    ua.on("registrationFailed", (event) => {
      if (!current()) return;
      if (event.response?.status_code === 401 && !this.refreshedAfterRefusal) {
        // The token expired meanwhile (a sleeping laptop): a new one re-registers.
        this.refreshedAfterRefusal = true;
        this.set({ status: "connecting" });
        void this.session.refresh();
        return;
      }
      this.set({ status: "failed" });
    });
    ua.on("newRTCSession", (event: RTCSessionEvent) => {
      if (current()) this.newSession(event);
    });
    ua.start();
  }

  /** Unregisters and forgets the account (logout). */
  stop(): void {
    this.account = null;
    this.shutDown();
    this.set({ status: "off" });
  }

  setEnabled(on: boolean): void {
    if (on) this.storage.removeItem(ENABLED_KEY);
    else this.storage.setItem(ENABLED_KEY, "off");
    this.set({ enabled: on });
    if (!on) {
      this.shutDown();
      this.set({ status: "off" });
    } else if (this.account !== null) {
      void this.start(this.account);
    }
  }

  async call(target: string): Promise<CallOutcome> {
    const ua = this.ua;
    const account = this.account;
    if (ua === null || account === null || !this.ready) {
      return { ok: false, reason: "offline", message: "The phone in this browser is not connected" };
    }
    if (this.state.calls.length >= MAX_CALLS) {
      return { ok: false, reason: "error", message: "Two calls already" };
    }
    const user = dialTarget(target);
    if (user === null) return { ok: false, reason: "invalid", message: `${target}: not a number` };
    // The call on screen waits on hold while the new one is placed.
    const current = currentCall(this.state);
    if (current !== null && current.state === "talking" && !current.held) this.setHeld(current.id, true);
    try {
      const token = await this.session.token();
      if (token !== null) ua.set("authorization_jwt", `Bearer ${token}`);
    } catch {
      // Offline: the call fails on its own if the token is refused.
    }
    this.dialling = { number: user, name: this.nameOf(user) ?? "" };
    try {
      const rtc = ua.call(user, {
        mediaConstraints: MEDIA,
        pcConfig: PC_CONFIG,
      });
      return { ok: true, callId: rtc.id };
    } catch (error) {
      return { ok: false, reason: "invalid", message: (error as Error).message };
    } finally {
      this.dialling = null;
    }
  }

  answer(id: string): void {
    const rtc = this.sessions.get(id);
    if (rtc === undefined || this.callOf(id)?.state !== "incoming") return;
    for (const other of this.state.calls) {
      if (other.id !== id && other.state === "talking" && !other.held) this.setHeld(other.id, true);
    }
    this.patchCall(id, { state: "connecting" });
    this.set({ current: id, choosing: false });
    rtc.answer({ mediaConstraints: MEDIA, pcConfig: PC_CONFIG });
  }

  decline(id: string): void {
    const rtc = this.sessions.get(id);
    if (rtc === undefined || this.callOf(id)?.state !== "incoming") return;
    rtc.terminate({ status_code: 603, reason_phrase: "Decline" });
  }

  hangUp(id: string): void {
    const rtc = this.sessions.get(id);
    if (rtc === undefined || rtc.isEnded()) return;
    rtc.terminate();
  }

  setMuted(id: string, on: boolean): void {
    const rtc = this.sessions.get(id);
    if (rtc === undefined) return;
    if (on) rtc.mute({ audio: true });
    else rtc.unmute({ audio: true });
    this.patchCall(id, { muted: on });
  }

  setHeld(id: string, on: boolean): void {
    const rtc = this.sessions.get(id);
    if (rtc === undefined || this.callOf(id)?.state !== "talking") return;
    const sent = on ? rtc.hold() : rtc.unhold();
    if (sent) this.patchCall(id, { held: on });
  }

  sendDtmf(id: string, key: string): void {
    const rtc = this.sessions.get(id);
    if (rtc === undefined || !/^[0-9*#]$/.test(key)) return;
    try {
      rtc.sendDTMF(key, DTMF_OPTIONS);
    } catch {
      return;
    }
    const call = this.callOf(id);
    if (call !== null) this.patchCall(id, { keys: call.keys + key });
  }

  switchTo(id: string): void {
    const target = this.callOf(id);
    if (target === null || target.state === "incoming") return;
    for (const other of this.state.calls) {
      if (other.id !== id && other.state === "talking" && !other.held) this.setHeld(other.id, true);
    }
    if (target.held) this.setHeld(id, false);
    this.set({ current: id, choosing: false });
  }

  choose(on: boolean): void {
    if (on) {
      const current = currentCall(this.state);
      if (current === null) return;
      if (current.state === "talking" && !current.held) this.setHeld(current.id, true);
    }
    this.set({ choosing: on && this.state.calls.length > 0 });
  }

  expectEnd(id: string, reason: EndReason | null): void {
    if (reason === null) this.expected.delete(id);
    else if (this.sessions.has(id)) this.expected.set(id, reason);
  }

  // -- JsSIP's events ----------------------------------------------------------------

  private newSession(event: RTCSessionEvent): void {
    const rtc = event.session;
    if (event.originator === "local") {
      const dialling = this.dialling ?? { number: "", name: "" };
      // Our own INVITE's Call-ID names the call in the API.
      const apiId = event.request.call_id || null;
      this.adopt(rtc, { incoming: false, number: dialling.number, name: dialling.name, state: "calling", apiId });
      return;
    }
    if (this.state.calls.length >= MAX_CALLS) {
      rtc.terminate({ status_code: 486, reason_phrase: "Busy Here" });
      return;
    }
    const identity = rtc.remote_identity;
    const number = identity.uri.user ?? "";
    const name = identity.display_name || this.nameOf(number) || "";
    const apiId = event.request.getHeader(API_CALL_HEADER) || null;
    this.adopt(rtc, { incoming: true, number, name, state: "incoming", apiId });
  }

  private adopt(
    rtc: RTCSession,
    call: Pick<SoftCall, "incoming" | "number" | "name" | "state" | "apiId">,
  ): void {
    const id = rtc.id;
    this.sessions.set(id, rtc);
    const first = this.state.calls.length === 0;
    this.set({
      calls: [
        ...this.state.calls,
        { id, ...call, answeredAt: null, muted: false, held: false, keys: "", remote: null },
      ],
      // A call placed goes on screen; one ringing in waits for an answer.
      current: first || !call.incoming ? id : this.state.current,
      choosing: false,
    });
    const mine = () => this.sessions.get(id) === rtc;
    const watch = (connection: RTCPeerConnection) => {
      connection.addEventListener("track", (event) => {
        if (!mine()) return;
        const stream = event.streams[0] ?? new MediaStream([event.track]);
        this.patchCall(id, { remote: stream });
      });
    };
    if (rtc.connection) watch(rtc.connection);
    else rtc.on("peerconnection", (event) => watch(event.peerconnection));
    rtc.on("progress", () => {
      if (mine() && this.callOf(id)?.state === "calling") this.patchCall(id, { state: "ringing" });
    });
    const answered = () => {
      if (mine() && this.callOf(id)?.answeredAt === null) {
        this.patchCall(id, { state: "talking", answeredAt: Date.now() });
      }
    };
    rtc.on("accepted", answered);
    rtc.on("confirmed", answered);
    // An attended transfer moved this dialog into another call: the server names it.
    rtc.on("update", (event) => {
      const moved = event.request.getHeader(API_CALL_HEADER);
      if (mine() && moved) this.patchCall(id, { apiId: moved });
    });
    rtc.on("hold", (event) => {
      if (mine() && event.originator === "local") this.patchCall(id, { held: true });
    });
    rtc.on("unhold", (event) => {
      if (mine() && event.originator === "local") this.patchCall(id, { held: false });
    });
    const ended = (event: EndEvent) => {
      if (!mine()) return;
      const gone = this.callOf(id);
      const expected = this.expected.get(id);
      this.expected.delete(id);
      this.sessions.delete(id);
      if (event.cause === "Authentication Error") void this.session.refresh();
      const calls = this.state.calls.filter((each) => each.id !== id);
      // The other call comes on screen (still on hold: the user resumes it).
      const current = this.state.current === id ? (calls.find((each) => each.state !== "incoming") ?? calls[0])?.id ?? null : this.state.current;
      this.set({
        calls,
        current,
        choosing: this.state.choosing && calls.length > 0,
        ended: {
          seq: ++this.ends,
          number: gone?.number ?? "",
          name: gone?.name ?? "",
          incoming: gone?.incoming ?? false,
          reason: expected ?? endReason(event, gone?.incoming ?? false, gone?.answeredAt != null),
        },
      });
    };
    rtc.on("ended", ended);
    rtc.on("failed", ended);
  }

  // -- the token ---------------------------------------------------------------------

  /** A new access token: used from now on, and registered with at once (the server
   * stops accepting the old one). */
  private async renewToken(): Promise<void> {
    const ua = this.ua;
    if (ua === null) return;
    let token: string | null;
    try {
      token = await this.session.token();
    } catch {
      return;
    }
    if (token === null || this.ua !== ua) return;
    ua.set("authorization_jwt", `Bearer ${token}`);
    if (ua.isConnected()) ua.register();
  }

  private shutDown(): void {
    this.generation++;
    const ua = this.ua;
    this.ua = null;
    const sessions = [...this.sessions.values()];
    this.sessions.clear();
    for (const rtc of sessions) {
      if (rtc.isEnded()) continue;
      try {
        rtc.terminate();
      } catch {
        // Already ending.
      }
    }
    if (this.state.calls.length > 0) this.set({ calls: [], current: null, choosing: false });
    if (ua !== null) ua.stop();
  }

  private callOf(id: string): SoftCall | null {
    return this.state.calls.find((call) => call.id === id) ?? null;
  }

  private patchCall(id: string, patch: Partial<SoftCall>): void {
    if (!this.state.calls.some((call) => call.id === id)) return;
    this.set({ calls: this.state.calls.map((call) => (call.id === id ? { ...call, ...patch } : call)) });
  }

  private set(patch: Partial<SoftphoneState>): void {
    this.state = { ...this.state, ...patch };
    for (const listener of [...this.listeners]) listener();
  }
}
