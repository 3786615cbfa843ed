/* The service worker that keeps the app shell for opening at once and offline (sw.js).
 * Its install fetches the whole shell; one failed fetch (a flaky network, a busy server)
 * fails it, and the browser does not try again before the next page load. A phone app is
 * left open for days: it tries again, a few times, further apart each time. */

export interface WorkerContainer {
  register(url: string): Promise<ServiceWorkerRegistration>;
}

export interface RetryOptions {
  attempts?: number;
  firstDelayMs?: number;
  wait?: (ms: number) => Promise<void>;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** True once a worker is active; false after ``attempts`` failed installs. */
export async function installShellWorker(
  container: WorkerContainer,
  { attempts = 5, firstDelayMs = 5000, wait = sleep }: RetryOptions = {},
): Promise<boolean> {
  for (let attempt = 0; attempt < attempts; attempt++) {
    if (attempt > 0) await wait(firstDelayMs * 2 ** (attempt - 1));
    try {
      if (await settled(await container.register("/sw.js"))) return true;
    } catch {
      // The script could not be fetched: as a failed install.
    }
  }
  return false;
}

/** Whether the registration's newest worker gets to be active (not redundant). */
function settled(registration: ServiceWorkerRegistration): Promise<boolean> {
  const worker = registration.installing ?? registration.waiting;
  if (worker === null) return Promise.resolve(registration.active !== null);
  return new Promise((resolve) => {
    const check = () => {
      if (worker.state === "activated") resolve(true);
      else if (worker.state === "redundant") resolve(registration.active !== null);
      else return;
      worker.removeEventListener("statechange", check);
    };
    worker.addEventListener("statechange", check);
    check();
  });
}
