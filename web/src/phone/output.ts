// Where call audio plays (F8): the device's default output, or one the user chose among
// those the browser lists (a headset, a loudspeaker). Remembered in this browser; every
// call's <audio> element follows the choice.

const OUTPUT_KEY = "nuage.audio-output";

export interface AudioOutput {
  id: string;
  label: string;
}

type Listener = () => void;

/** An <audio> element's output chooser, where the browser has one (not Safari/iOS). */
export function canChooseOutput(): boolean {
  return typeof HTMLMediaElement !== "undefined" && "setSinkId" in HTMLMediaElement.prototype;
}

class OutputChoice {
  private readonly listeners = new Set<Listener>();
  private chosen: string;

  constructor(private readonly storage: Storage) {
    this.chosen = storage.getItem(OUTPUT_KEY) ?? "";
  }

  /** The chosen output's device id; "" for the device's default. */
  get(): string {
    return this.chosen;
  }

  set(id: string): void {
    this.chosen = id;
    if (id) this.storage.setItem(OUTPUT_KEY, id);
    else this.storage.removeItem(OUTPUT_KEY);
    for (const listener of [...this.listeners]) listener();
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

export const audioOutput = new OutputChoice(localStorage);

/** The outputs the browser lists (their names once the microphone was allowed, which a
 * call does); the default first. */
export async function listOutputs(): Promise<AudioOutput[]> {
  const devices = await navigator.mediaDevices.enumerateDevices();
  return devices
    .filter((device) => device.kind === "audiooutput" && device.deviceId !== "default")
    .map((device, index) => ({ id: device.deviceId, label: device.label || `#${index + 1}` }));
}
