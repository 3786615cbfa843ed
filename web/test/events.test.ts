import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { LiveEvent } from "../src/api/types";
import { EventStream } from "../src/events";
import { Session } from "../src/session";
import { FakeSocket, fakeFetch, json, tokens } from "./fakes";

let issued = 0;
let refreshAnswer = () => json(200, tokens(++issued));

beforeEach(() => {
  localStorage.clear();
  FakeSocket.opened = [];
  issued = 0;
  refreshAnswer = () => json(200, tokens(++issued));
  vi.useFakeTimers();
});

afterEach(() => vi.useRealTimers());

async function started() {
  const server = fakeFetch((call) =>
    call.path.endsWith("/login") ? json(200, tokens(++issued)) : refreshAnswer(),
  );
  const session = new Session({ fetch: server.fetch, channel: null });
  await session.login("e@x", "p");
  const seen: LiveEvent[] = [];
  const syncs: number[] = [];
  const stream = new EventStream(
    session,
    {
      onSync: () => syncs.push(FakeSocket.opened.length),
      onEvent: (event) => seen.push(event),
    },
    { url: "ws://nuage/api/v1/events", WebSocket: FakeSocket as unknown as typeof WebSocket, random: () => 1 },
  );
  stream.start();
  await vi.advanceTimersByTimeAsync(0);
  return { session, stream, seen, syncs };
}

const connected = (sequence: number, resync = false) => ({
  type: "connected",
  data: { stream: "s1", sequence, resync },
});

describe("EventStream", () => {
  it("loads the state once connected, then delivers the events", async () => {
    const { seen, syncs, stream } = await started();
    const [socket] = FakeSocket.opened;
    expect(socket.params.get("token")).toBe("access-1");
    expect(socket.params.has("since")).toBe(false);
    socket.receive(connected(10));
    expect(syncs).toEqual([1]);
    socket.receive({ type: "presence.line", sequence: 11, data: { user_id: 2, line_state: "ringing" } });
    expect(seen.map((e) => e.type)).toEqual(["presence.line"]);
    expect(stream.state).toBe("open");
  });

  it("reconnects with backoff and asks for what it missed", async () => {
    const { syncs } = await started();
    FakeSocket.opened[0].receive(connected(10));
    FakeSocket.opened[0].receive({ type: "presence.status", sequence: 14, data: {} });
    FakeSocket.opened[0].drop(1006);
    await vi.advanceTimersByTimeAsync(400);
    expect(FakeSocket.opened).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(200);
    expect(FakeSocket.opened).toHaveLength(2);
    const again = FakeSocket.opened[1];
    expect([again.params.get("stream"), again.params.get("since")]).toEqual(["s1", "14"]);
    // The server still had it all: no reload.
    again.receive(connected(20));
    expect(syncs).toEqual([1]);
    // Cut again before "connected": the next wait is longer (1 s), then 2 s...
    again.drop(1006);
    await vi.advanceTimersByTimeAsync(500);
    expect(FakeSocket.opened).toHaveLength(3);
    FakeSocket.opened[2].drop(1006);
    await vi.advanceTimersByTimeAsync(999);
    expect(FakeSocket.opened).toHaveLength(3);
    await vi.advanceTimersByTimeAsync(1);
    expect(FakeSocket.opened).toHaveLength(4);
  });

  it("reloads the state when the server could not replay", async () => {
    const { syncs } = await started();
    FakeSocket.opened[0].receive(connected(10));
    FakeSocket.opened[0].drop(1006);
    await vi.advanceTimersByTimeAsync(1000);
    FakeSocket.opened[1].receive(connected(900, true));
    expect(syncs).toEqual([1, 2]);
  });

  it("refreshes the token when the server closes with 4401, then reconnects at once", async () => {
    await started();
    FakeSocket.opened[0].receive(connected(10));
    FakeSocket.opened[0].drop(4401);
    await vi.advanceTimersByTimeAsync(0);
    expect(FakeSocket.opened).toHaveLength(2);
    expect(FakeSocket.opened[1].params.get("token")).toBe("access-2");
  });

  it("stops when the session is over", async () => {
    const { stream } = await started();
    refreshAnswer = () => json(401, {});
    FakeSocket.opened[0].receive(connected(10));
    FakeSocket.opened[0].drop(4401);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(FakeSocket.opened).toHaveLength(1);
    expect(stream.state).toBe("closed");
  });

  it("sends a refreshed token on the open stream", async () => {
    const { session } = await started();
    const socket = FakeSocket.opened[0];
    socket.receive(connected(10));
    await session.refresh();
    await vi.advanceTimersByTimeAsync(0);
    expect(socket.sent.map((text) => JSON.parse(text))).toEqual([
      { type: "authenticate", token: "access-2" },
    ]);
  });
});
