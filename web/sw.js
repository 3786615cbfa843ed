/* Nuage's service worker: keeps the app shell (this build's HTML, scripts, styles, icons
 * and manifest) so that the app opens at once and offline. It never touches the API, the
 * event stream or the SIP WebSocket: those always go to the network.
 * The build (vite.config.ts) fills in VERSION and SHELL. */
const VERSION = "__VERSION__";
const SHELL = ["__SHELL__"];
const CACHE = "nuage-shell-" + VERSION;
const NETWORK_ONLY = ["/api", "/sip", "/healthz"];

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) => cache.addAll(SHELL.map((path) => new Request(path, { cache: "reload" }))))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) =>
        Promise.all(
          keys
            .filter((key) => key.startsWith("nuage-shell-") && key !== CACHE)
            .map((key) => caches.delete(key)),
        ),
      )
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (NETWORK_ONLY.some((prefix) => url.pathname === prefix || url.pathname.startsWith(prefix + "/")))
    return;
  if (request.mode === "navigate") {
    // The page itself: the network's (a new build shows at once), the cached shell offline.
    event.respondWith(fetch(request).catch(() => caches.match("/", { cacheName: CACHE })));
    return;
  }
  if (SHELL.includes(url.pathname)) {
    event.respondWith(
      caches.match(request, { cacheName: CACHE }).then((hit) => hit || fetch(request)),
    );
  }
});

// A notification of an incoming call (shown through the worker on mobile browsers):
// tapping it brings the app to the front.
self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  event.waitUntil(
    self.clients
      .matchAll({ type: "window", includeUncontrolled: true })
      .then((windows) => (windows.length > 0 ? windows[0].focus() : self.clients.openWindow("/"))),
  );
});
