"""Desk phones watch their colleagues (issue 4, BLF and presence): Carol's desk phone,
sipp, subscribes to Bob's dialog state and to his presence; baresip phones for Alice and
Bob make the call it watches, and Bob's status comes from the app's service. What the
phone saw is read from the NOTIFYs sipp received."""

from __future__ import annotations

import asyncio
import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from e2e.server import DOMAIN, USERS, acme_plan
from e2e.test_call_control import ids, in_process_server
from e2e.test_transfer import ALICE_TONE, BOB_TONE, _phone
from nuage.server import NuageServer
from nuage.sip.event_bodies import DIALOG_INFO, PIDF
from peers.sipp import SippResult, account_row, run_sipp

DI = "{urn:ietf:params:xml:ns:dialog-info}"
PIDF_NS = "{urn:ietf:params:xml:ns:pidf}"
RPID = "{urn:ietf:params:xml:ns:pidf:rpid}"
DM = "{urn:ietf:params:xml:ns:pidf:data-model}"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[NuageServer]:
    async with in_process_server(tmp_path, acme_plan(5999)) as nuage:
        yield nuage


def _watch(server: NuageServer, workdir: Path, event: str, accept: str) -> asyncio.Task[SippResult]:
    """Carol's desk phone subscribing to ``event`` of Bob's extension, in the background."""
    return asyncio.create_task(
        run_sipp(
            "subscribe_notify.xml",
            f"127.0.0.1:{server.config.server.sip_port}",
            workdir=workdir,
            name=f"watch-{event}",
            service="1002",
            keys={"event": event, "accept": accept},
            inject=[account_row("1003", USERS["1003"][2], DOMAIN)],
            timeout=25,
        )
    )


def _notifies(messages: Path) -> list[tuple[str, bytes]]:
    """(Subscription-State, body) of every NOTIFY in a sipp message trace, in order."""
    found = []
    for block in re.split(r"^-{20,} .*$", messages.read_text(), flags=re.MULTILINE):
        kind, _, message = block.strip("\n").partition("\n\n")
        if not (kind.startswith("UDP message received") and message.startswith("NOTIFY ")):
            continue
        head, _, body = message.partition("\n\n")
        state = re.search(r"^Subscription-State:(.*)$", head, re.MULTILINE | re.IGNORECASE)
        assert state is not None, message
        found.append((state.group(1).strip(), body.strip().encode()))
    return found


async def _logged(messages: Path, text: str, within: float = 10.0) -> None:
    """Until the phone has received ``text`` (its trace is written as messages come)."""
    for _ in range(int(within / 0.05)):
        if messages.exists() and text in messages.read_text():  # noqa: ASYNC240 (tiny file)
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{text!r} never reached the phone")


def _dialogs(body: bytes) -> list[tuple[str, str | None]]:
    root = ET.fromstring(body)
    return [
        (dialog.findtext(f"{DI}state") or "", dialog.get("direction"))
        for dialog in root.findall(f"{DI}dialog")
    ]


def _presence(body: bytes) -> tuple[str, str, list[str]]:
    root = ET.fromstring(body)
    activities = root.find(f"{DM}person/{RPID}activities")
    return (
        root.findtext(f"{PIDF_NS}tuple/{PIDF_NS}status/{PIDF_NS}basic") or "",
        root.findtext(f"{PIDF_NS}tuple/{PIDF_NS}note") or "",
        [child.tag.removeprefix(RPID) for child in (activities if activities is not None else ())],
    )


async def test_a_desk_phone_follows_bobs_calls_and_status(
    server: NuageServer, tmp_path: Path
) -> None:
    statuses, service = server.statuses, server.service
    assert statuses is not None and service is not None
    company, bob_id = ids(server, "1002")
    target = f"127.0.0.1:{server.config.server.sip_port}"
    alice = _phone(tmp_path, target, "1001", ALICE_TONE)
    bob = _phone(tmp_path, target, "1002", BOB_TONE, answermode="manual")
    sipp_dir = tmp_path / "sipp"
    dialog_trace = sipp_dir / "watch-dialog.messages.log"
    presence_trace = sipp_dir / "watch-presence.messages.log"
    async with alice, bob:
        for phone in (alice, bob):
            await phone.wait_event("REGISTER_OK", timeout=10)
        dialog_watch = _watch(server, sipp_dir, "dialog", DIALOG_INFO)
        presence_watch = _watch(server, sipp_dir, "presence", PIDF)
        await _logged(dialog_trace, "dialog-info")
        await _logged(presence_trace, "<basic>open</basic>")

        await alice.dial(f"sip:1002@{DOMAIN}")
        await bob.wait_event("CALL_INCOMING", timeout=10)
        await _logged(dialog_trace, "<state>early</state>")
        await bob.accept()
        await alice.wait_event("CALL_ESTABLISHED", timeout=10)
        await _logged(dialog_trace, "<state>confirmed</state>")
        await _logged(presence_trace, "on-the-phone")
        await alice.hangup()
        await bob.wait_event("CALL_CLOSED", timeout=10)
        # The dialog phone unsubscribes once it has seen the call end.
        (await dialog_watch).assert_ok(1)

        # Do not disturb, set in the app: the lamp goes closed and busy.
        await statuses.set(company, bob_id, "dnd")
        (await presence_watch).assert_ok(1)

    dialog_notifies = _notifies(dialog_trace)
    states = [_dialogs(body) for _, body in dialog_notifies if body]
    assert states == [
        [],
        [("early", "recipient")],
        [("confirmed", "recipient")],
        [("terminated", "recipient")],
        [],
    ], dialog_notifies
    versions = [ET.fromstring(body).get("version") for _, body in dialog_notifies]
    assert versions == ["0", "1", "2", "3", "4"]
    assert dialog_notifies[0][0].startswith("active;expires=")
    assert dialog_notifies[-1][0] == "terminated;reason=timeout"

    presence_notifies = _notifies(presence_trace)
    seen = [_presence(body) for _, body in presence_notifies]
    assert seen[0] == ("open", "Disponible", [])
    assert ("open", "On the phone", ["on-the-phone"]) in seen
    assert seen[-2:] == [("closed", "Ne pas déranger", ["busy"])] * 2
    assert presence_notifies[-1][0] == "terminated;reason=timeout"
    assert service.subscriptions.count == 0
