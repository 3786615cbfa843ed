import { describe, expect, it } from "vitest";
import { installShellWorker, type WorkerContainer } from "../src/shell_worker";

/* A worker that goes through the given states, one per tick, as a browser's does. */
class FakeWorker extends EventTarget {
  state = "installing";
  constructor(states: string[]) {
    super();
    void (async () => {
      for (const state of states) {
        await Promise.resolve();
        this.state = state;
        this.dispatchEvent(new Event("statechange"));
      }
    })();
  }
}

function container(outcomes: ("fails" | "throws" | "installs")[]) {
  const calls: string[] = [];
  const fake: WorkerContainer = {
    async register(url) {
      calls.push(url);
      const outcome = outcomes[calls.length - 1];
      if (outcome === "throws") throw new TypeError("script fetch failed");
      const states = outcome === "fails" ? ["redundant"] : ["installed", "activating", "activated"];
      return { installing: new FakeWorker(states), waiting: null, active: null } as unknown as ServiceWorkerRegistration;
    },
  };
  return { fake, calls };
}

describe("installShellWorker", () => {
  it("installs at the first try", async () => {
    const { fake, calls } = container(["installs"]);
    expect(await installShellWorker(fake, { wait: async () => {} })).toBe(true);
    expect(calls).toEqual(["/sw.js"]);
  });

  it("tries again, further apart, after failed installs", async () => {
    const { fake, calls } = container(["fails", "throws", "installs"]);
    const waits: number[] = [];
    const ok = await installShellWorker(fake, {
      firstDelayMs: 100,
      wait: async (ms) => void waits.push(ms),
    });
    expect(ok).toBe(true);
    expect(calls.length).toBe(3);
    expect(waits).toEqual([100, 200]);
  });

  it("gives up after its attempts", async () => {
    const { fake, calls } = container(["fails", "fails", "fails"]);
    expect(await installShellWorker(fake, { attempts: 3, wait: async () => {} })).toBe(false);
    expect(calls.length).toBe(3);
  });
});
