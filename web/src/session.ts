// The login session: the refresh token in localStorage (the session survives a reload),
// the access token in memory only, refreshed before it expires or when the API says 401.
// Tabs of the app share one session: a refresh in one hands the new pair to the others
// (BroadcastChannel) instead of each rotating the tokens under the others' feet.

import type { ErrorBody, Tokens } from "./api/types";

const REFRESH_KEY = "nuage.refresh";
const CHANNEL = "nuage-session";
// Refresh this long before the access token expires.
const MARGIN_MS = 60_000;

export type LoginFailure = "invalid_credentials" | "too_many_requests" | "network" | "error";

export class LoginError extends Error {
  constructor(readonly reason: LoginFailure) {
    super(reason);
  }
}

/** What a refresh came to: new tokens, no session any more, or no network. */
export type RefreshOutcome = "ok" | "expired" | "offline";

export type SessionChange = "tokens" | "logged-in" | "logged-out";

interface Shared {
  type: "tokens" | "logout";
  tokens?: Tokens;
  expiresAt?: number;
}

export interface SessionOptions {
  base?: string;
  storage?: Storage;
  fetch?: typeof fetch;
  now?: () => number;
  channel?: BroadcastChannel | null;
}

export class Session {
  private access: string | null = null;
  private refreshToken: string | null;
  private expiresAt = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private inflight: Promise<RefreshOutcome> | null = null;
  // Bumped at every new pair: a refresh that waited for another sees it was done.
  private generation = 0;
  private readonly listeners = new Set<(change: SessionChange) => void>();
  private readonly base: string;
  private readonly storage: Storage;
  private readonly fetch: typeof fetch;
  private readonly now: () => number;
  private readonly channel: BroadcastChannel | null;

  constructor(options: SessionOptions = {}) {
    this.base = options.base ?? "";
    this.storage = options.storage ?? localStorage;
    this.fetch = options.fetch ?? ((...args) => fetch(...args));
    this.now = options.now ?? Date.now;
    this.channel =
      options.channel !== undefined
        ? options.channel
        : typeof BroadcastChannel === "undefined"
          ? null
          : new BroadcastChannel(CHANNEL);
    this.refreshToken = this.storage.getItem(REFRESH_KEY);
    if (this.channel) this.channel.onmessage = (event) => this.shared(event.data as Shared);
  }

  /** A session is there (it may still need a refresh to be usable). */
  get active(): boolean {
    return this.refreshToken !== null;
  }

  subscribe(listener: (change: SessionChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async login(email: string, password: string): Promise<void> {
    let response: Response;
    try {
      response = await this.post("/api/v1/auth/login", { email, password });
    } catch {
      throw new LoginError("network");
    }
    if (response.status === 401 || response.status === 422) {
      throw new LoginError("invalid_credentials");
    }
    if (response.status === 429) throw new LoginError("too_many_requests");
    if (!response.ok) throw new LoginError("error");
    this.adopt((await response.json()) as Tokens, this.now(), true);
    this.emit("logged-in");
  }

  /** The access token, refreshed first when it is about to expire; null when there is no
   * session any more. Throws when the server cannot be reached to refresh it. */
  async token(): Promise<string | null> {
    if (this.access !== null && this.now() < this.expiresAt - MARGIN_MS / 2) return this.access;
    if (this.refreshToken === null) return null;
    const outcome = await this.refresh();
    if (outcome === "offline") throw new TypeError("offline");
    return this.access;
  }

  /** New tokens for the session's refresh token; one at a time, across tabs too. */
  refresh(): Promise<RefreshOutcome> {
    if (this.inflight === null) {
      const since = this.generation;
      this.inflight = this.locked(() => this.rotate(since)).finally(() => {
        this.inflight = null;
      });
    }
    return this.inflight;
  }

  /** Ends the session, on the server too (when it can be reached). */
  async logout(): Promise<void> {
    const access = this.access;
    this.clear();
    this.channel?.postMessage({ type: "logout" } satisfies Shared);
    this.emit("logged-out");
    if (access === null) return;
    try {
      await this.fetch(this.base + "/api/v1/auth/logout", {
        method: "POST",
        headers: { Authorization: `Bearer ${access}` },
      });
    } catch {
      // Offline: the tokens are forgotten here and expire on the server.
    }
  }

  /** The server no longer knows the session (revoked, expired): back to the login. */
  expire(): void {
    if (this.refreshToken === null && this.access === null) return;
    this.clear();
    this.emit("logged-out");
  }

  private async rotate(since: number): Promise<RefreshOutcome> {
    // Another tab refreshed while this one waited for the lock, and shared the pair.
    if (this.generation !== since && this.access !== null) return "ok";
    let token = this.storage.getItem(REFRESH_KEY) ?? this.refreshToken;
    for (let attempt = 0; attempt < 2 && token !== null; attempt++) {
      let response: Response;
      try {
        response = await this.post("/api/v1/auth/refresh", { refresh_token: token });
      } catch {
        return "offline";
      }
      if (response.ok) {
        this.adopt((await response.json()) as Tokens, this.now(), true);
        return "ok";
      }
      if (response.status !== 401) return "offline";
      // Refused: unless another tab rotated it meanwhile, the session is over.
      const stored = this.storage.getItem(REFRESH_KEY);
      if (stored === null || stored === token) break;
      token = stored;
    }
    this.expire();
    return "expired";
  }

  private locked(task: () => Promise<RefreshOutcome>): Promise<RefreshOutcome> {
    const locks = typeof navigator !== "undefined" ? navigator.locks : undefined;
    // The lock's promise resolves to the task's outcome (the DOM typing nests the promise).
    return locks ? locks.request("nuage-refresh", task).then((outcome) => outcome) : task();
  }

  private adopt(tokens: Tokens, at: number, share: boolean): void {
    this.access = tokens.access_token;
    this.refreshToken = tokens.refresh_token;
    this.expiresAt = at + tokens.expires_in * 1000;
    this.generation++;
    this.storage.setItem(REFRESH_KEY, tokens.refresh_token);
    clearTimeout(this.timer);
    const delay = Math.max(this.expiresAt - MARGIN_MS - this.now(), 5_000);
    this.timer = setTimeout(() => void this.refresh(), delay);
    if (share) {
      this.channel?.postMessage({
        type: "tokens",
        tokens,
        expiresAt: this.expiresAt,
      } satisfies Shared);
    }
    this.emit("tokens");
  }

  private shared(message: Shared): void {
    if (message.type === "logout") {
      this.expire();
    } else if (message.type === "tokens" && message.tokens && message.expiresAt) {
      const wasActive = this.active;
      this.adopt(message.tokens, message.expiresAt - message.tokens.expires_in * 1000, false);
      if (!wasActive) this.emit("logged-in");
    }
  }

  private clear(): void {
    clearTimeout(this.timer);
    this.access = null;
    this.refreshToken = null;
    this.expiresAt = 0;
    this.storage.removeItem(REFRESH_KEY);
  }

  private post(path: string, body: unknown): Promise<Response> {
    return this.fetch(this.base + path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
  }

  private emit(change: SessionChange): void {
    for (const listener of [...this.listeners]) listener(change);
  }
}

/** The error body of an API answer, when it has one. */
export async function errorOf(response: Response): Promise<ErrorBody["error"] | null> {
  try {
    const body = (await response.json()) as ErrorBody;
    return body && typeof body.error === "object" ? body.error : null;
  } catch {
    return null;
  }
}
