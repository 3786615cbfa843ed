// The softphone's logic over a scripted stand-in for JsSIP: registration with the access
// token (and again with each new one), calls in and out, how calls end.
import { beforeEach, describe, expect, it, vi } from "vitest";
import { AppPhone } from "../src/phone";
import { Softphone, dialTarget, endReason } from "../src/phone/softphone";
import { Session } from "../src/session";
import type { Api } from "../src/api/client";
import { fakeFetch, json, tokens } from "./fakes";

type Handler = (...args: unknown[]) => void;

class Emitter {
  private handlers = new Map<string, Handler[]>();
  on(name: string, handler: Handler) {
    this.handlers.set(name, [...(this.handlers.get(name) ?? []), handler]);
    return this;
  }
  emit(name: string, event: unknown = {}) {
    for (const handler of this.handlers.get(name) ?? []) handler(event);
  }
}

let sessions = 0;

class FakeRtc extends Emitter {
  id = `rtc-${++sessions}`;
  connection = null;
  answered: unknown = null;
  terminated: unknown[] = [];
  muted = false;
  holds: boolean[] = [];
  keys: string[] = [];
  constructor(readonly remote_identity = { display_name: "", uri: { user: "" } }) {
    super();
  }
  answer(options: unknown) {
    this.answered = options;
  }
  terminate(options: unknown = {}) {
    this.terminated.push(options);
  }
  mute() {
    this.muted = true;
  }
  unmute() {
    this.muted = false;
  }
  hold() {
    this.holds.push(true);
    return true;
  }
  unhold() {
    this.holds.push(false);
    return true;
  }
  sendDTMF(key: string) {
    this.keys.push(key);
  }
  isEnded() {
    return false;
  }
}

class FakeUA extends Emitter {
  static last: FakeUA;
  registers = 0;
  stopped = false;
  started = false;
  dialled: string[] = [];
  config: Record<string, unknown>;
  constructor(config: Record<string, unknown>) {
    super();
    this.config = { ...config };
    FakeUA.last = this;
  }
  start() {
    this.started = true;
  }
  stop() {
    this.stopped = true;
  }
  register() {
    this.registers++;
  }
  set(name: string, value: unknown) {
    this.config[name] = value;
    return true;
  }
  isConnected() {
    return true;
  }
  call(target: string) {
    this.dialled.push(target);
    const rtc = new FakeRtc();
    const request = { call_id: `call-id-${this.dialled.length}` };
    this.emit("newRTCSession", { originator: "local", session: rtc, request });
    return rtc;
  }
  ring(name: string, number: string, apiId = "") {
    const rtc = new FakeRtc({ display_name: name, uri: { user: number } });
    const request = { getHeader: (header: string) => (header === "X-Nuage-Call" ? apiId : "") };
    this.emit("newRTCSession", { originator: "remote", session: rtc, request });
    return rtc;
  }
}

class FakeSocket {
  constructor(readonly url: string) {}
}

const JSSIP = { UA: FakeUA, WebSocketInterface: FakeSocket } as never;
const ACCOUNT = { extension: "1001", domain: "acme.example", name: "Élodie Martin" };

async function started(options: { refresh?: (n: number) => Response } = {}) {
  let issued = 0;
  const server = fakeFetch((call) => {
    if (call.path.endsWith("/auth/login")) return json(200, tokens(++issued));
    if (call.path.endsWith("/auth/refresh")) return (options.refresh ?? (() => json(200, tokens(++issued))))(issued);
    return json(404, {});
  });
  const session = new Session({ fetch: server.fetch, channel: null });
  await session.login("elodie@acme.example", "app-1001");
  const softphone = new Softphone(session, {
    load: async () => JSSIP,
    url: () => "wss://nuage.example/sip",
    supported: () => true,
  });
  await softphone.start(ACCOUNT);
  const ua = FakeUA.last;
  ua.emit("registered");
  return { softphone, session, ua, server };
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

beforeEach(() => localStorage.clear());

describe("Softphone", () => {
  it("registers with the access token as a bearer, again with each new token", async () => {
    const { softphone, session, ua } = await started();
    expect(ua.started).toBe(true);
    expect(ua.config.uri).toBe("sip:1001@acme.example");
    expect(ua.config.authorization_jwt).toBe("Bearer access-1");
    expect(ua.config.password).toBeUndefined();
    expect((ua.config.sockets as FakeSocket[])[0].url).toBe("wss://nuage.example/sip");
    expect(softphone.ready).toBe(true);

    await session.refresh();
    await settle();
    expect(ua.config.authorization_jwt).toBe("Bearer access-2");
    expect(ua.registers).toBe(1);
  });

  it("refreshes a refused token once, then gives up", async () => {
    const { softphone, ua, server } = await started();
    ua.emit("registrationFailed", { response: { status_code: 401 }, cause: "Authentication Error" });
    expect(softphone.get().status).toBe("connecting");
    await settle();
    await settle();
    expect(server.calls.filter((call) => call.path.endsWith("/auth/refresh"))).toHaveLength(1);
    expect(ua.config.authorization_jwt).toBe("Bearer access-2");
    expect(ua.registers).toBe(1);
    ua.emit("registrationFailed", { response: { status_code: 401 }, cause: "Authentication Error" });
    expect(softphone.get().status).toBe("failed");
  });

  it("stops at logout", async () => {
    const { softphone, session, ua } = await started();
    await session.logout();
    expect(ua.stopped).toBe(true);
    expect(softphone.get().status).toBe("off");
  });

  it("can be turned off, and on again", async () => {
    const { softphone, ua } = await started();
    softphone.setEnabled(false);
    expect(ua.stopped).toBe(true);
    expect(localStorage.getItem("nuage.softphone")).toBe("off");
    expect(softphone.get()).toMatchObject({ status: "off", enabled: false });
    softphone.setEnabled(true);
    await settle();
    expect(FakeUA.last).not.toBe(ua);
    expect(FakeUA.last.started).toBe(true);
  });

  it("rings, answers, keys, mutes, holds, and says the call ended", async () => {
    const { softphone, ua } = await started();
    const rtc = ua.ring("Lucas Dubois", "1002", "api-7");
    const [call] = softphone.get().calls;
    expect(call).toMatchObject({
      incoming: true,
      name: "Lucas Dubois",
      number: "1002",
      state: "incoming",
      apiId: "api-7",
    });
    expect(softphone.get().current).toBe(call.id);
    expect(softphone.find("api-7")?.id).toBe(call.id);

    softphone.answer(call.id);
    expect(rtc.answered).toMatchObject({ mediaConstraints: { audio: true, video: false } });
    expect(softphone.get().calls[0].state).toBe("connecting");
    rtc.emit("accepted");
    expect(softphone.get().calls[0].state).toBe("talking");
    expect(softphone.get().calls[0].answeredAt).not.toBeNull();

    softphone.sendDtmf(call.id, "5");
    softphone.sendDtmf(call.id, "#");
    expect(rtc.keys).toEqual(["5", "#"]);
    expect(softphone.get().calls[0].keys).toBe("5#");
    softphone.setMuted(call.id, true);
    expect(rtc.muted).toBe(true);
    expect(softphone.get().calls[0].muted).toBe(true);
    softphone.setHeld(call.id, true);
    softphone.setHeld(call.id, false);
    expect(rtc.holds).toEqual([true, false]);

    // An attended transfer moved the dialog into another call: the server renames it.
    const update = (apiId: string) => ({ getHeader: (h: string) => (h === "X-Nuage-Call" ? apiId : "") });
    rtc.emit("update", { originator: "remote", request: update("") });
    expect(softphone.get().calls[0].apiId).toBe("api-7");
    rtc.emit("update", { originator: "remote", request: update("api-9") });
    expect(softphone.find("api-9")?.id).toBe(call.id);

    rtc.emit("ended", { originator: "remote", cause: "Terminated" });
    expect(softphone.get().calls).toEqual([]);
    expect(softphone.get().current).toBeNull();
    expect(softphone.get().ended).toMatchObject({ seq: 1, reason: "hangup", name: "Lucas Dubois" });
  });

  it("takes a second call on hold, switches between them, refuses a third", async () => {
    const rtcs: FakeRtc[] = [];
    const { softphone, ua } = await started();
    ua.on("newRTCSession", (event) => rtcs.push((event as { session: FakeRtc }).session));
    await softphone.call("1002");
    rtcs[0].emit("accepted");
    const first = softphone.get().calls[0];
    expect(first.apiId).toBe("call-id-1");

    // Choosing whom to call next holds the first call.
    softphone.choose(true);
    expect(rtcs[0].holds).toEqual([true]);
    expect(softphone.get().choosing).toBe(true);
    await softphone.call("1003");
    const second = softphone.get().calls[1];
    expect(softphone.get()).toMatchObject({ current: second.id, choosing: false });
    rtcs[1].emit("accepted");

    // A call ringing in while both are up: busy.
    const third = ua.ring("Paul", "1004");
    expect(third.terminated).toEqual([{ status_code: 486, reason_phrase: "Busy Here" }]);
    expect(await softphone.call("1005")).toMatchObject({ ok: false, reason: "error" });

    softphone.switchTo(first.id);
    expect(rtcs[1].holds).toEqual([true]);
    expect(rtcs[0].holds).toEqual([true, false]);
    expect(softphone.get().current).toBe(first.id);

    // An ending the user caused (a transfer) is told as such; the other call comes on screen.
    // A transfer that failed is forgotten: the second call's end is a plain hang-up.
    softphone.expectEnd(second.id, "transferred");
    softphone.expectEnd(second.id, null);
    softphone.expectEnd(first.id, "transferred");
    rtcs[0].emit("ended", { originator: "remote", cause: "Terminated" });
    expect(softphone.get()).toMatchObject({ current: second.id, ended: { reason: "transferred" } });
    rtcs[1].emit("ended", { originator: "remote", cause: "Terminated" });
    expect(softphone.get()).toMatchObject({ current: null, ended: { reason: "hangup" } });
  });

  it("answers a call ringing in during a call, holding the first", async () => {
    const rtcs: FakeRtc[] = [];
    const { softphone, ua } = await started();
    ua.on("newRTCSession", (event) => rtcs.push((event as { session: FakeRtc }).session));
    await softphone.call("1002");
    rtcs[0].emit("accepted");
    const first = softphone.get().calls[0];
    const ringing = ua.ring("Camille Lambert", "1003", "api-9");
    // The call on screen stays until the user answers.
    expect(softphone.get().current).toBe(first.id);
    const second = softphone.get().calls[1];
    softphone.answer(second.id);
    expect(rtcs[0].holds).toEqual([true]);
    expect(ringing.answered).not.toBeNull();
    expect(softphone.get().current).toBe(second.id);
  });

  it("declines with 603", async () => {
    const { softphone, ua } = await started();
    const rtc = ua.ring("", "+3225550199");
    softphone.decline(softphone.get().calls[0].id);
    expect(rtc.terminated).toEqual([{ status_code: 603, reason_phrase: "Decline" }]);
    rtc.emit("failed", { originator: "local", cause: "Rejected" });
    expect(softphone.get().ended?.reason).toBe("hangup");
  });

  it("places calls through JsSIP once registered, click-to-call before", async () => {
    const placeCall = vi.fn(async () => ({ id: "api-1" }));
    const { softphone, ua } = await started();
    const phone = new AppPhone({ placeCall } as unknown as Api, softphone);
    expect(phone.mode).toBe("softphone");

    const outcome = await phone.call("02 555 01 99");
    expect(ua.dialled).toEqual(["025550199"]);
    expect(outcome).toMatchObject({ ok: true });
    expect(softphone.get().calls[0]).toMatchObject({ incoming: false, state: "calling", number: "025550199" });
    expect(await softphone.call("letters")).toMatchObject({ ok: false });

    ua.emit("disconnected");
    expect(phone.mode).toBe("click-to-call");
    expect(await phone.call("1002")).toEqual({ ok: true, callId: "api-1" });
    expect(placeCall).toHaveBeenCalledWith("1002");
  });

  it("tells how an unanswered call ended", async () => {
    const rtcs: FakeRtc[] = [];
    const { softphone, ua } = await started();
    ua.on("newRTCSession", (event) => rtcs.push((event as { session: FakeRtc }).session));
    await softphone.call("1002");
    const [rtc] = rtcs;
    rtc.emit("progress", { originator: "remote" });
    expect(softphone.get().calls[0].state).toBe("ringing");
    rtc.emit("failed", { originator: "remote", cause: "Busy" });
    expect(softphone.get().calls).toEqual([]);
    expect(softphone.get().ended).toMatchObject({ reason: "busy", number: "1002", incoming: false });
  });
});

describe("endReason", () => {
  it("tells busy, declined, missed and the rest apart", () => {
    expect(endReason({ cause: "Busy", originator: "remote" }, false, false)).toBe("busy");
    expect(endReason({ cause: "Rejected", originator: "remote" }, false, false)).toBe("declined");
    expect(endReason({ cause: "Canceled", originator: "remote" }, true, false)).toBe("missed");
    expect(endReason({ cause: "Canceled", originator: "local" }, false, false)).toBe("hangup");
    expect(endReason({ cause: "Unavailable", originator: "remote" }, false, false)).toBe("unavailable");
    expect(endReason({ cause: "Not Found", originator: "remote" }, false, false)).toBe("not_found");
    expect(endReason({ cause: "User Denied Media Access", originator: "local" }, false, false)).toBe(
      "microphone",
    );
    expect(endReason({ cause: "Busy", originator: "remote" }, false, true)).toBe("hangup");
    expect(endReason({ cause: "SIP Failure Code", originator: "remote" }, false, false)).toBe("failed");
    const elsewhere = { getHeader: () => 'SIP;cause=200;text="Call completed elsewhere"' };
    expect(endReason({ cause: "Canceled", originator: "remote", message: elsewhere }, true, false)).toBe(
      "elsewhere",
    );
  });

  it("dials extensions and numbers, separators dropped", () => {
    expect(dialTarget("+32 (0)2 555.01-00")).toBe("+320255501" + "00");
    expect(dialTarget("*97")).toBe("*97");
    expect(dialTarget("sip:x@y")).toBeNull();
    expect(dialTarget("")).toBeNull();
  });
});
