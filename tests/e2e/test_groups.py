"""Groups and their voicemail with real phones: a call to a group's extension rings the
members whose status takes group calls; unanswered, it goes to the group's box, whose
messages only its members see (never in their personal lists). *97 and an extension
leaves a message without ringing anyone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from api.test_events import base_url, events_of, token_of
from e2e.server import DOMAIN, acme_plan
from e2e.test_call_control import in_process_server, three_phones
from e2e.test_transfer import ALICE_TONE, BOB_TONE, CAROL_TONE, _phone
from e2e.test_voicemail import speak_after_the_beep, tone_seconds
from nuage.server import NuageServer
from nuage.store.models import CallRecord
from peers.baresip import BaresipPhone

SUPPORT = """
[[groups]]
name = "Support"
extension = "2000"
members = ["1002", "1003"]
"""


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[NuageServer]:
    async with in_process_server(
        tmp_path, acme_plan(5999, extra=SUPPORT), ring_timeout=2.0
    ) as nuage:
        yield nuage


def ringing_phones(
    server: NuageServer, tmp_path: Path
) -> tuple[BaresipPhone, BaresipPhone, BaresipPhone]:
    """Alice; Bob and Carol (Support's members) ring until they answer."""
    (tmp_path / "auto").mkdir()
    alice, _, _ = three_phones(server, tmp_path / "auto")
    target = f"127.0.0.1:{server.config.server.sip_port}"
    bob = _phone(tmp_path, target, "1002", BOB_TONE, answermode="manual")
    carol = _phone(tmp_path, target, "1003", CAROL_TONE, answermode="manual")
    return alice, bob, carol


async def test_a_group_call_rings_the_members_who_take_group_calls(
    server: NuageServer, tmp_path: Path
) -> None:
    """Carol is at lunch (a status that pauses group calls): only Bob's phone rings; he
    answers; the call is the group's, not Bob's own."""
    alice, bob, carol = ringing_phones(server, tmp_path)
    async with httpx.AsyncClient(base_url=base_url(server)) as client:
        carols = {"Authorization": f"Bearer {await token_of(client, '1003')}"}
        lunch = await client.put("/api/v1/me/status", headers=carols, json={"key": "lunch"})
        assert lunch.status_code == 200
    async with alice, bob, carol:
        for phone in (alice, bob, carol):
            await phone.wait_event("REGISTER_OK", timeout=10)
        await alice.dial(f"sip:2000@{DOMAIN}")
        await bob.wait_event("CALL_INCOMING", timeout=10)
        await bob.accept()
        await alice.wait_event("CALL_ESTABLISHED", timeout=10)
        await bob.wait_event("CALL_ESTABLISHED", timeout=10)
        await alice.hangup()
        await bob.wait_event("CALL_CLOSED", timeout=10)
    assert not [e for e in carol.events if e.type == "CALL_INCOMING"]
    assert server.db is not None
    async with server.db.session() as session:
        [record] = await session.scalars(select(CallRecord))
    assert (record.callee, record.outcome, record.callee_user_id) == ("2000", "answered", None)


async def test_an_unanswered_group_call_leaves_a_message_for_the_members(
    server: NuageServer, tmp_path: Path
) -> None:
    alice, bob, carol = ringing_phones(server, tmp_path)
    async with httpx.AsyncClient(base_url=base_url(server)) as client:
        tokens = {ext: await token_of(client, ext) for ext in ("1001", "1002", "1003")}
        auth = {ext: {"Authorization": f"Bearer {token}"} for ext, token in tokens.items()}
        [support] = (await client.get("/api/v1/me/groups", headers=auth["1002"])).json()
        assert (support["name"], support["extension"], support["new_messages"]) == (
            "Support",
            "2000",
            0,
        )
        box = f"/api/v1/me/groups/{support['id']}/voicemail"
        async with (
            events_of(server, tokens["1002"]) as bobs,
            events_of(server, tokens["1003"]) as carols,
            alice,
            bob,
            carol,
        ):
            for phone in (alice, bob, carol):
                await phone.wait_event("REGISTER_OK", timeout=10)
            await alice.dial(f"sip:2000@{DOMAIN}")
            await bob.wait_event("CALL_INCOMING", timeout=10)
            await carol.wait_event("CALL_INCOMING", timeout=10)
            # Nobody answers within the ring time (2 s): the group's box does.
            await alice.wait_event("CALL_ESTABLISHED", timeout=10)
            await bob.wait_event("CALL_CLOSED", timeout=10)
            await carol.wait_event("CALL_CLOSED", timeout=10)
            await speak_after_the_beep(alice, 3.5)
            await alice.hangup()
            await alice.wait_event("CALL_CLOSED", timeout=10)
            _, created = await bobs.wait_for("voicemail.created", within=10)
            _, seen_by_carol = await carols.wait_for("voicemail.created", within=10)
            message = created["data"]
            assert seen_by_carol["data"] == message
            assert message["group_id"] == support["id"]
            listed = (await client.get(box, headers=auth["1003"])).json()
            assert [m["id"] for m in listed] == [message["id"]] and listed[0]["new"] is True
            # Never in a member's personal list; the group's box is not Alice's to read.
            assert (await client.get("/api/v1/me/voicemail", headers=auth["1002"])).json() == []
            assert (await client.get(box, headers=auth["1001"])).status_code == 404
            other = await client.get(f"{box}/{message['id']}/audio", headers=auth["1001"])
            assert other.status_code == 404
            fetched = await client.get(f"{box}/{message['id']}/audio", headers=auth["1002"])
            assert fetched.status_code == 200
            heard = await client.post(f"{box}/{message['id']}/heard", headers=auth["1002"])
            assert heard.status_code == 204
            await carols.wait_for("voicemail.heard", id=message["id"])
            [support] = (await client.get("/api/v1/me/groups", headers=auth["1003"])).json()
            assert (support["new_messages"], support["old_messages"]) == (0, 1)
            # Alice is in no group: the app hides the groups entry.
            assert (await client.get("/api/v1/me/groups", headers=auth["1001"])).json() == []
    assert 2.0 < tone_seconds(fetched.content, ALICE_TONE) <= message["duration_ms"] / 1000 + 0.1
    assert server.db is not None
    async with server.db.session() as session:
        [record] = await session.scalars(select(CallRecord))
    assert (record.callee, record.outcome, record.reason) == ("2000", "voicemail", "no answer")


async def test_star_97_leaves_a_message_without_ringing_anyone(
    server: NuageServer, tmp_path: Path
) -> None:
    """Élodie dials *97 and Lucas's extension: his phone never rings; a key skips his
    greeting, she speaks, # ends the message."""
    alice, bob, carol = ringing_phones(server, tmp_path)
    async with httpx.AsyncClient(base_url=base_url(server)) as client:
        token = await token_of(client, "1002")
        async with events_of(server, token) as bobs, alice, bob, carol:
            for phone in (alice, bob, carol):
                await phone.wait_event("REGISTER_OK", timeout=10)
            await alice.dial(f"sip:*971002@{DOMAIN}")
            await alice.wait_event("CALL_ESTABLISHED", timeout=5)
            await asyncio.sleep(1.0)
            await alice.command("sndcode", "1")
            await asyncio.sleep(3.5)
            await alice.command("sndcode", "#")
            await alice.wait_event("CALL_CLOSED", timeout=10)
            _, created = await bobs.wait_for("voicemail.created", within=10)
            assert created["data"]["group_id"] is None
            # About 3.5 s, from the skipped greeting to "#" (whose own end the closed call
            # shows); a loaded machine adds the DTMF's way through baresip, over 0.5 s.
            assert 1500 < created["data"]["duration_ms"] < 5000, created
            # An extension without a box: refused, nothing answers.
            await alice.dial(f"sip:*979999@{DOMAIN}")
            await alice.wait_event("CALL_CLOSED", timeout=10)
    assert not [e for e in bob.events if e.type == "CALL_INCOMING"]
    assert server.db is not None
    async with server.db.session() as session:
        records = list(await session.scalars(select(CallRecord).order_by(CallRecord.id)))
    assert [(r.callee, r.outcome) for r in records] == [
        ("1002", "voicemail"),
        ("*979999", "failed"),
    ]
