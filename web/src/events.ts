// The live event stream (WebSocket /api/v1/events, docs/api.md "Live events"): reconnects
// with backoff and asks for what it missed (stream + since); when the server cannot replay
// it (resync), or on the first connection, the app reloads its state through the REST API.
// A refreshed access token is sent on the open stream ("authenticate").

import type { LiveEvent } from "./api/types";
import type { Session } from "./session";

export type StreamState = "connecting" | "open" | "closed";

export interface StreamHandlers {
  /** Reload the state through the REST API: events from now on apply to it. */
  onSync(): void;
  onEvent(event: LiveEvent): void;
  onState?(state: StreamState): void;
}

export interface StreamOptions {
  url?: string;
  WebSocket?: typeof WebSocket;
  random?: () => number;
}

const CLOSE_UNAUTHORIZED = 4401;
const CLOSE_TOO_SLOW = 4429;
const CLOSE_BAD_SINCE = 1008;
const MAX_DELAY_MS = 30_000;
const FIRST_DELAY_MS = 500;

export function defaultEventsUrl(): string {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/api/v1/events`;
}

export class EventStream {
  private socket: WebSocket | null = null;
  private stream: string | null = null;
  private since: number | null = null;
  private attempt = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private running = false;
  private unsubscribe: (() => void) | null = null;
  private readonly url: string;
  private readonly Socket: typeof WebSocket;
  private readonly random: () => number;
  state: StreamState = "closed";

  constructor(
    private readonly session: Session,
    private readonly handlers: StreamHandlers,
    options: StreamOptions = {},
  ) {
    this.url = options.url ?? defaultEventsUrl();
    this.Socket = options.WebSocket ?? WebSocket;
    this.random = options.random ?? Math.random;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.unsubscribe = this.session.subscribe((change) => {
      if (change === "tokens") void this.authenticate();
    });
    void this.connect();
  }

  stop(): void {
    this.running = false;
    this.unsubscribe?.();
    this.unsubscribe = null;
    clearTimeout(this.timer);
    const socket = this.socket;
    this.socket = null;
    socket?.close(1000, "bye");
    this.stream = null;
    this.since = null;
    this.setState("closed");
  }

  /** Reconnect now (the network is back, the app is visible again) unless connected. */
  poke(): void {
    if (!this.running || this.socket !== null) return;
    clearTimeout(this.timer);
    this.attempt = 0;
    void this.connect();
  }

  private async connect(): Promise<void> {
    if (!this.running || this.socket !== null) return;
    this.setState("connecting");
    let token: string | null;
    try {
      token = await this.session.token();
    } catch {
      this.retry();
      return;
    }
    if (!this.running || this.socket !== null) return;
    if (token === null) {
      this.stop();
      return;
    }
    const params = new URLSearchParams({ token });
    if (this.stream !== null && this.since !== null) {
      params.set("stream", this.stream);
      params.set("since", String(this.since));
    }
    const socket = new this.Socket(`${this.url}?${params}`);
    this.socket = socket;
    const fresh = this.since === null;
    socket.onmessage = (message) => {
      if (this.socket !== socket) return;
      let event: LiveEvent;
      try {
        event = JSON.parse(String(message.data)) as LiveEvent;
      } catch {
        return;
      }
      this.received(event, fresh);
    };
    socket.onclose = (close) => {
      if (this.socket !== socket) return;
      this.socket = null;
      void this.closed(close.code);
    };
  }

  private received(event: LiveEvent, fresh: boolean): void {
    if (event.type === "connected") {
      this.stream = String(event.data.stream);
      this.attempt = 0;
      this.setState("open");
      if (fresh || event.data.resync) {
        this.since = Number(event.data.sequence);
        this.handlers.onSync();
      }
      return;
    }
    if (event.type === "error") return; // the close that follows says what to do
    if (typeof event.sequence === "number") this.since = event.sequence;
    this.handlers.onEvent(event);
  }

  private async closed(code: number): Promise<void> {
    if (!this.running) return;
    this.setState("connecting");
    if (code === CLOSE_UNAUTHORIZED && this.attempt === 0) {
      this.attempt++;
      const outcome = await this.session.refresh();
      if (outcome === "expired") {
        this.stop();
        return;
      }
      if (outcome === "ok") {
        void this.connect();
        return;
      }
    } else if (code === CLOSE_TOO_SLOW && this.attempt === 0) {
      this.attempt++;
      void this.connect();
      return;
    } else if (code === CLOSE_BAD_SINCE) {
      this.stream = null;
      this.since = null;
    }
    this.retry();
  }

  private retry(): void {
    if (!this.running) return;
    this.setState("connecting");
    const ceiling = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** this.attempt);
    this.attempt++;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.connect(), ceiling * (0.5 + this.random() / 2));
  }

  private async authenticate(): Promise<void> {
    const socket = this.socket;
    if (socket === null || socket.readyState !== this.Socket.OPEN) return;
    const token = await this.session.token().catch(() => null);
    if (token !== null && this.socket === socket) {
      socket.send(JSON.stringify({ type: "authenticate", token }));
    }
  }

  private setState(state: StreamState): void {
    if (this.state === state) return;
    this.state = state;
    this.handlers.onState?.(state);
  }
}
