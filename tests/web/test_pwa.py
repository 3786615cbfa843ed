"""The installable app (P9): a manifest whose icons load, a service worker that keeps the
app shell (never the API), and the app opening from it without a network."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import expect

from nuage.api.webapp import WEBAPP_DIR
from web.browser import assert_no_script_errors, chromium, log_in, new_page, web_server

# What the first load of the app fetched, by kind: bytes on the wire and once decoded.
LOADED = """() => {
  const sizes = {};
  for (const entry of performance.getEntriesByType("resource")) {
    const path = new URL(entry.name).pathname;
    const kind = path.endsWith(".js") ? "js" : path.endsWith(".css") ? "css" : "other";
    const size = sizes[kind] ?? { wire: 0, decoded: 0 };
    size.wire += entry.encodedBodySize;
    size.decoded += entry.decodedBodySize;
    sizes[kind] = size;
  }
  return sizes;
}"""

CACHED = """async () => {
  const keys = await caches.keys();
  const paths = [];
  for (const key of keys) {
    const cache = await caches.open(key);
    for (const request of await cache.keys()) paths.push(new URL(request.url).pathname);
  }
  return { keys, paths };
}"""


async def test_the_app_installs_and_opens_offline(tmp_path: Path) -> None:
    async with web_server(tmp_path) as server, chromium() as browser:
        page = await new_page(browser, server)
        await page.goto("/")
        await expect(page.get_by_role("button", name="Sign in")).to_be_visible()
        loaded = await page.evaluate(LOADED)
        print(f"\nfirst load: {loaded}")
        # Sent gzipped (the build's .gz copies): far below the 200 KB budget of issue 6.
        assert 0 < loaded["js"]["wire"] < 200_000
        assert loaded["js"]["wire"] < loaded["js"]["decoded"] / 2
        await log_in(page, "1001")
        # The softphone's JsSIP comes after login, in a chunk of its own.
        # Predicates as functions: a bare expression is eval'ed in the page while polling,
        # which the app's Content-Security-Policy (no 'unsafe-eval') refuses.
        await page.wait_for_function(
            "() => performance.getEntriesByType('resource')"
            ".some((e) => /JsSIP-[^/]*\\.js$/.test(e.name))"
        )
        # Counted as the server sends them (the build's gzipped copies): the service
        # worker, which has cached the shell meanwhile, may answer the page itself.
        scripts = await page.evaluate(
            "[...new Set(performance.getEntriesByType('resource')"
            ".map((e) => new URL(e.name).pathname).filter((p) => p.endsWith('.js')))]"
        )
        wire = sum((WEBAPP_DIR / f"{path.lstrip('/')}.gz").stat().st_size for path in scripts)
        print(f"with the softphone: {len(scripts)} scripts, {wire} bytes gzipped")
        assert len(scripts) == 2 and wire < 200_000
        manifest = await (await page.request.get("/manifest.webmanifest")).json()
        assert (manifest["display"], manifest["start_url"]) == ("standalone", "/")
        sizes = set()
        for icon in manifest["icons"]:
            response = await page.request.get(icon["src"])
            assert response.status == 200, icon
            assert response.headers["content-type"] == icon["type"]
            sizes.add(icon["sizes"])
        assert {"192x192", "512x512"} <= sizes

        # The worker takes the page only once its install has fetched the whole shell
        # anew (cache: "reload"): over 10 s once on a CI machine running four workers.
        await page.wait_for_function(
            "() => navigator.serviceWorker.controller !== null", timeout=30_000
        )
        cached = await page.evaluate(CACHED)
        assert len(cached["keys"]) == 1 and cached["keys"][0].startswith("nuage-shell-")
        paths = cached["paths"]
        assert "/" in paths and "/manifest.webmanifest" in paths
        assert any(path.startswith("/assets/") and path.endswith(".js") for path in paths)
        assert not [path for path in paths if path.startswith(("/api", "/sip", "/healthz"))]

        await page.context.set_offline(True)
        await page.reload()
        # The shell, from the cache: the app is there, in the company's language, waiting
        # for the network.
        await expect(page.get_by_text("Connexion perdue : reconnexion…")).to_be_visible()
        await page.context.set_offline(False)
        await expect(page.locator(".statusbar")).to_be_visible(timeout=15_000)
        assert_no_script_errors(page)
