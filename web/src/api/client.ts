// The REST API (docs/api.md) with the session's bearer token: a 401 refreshes the tokens
// once and retries; a session the server no longer knows ends (back to the login).

import { errorOf, type Session } from "../session";
import type {
  Contact,
  Group,
  LiveCall,
  LogEntry,
  LogFilter,
  Me,
  Status,
  VoicemailMessage,
} from "./types";

export const API_PREFIX = "/api/v1";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }

  /** The server could not be reached (or the session could not be renewed for that). */
  get offline(): boolean {
    return this.status === 0;
  }
}

type Method = "GET" | "POST" | "PUT" | "DELETE";

export class Api {
  constructor(
    private readonly session: Session,
    private readonly base = "",
    private readonly fetcher: typeof fetch = (...args) => fetch(...args),
  ) {}

  async request(method: Method, path: string, body?: unknown): Promise<Response> {
    for (let attempt = 0; ; attempt++) {
      let token: string | null;
      try {
        token = await this.session.token();
      } catch {
        throw new ApiError(0, "offline", "The server cannot be reached");
      }
      if (token === null) throw new ApiError(401, "unauthorized", "Not logged in");
      const headers: Record<string, string> = { Authorization: `Bearer ${token}` };
      if (body !== undefined) headers["Content-Type"] = "application/json";
      let response: Response;
      try {
        response = await this.fetcher(this.base + API_PREFIX + path, {
          method,
          headers,
          body: body === undefined ? undefined : JSON.stringify(body),
        });
      } catch {
        throw new ApiError(0, "offline", "The server cannot be reached");
      }
      if (response.status === 401 && attempt === 0) {
        const outcome = await this.session.refresh();
        if (outcome === "ok") continue;
        if (outcome === "offline") throw new ApiError(0, "offline", "The server cannot be reached");
      }
      if (response.status === 401) this.session.expire();
      if (!response.ok) {
        const error = await errorOf(response);
        throw new ApiError(
          response.status,
          error?.code ?? "error",
          error?.message ?? response.statusText,
          error?.field,
        );
      }
      return response;
    }
  }

  async json<T>(method: Method, path: string, body?: unknown): Promise<T> {
    const response = await this.request(method, path, body);
    return (await response.json()) as T;
  }

  async send(method: Method, path: string, body?: unknown): Promise<void> {
    await this.request(method, path, body);
  }

  /** An audio file (voicemail, recording) as a blob, for an <audio> element's blob URL. */
  async blob(path: string): Promise<Blob> {
    return (await this.request("GET", path)).blob();
  }

  me = () => this.json<Me>("GET", "/me");
  statuses = () => this.json<Status[]>("GET", "/statuses");
  myStatus = () => this.json<Status>("GET", "/me/status");
  setStatus = (key: string) => this.json<Status>("PUT", "/me/status", { key });
  favorites = () => this.json<Contact[]>("GET", "/favorites");
  star = (id: number) => this.send("PUT", `/favorites/${id}`);
  unstar = (id: number) => this.send("DELETE", `/favorites/${id}`);
  contact = (id: number) => this.json<Contact>("GET", `/directory/${id}`);
  search = (q: string, limit = 20) =>
    this.json<Contact[]>("GET", `/directory?q=${encodeURIComponent(q)}&limit=${limit}`);
  calls = () => this.json<LiveCall[]>("GET", "/me/calls");
  placeCall = (target: string) => this.json<{ id: string }>("POST", "/me/calls", { target });
  hangUp = (id: string) => this.send("POST", `${callPath(id)}/hangup`);
  /** Blind transfer of my call's other party to ``target`` (F14). */
  transfer = (id: string, target: string) => this.send("POST", `${callPath(id)}/transfer`, { target });
  /** Joins the other parties of two of my calls, and leaves both (F13). */
  attendedTransfer = (id: string, otherId: string) =>
    this.send("POST", `${callPath(id)}/attended-transfer`, { other_call_id: otherId });
  /** Merges my other call into this one (F15). */
  conference = (id: string, otherId: string) =>
    this.send("POST", `${callPath(id)}/conference`, { other_call_id: otherId });
  startRecording = (id: string) => this.send("POST", `${callPath(id)}/recording`);
  stopRecording = (id: string) => this.send("DELETE", `${callPath(id)}/recording`);
  callLog = (filter: LogFilter, before?: number, limit = 50) =>
    this.json<LogEntry[]>(
      "GET",
      `/me/calllog?filter=${filter}&limit=${limit}${before ? `&before=${before}` : ""}`,
    );
  recording = (id: number) => this.blob(`/recordings/${id}`);
  groups = () => this.json<Group[]>("GET", "/me/groups");
  /** A voicemail box: mine (groupId null) or a group's. */
  voicemail = (groupId: number | null) => new VoicemailBox(this, groupId);
}

function callPath(id: string): string {
  return `/me/calls/${encodeURIComponent(id)}`;
}

export class VoicemailBox {
  private readonly path: string;

  constructor(
    private readonly api: Api,
    readonly groupId: number | null,
  ) {
    this.path = groupId === null ? "/me/voicemail" : `/me/groups/${groupId}/voicemail`;
  }

  list = () => this.api.json<VoicemailMessage[]>("GET", this.path);
  audio = (id: number) => this.api.blob(`${this.path}/${id}/audio`);
  markHeard = (id: number) => this.api.send("POST", `${this.path}/${id}/heard`);
  remove = (id: number) => this.api.send("DELETE", `${this.path}/${id}`);
}
