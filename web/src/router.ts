// Screens are paths (/, /status, /contact/12, /calls/missed...): the server answers
// index.html for every app path, so a reload or a shared link opens the same screen.

import { useEffect, useState } from "preact/hooks";

const NAVIGATE = "nuage:navigate";

interface HistoryState {
  depth: number;
}

function depth(): number {
  const state = history.state as HistoryState | null;
  return state && typeof state.depth === "number" ? state.depth : 0;
}

export function navigate(path: string, options: { replace?: boolean } = {}): void {
  if (path === location.pathname + location.search) return;
  if (options.replace) history.replaceState({ depth: depth() } satisfies HistoryState, "", path);
  else history.pushState({ depth: depth() + 1 } satisfies HistoryState, "", path);
  window.dispatchEvent(new Event(NAVIGATE));
}

/** Back to the previous screen of the app, or to ``fallback`` when the app was opened here. */
export function back(fallback = "/"): void {
  if (depth() > 0) history.back();
  else navigate(fallback, { replace: true });
}

export function usePath(): string {
  const [path, setPath] = useState(location.pathname);
  useEffect(() => {
    const update = () => setPath(location.pathname);
    window.addEventListener("popstate", update);
    window.addEventListener(NAVIGATE, update);
    return () => {
      window.removeEventListener("popstate", update);
      window.removeEventListener(NAVIGATE, update);
    };
  }, []);
  return path;
}
