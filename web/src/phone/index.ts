// The phone: how the app places and ends calls. Screens only use the Phone interface.
//
// Today the app has no softphone of its own: ClickToCallPhone places calls through the
// platform (POST /api/v1/me/calls), which rings the user's registered phones first and
// then calls the target from the one answered. The in-browser softphone (JsSIP over the
// /sip WebSocket, WebRTC) implements the same interface and replaces it in createPhone.

import { ApiError, type Api } from "../api/client";

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

export function createPhone(api: Api): Phone {
  return new ClickToCallPhone(api);
}
