// The softphone's call screens over a scripted softphone: the incoming call, the call
// itself (timer, mute, keypad, hold, hang up), how a call ended.
import { act, fireEvent, screen } from "@testing-library/preact";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { SoftCall, SoftphoneControls, SoftphoneState } from "../src/phone/softphone";
import { CallEnds, CallScreen, duration, useSoftphone } from "../src/screens/Call";
import { setup } from "./harness";

class FakeSoftphone implements SoftphoneControls {
  state: SoftphoneState = { status: "registered", enabled: true, call: null, ended: null };
  listeners = new Set<() => void>();
  answer = vi.fn();
  decline = vi.fn();
  hangUp = vi.fn();
  setEnabled = vi.fn();
  sendDtmf = vi.fn((key: string) => this.patch({ keys: (this.state.call?.keys ?? "") + key }));
  setMuted = vi.fn((on: boolean) => this.patch({ muted: on }));
  setHeld = vi.fn((on: boolean) => this.patch({ held: on }));
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
  patch(patch: Partial<SoftCall>) {
    if (this.state.call) this.set({ call: { ...this.state.call, ...patch } });
  }
}

function call(extra: Partial<SoftCall> = {}): SoftCall {
  return {
    id: "c1",
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

afterEach(() => vi.useRealTimers());

function Screen({ softphone }: { softphone: FakeSoftphone }) {
  const state = useSoftphone(softphone);
  return state?.call ? <CallScreen call={state.call} softphone={softphone} /> : null;
}

function Ends({ softphone }: { softphone: FakeSoftphone }) {
  return <CallEnds ended={useSoftphone(softphone)?.ended ?? null} />;
}

describe("Incoming call", () => {
  it("shows who calls, with answer and decline", () => {
    const softphone = new FakeSoftphone();
    const { render } = setup({ softphone });
    render(<CallScreen call={call()} softphone={softphone} />);
    expect(screen.getByText("Incoming call")).toBeTruthy();
    expect(screen.getByRole("heading", { name: "Lucas Dubois" })).toBeTruthy();
    expect(screen.getByText("1002")).toBeTruthy();
    fireEvent.click(screen.getByRole("button", { name: "Answer the call from Lucas Dubois" }));
    expect(softphone.answer).toHaveBeenCalled();
    fireEvent.click(screen.getByRole("button", { name: "Decline the call from Lucas Dubois" }));
    expect(softphone.decline).toHaveBeenCalled();
    expect(document.querySelector("audio.remote-audio")).not.toBeNull();
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
    const softphone = new FakeSoftphone();
    softphone.set({ call: call() });
    const { render } = setup({ softphone });
    render(<Screen softphone={softphone} />);
    expect(shown).toMatchObject([
      { title: "Incoming call", options: { body: "Lucas Dubois is calling you" }, closed: false },
    ]);
    act(() => softphone.patch({ state: "connecting" }));
    expect(shown[0].closed).toBe(true);
    vi.unstubAllGlobals();
  });

  it("names an unknown caller by their number, in the company's format", () => {
    const softphone = new FakeSoftphone();
    const { render } = setup({ softphone });
    render(<CallScreen call={call({ name: "", number: "+3225550199" })} softphone={softphone} />);
    expect(screen.getByRole("heading", { name: "02 555 01 99" })).toBeTruthy();
  });
});

describe("In call", () => {
  it("times the call and mutes, sends keys, holds and hangs up", () => {
    vi.useFakeTimers();
    const softphone = new FakeSoftphone();
    softphone.set({ call: call({ state: "talking", answeredAt: Date.now() }) });
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
    expect(softphone.setMuted).toHaveBeenCalledWith(true);
    expect(screen.getByRole("button", { name: "Mute" }).getAttribute("aria-pressed")).toBe("true");

    fireEvent.click(screen.getByRole("button", { name: "Keypad" }));
    fireEvent.click(screen.getByRole("button", { name: "7" }));
    fireEvent.click(screen.getByRole("button", { name: "#" }));
    expect(softphone.sendDtmf.mock.calls).toEqual([["7"], ["#"]]);
    expect(screen.getByRole("status", { name: "Keys sent" }).textContent).toBe("7#");
    fireEvent.click(screen.getByRole("button", { name: "Hide the keypad" }));

    fireEvent.click(screen.getByRole("button", { name: "Hold" }));
    expect(softphone.setHeld).toHaveBeenCalledWith(true);
    expect(screen.getByText("On hold")).toBeTruthy();
    fireEvent.click(screen.getByRole("button", { name: "Hold" }));
    expect(screen.queryByText("On hold")).toBeNull();

    fireEvent.click(screen.getByRole("button", { name: "Hang up" }));
    expect(softphone.hangUp).toHaveBeenCalled();
  });

  it("says how a call being placed goes", () => {
    const softphone = new FakeSoftphone();
    softphone.set({ call: call({ incoming: false, state: "calling" }) });
    const { render } = setup({ softphone });
    render(<Screen softphone={softphone} />);
    expect(screen.getByText("Calling…")).toBeTruthy();
    expect(screen.getByRole("button", { name: "Hold" }).hasAttribute("disabled")).toBe(true);
    act(() => softphone.patch({ state: "ringing" }));
    expect(screen.getByText("Ringing…")).toBeTruthy();
  });

  it("tells once how each call ended", () => {
    const softphone = new FakeSoftphone();
    const { render, notices } = setup({ softphone });
    render(<Ends softphone={softphone} />);
    expect(notices).toEqual([]);
    const ended = { seq: 1, number: "1002", name: "", incoming: false, reason: "busy" } as const;
    act(() => softphone.set({ ended }));
    act(() => softphone.set({ status: "connecting" }));
    expect(notices).toEqual(["1002 is busy."]);
  });

  it("formats durations", () => {
    expect(duration(0)).toBe("0:00");
    expect(duration(59_999)).toBe("0:59");
    expect(duration(3_725_000)).toBe("1:02:05");
  });
});
