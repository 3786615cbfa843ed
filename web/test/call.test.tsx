// The softphone's call screens over a scripted softphone: the incoming call, the call
// itself (timer, mute, keypad, hold, hang up, output, quality, recording), two calls
// (switch, transfer, conference), how a call ended.
import { act, fireEvent, screen, waitFor } from "@testing-library/preact";
import { afterEach, describe, expect, it, vi } from "vitest";
import { type Api, ApiError } from "../src/api/client";
import type { LiveCall } from "../src/api/types";
import { translator } from "../src/i18n";
import { audioOutput } from "../src/phone/output";
import type { EndReason, SoftCall, SoftphoneControls, SoftphoneState } from "../src/phone/softphone";
import { CallEnds, CallScreen, duration, qualityBars, qualityDetails, useSoftphone } from "../src/screens/Call";
import { setup } from "./harness";

class FakeSoftphone implements SoftphoneControls {
  state: SoftphoneState = {
    status: "registered",
    enabled: true,
    calls: [],
    current: null,
    choosing: false,
    ended: null,
  };
  listeners = new Set<() => void>();
  answer = vi.fn();
  decline = vi.fn();
  hangUp = vi.fn();
  setEnabled = vi.fn();
  switchTo = vi.fn((id: string) => this.set({ current: id }));
  choose = vi.fn((on: boolean) => this.set({ choosing: on }));
  expected: [string, EndReason][] = [];
  expectEnd = vi.fn((id: string, reason: EndReason | null) => {
    if (reason === null) this.expected = this.expected.filter(([each]) => each !== id);
    else this.expected.push([id, reason]);
  });
  sendDtmf = vi.fn((id: string, key: string) => this.patch(id, { keys: this.find(id).keys + key }));
  setMuted = vi.fn((id: string, on: boolean) => this.patch(id, { muted: on }));
  setHeld = vi.fn((id: string, on: boolean) => this.patch(id, { held: on }));
  get() {
    return this.state;
  }
  subscribe(listener: () => void) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  set(patch: Partial<SoftphoneState>) {
    this.state = { ...this.state, ...patch };
    for (const listener of this.listeners) listener();
  }
  find(id: string): SoftCall {
    return this.state.calls.find((call) => call.id === id) as SoftCall;
  }
  patch(id: string, patch: Partial<SoftCall>) {
    this.set({ calls: this.state.calls.map((call) => (call.id === id ? { ...call, ...patch } : call)) });
  }
  with(...calls: SoftCall[]) {
    this.set({ calls, current: calls[calls.length - 1].id });
    return this;
  }
}

function call(extra: Partial<SoftCall> = {}): SoftCall {
  return {
    id: "c1",
    apiId: "api-1",
    incoming: true,
    number: "1002",
    name: "Lucas Dubois",
    state: "incoming",
    answeredAt: null,
    muted: false,
    held: false,
    keys: "",
    remote: null,
    ...extra,
  };
}

function live(extra: Partial<LiveCall> = {}): LiveCall {
  return {
    id: "api-1",
    direction: "internal",
    incoming: true,
    other: { number: "1002", name: "Lucas Dubois" },
    state: "talking",
    answered_at: null,
    recording: false,
    recording_since: null,
    quality: null,
    participants: [],
    ...extra,
  };
}

afterEach(() => {
  vi.useRealTimers();
  localStorage.clear();
});

function Screen({ softphone }: { softphone: FakeSoftphone }) {
  const state = useSoftphone(softphone);
  return state && state.calls.length > 0 ? <CallScreen state={state} softphone={softphone} /> : null;
}

function Ends({ softphone }: { softphone: FakeSoftphone }) {
  return <CallEnds ended={useSoftphone(softphone)?.ended ?? null} />;
}

describe("Incoming call", () => {
  it("shows who calls, with answer and decline", () => {
    const softphone = new FakeSoftphone().with(call());
    const { render } = setup({ softphone });
    render(<Screen softphone={softphone} />);
    expect(screen.getByText("Incoming call")).toBeTruthy();
    expect(screen.getByRole("heading", { name: "Lucas Dubois" })).toBeTruthy();
    expect(screen.getByText("1002")).toBeTruthy();
    fireEvent.click(screen.getByRole("button", { name: "Answer the call from Lucas Dubois" }));
    expect(softphone.answer).toHaveBeenCalledWith("c1");
    fireEvent.click(screen.getByRole("button", { name: "Decline the call from Lucas Dubois" }));
    expect(softphone.decline).toHaveBeenCalledWith("c1");
    expect(document.querySelector("audio.remote-audio")).not.toBeNull();
  });

  it("says that answering holds the call the user is in", () => {
    const softphone = new FakeSoftphone().with(
      call({ id: "c0", name: "Camille Lambert", number: "1003", state: "talking" }),
      call(),
    );
    softphone.set({ current: "c0" });
    const { render } = setup({ softphone });
    render(<Screen softphone={softphone} />);
    expect(screen.getByRole("heading", { name: "Lucas Dubois" })).toBeTruthy();
    expect(screen.getByText("Answering holds your call with Camille Lambert.")).toBeTruthy();
  });

  it("shows a notification while the app is in the background, closed once answered", () => {
    const shown: { title: string; options: NotificationOptions; closed: boolean }[] = [];
    class FakeNotification {
      static permission = "granted";
      onclick: (() => void) | null = null;
      private entry: (typeof shown)[number];
      constructor(title: string, options: NotificationOptions) {
        this.entry = { title, options, closed: false };
        shown.push(this.entry);
      }
      close() {
        this.entry.closed = true;
      }
    }
    vi.stubGlobal("Notification", FakeNotification);
    vi.spyOn(document, "visibilityState", "get").mockReturnValue("hidden");
    const softphone = new FakeSoftphone().with(call());
    const { render } = setup({ softphone });
    render(<Screen softphone={softphone} />);
    expect(shown).toMatchObject([
      { title: "Incoming call", options: { body: "Lucas Dubois is calling you" }, closed: false },
    ]);
    act(() => softphone.patch("c1", { state: "connecting" }));
    expect(shown[0].closed).toBe(true);
    vi.unstubAllGlobals();
  });

  it("names an unknown caller by their number, in the company's format", () => {
    const softphone = new FakeSoftphone().with(call({ name: "", number: "+3225550199" }));
    const { render } = setup({ softphone });
    render(<Screen softphone={softphone} />);
    expect(screen.getByRole("heading", { name: "02 555 01 99" })).toBeTruthy();
  });
});

describe("In call", () => {
  it("times the call and mutes, sends keys, holds and hangs up", () => {
    vi.useFakeTimers();
    const softphone = new FakeSoftphone().with(call({ state: "talking", answeredAt: Date.now() }));
    const { render } = setup({ softphone });
    render(<Screen softphone={softphone} />);
    expect(screen.getByRole("heading", { name: "Lucas Dubois" })).toBeTruthy();
    expect(screen.getByRole("timer").textContent).toBe("0:00");
    act(() => {
      vi.advanceTimersByTime(65_000);
    });
    expect(screen.getByRole("timer").textContent).toBe("1:05");

    const mute = screen.getByRole("button", { name: "Mute" });
    expect(mute.getAttribute("aria-pressed")).toBe("false");
    fireEvent.click(mute);
    expect(softphone.setMuted).toHaveBeenCalledWith("c1", true);
    expect(screen.getByRole("button", { name: "Mute" }).getAttribute("aria-pressed")).toBe("true");

    fireEvent.click(screen.getByRole("button", { name: "Keypad" }));
    fireEvent.click(screen.getByRole("button", { name: "7" }));
    fireEvent.click(screen.getByRole("button", { name: "#" }));
    expect(softphone.sendDtmf.mock.calls).toEqual([
      ["c1", "7"],
      ["c1", "#"],
    ]);
    expect(screen.getByRole("status", { name: "Keys sent" }).textContent).toBe("7#");
    fireEvent.click(screen.getByRole("button", { name: "Hide the keypad" }));

    fireEvent.click(screen.getByRole("button", { name: "Hold" }));
    expect(softphone.setHeld).toHaveBeenCalledWith("c1", true);
    expect(screen.getByText("On hold")).toBeTruthy();
    fireEvent.click(screen.getByRole("button", { name: "Hold" }));
    expect(screen.queryByText("On hold")).toBeNull();

    fireEvent.click(screen.getByRole("button", { name: "Hang up" }));
    expect(softphone.hangUp).toHaveBeenCalledWith("c1");
  });

  it("says how a call being placed goes", () => {
    const softphone = new FakeSoftphone().with(call({ incoming: false, state: "calling" }));
    const { render } = setup({ softphone });
    render(<Screen softphone={softphone} />);
    expect(screen.getByText("Calling…")).toBeTruthy();
    expect(screen.getByRole("button", { name: "Hold" }).hasAttribute("disabled")).toBe(true);
    expect(screen.getByRole("button", { name: "New call" }).hasAttribute("disabled")).toBe(true);
    act(() => softphone.patch("c1", { state: "ringing" }));
    expect(screen.getByText("Ringing…")).toBeTruthy();
  });

  it("leaves the call screen on hold to choose whom to call next", () => {
    const softphone = new FakeSoftphone().with(call({ state: "talking" }));
    const { render } = setup({ softphone });
    render(<Screen softphone={softphone} />);
    fireEvent.click(screen.getByRole("button", { name: "New call" }));
    expect(softphone.choose).toHaveBeenCalledWith(true);
    expect(location.pathname).toBe("/");
  });

  it("shows the quality in bars, and why on tap", () => {
    const softphone = new FakeSoftphone().with(call({ state: "talking" }));
    const { render, store } = setup({ softphone });
    store.set({ calls: [live({ quality: { mos: 3.4, loss_percent: 4.2, jitter_ms: 12, rtt_ms: 48 } })] });
    render(<Screen softphone={softphone} />);
    const bars = screen.getByRole("button", { name: "Call quality: fair" });
    expect(bars.getAttribute("data-bars")).toBe("2");
    fireEvent.click(bars);
    expect(screen.getByText(/Audio packets are lost.*Loss 4\.2 %, jitter 12 ms, latency 48 ms\./)).toBeTruthy();
  });

  it("warns before the first recording, then records and counts down five minutes", async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    const startRecording = vi.fn(async () => undefined);
    const stopRecording = vi.fn(async () => undefined);
    const softphone = new FakeSoftphone().with(call({ state: "talking" }));
    const { render, store } = setup({ softphone, api: { startRecording, stopRecording } as Partial<Api> });
    store.set({ calls: [live()] });
    render(<Screen softphone={softphone} />);
    fireEvent.click(screen.getByRole("button", { name: "Record" }));
    expect(screen.getByRole("alertdialog", { name: "Record this call?" })).toBeTruthy();
    fireEvent.click(screen.getByRole("button", { name: "Cancel" }));
    expect(startRecording).not.toHaveBeenCalled();
    fireEvent.click(screen.getByRole("button", { name: "Record" }));
    const dialog = screen.getByRole("alertdialog");
    fireEvent.click(dialog.querySelector(".button-primary") as Element);
    expect(startRecording).toHaveBeenCalledWith("api-1");

    // The countdown runs from the server's start (here, 30 s before this screen showed).
    const since = new Date(Date.now() - 30_000).toISOString();
    act(() => store.set({ calls: [live({ recording: true, recording_since: since })] }));
    expect(screen.getByText("Recording: 4:30 left")).toBeTruthy();
    act(() => {
      vi.advanceTimersByTime(61_000);
    });
    expect(screen.getByText("Recording: 3:29 left")).toBeTruthy();
    fireEvent.click(screen.getByRole("button", { name: "Stop recording" }));
    expect(stopRecording).toHaveBeenCalledWith("api-1");

    // Warned once: the next recording starts at once.
    act(() => store.set({ calls: [live({ recording: false })] }));
    fireEvent.click(screen.getByRole("button", { name: "Record" }));
    expect(screen.queryByRole("alertdialog")).toBeNull();
    await waitFor(() => expect(startRecording).toHaveBeenCalledTimes(2));
  });

  it("plays the call on the output chosen", async () => {
    const devices = [
      { kind: "audioinput", deviceId: "mic", label: "Microphone" },
      { kind: "audiooutput", deviceId: "default", label: "Default" },
      { kind: "audiooutput", deviceId: "headset", label: "Headset" },
    ];
    vi.stubGlobal("navigator", { ...navigator, mediaDevices: { enumerateDevices: async () => devices } });
    const setSinkId = vi.fn(async () => undefined);
    Object.defineProperty(HTMLMediaElement.prototype, "setSinkId", { value: setSinkId, configurable: true });
    try {
      const softphone = new FakeSoftphone().with(call({ state: "talking" }));
      const { render } = setup({ softphone });
      render(<Screen softphone={softphone} />);
      fireEvent.click(screen.getByRole("button", { name: "Audio" }));
      const headset = await screen.findByRole("radio", { name: "Headset" });
      expect(screen.getByRole("radio", { name: "This device's default output" }).getAttribute("aria-checked")).toBe(
        "true",
      );
      fireEvent.click(headset);
      expect(audioOutput.get()).toBe("headset");
      await waitFor(() => expect(setSinkId).toHaveBeenCalledWith("headset"));
      expect(localStorage.getItem("nuage.audio-output")).toBe("headset");
    } finally {
      audioOutput.set("");
      delete (HTMLMediaElement.prototype as { setSinkId?: unknown }).setSinkId;
      vi.unstubAllGlobals();
    }
  });

  it("tells once how each call ended, not those an action ended", () => {
    const softphone = new FakeSoftphone();
    const { render, notices } = setup({ softphone });
    render(<Ends softphone={softphone} />);
    expect(notices).toEqual([]);
    const ended = { seq: 1, number: "1002", name: "", incoming: false, reason: "busy" } as const;
    act(() => softphone.set({ ended }));
    act(() => softphone.set({ status: "connecting" }));
    act(() => softphone.set({ ended: { ...ended, seq: 2, reason: "transferred" } }));
    expect(notices).toEqual(["1002 is busy."]);
  });

  it("formats durations, rates the quality", () => {
    expect(duration(0)).toBe("0:00");
    expect(duration(59_999)).toBe("0:59");
    expect(duration(3_725_000)).toBe("1:02:05");
    expect(qualityBars(null)).toBe(0);
    expect(qualityBars({ mos: 4.3, loss_percent: 0, jitter_ms: 1, rtt_ms: 2 })).toBe(4);
    expect(qualityBars({ mos: 2.5, loss_percent: 9, jitter_ms: 1, rtt_ms: 2 })).toBe(1);
    const t = translator("en");
    expect(qualityDetails(t, { mos: 3, loss_percent: 0, jitter_ms: 45, rtt_ms: null })).toMatch(/^Audio arrives irregularly/);
    expect(qualityDetails(t, { mos: 4.3, loss_percent: 0, jitter_ms: 2, rtt_ms: 10 })).toBe(
      "The connection is good. Loss 0.0 %, jitter 2 ms, latency 10 ms.",
    );
  });
});

describe("Two calls", () => {
  function twoCalls() {
    const held = call({ id: "c1", apiId: "api-1", state: "talking", held: true });
    const current = call({ id: "c2", apiId: "api-2", name: "Camille Lambert", number: "1003", state: "talking" });
    return new FakeSoftphone().with(held, current);
  }

  it("shows the held call in a box: tap to switch back", () => {
    const softphone = twoCalls();
    const { render } = setup({ softphone });
    render(<Screen softphone={softphone} />);
    expect(screen.getByRole("heading", { name: "Camille Lambert" })).toBeTruthy();
    const box = screen.getByRole("region", { name: "Other call: Lucas Dubois" });
    expect(box.textContent).toContain("On hold");
    fireEvent.click(screen.getByRole("button", { name: /Back to this call/ }));
    expect(softphone.switchTo).toHaveBeenCalledWith("c1");
    expect(screen.getByRole("heading", { name: "Lucas Dubois" })).toBeTruthy();
  });

  it("transfers with the green arrow: both calls end as transferred", async () => {
    const attendedTransfer = vi.fn(async () => undefined);
    const softphone = twoCalls();
    const { render, notices } = setup({ softphone, api: { attendedTransfer } as Partial<Api> });
    render(<Screen softphone={softphone} />);
    fireEvent.click(screen.getByRole("button", { name: "Transfer Lucas Dubois to Camille Lambert" }));
    await waitFor(() => expect(notices).toEqual(["Transferred successfully."]));
    expect(attendedTransfer).toHaveBeenCalledWith("api-1", "api-2");
    expect(softphone.expected).toEqual([
      ["c1", "transferred"],
      ["c2", "transferred"],
    ]);
  });

  it("keeps both calls when the server refuses the transfer", async () => {
    const attendedTransfer = vi.fn(async () => {
      throw new ApiError(409, "conflict", "Camille's phone refused");
    });
    const softphone = twoCalls();
    const { render, notices } = setup({ softphone, api: { attendedTransfer } as Partial<Api> });
    render(<Screen softphone={softphone} />);
    fireEvent.click(screen.getByRole("button", { name: "Transfer Lucas Dubois to Camille Lambert" }));
    await waitFor(() => expect(notices).toEqual(["Something went wrong: Camille's phone refused"]));
    expect(softphone.expected).toEqual([]);
  });

  it("merges both into a conference, with its participants", async () => {
    const conference = vi.fn(async () => undefined);
    const softphone = twoCalls();
    const { render, notices, store } = setup({ softphone, api: { conference } as Partial<Api> });
    render(<Screen softphone={softphone} />);
    fireEvent.click(screen.getByRole("button", { name: "Join Lucas Dubois and Camille Lambert in a conference" }));
    await waitFor(() => expect(notices).toEqual(["Conference started."]));
    expect(conference).toHaveBeenCalledWith("api-2", "api-1");
    expect(softphone.expected).toEqual([["c1", "merged"]]);
    act(() => {
      softphone.set({ calls: [softphone.find("c2")] });
      store.set({
        calls: [
          live({
            id: "api-2",
            state: "conference",
            participants: [
              { number: "1002", name: "Lucas Dubois" },
              { number: "1003", name: "Camille Lambert" },
            ],
          }),
        ],
      });
    });
    expect(screen.getByRole("heading", { name: "Conference" })).toBeTruthy();
    const list = screen.getByRole("list", { name: "Participants" });
    expect(list.textContent).toBe("Lucas DuboisCamille Lambert");
  });
});
