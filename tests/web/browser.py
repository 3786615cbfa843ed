"""Driving the web app in Debian's Chromium (Playwright, never a downloaded browser) against
a Nuage server in the test's process: the app as `nuage serve` ships it (the build in
src/nuage/webapp, made by `make web`), phone-sized (390 x 844)."""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from api.test_events import EMAILS, PASSWORDS
from e2e.server import USERS, acme_plan
from e2e.test_call_control import ids, in_process_server
from nuage.api.webapp import WEBAPP_DIR
from nuage.server import NuageServer

CHROMIUM = "/usr/bin/chromium"
# /work/shared/notes/real-peers.md: headless, fake media devices, no trip to the internet.
# Playwright itself adds --headless and a fresh --user-data-dir per browser.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 390, "height": 844}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
# axe-core (a devDependency of web/, installed by `make web`) checks WCAG 2 A and AA.
AXE = Path(__file__).resolve().parents[2] / "web" / "node_modules" / "axe-core" / "axe.min.js"

NAMES = {extension: name for extension, (name, _, _) in USERS.items()}

# Élodie and Lucas are members of the support group (its box for the groups screen); a
# menu puts callers through to Élodie (1) or Lucas (2).
EXTRA_PLAN = """
[[groups]]
name = "Support"
extension = "2000"
members = ["1001", "1002"]

[[ivrs]]
name = "Reception"
extension = "800"
prompt = "ivr_language"

[ivrs.keys]
"1" = "1001"
"2" = "1002"
"""


def plan() -> str:
    return acme_plan(5999, extra=EXTRA_PLAN)


@contextlib.asynccontextmanager
async def web_server(tmp_path: Path, **server: object) -> AsyncIterator[NuageServer]:
    if not (WEBAPP_DIR / "index.html").is_file():
        pytest.fail(f"the web app is not built in {WEBAPP_DIR}: run `make web`")
    async with in_process_server(tmp_path, plan(), **server) as nuage:
        yield nuage


@contextlib.asynccontextmanager
async def chromium(*, microphone: Path | None = None) -> AsyncIterator[Browser]:
    """Chromium; its fake microphone plays the WAV ``microphone`` (in a loop) when given,
    a beep otherwise."""
    args = list(CHROMIUM_ARGS)
    if microphone is not None:
        args.append(f"--use-file-for-fake-audio-capture={microphone}")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            yield browser
        finally:
            await browser.close()


def base_url(server: NuageServer) -> str:
    return f"http://127.0.0.1:{server.config.server.http_port}"


async def new_page(browser: Browser, server: NuageServer) -> Page:
    """A tab of its own (its own storage: another device)."""
    context: BrowserContext = await browser.new_context(
        viewport=VIEWPORT, base_url=base_url(server), locale="en-GB"
    )
    context.set_default_timeout(10_000)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    _ERRORS[page] = errors
    return page


# The uncaught exceptions of each page's scripts.
_ERRORS: weakref.WeakKeyDictionary[Page, list[str]] = weakref.WeakKeyDictionary()


def assert_no_script_errors(page: Page) -> None:
    assert _ERRORS.get(page, []) == [], _ERRORS[page]


async def log_in(page: Page, extension: str) -> None:
    """Logs in from the login screen (in the browser's language: English) and waits for
    the home screen (in the company's language: French)."""
    await page.goto("/")
    await page.get_by_label("Email").fill(EMAILS[extension])
    await page.get_by_label("Password").fill(PASSWORDS[extension])
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator(".statusbar")).to_be_visible()


async def assert_accessible(page: Page) -> None:
    """No WCAG 2 A or AA violation that axe-core finds on the screen (labels, contrast,
    roles, names...)."""
    if not await page.evaluate("typeof axe !== 'undefined'"):
        # Evaluated, not a <script>: the app's Content-Security-Policy refuses inline ones.
        await page.evaluate(AXE.read_text() + "\n;undefined")
    violations = await page.evaluate(
        """async () => (await axe.run(document, {
            runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] },
        })).violations.map((v) => ({
            id: v.id, help: v.help, nodes: v.nodes.map((n) => n.target.join(" ")),
        }))"""
    )
    assert violations == [], violations


async def screenshot(page: Page, name: str) -> None:
    """docs/screenshots/<name>.png: the screen without animations or passing messages;
    each screen shot is also checked for accessibility."""
    await assert_accessible(page)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    # Hidden from script: the app's Content-Security-Policy refuses injected style sheets.
    await page.evaluate(
        "document.querySelectorAll('.toast').forEach((t) => { t.style.visibility = 'hidden'; })"
    )
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), animations="disabled")


@contextlib.asynccontextmanager
async def api_as(server: NuageServer, extension: str) -> AsyncIterator[httpx.AsyncClient]:
    """An API client logged in as the user at ``extension``."""
    async with httpx.AsyncClient(base_url=base_url(server)) as client:
        response = await client.post(
            "/api/v1/auth/login",
            json={"email": EMAILS[extension], "password": PASSWORDS[extension]},
        )
        assert response.status_code == 200, response.text
        client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
        yield client


def user_id(server: NuageServer, extension: str) -> int:
    return ids(server, extension)[1]
