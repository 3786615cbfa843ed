// The phone: how the app places and ends calls. Screens only use the Phone interface.
//
// The browser is a phone of its own (Softphone: JsSIP over the /sip WebSocket, WebRTC)
// once it is registered; until then, or when the user turned it off, or where the browser
// cannot (no HTTPS, no microphone), ClickToCallPhone places calls through the platform
// (POST /api/v1/me/calls), which rings the user's registered phones first and then calls
// the target from the one answered. AppPhone picks one at each call.

import { ApiError, type Api } from "../api/client";
import type { Softphone } from "./softphone";

export type CallFailure = "no_device" | "invalid" | "offline" | "error";

export type CallOutcome =
  | { ok: true; callId: string }
  | { ok: false; reason: CallFailure; message: string };

export interface Phone {
  /** "click-to-call": the user's own phone rings first; "softphone": the app itself calls. */
  readonly mode: "click-to-call" | "softphone";
  /** Calls an extension or a number, as dialled (separators are fine). */
  call(target: string): Promise<CallOutcome>;
  hangUp(callId: string): Promise<void>;
}

export class ClickToCallPhone implements Phone {
  readonly mode = "click-to-call";

  constructor(private readonly api: Api) {}

  async call(target: string): Promise<CallOutcome> {
    try {
      const { id } = await this.api.placeCall(target);
      return { ok: true, callId: id };
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      const reason: CallFailure =
        error.code === "no_device"
          ? "no_device"
          : error.status === 422
            ? "invalid"
            : error.offline
              ? "offline"
              : "error";
      return { ok: false, reason, message: error.message };
    }
  }

  hangUp(callId: string): Promise<void> {
    return this.api.hangUp(callId);
  }
}

export class AppPhone implements Phone {
  private readonly clickToCall: ClickToCallPhone;

  constructor(
    api: Api,
    readonly softphone: Softphone,
  ) {
    this.clickToCall = new ClickToCallPhone(api);
  }

  get mode(): Phone["mode"] {
    return this.softphone.ready ? "softphone" : "click-to-call";
  }

  call(target: string): Promise<CallOutcome> {
    return this.softphone.ready ? this.softphone.call(target) : this.clickToCall.call(target);
  }

  /** A call of the softphone (its id or the API's), or any live call of mine (the API's). */
  async hangUp(callId: string): Promise<void> {
    const own = this.softphone.find(callId);
    if (own !== null) this.softphone.hangUp(own.id);
    else await this.clickToCall.hangUp(callId);
  }
}

export function createPhone(api: Api, softphone: Softphone): Phone {
  return new AppPhone(api, softphone);
}
