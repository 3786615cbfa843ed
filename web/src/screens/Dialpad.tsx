// The dialpad (F1): dial any number (an extension, a national or international number),
// shown in the company's number format as it is typed; typing and pasting work too. The
// call is placed by the phone (for now click-to-call: the user's own phone rings first).

import { useEffect, useRef, useState } from "preact/hooks";
import { useT } from "../i18n";
import { dialable } from "../numbers";
import { Screen, NoDeviceNotice, useCall, useFormat } from "../ui/components";
import { Icon } from "../ui/icons";

/** The phone keypad: each key and the letters printed under it. */
export const KEYS: [string, string][] = [
  ["1", ""],
  ["2", "ABC"],
  ["3", "DEF"],
  ["4", "GHI"],
  ["5", "JKL"],
  ["6", "MNO"],
  ["7", "PQRS"],
  ["8", "TUV"],
  ["9", "WXYZ"],
  ["*", ""],
  ["0", "+"],
  ["#", ""],
];

const LONG_PRESS_MS = 600;

export function Dialpad() {
  const t = useT();
  const call = useCall();
  const format = useFormat();
  const [number, setNumber] = useState("");
  const [calling, setCalling] = useState(false);
  const input = useRef<HTMLInputElement>(null);
  const press = useRef<{ timer: ReturnType<typeof setTimeout>; long: boolean } | null>(null);
  const coarse = typeof matchMedia === "function" && matchMedia("(pointer: coarse)").matches;

  useEffect(() => {
    // With a keyboard, typing goes straight to the number (a touch screen has the keys).
    if (!coarse) input.current?.focus();
  }, []);

  useEffect(() => {
    // Keep the caret at the end as the number is reformatted.
    const field = input.current;
    if (field && document.activeElement === field) {
      field.setSelectionRange(field.value.length, field.value.length);
    }
  }, [number]);

  function type(key: string) {
    setNumber((current) => dialable(current + key));
  }

  function pressStart(key: string) {
    pressEnd();
    if (key !== "0" && key !== "back") return;
    const state = {
      long: false,
      timer: setTimeout(() => {
        state.long = true;
        if (key === "0") setNumber((c) => (c === "" ? "+" : dialable(c + "0")));
        if (key === "back") setNumber("");
      }, LONG_PRESS_MS),
    };
    press.current = state;
  }

  function pressEnd(): boolean {
    const current = press.current;
    press.current = null;
    if (current === null) return false;
    clearTimeout(current.timer);
    return current.long;
  }

  async function place() {
    if (!number || calling) return;
    setCalling(true);
    try {
      await call(number);
    } finally {
      setCalling(false);
    }
  }

  const shown = format(number);
  return (
    <Screen title={t("dialpad_title")} class="dialpad">
      <NoDeviceNotice />
      <form
        class="dial-form"
        onSubmit={(event) => {
          event.preventDefault();
          void place();
        }}
      >
        <div class="dial-display">
          <input
            ref={input}
            type="text"
            inputMode={coarse ? "none" : "tel"}
            autoComplete="off"
            aria-label={t("dial_number")}
            class="dial-input"
            value={shown}
            onInput={(event) => setNumber(dialable(event.currentTarget.value))}
          />
          <button
            type="button"
            class="icon-button"
            aria-label={t("dial_delete")}
            disabled={!number}
            onPointerDown={() => pressStart("back")}
            onPointerLeave={() => pressEnd()}
            onClick={() => {
              if (!pressEnd()) setNumber((n) => n.slice(0, -1));
            }}
          >
            <Icon name="backspace" />
          </button>
        </div>
        <div class="keypad">
          {KEYS.map(([key, letters]) => (
            <button
              type="button"
              class="key"
              key={key}
              aria-label={key === "0" ? t("dial_zero") : undefined}
              onPointerDown={() => pressStart(key)}
              onPointerLeave={() => pressEnd()}
              onClick={() => {
                if (!pressEnd()) type(key);
              }}
            >
              <span class="key-digit">{key}</span>
              <span class="key-letters" aria-hidden="true">
                {letters}
              </span>
            </button>
          ))}
        </div>
        <button
          type="submit"
          class="call-big"
          disabled={!number || calling}
          aria-label={number ? t("dial_call_number", { number: shown }) : t("dial_call")}
        >
          <Icon name="phone" size={32} />
        </button>
      </form>
    </Screen>
  );
}
