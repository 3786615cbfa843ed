"""Calls from the app, with real phones (baresip): the dialpad places a call through the
user's own phone (click-to-call), and says so when no phone of theirs is registered; the
call log (F16) and voicemail (F17) list the calls and messages the server recorded, the
recording and the message play in the browser, a message is marked heard and deleted."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Page, expect

from e2e.server import DOMAIN
from e2e.test_transfer import ALICE_TONE, BOB_TONE, _phone
from nuage.server import NuageServer
from web.browser import (
    api_as,
    assert_no_script_errors,
    chromium,
    log_in,
    new_page,
    screenshot,
    web_server,
)


async def poll(
    client: httpx.AsyncClient, path: str, count: int, within: float = 10.0
) -> list[dict[str, Any]]:
    """GET ``path`` until it lists ``count`` items."""
    items: list[dict[str, Any]] = []
    for _ in range(int(within / 0.1)):
        items = (await client.get(path)).json()
        if len(items) == count:
            return items
        await asyncio.sleep(0.1)
    raise AssertionError(f"{path}: not {count} items after {within} s: {items}")


async def wait_until_playable(page: Page, player: str) -> float:
    """The <audio> element's duration once its blob is decoded."""
    handle = await page.wait_for_function(
        f"() => {{ const a = document.querySelector({player!r});"
        " return a && a.src.startsWith('blob:') && a.duration > 0 ? a.duration : null; }"
    )
    duration: float = await handle.json_value()
    return duration


async def key_in(page: Page, digits: str) -> None:
    """Taps the dialpad's keys (0 says it gives + when held)."""
    for key in digits:
        name = "0, maintenir pour +" if key == "0" else key
        await page.get_by_role("button", name=name, exact=True).click()


async def make_history(server: NuageServer, tmp_path: Path) -> None:
    """Élodie calls Lucas, who records 2 s of the call; then, Lucas in a meeting, she
    leaves him a message of about 3 s."""
    target = f"127.0.0.1:{server.config.server.sip_port}"
    elodie = _phone(tmp_path, target, "1001", ALICE_TONE)
    lucas = _phone(tmp_path, target, "1002", BOB_TONE)
    async with api_as(server, "1002") as api, elodie, lucas:
        for phone in (elodie, lucas):
            await phone.wait_event("REGISTER_OK", timeout=10)
        await elodie.dial(f"sip:1002@{DOMAIN}")
        await lucas.wait_event("CALL_ESTABLISHED", timeout=10)
        [call] = (await api.get("/api/v1/me/calls")).json()
        assert (await api.post(f"/api/v1/me/calls/{call['id']}/recording")).status_code == 204
        await asyncio.sleep(2.0)
        assert (await api.delete(f"/api/v1/me/calls/{call['id']}/recording")).status_code == 204
        await elodie.hangup()
        await elodie.wait_event("CALL_CLOSED", timeout=10)

        assert (await api.put("/api/v1/me/status", json={"key": "meeting"})).status_code == 200
        await elodie.dial(f"sip:1002@{DOMAIN}")
        await elodie.wait_event("CALL_ESTABLISHED", timeout=10)
        await asyncio.sleep(0.5)
        await elodie.command("sndcode", "1")  # no greeting: straight to the beep
        await asyncio.sleep(3.0)
        await elodie.hangup()
        await elodie.wait_event("CALL_CLOSED", timeout=10)
        await poll(api, "/api/v1/me/voicemail", 1)
        await poll(api, "/api/v1/me/calllog", 2)


async def test_the_call_log_and_voicemail_list_and_play_what_happened(tmp_path: Path) -> None:
    async with web_server(tmp_path) as server, chromium() as browser:
        await make_history(server, tmp_path)
        page = await new_page(browser, server)
        await log_in(page, "1002")

        await page.get_by_role("link", name="Ouvrir le menu").click()
        await expect(page.get_by_role("link", name="Messagerie vocale")).to_contain_text(
            "1 nouveau(x)"
        )
        await page.get_by_role("link", name="Journal des appels").click()
        rows = page.locator(".log-row")
        await expect(rows).to_have_count(2)
        await expect(rows.nth(0)).to_contain_text("Élodie Martin")
        await expect(rows.nth(0)).to_contain_text("messagerie")
        await expect(rows.nth(1)).to_contain_text("Entrant")
        await screenshot(page, "call-log")

        await page.get_by_role("tab", name="Manqués").click()
        await expect(page.get_by_role("tab", name="Manqués")).to_have_attribute(
            "aria-selected", "true"
        )
        await expect(rows).to_have_count(1)
        await expect(rows.first).to_contain_text("Manqué")

        await page.get_by_role("tab", name="Boîte de réception").click()
        await expect(rows).to_have_count(1)
        await rows.first.get_by_role("button", name="Écouter Enregistrement, 0:02").click()
        duration = await wait_until_playable(page, ".log-recording audio")
        assert 1.5 < duration < 3.0, duration
        await screenshot(page, "inbox")

        await page.get_by_role("button", name="Retour").click()
        await page.get_by_role("link", name="Ouvrir le menu").click()
        await page.get_by_role("link", name="Messagerie vocale").click()
        message = page.locator(".message")
        await expect(message).to_have_count(1)
        await expect(message).to_contain_text("Élodie Martin")
        await expect(message).to_contain_text("Nouveau")
        await screenshot(page, "voicemail")
        await message.get_by_role("button", name="Écouter Message de Élodie Martin").click()
        duration = await wait_until_playable(page, ".message audio")
        assert 2.0 < duration < 5.0, duration
        # Played: heard, here and on the server.
        await expect(message.locator(".tag-new")).to_have_count(0)
        async with api_as(server, "1002") as api:
            [listed] = (await api.get("/api/v1/me/voicemail")).json()
            assert listed["new"] is False
            await message.get_by_role(
                "button", name="Supprimer le message de Élodie Martin"
            ).click()
            await message.get_by_role("button", name="Supprimer", exact=True).click()
            await expect(page.get_by_text("Aucun message.")).to_be_visible()
            assert (await api.get("/api/v1/me/voicemail")).json() == []

        # Lucas is in the support group: its entry and its box.
        await page.get_by_role("button", name="Retour").click()
        await page.get_by_role("link", name="Ouvrir le menu").click()
        await page.get_by_role("link", name="Groupes ACD").click()
        await expect(page.locator(".group-list")).to_contain_text("Support")
        await expect(page.locator(".group-list")).to_contain_text("Poste 2000")
        await screenshot(page, "groups")
        await page.get_by_role("link", name="Support").click()
        await expect(page.get_by_role("heading", name="Messagerie de Support")).to_be_visible()
        await expect(page.get_by_text("Aucun message.")).to_be_visible()
        assert_no_script_errors(page)


async def test_the_dialpad_calls_through_my_own_phone(tmp_path: Path) -> None:
    """With calls in the browser turned off in the settings (the softphone: see
    test_softphone.py), the app places calls through the user's own phone."""
    async with web_server(tmp_path) as server, chromium() as browser:
        page = await new_page(browser, server)
        await log_in(page, "1001")
        await page.get_by_role("link", name="Ouvrir le menu").click()
        await page.get_by_role("link", name="Paramètres").click()
        toggle = page.get_by_role(
            "checkbox", name="Passer et recevoir les appels dans ce navigateur"
        )
        await expect(toggle).to_be_checked()
        await toggle.uncheck()
        await expect(page.get_by_text("Désactivé : les appels depuis l'app")).to_be_visible()
        await page.get_by_role("button", name="Retour").click()
        notice = page.get_by_test_id("no-device")
        await expect(notice).to_be_visible()

        await page.get_by_role("link", name="Pavé numérique").click()
        number = page.get_by_role("textbox", name="Numéro à appeler")
        await key_in(page, "1002")
        await expect(number).to_have_value("1002")
        await page.get_by_role("button", name="Appeler le 1002").click()
        errors = page.locator(".notices[role=alert]")
        await expect(errors).to_contain_text("Aucun de vos téléphones")

        # A pasted number in the company's format.
        await number.fill("+32 (0)2 555 01 00")
        await expect(number).to_have_value("02 555 01 00")

        target = f"127.0.0.1:{server.config.server.sip_port}"
        elodie = _phone(tmp_path, target, "1001", ALICE_TONE, answermode="manual")
        async with elodie:
            await elodie.wait_event("REGISTER_OK", timeout=10)
            await expect(notice).to_have_count(0)
            await number.fill("")
            await key_in(page, "1002")
            await screenshot(page, "dialpad")
            await page.get_by_role("button", name="Appeler le 1002").click()
            # My own phone rings first; answered, it calls Lucas (his voicemail takes it:
            # no phone of his is registered), and the app shows the call.
            await elodie.wait_event("CALL_INCOMING", timeout=10)
            await expect(page.locator(".notices[role=status]")).to_contain_text(
                "Votre téléphone sonne : décrochez pour appeler le 1002."
            )
            await elodie.accept()
            strip = page.get_by_role("region", name="Vos appels")
            await expect(strip).to_contain_text("Lucas Dubois")
            await expect(strip).to_contain_text("En communication")
            await strip.get_by_role("button", name="Raccrocher l'appel avec Lucas Dubois").click()
            await elodie.wait_event("CALL_CLOSED", timeout=10)
            await expect(strip).to_have_count(0)
        assert_no_script_errors(page)
