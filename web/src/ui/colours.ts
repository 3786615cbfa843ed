// Status colours: the company's (a status's `colour`), or one picked by what the status
// does; text on them in black or white, whichever reads better (WCAG contrast).

import type { Behaviour, LineState, Status } from "../api/types";
import type { IconName } from "./icons";

const BY_BEHAVIOUR: Record<Behaviour, string> = {
  ring: "#2e7d32",
  voicemail: "#ef6c00",
  forward: "#1565c0",
  busy: "#c62828",
};

export const UNKNOWN_STATUS_COLOUR = "#757575";

export function statusColour(status: Status | undefined): string {
  if (status === undefined) return UNKNOWN_STATUS_COLOUR;
  if (status.colour && /^#[0-9a-fA-F]{6}$/.test(status.colour)) return status.colour;
  return BY_BEHAVIOUR[status.behaviour] ?? UNKNOWN_STATUS_COLOUR;
}

export function statusIcon(status: Status | undefined): IconName {
  return status === undefined ? "offline" : status.behaviour;
}

export const LINE_ICONS: Record<LineState, IconName> = {
  offline: "offline",
  available: "free",
  ringing: "bell",
  "in call": "phone",
  "on hold": "pause",
};

function luminance(hex: string): number {
  const channel = (offset: number) => {
    const value = parseInt(hex.slice(offset, offset + 2), 16) / 255;
    return value <= 0.03928 ? value / 12.92 : ((value + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5);
}

export function contrast(a: string, b: string): number {
  const [light, dark] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (light + 0.05) / (dark + 0.05);
}

/** The text colour to write on ``background``. */
export function textOn(background: string): string {
  return contrast(background, "#ffffff") >= contrast(background, "#1a1a1a")
    ? "#ffffff"
    : "#1a1a1a";
}
