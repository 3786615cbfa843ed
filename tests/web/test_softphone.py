"""The softphone in the browser (F1, F6, F7, F11): the app registers over /sip with its
access token and calls with WebRTC. Debian's Chromium, its fake microphone playing a tone,
against a server in this process and baresip phones playing their own tones; audio is
checked by content on both sides: what baresip received (its recording), what the page
receives (an AnalyserNode on the remote stream, in the page)."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from e2e.server import DOMAIN
from e2e.test_sip_websocket import bindings_of
from e2e.test_transfer import ALICE_TONE, BOB_TONE, CAROL_TONE, _phone
from nuage.server import NuageServer
from peers import audio
from peers.baresip import BaresipPhone
from peers.hearing import music, phone_hears, silence, tone
from web.browser import (
    assert_no_script_errors,
    chromium,
    log_in,
    new_page,
    screenshot,
    web_server,
)
from web.test_calls import key_in

pytestmark = pytest.mark.timeout(120)

# Élodie (1001) is a desk phone playing 1000 Hz; Lucas (1002) is in the browser, whose
# microphone plays 1500 Hz.
PHONE_TONE, BROWSER_TONE = ALICE_TONE, BOB_TONE
TONES = (ALICE_TONE, BOB_TONE, CAROL_TONE)

# What the page hears: the share of the remote stream's energy near each candidate tone,
# from an AnalyserNode fed by the <audio> element's stream of the call on screen (headless
# Chromium plays nothing, and getStats' audio energy stays 0 there). True once each wanted
# tone held more than `share` of the energy for `streak` reads in a row (one every 100 ms).
HEARS = """([wanted, candidates, streak, share]) => {
  const element = document.querySelector('audio.remote-audio[data-current="true"]')
    || document.querySelector("audio.remote-audio");
  const stream = element && element.srcObject;
  if (!stream) return false;
  let probe = window.__probe;
  if (!probe || probe.stream !== stream) {
    const context = new AudioContext();
    const analyser = context.createAnalyser();
    analyser.fftSize = 4096;
    analyser.smoothingTimeConstant = 0;
    context.createMediaStreamSource(stream).connect(analyser);
    probe = window.__probe = {
      stream, context, analyser, streak: 0,
      data: new Float32Array(analyser.frequencyBinCount),
    };
  }
  if (probe.context.state !== "running") {
    probe.context.resume();
    return false;
  }
  probe.analyser.getFloatFrequencyData(probe.data);
  const binHz = probe.context.sampleRate / probe.analyser.fftSize;
  let total = 0;
  const near = candidates.map(() => 0);
  for (let i = 1; i < probe.data.length; i++) {
    const power = Math.pow(10, probe.data[i] / 10);
    total += power;
    candidates.forEach((f, k) => {
      if (Math.abs(i * binHz - f) <= 4 * binHz) near[k] += power;
    });
  }
  const heard = total > 1e-9
    && wanted.every((f) => near[candidates.indexOf(f)] > share * total);
  probe.streak = heard ? probe.streak + 1 : 0;
  return probe.streak >= streak;
}"""


async def page_hears(page: Page, *tones: float, within: float = 10.0) -> None:
    """Until the page has heard ``tones`` for half a second: one tone dominating, or
    several together (a conference's mix), each with a share of the energy far above what
    an absent tone shows (1e-7). Browsers' microphones come through the browser's gain
    control and noise suppression about 20 dB below the test phones' loud tone: in a mix
    with a phone, a browser's tone holds about 1 % of the energy."""
    share = 0.5 if len(tones) == 1 else 0.003
    await page.wait_for_function(
        HEARS, arg=[list(tones), list(TONES), 5, share], polling=100, timeout=within * 1000
    )


async def registered(
    server: NuageServer, extension: str, within: float = 10.0, *, tabs: int = 1
) -> None:
    """Until ``tabs`` browsers (tabs) of the user at ``extension`` are registered."""
    for _ in range(int(within / 0.05)):
        if sum(";transport=ws" in c for c in bindings_of(server, extension)) >= tabs:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not {tabs} browser(s) of {extension}: {bindings_of(server, extension)}")


@contextlib.asynccontextmanager
async def browser_and_phone(
    tmp_path: Path,
) -> AsyncIterator[tuple[NuageServer, Browser, BaresipPhone]]:
    """The server, a Chromium whose microphone plays the browser's tone, and Élodie's desk
    phone (1001) registered."""
    microphone = audio.write_tone_wav(tmp_path / "browser.wav", BROWSER_TONE, rate=48000)
    async with web_server(tmp_path) as server, chromium(microphone=microphone) as browser:
        target = f"127.0.0.1:{server.config.server.sip_port}"
        elodie = _phone(tmp_path, target, "1001", PHONE_TONE)
        async with elodie:
            await elodie.wait_event("REGISTER_OK", timeout=10)
            yield server, browser, elodie


async def test_the_browser_calls_a_phone_mutes_holds_and_hangs_up(tmp_path: Path) -> None:
    async with browser_and_phone(tmp_path) as (server, browser, elodie):
        page = await new_page(browser, server)
        await log_in(page, "1002")
        await registered(server, "1002")

        await page.get_by_role("link", name="Pavé numérique").click()
        await key_in(page, "1001")
        await page.get_by_role("button", name="Appeler le 1001").click()
        await elodie.wait_event("CALL_ESTABLISHED", timeout=10)
        screen = page.locator(".call-screen")
        await expect(screen.get_by_role("heading", name="Élodie Martin")).to_be_visible()
        await expect(screen.get_by_role("timer")).to_have_text(re.compile(r"^0:0\d$"))
        await phone_hears(elodie, tone(BROWSER_TONE), "the browser")
        await page_hears(page, PHONE_TONE)
        await screenshot(page, "in-call")

        # The keypad sends DTMF.
        await page.get_by_role("button", name="Clavier").click()
        await page.get_by_role("button", name="5", exact=True).click()
        key = await elodie.wait_event("CALL_DTMF_START", timeout=10)
        assert key.param == "5", key
        await expect(page.get_by_role("status", name="Touches envoyées")).to_have_text("5")
        await page.get_by_role("button", name="Masquer le clavier").click()

        # Muted: Élodie hears silence; unmuted, the browser again.
        mute = page.get_by_role("button", name="Couper le micro")
        await mute.click()
        await expect(mute).to_have_attribute("aria-pressed", "true")
        await phone_hears(elodie, silence, "silence")
        await mute.click()
        await expect(mute).to_have_attribute("aria-pressed", "false")
        await phone_hears(elodie, tone(BROWSER_TONE), "the browser again")

        # On hold: she hears the server's music; resumed, the browser again.
        hold = page.get_by_role("button", name="Mettre en attente")
        await hold.click()
        await expect(hold).to_have_attribute("aria-pressed", "true")
        await expect(screen).to_contain_text("En attente")
        await phone_hears(elodie, music, "music on hold")
        await hold.click()
        await expect(hold).to_have_attribute("aria-pressed", "false")
        await expect(screen).not_to_contain_text("En attente")
        await phone_hears(elodie, tone(BROWSER_TONE), "the browser after the hold")
        await page_hears(page, PHONE_TONE)

        # Hung up in the browser: the phone's call ends, the app is back.
        await page.get_by_role("button", name="Raccrocher").click()
        await elodie.wait_event("CALL_CLOSED", timeout=10)
        await expect(screen).to_have_count(0)
        await expect(page.locator(".notices[role=status]")).to_contain_text("Appel terminé.")
        assert_no_script_errors(page)


async def test_a_phone_calls_the_browser_which_declines_then_answers(tmp_path: Path) -> None:
    async with browser_and_phone(tmp_path) as (server, browser, elodie):
        page = await new_page(browser, server)
        await log_in(page, "1002")
        await registered(server, "1002")

        # Declined first: the app is back, the caller reaches Lucas's voicemail.
        await elodie.dial(f"sip:1002@{DOMAIN}")
        screen = page.locator(".call-screen")
        await page.get_by_role("button", name="Refuser l'appel de Élodie Martin").click()
        await expect(screen).to_have_count(0)
        await elodie.wait_event("CALL_ESTABLISHED", timeout=10)
        await elodie.hangup()
        await elodie.wait_event("CALL_CLOSED", timeout=10)

        await elodie.dial(f"sip:1002@{DOMAIN}")
        await expect(screen).to_contain_text("Appel entrant")
        await expect(screen.get_by_role("heading", name="Élodie Martin")).to_be_visible()
        await expect(screen).to_contain_text("1001")
        await screenshot(page, "incoming-call")
        await page.get_by_role("button", name="Répondre à l'appel de Élodie Martin").click()
        await elodie.wait_event("CALL_ESTABLISHED", timeout=10)
        await expect(screen.get_by_role("timer")).to_be_visible()
        await phone_hears(elodie, tone(BROWSER_TONE), "the browser")
        await page_hears(page, PHONE_TONE)

        # Hung up at the phone: the call screen goes.
        await elodie.hangup()
        await elodie.wait_event("CALL_CLOSED", timeout=10)
        await expect(screen).to_have_count(0)
        assert_no_script_errors(page)


async def test_every_tab_rings_and_the_one_answered_wins(tmp_path: Path) -> None:
    """Two tabs of the app, one session: both register and ring; answered in one, the
    other stops ringing without calling it a missed call (the CANCEL says "completed
    elsewhere", RFC 3326)."""
    async with browser_and_phone(tmp_path) as (server, browser, elodie):
        first = await new_page(browser, server)
        await log_in(first, "1002")
        second = await first.context.new_page()
        await second.goto("/")
        await expect(second.locator(".statusbar")).to_be_visible()
        await registered(server, "1002", tabs=2)
        # Every message the first tab shows from now on (they fade after a few seconds).
        await first.evaluate(
            """() => {
                window.shownNotices = [];
                new MutationObserver(() => {
                    for (const box of document.querySelectorAll(".notices")) {
                        if (box.textContent) window.shownNotices.push(box.textContent);
                    }
                }).observe(document.body, { subtree: true, childList: true, characterData: true });
            }"""
        )

        await elodie.dial(f"sip:1002@{DOMAIN}")
        for page in (first, second):
            await expect(page.locator(".call-screen")).to_contain_text("Appel entrant")
        await second.get_by_role("button", name="Répondre à l'appel de Élodie Martin").click()
        await expect(first.locator(".call-screen")).to_have_count(0)
        await elodie.wait_event("CALL_ESTABLISHED", timeout=10)
        await phone_hears(elodie, tone(BROWSER_TONE), "the tab that answered")
        await page_hears(second, PHONE_TONE)
        assert await first.evaluate("() => window.shownNotices") == []
        await elodie.hangup()
        await elodie.wait_event("CALL_CLOSED", timeout=10)
        await expect(second.locator(".call-screen")).to_have_count(0)
        assert_no_script_errors(first)
