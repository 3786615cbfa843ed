"""DTMF between phones that speak different forms of it (F7): a key pressed as an RFC 4733
event reaches a phone that only knows SIP INFO as an INFO, and a key sent as SIP INFO
reaches a phone that negotiated telephone-event as RFC 4733 events."""

from __future__ import annotations

import asyncio
from pathlib import Path

from e2e.server import DOMAIN, USERS, acme_plan, running_nuage
from e2e.test_audio_baresip import ALICE_TONE
from peers import audio
from peers.baresip import BaresipPhone
from peers.ports import free_port
from peers.sipp import SippServer, account_row, run_sipp


def _alice(tmp_path: Path, sip_target: str) -> BaresipPhone:
    return BaresipPhone(
        tmp_path,
        "1001",
        tone_wav=audio.write_tone_wav(tmp_path / "1001.wav", ALICE_TONE),
        domain=DOMAIN,
        password=USERS["1001"][2],
        proxy=f"sip:{sip_target}",
    )


async def test_an_rfc4733_key_reaches_an_info_only_phone_as_info(tmp_path: Path) -> None:
    async with running_nuage(tmp_path / "nuage", acme_plan(5999)) as nuage:
        port = free_port()
        registered = await run_sipp(
            "register_auth.xml",
            nuage.sip_target,
            workdir=tmp_path,
            local_port=port,
            inject=[account_row("1002", USERS["1002"][2], DOMAIN)],
        )
        registered.assert_ok(1)
        # Bob's phone answers without telephone-event and fails unless an INFO "5" comes.
        async with SippServer(
            "uas_answer_info_dtmf.xml", workdir=tmp_path, local_port=port, calls=1
        ) as bob:
            alice = _alice(tmp_path, nuage.sip_target)
            async with alice:
                await alice.wait_event("REGISTER_OK", timeout=10)
                await alice.dial(f"sip:1002@{DOMAIN}")
                await alice.wait_event("CALL_ESTABLISHED", timeout=10)
                await alice.command("sndcode", "5")
                await asyncio.sleep(1.5)
                await alice.hangup()
                (await bob.wait(15)).assert_ok(1)
        await nuage.assert_idle()


async def test_an_info_key_reaches_an_rfc4733_phone_as_events(tmp_path: Path) -> None:
    async with running_nuage(tmp_path / "nuage", acme_plan(5999)) as nuage:
        alice = _alice(tmp_path, nuage.sip_target)
        async with alice:
            await alice.wait_event("REGISTER_OK", timeout=10)
            # Bob's phone offers telephone-event, so does Alice's answer: his INFO "7"
            # must reach her as RFC 4733 events, not as an INFO.
            called = await run_sipp(
                "uac_info_dtmf.xml",
                nuage.sip_target,
                workdir=tmp_path,
                service="1001",
                hold_ms=1500,
                inject=[account_row("1002", USERS["1002"][2], DOMAIN)],
            )
            called.assert_ok(1)
            key = await alice.wait_event("CALL_DTMF_START", timeout=5)
            assert key.param == "7"
            await alice.wait_event("CALL_CLOSED", timeout=10)
        await nuage.assert_idle()
        # Not relayed as an INFO (which baresip would report the same way).
        assert "keys 7 to B as RFC 4733 events" in nuage.log_path.read_text()


async def test_a_phone_called_by_an_info_only_phone_still_keys_events(tmp_path: Path) -> None:
    """The caller offers no telephone-event; Alice's phone is offered one all the same
    (RFC 4733 on every leg) and its key reaches the caller as an INFO."""
    async with running_nuage(tmp_path / "nuage", acme_plan(5999)) as nuage:
        alice = _alice(tmp_path, nuage.sip_target)
        async with alice:
            await alice.wait_event("REGISTER_OK", timeout=10)
            caller = asyncio.create_task(
                run_sipp(
                    "uac_expect_info_dtmf.xml",
                    nuage.sip_target,
                    workdir=tmp_path,
                    service="1001",
                    hold_ms=500,
                    inject=[account_row("1002", USERS["1002"][2], DOMAIN)],
                )
            )
            await alice.wait_event("CALL_ESTABLISHED", timeout=10)
            await asyncio.sleep(0.5)
            await alice.command("sndcode", "4")
            (await caller).assert_ok(1)
            await alice.wait_event("CALL_CLOSED", timeout=10)
        await nuage.assert_idle()
