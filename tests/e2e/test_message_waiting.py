"""Message-waiting lamps follow Lucas's voicemail (issue 5, RFC 3842). Lucas is in a
meeting, so Élodie's call goes to his voicemail and she leaves a message; then he hears
it through the API. Three of his devices watch: his softphone, baresip with its mwi
module (it subscribes by itself once registered); a desk phone, sipp, subscribed to
message-summary; and a second desk phone, sipp, that only registers and takes
unsolicited NOTIFYs. What each saw is read from its events or its message trace."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from api.test_events import base_url, token_of
from e2e.server import DOMAIN, USERS, acme_plan
from e2e.test_call_control import in_process_server
from e2e.test_subscriptions import _logged, _notifies
from e2e.test_transfer import ALICE_TONE, BOB_TONE, _phone
from nuage.server import NuageServer
from nuage.sip.event_bodies import MESSAGE_SUMMARY
from peers import audio
from peers.baresip import BaresipPhone
from peers.ports import free_port
from peers.sipp import SippResult, SippServer, account_row, run_sipp


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[NuageServer]:
    async with in_process_server(tmp_path, acme_plan(5999), ring_timeout=2.0) as nuage:
        yield nuage


def _lucas_softphone(server: NuageServer, tmp_path: Path) -> BaresipPhone:
    """Lucas's baresip, with the mwi module: it subscribes to his box once registered
    and reports each NOTIFY as an MWI_NOTIFY event whose parameter is the body."""
    target = f"127.0.0.1:{server.config.server.sip_port}"
    return BaresipPhone(
        tmp_path,
        "1002",
        tone_wav=audio.write_tone_wav(tmp_path / "1002.wav", BOB_TONE),
        domain=DOMAIN,
        password=USERS["1002"][2],
        proxy=f"sip:{target}",
        answermode="manual",
        extra_config={"module_app": "mwi.so"},
        extra_account=";mwi=yes",
    )


def _desk_phone(server: NuageServer, workdir: Path) -> asyncio.Task[SippResult]:
    """Lucas's desk phone subscribing to his own box, until its messages are heard."""
    return asyncio.create_task(
        run_sipp(
            "subscribe_notify.xml",
            f"127.0.0.1:{server.config.server.sip_port}",
            workdir=workdir,
            name="desk",
            service="1002",
            keys={"event": "message-summary", "accept": MESSAGE_SUMMARY},
            inject=[account_row("1002", USERS["1002"][2], DOMAIN)],
            timeout=25,
        )
    )


def _summary(body: str | bytes) -> tuple[str, str]:
    """(Messages-Waiting, Voice-Message) of a message summary."""
    text = body.decode() if isinstance(body, bytes) else body
    lines = dict(line.split(": ", 1) for line in text.strip().splitlines())
    return lines["Messages-Waiting"], lines["Voice-Message"]


async def test_lamps_light_for_a_new_message_and_go_out_once_it_is_heard(
    server: NuageServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="nuage.pbx.unsolicited_mwi")
    assert server.service is not None
    # What OPTIONS and a 489 list.
    assert server.service.subscriptions.allow_events == "dialog, presence, message-summary"
    sip_target = f"127.0.0.1:{server.config.server.sip_port}"
    alice = _phone(tmp_path, sip_target, "1001", ALICE_TONE)
    softphone = _lucas_softphone(server, tmp_path)
    sipp_dir = tmp_path / "sipp"
    desk_trace = sipp_dir / "desk.messages.log"
    second_desk_trace = sipp_dir / "second-desk.messages.log"
    async with httpx.AsyncClient(base_url=base_url(server)) as client:
        lucas = {"Authorization": f"Bearer {await token_of(client, '1002')}"}
        meeting = await client.put("/api/v1/me/status", headers=lucas, json={"key": "meeting"})
        assert meeting.status_code == 200
        async with alice, softphone:
            for phone in (alice, softphone):
                await phone.wait_event("REGISTER_OK", timeout=10)
            softphone_lamps = [await softphone.wait_event("MWI_NOTIFY", timeout=10)]
            desk = _desk_phone(server, sipp_dir)
            await _logged(desk_trace, "Messages-Waiting: no")

            await alice.dial(f"sip:1002@{DOMAIN}")
            await alice.wait_event("CALL_ESTABLISHED", timeout=10)
            # A key skips the greeting: the beep, then her tone is recorded.
            await alice.command("sndcode", "1")
            await asyncio.sleep(3.0)
            await alice.hangup()
            await alice.wait_event("CALL_CLOSED", timeout=10)
            softphone_lamps.append(await softphone.wait_event("MWI_NOTIFY", timeout=10))
            await _logged(desk_trace, "Messages-Waiting: yes")

            # Lucas's second desk phone registers now: it is told at once. The register
            # scenario leaves the port before the NOTIFY listener takes it; the NOTIFY's
            # retransmission reaches the listener.
            port = free_port()
            registered = await run_sipp(
                "register_auth.xml",
                sip_target,
                workdir=sipp_dir,
                name="second-desk-register",
                local_port=port,
                inject=[account_row("1002", USERS["1002"][2], DOMAIN)],
                timeout=10,
            )
            registered.assert_ok(1)
            async with SippServer(
                "uas_notify.xml", workdir=sipp_dir, name="second-desk", local_port=port, calls=2
            ) as second_desk:
                await _logged(second_desk_trace, "Messages-Waiting: yes")
                [message] = (await client.get("/api/v1/me/voicemail", headers=lucas)).json()
                heard = await client.post(
                    f"/api/v1/me/voicemail/{message['id']}/heard", headers=lucas
                )
                assert heard.status_code == 204
                (await second_desk.wait(within=10)).assert_ok(2)
            (await desk).assert_ok(1)
            softphone_lamps.append(await softphone.wait_event("MWI_NOTIFY", timeout=10))

    assert [_summary(event.param) for event in softphone_lamps] == [
        ("no", "0/0 (0/0)"),
        ("yes", "1/0 (0/0)"),
        ("no", "0/1 (0/0)"),
    ]
    desk_notifies = _notifies(desk_trace)
    assert [_summary(body) for _, body in desk_notifies] == [
        ("no", "0/0 (0/0)"),
        ("yes", "1/0 (0/0)"),
        ("no", "0/1 (0/0)"),
        ("no", "0/1 (0/0)"),
    ]
    assert desk_notifies[0][0].startswith("active;expires=")
    assert desk_notifies[-1][0] == "terminated;reason=timeout"
    second_desk_notifies = _notifies(second_desk_trace)
    assert [_summary(body) for _, body in second_desk_notifies] == [
        ("yes", "1/0 (0/0)"),
        ("no", "0/1 (0/0)"),
    ]
    assert {state for state, _ in second_desk_notifies} == {"terminated"}
    # The softphone subscribes: it was never sent an unsolicited NOTIFY (baresip would
    # have refused one outside its subscription, and the refusal is logged).
    assert not [r.getMessage() for r in caplog.records if "answered" in r.getMessage()]
