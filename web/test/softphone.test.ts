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
    this.emit("newRTCSession", { originator: "local", session: rtc });
    return rtc;
  }
  ring(name: string, number: string) {
    const rtc = new FakeRtc({ display_name: name, uri: { user: number } });
    this.emit("newRTCSession", { originator: "remote", session: rtc });
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
    const rtc = ua.ring("Lucas Dubois", "1002");
    expect(softphone.get().call).toMatchObject({
      incoming: true,
      name: "Lucas Dubois",
      number: "1002",
      state: "incoming",
    });
    // A second call while this one rings: busy.
    const second = ua.ring("Camille Lambert", "1003");
    expect(second.terminated).toEqual([{ status_code: 486, reason_phrase: "Busy Here" }]);

    softphone.answer();
    expect(rtc.answered).toMatchObject({ mediaConstraints: { audio: true, video: false } });
    expect(softphone.get().call?.state).toBe("connecting");
    rtc.emit("accepted");
    expect(softphone.get().call?.state).toBe("talking");
    expect(softphone.get().call?.answeredAt).not.toBeNull();

    softphone.sendDtmf("5");
    softphone.sendDtmf("#");
    expect(rtc.keys).toEqual(["5", "#"]);
    expect(softphone.get().call?.keys).toBe("5#");
    softphone.setMuted(true);
    expect(rtc.muted).toBe(true);
    expect(softphone.get().call?.muted).toBe(true);
    softphone.setHeld(true);
    softphone.setHeld(false);
    expect(rtc.holds).toEqual([true, false]);

    rtc.emit("ended", { originator: "remote", cause: "Terminated" });
    expect(softphone.get().call).toBeNull();
    expect(softphone.get().ended).toMatchObject({ seq: 1, reason: "hangup", name: "Lucas Dubois" });
  });

  it("declines with 603", async () => {
    const { softphone, ua } = await started();
    const rtc = ua.ring("", "+3225550199");
    softphone.decline();
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
    expect(softphone.get().call).toMatchObject({ incoming: false, state: "calling", number: "025550199" });
    expect(await phone.call("1002")).toMatchObject({ ok: false, reason: "error" });
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
    expect(softphone.get().call?.state).toBe("ringing");
    rtc.emit("failed", { originator: "remote", cause: "Busy" });
    expect(softphone.get().call).toBeNull();
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
  });

  it("dials extensions and numbers, separators dropped", () => {
    expect(dialTarget("+32 (0)2 555.01-00")).toBe("+320255501" + "00");
    expect(dialTarget("*97")).toBe("*97");
    expect(dialTarget("sip:x@y")).toBeNull();
    expect(dialTarget("")).toBeNull();
  });
});
