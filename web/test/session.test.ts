import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Api, ApiError } from "../src/api/client";
import { LoginError, Session } from "../src/session";
import { fakeFetch, json, tokens } from "./fakes";

let now = 1_000_000;
const clock = () => now;

beforeEach(() => {
  localStorage.clear();
  now = 1_000_000;
  vi.useFakeTimers();
});

afterEach(() => vi.useRealTimers());

function session(fetcher: typeof fetch) {
  return new Session({ fetch: fetcher, now: clock, channel: null });
}

describe("Session", () => {
  it("logs in, keeps the refresh token only, and refreshes before expiry", async () => {
    let issued = 0;
    const server = fakeFetch((call) => {
      if (call.path.endsWith("/auth/login")) return json(200, tokens(++issued));
      if (call.path.endsWith("/auth/refresh")) return json(200, tokens(++issued));
      return json(404, {});
    });
    const s = session(server.fetch);
    await s.login("elodie@acme.example", "app-1001");
    expect(localStorage.getItem("nuage.refresh")).toBe("refresh-1");
    expect(JSON.stringify(localStorage)).not.toContain("access-1");
    expect(await s.token()).toBe("access-1");
    // Near expiry (15 minutes), the next token is a fresh one.
    now += 14.9 * 60_000;
    expect(await s.token()).toBe("access-2");
    expect(server.calls.at(-1)?.body).toEqual({ refresh_token: "refresh-1" });
    expect(localStorage.getItem("nuage.refresh")).toBe("refresh-2");
  });

  it("tells a wrong password from a throttled account and a dead network", async () => {
    const answers = [json(401, { error: { code: "invalid_credentials" } }), json(429, {})];
    const s = session(fakeFetch(() => answers.shift() ?? Promise.reject(new TypeError("down"))).fetch);
    const reasons = [];
    for (let i = 0; i < 3; i++) {
      try {
        await s.login("elodie@acme.example", "nope");
      } catch (error) {
        reasons.push((error as LoginError).reason);
      }
    }
    expect(reasons).toEqual(["invalid_credentials", "too_many_requests", "network"]);
    expect(s.active).toBe(false);
  });

  it("resumes from the stored refresh token after a reload", async () => {
    localStorage.setItem("nuage.refresh", "refresh-7");
    const server = fakeFetch(() => json(200, tokens(8)));
    const s = session(server.fetch);
    expect(s.active).toBe(true);
    expect(await s.token()).toBe("access-8");
    expect(server.calls).toHaveLength(1);
  });

  it("refreshes once for many callers at the same time", async () => {
    localStorage.setItem("nuage.refresh", "refresh-1");
    const server = fakeFetch(() => json(200, tokens(2)));
    const s = session(server.fetch);
    const all = await Promise.all([s.token(), s.token(), s.refresh()]);
    expect(all).toEqual(["access-2", "access-2", "ok"]);
    expect(server.calls).toHaveLength(1);
  });

  it("ends when the server refuses the refresh token, and says so", async () => {
    localStorage.setItem("nuage.refresh", "refresh-1");
    const s = session(fakeFetch(() => json(401, { error: { code: "invalid_token" } })).fetch);
    const changes: string[] = [];
    s.subscribe((change) => changes.push(change));
    expect(await s.token()).toBeNull();
    expect(changes).toEqual(["logged-out"]);
    expect(localStorage.getItem("nuage.refresh")).toBeNull();
  });

  it("stays when the server cannot be reached", async () => {
    localStorage.setItem("nuage.refresh", "refresh-1");
    const s = session(fakeFetch(() => Promise.reject(new TypeError("down"))).fetch);
    await expect(s.token()).rejects.toThrow();
    expect(s.active).toBe(true);
  });

  it("logs out on the server and forgets the tokens", async () => {
    const server = fakeFetch((call) =>
      call.path.endsWith("/login") ? json(200, tokens(1)) : json(204, null),
    );
    const s = session(server.fetch);
    await s.login("e@x", "p");
    await s.logout();
    expect(server.calls.at(-1)).toMatchObject({ path: "/api/v1/auth/logout", auth: "Bearer access-1" });
    expect(s.active).toBe(false);
    expect(localStorage.getItem("nuage.refresh")).toBeNull();
  });

  it("takes the tokens another tab refreshed", async () => {
    const channel = new EventTarget() as unknown as BroadcastChannel;
    const s = new Session({ fetch: fakeFetch(() => json(500, {})).fetch, now: clock, channel });
    (channel.onmessage as (event: MessageEvent) => void)(
      new MessageEvent("message", {
        data: { type: "tokens", tokens: tokens(5), expiresAt: now + 900_000 },
      }),
    );
    expect(await s.token()).toBe("access-5");
  });
});

describe("Api", () => {
  it("refreshes once on a 401 and retries", async () => {
    let issued = 1;
    const server = fakeFetch((call) => {
      if (call.path.endsWith("/auth/login")) return json(200, tokens(1));
      if (call.path.endsWith("/auth/refresh")) return json(200, tokens(++issued));
      return call.auth === "Bearer access-1" ? json(401, {}) : json(200, { id: 1 });
    });
    const s = session(server.fetch);
    await s.login("e@x", "p");
    const api = new Api(s, "", server.fetch);
    expect(await api.json("GET", "/me")).toEqual({ id: 1 });
    expect(server.calls.map((c) => c.path)).toEqual([
      "/api/v1/auth/login",
      "/api/v1/me",
      "/api/v1/auth/refresh",
      "/api/v1/me",
    ]);
  });

  it("answers errors in their shape", async () => {
    const server = fakeFetch((call) =>
      call.path.endsWith("/auth/login")
        ? json(200, tokens(1))
        : json(409, { error: { code: "no_device", message: "None of your phones is registered" } }),
    );
    const s = session(server.fetch);
    await s.login("e@x", "p");
    const api = new Api(s, "", server.fetch);
    const error = (await api.placeCall("1002").catch((e: unknown) => e)) as ApiError;
    expect(error).toBeInstanceOf(ApiError);
    expect([error.status, error.code]).toEqual([409, "no_device"]);
    expect(server.calls.at(-1)?.body).toEqual({ target: "1002" });
  });
});
