// The ringtone of an incoming call, made with WebAudio (no file to download): two
// short rings, then a pause, over and over until stopped. A browser that has not yet
// seen a tap or a key on the page may keep the sound off (autoplay policy); the
// incoming-call screen and the notification still show the call.

const RING = [
  // [start, end] in seconds within one cycle
  [0, 0.4],
  [0.6, 1.0],
] as const;
const CYCLE_S = 3;
const LEVEL = 0.12;

export class Ringtone {
  private context: AudioContext | null = null;
  private timer: ReturnType<typeof setInterval> | undefined;

  get playing(): boolean {
    return this.context !== null;
  }

  start(): void {
    if (this.context !== null || typeof AudioContext === "undefined") return;
    let context: AudioContext;
    try {
      context = new AudioContext();
    } catch {
      return;
    }
    this.context = context;
    const gain = context.createGain();
    gain.gain.value = 0;
    gain.connect(context.destination);
    for (const frequency of [440, 480]) {
      const oscillator = context.createOscillator();
      oscillator.frequency.value = frequency;
      oscillator.connect(gain);
      oscillator.start();
    }
    // Each cycle is scheduled a little ahead on the audio clock, so timers that the
    // browser delays (a tab in the background) do not cut the rings short.
    let next = context.currentTime + 0.05;
    const schedule = () => {
      while (next < context.currentTime + 2 * CYCLE_S) {
        for (const [from, to] of RING) {
          gain.gain.setValueAtTime(0, next + from);
          gain.gain.linearRampToValueAtTime(LEVEL, next + from + 0.02);
          gain.gain.setValueAtTime(LEVEL, next + to - 0.02);
          gain.gain.linearRampToValueAtTime(0, next + to);
        }
        next += CYCLE_S;
      }
    };
    schedule();
    this.timer = setInterval(schedule, CYCLE_S * 1000);
    void context.resume().catch(() => undefined);
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    const context = this.context;
    this.context = null;
    if (context !== null) void context.close().catch(() => undefined);
  }
}
