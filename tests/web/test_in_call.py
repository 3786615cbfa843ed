"""The in-call features of the app (F8-F15) in Debian's Chromium against baresip phones
and another browser: a keyed menu choice, the quality bars, the audio output, recording
with its warning (the recording then plays from the Inbox), a new call, blind transfer
from a colleague's card, attended transfer with the green arrow, a conference of three.
Audio is checked by content on every side."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from e2e.test_transfer import CAROL_TONE, _phone
from peers import audio
from peers.hearing import music, phone_hears, tone
from web.browser import assert_no_script_errors, chromium, log_in, new_page, screenshot, web_server
from web.test_calls import key_in, wait_until_playable
from web.test_softphone import BROWSER_TONE, PHONE_TONE, page_hears, registered

pytestmark = pytest.mark.timeout(150)


async def answer(page: Page, name: str) -> None:
    await page.get_by_role("button", name=f"Répondre à l'appel de {name}").click()
    await expect(page.locator(".call-screen").get_by_role("timer")).to_be_visible()


async def dial(page: Page, number: str) -> None:
    """From the home screen: the dialpad, the number, call."""
    await page.get_by_role("link", name="Pavé numérique").click()
    await key_in(page, number)
    await page.get_by_role("button", name=f"Appeler le {number}").click()


BACK_TO_CALL = re.compile("^Retour à l.appel avec")


async def new_call(page: Page) -> None:
    """F12: the call on hold, the app's screens to choose whom to call next."""
    await page.get_by_role("button", name="Nouvel appel").click()
    await expect(page.get_by_role("button", name=BACK_TO_CALL)).to_be_visible()


async def test_keys_quality_output_recording_and_blind_transfer(tmp_path: Path) -> None:
    """Lucas, in the app, calls the menu and keys 2 (himself: refused) then 1 for Élodie's
    desk phone; looks at the quality, picks an output, records two seconds (warned once),
    then transfers Élodie to Camille's desk phone from Camille's card."""
    microphone = audio.write_tone_wav(tmp_path / "browser.wav", BROWSER_TONE, rate=48000)
    async with web_server(tmp_path) as server, chromium(microphone=microphone) as browser:
        target = f"127.0.0.1:{server.config.server.sip_port}"
        elodie = _phone(tmp_path, target, "1001", PHONE_TONE)
        camille = _phone(tmp_path, target, "1003", CAROL_TONE)
        async with elodie, camille:
            await elodie.wait_event("REGISTER_OK", timeout=10)
            await camille.wait_event("REGISTER_OK", timeout=10)
            page = await new_page(browser, server)
            await log_in(page, "1002")
            await registered(server, "1002")

            # The menu answers; key 1 (SIP INFO from the keypad) puts him through.
            await dial(page, "800")
            screen = page.locator(".call-screen")
            await expect(screen.get_by_role("timer")).to_be_visible()
            await page.get_by_role("button", name="Clavier").click()
            await page.get_by_role("button", name="1", exact=True).click()
            await elodie.wait_event("CALL_ESTABLISHED", timeout=15)
            await page.get_by_role("button", name="Masquer le clavier").click()
            await phone_hears(elodie, tone(BROWSER_TONE), "the browser")
            await page_hears(page, PHONE_TONE)

            # F9: bars once the server measured the call (RTCP), with why on tap.
            quality = page.get_by_role("button", name=re.compile("^Qualité de l.appel"))
            await expect(quality).not_to_have_attribute("data-bars", "0", timeout=15_000)
            await quality.click()
            await expect(page.locator("#quality-details")).to_contain_text("Pertes")

            # F8: the outputs the browser lists; the one chosen plays the call.
            await page.get_by_role("button", name="Audio").click()
            outputs = page.get_by_role("radio")
            await expect(outputs.first).to_have_attribute("aria-checked", "true")
            await screenshot(page, "audio-output")
            await outputs.last.click()
            sink = await page.locator('audio.remote-audio[data-current="true"]').get_attribute(
                "data-sink"
            )
            await page.wait_for_function(
                "(sink) => document.querySelector('audio.remote-audio').sinkId === sink",
                arg=sink,
            )

            # F10: warned before the first recording; a countdown while it records.
            record = page.get_by_role("button", name="Enregistrer", exact=True)
            await record.click()
            warning = page.get_by_role("alertdialog", name="Enregistrer cet appel ?")
            await expect(warning).to_contain_text("tous les participants")
            await screenshot(page, "record-warning")
            await warning.get_by_role("button", name="Enregistrer").click()
            await expect(screen.locator(".call-recording-left")).to_contain_text(
                re.compile(r"encore 4:5\d")
            )
            await screenshot(page, "recording")
            await page.wait_for_timeout(2000)
            await page.get_by_role("button", name="Arrêter l’enregistrement").click()
            await expect(screen.locator(".call-recording-left")).to_have_count(0)

            # F12 + F14: Élodie on hold (music), Camille's card, "Transfer", confirmed.
            await new_call(page)
            await phone_hears(elodie, music, "music on hold")
            await page.get_by_role("searchbox", name="Rechercher un collègue").fill("cam")
            await page.locator(".contact-list").get_by_role("link").first.click()
            await page.get_by_role("button", name="Transférer").click()
            confirm = page.get_by_role("alertdialog")
            await expect(confirm).to_contain_text("Transférer l’appel avec Élodie Martin")
            await screenshot(page, "transfer-confirm")
            await confirm.get_by_role("button", name="Transférer").click()
            await expect(page.locator(".notices[role=status]")).to_contain_text(
                "Transfert effectué."
            )
            await camille.wait_event("CALL_ESTABLISHED", timeout=10)
            await phone_hears(elodie, tone(CAROL_TONE), "Camille after the transfer")
            await phone_hears(camille, tone(PHONE_TONE), "Élodie after the transfer")
            # Lucas is out of the call: no way back to it.
            await expect(page.get_by_role("button", name=BACK_TO_CALL)).to_have_count(0)
            await elodie.hangup()
            await camille.wait_event("CALL_CLOSED", timeout=10)

            # The recording is in his Inbox and plays.
            await page.goto("/calls/inbox")
            rows = page.locator(".log-row")
            await expect(rows).to_have_count(1)
            await rows.first.get_by_role("button", name=re.compile("^Écouter")).click()
            duration = await wait_until_playable(page, ".log-recording audio")
            assert 1.0 < duration < 4.0, duration
            assert_no_script_errors(page)


async def lucas_calls_camille_while_elodie_holds(lucas: Page, camille: Page) -> None:
    """Élodie's phone is in a call with Lucas (in the app); he starts a new call to
    Camille (in her app), who answers: Lucas has two calls, Élodie's on hold."""
    await new_call(lucas)
    await dial(lucas, "1003")
    await answer(camille, "Lucas Dubois")
    await page_hears(camille, BROWSER_TONE)
    await page_hears(lucas, CAROL_TONE)


async def test_attended_transfer_and_conference_with_two_browsers_and_a_phone(
    tmp_path: Path,
) -> None:
    """Élodie's desk phone calls Lucas (app); he calls Camille (app) with Élodie on hold,
    then merges the calls: the three hear each other. Later Élodie calls him again; he
    calls Camille again and joins her with Élodie with the green arrow."""
    lucas_microphone = audio.write_tone_wav(tmp_path / "lucas.wav", BROWSER_TONE, rate=48000)
    camille_microphone = audio.write_tone_wav(tmp_path / "camille.wav", CAROL_TONE, rate=48000)
    async with (
        web_server(tmp_path) as server,
        chromium(microphone=lucas_microphone) as lucas_browser,
        chromium(microphone=camille_microphone) as camille_browser,
    ):
        target = f"127.0.0.1:{server.config.server.sip_port}"
        elodie = _phone(tmp_path, target, "1001", PHONE_TONE)
        async with elodie:
            await elodie.wait_event("REGISTER_OK", timeout=10)
            lucas = await new_page(lucas_browser, server)
            camille = await new_page(camille_browser, server)
            await log_in(lucas, "1002")
            await log_in(camille, "1003")
            await registered(server, "1002")
            await registered(server, "1003")

            # F15: a conference of three.
            await elodie.dial("sip:1002@acme.example")
            await answer(lucas, "Élodie Martin")
            await page_hears(lucas, PHONE_TONE)
            await lucas_calls_camille_while_elodie_holds(lucas, camille)
            other = lucas.get_by_role("region", name="Autre appel : Élodie Martin")
            await expect(other).to_contain_text("En attente")
            await screenshot(lucas, "two-calls")
            await other.get_by_role("button", name=re.compile("^Réunir Élodie Martin")).click()
            await expect(lucas.locator(".notices[role=status]")).to_contain_text(
                "Conférence commencée."
            )
            participants = lucas.get_by_role("list", name="Participants")
            await expect(participants).to_contain_text("Élodie Martin")
            await expect(participants).to_contain_text("Camille Lambert")
            await page_hears(lucas, PHONE_TONE, CAROL_TONE)
            await page_hears(camille, PHONE_TONE, BROWSER_TONE)
            await phone_hears(
                elodie,
                lambda samples, rate: [
                    {BROWSER_TONE, CAROL_TONE} <= frame
                    for frame in audio.tones_in_frames(samples, rate, (BROWSER_TONE, CAROL_TONE))
                ],
                "Lucas and Camille together",
            )
            await screenshot(lucas, "conference")
            # Lucas leaves; Élodie and Camille go on, then she hangs up.
            await lucas.get_by_role("button", name="Raccrocher").click()
            await expect(lucas.locator(".call-screen")).to_have_count(0)
            await page_hears(camille, PHONE_TONE)
            await elodie.hangup()
            await elodie.wait_event("CALL_CLOSED", timeout=10)
            await expect(camille.locator(".call-screen")).to_have_count(0)

            # F13: attended transfer with the green arrow.
            await elodie.dial("sip:1002@acme.example")
            await answer(lucas, "Élodie Martin")
            await page_hears(lucas, PHONE_TONE)
            await lucas_calls_camille_while_elodie_holds(lucas, camille)
            arrow = "Transférer Élodie Martin vers Camille Lambert"
            await lucas.get_by_role("button", name=arrow).click()
            await expect(lucas.locator(".notices[role=status]")).to_contain_text(
                "Transféré avec succès."
            )
            await expect(lucas.locator(".call-screen")).to_have_count(0)
            # Élodie's phone moved to Camille's call; Camille's browser was re-offered G.711.
            await phone_hears(elodie, tone(CAROL_TONE), "Camille after the transfer")
            await page_hears(camille, PHONE_TONE)
            await elodie.hangup()
            await elodie.wait_event("CALL_CLOSED", timeout=10)
            await expect(camille.locator(".call-screen")).to_have_count(0)
            for page in (lucas, camille):
                assert_no_script_errors(page)
