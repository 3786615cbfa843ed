"""The call-control service (what the API will expose) driving calls between real
phones: a server in this process, baresip phones registered to it."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from e2e.server import DOMAIN, acme_plan, e2e_database
from e2e.test_transfer import ALICE_TONE, BOB_TONE, CAROL_TONE, TONES, _phone
from nuage.config import Config
from nuage.pbx.control import CallControlError, CallNotFoundError, LiveCall
from nuage.pbx.provision import apply_plan
from nuage.server import NuageServer
from nuage.store.database import open_database
from nuage.store.models import Recording
from peers import audio
from peers.baresip import BaresipPhone
from peers.ports import free_port, free_ports


@contextlib.asynccontextmanager
async def in_process_server(
    tmp_path: Path,
    plan_text: str,
    *,
    sections: dict[str, dict[str, object]] | None = None,
    **server: object,
) -> AsyncIterator[NuageServer]:
    """A server in this process on loopback ports, its company provisioned from
    ``plan_text`` (on PostgreSQL when the tests run against it); ``server``: more
    ``[server]`` settings; ``sections``: other sections of the configuration."""
    async with e2e_database() as url:
        rtp = free_ports(64)
        rtp += rtp % 2
        settings: dict[str, object] = {
            "server": {
                "sip_host": "127.0.0.1",
                "sip_port": free_port(),
                "http_host": "127.0.0.1",
                "http_port": free_port(),
                "rtp_port_min": rtp,
                "rtp_port_max": rtp + 60,
                "data_dir": str(tmp_path / "data"),
                **server,
            },
            **(sections or {}),
        }
        if url is not None:
            settings["database"] = {"url": url}
        config = Config.from_mapping(settings)
        plan = tmp_path / "plan.toml"
        plan.write_text(plan_text)
        db = await open_database(config.database_url)
        try:
            await apply_plan(db, plan)
        finally:
            await db.close()
        nuage = NuageServer(config)
        await nuage.start()
        try:
            yield nuage
        finally:
            await nuage.stop()


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[NuageServer]:
    async with in_process_server(tmp_path, acme_plan(5999)) as nuage:
        yield nuage


def three_phones(
    server: NuageServer, tmp_path: Path
) -> tuple[BaresipPhone, BaresipPhone, BaresipPhone]:
    """Alice, Bob and Carol (1001-1003, 1000/1500/2000 Hz) for the server."""
    target = f"127.0.0.1:{server.config.server.sip_port}"
    return (
        _phone(tmp_path, target, "1001", ALICE_TONE),
        _phone(tmp_path, target, "1002", BOB_TONE),
        _phone(tmp_path, target, "1003", CAROL_TONE),
    )


async def alice_calls_bob(alice: BaresipPhone, bob: BaresipPhone, carol: BaresipPhone) -> None:
    for phone in (alice, bob, carol):
        await phone.wait_event("REGISTER_OK", timeout=10)
    await alice.dial(f"sip:1002@{DOMAIN}")
    await bob.wait_event("CALL_ESTABLISHED", timeout=10)


async def alice_holds_bob_and_calls_carol(
    server: NuageServer, phones: tuple[BaresipPhone, BaresipPhone, BaresipPhone]
) -> tuple[LiveCall, LiveCall]:
    """Alice calls Bob, holds him (call control), calls Carol: her two calls. Media
    changes are kept more than a second apart: phones name each received stream's file
    by the second it started, and a file would overwrite another."""
    control = server.control
    assert control is not None
    alice, bob, carol = phones
    company, alice_id = ids(server, "1001")
    await alice_calls_bob(alice, bob, carol)
    [with_bob] = control.calls(company, alice_id)
    await asyncio.sleep(1.1)
    await control.hold(company, alice_id, with_bob.id)
    await asyncio.sleep(1.1)
    await alice.dial(f"sip:1003@{DOMAIN}")
    await carol.wait_event("CALL_ESTABLISHED", timeout=10)
    with_carol = next(c for c in control.calls(company, alice_id) if c.id != with_bob.id)
    assert with_carol.other.number == "1003"
    await asyncio.sleep(1.1)
    return with_bob, with_carol


def ids(server: NuageServer, extension: str) -> tuple[int, int]:
    assert server.directory is not None
    company = server.directory.company_by_domain(DOMAIN)
    assert company is not None
    user = server.directory.user(company.id, extension)
    assert user is not None
    return company.id, user.id


async def test_a_user_holds_records_keys_and_transfers_their_call(
    server: NuageServer, tmp_path: Path
) -> None:
    control = server.control
    assert control is not None
    alice, bob, carol = three_phones(server, tmp_path)
    company, alice_id = ids(server, "1001")
    _, bob_id = ids(server, "1002")
    _, carol_id = ids(server, "1003")
    async with alice, bob, carol:
        await alice_calls_bob(alice, bob, carol)

        [call] = control.calls(company, alice_id)
        assert (call.other.number, call.state, call.recording) == ("1002", "talking", False)
        assert control.calls(company, carol_id) == []
        # Another user's call, another company's: not found, whatever the id.
        with pytest.raises(CallNotFoundError):
            await control.hold(company, carol_id, call.id)
        with pytest.raises(CallNotFoundError):
            await control.hold(company + 1000, alice_id, call.id)

        await asyncio.sleep(1)
        await control.hold(company, alice_id, call.id)
        assert control.call(company, alice_id, call.id).state == "on hold"
        assert control.call(company, bob_id, call.id).state == "held"
        await asyncio.sleep(2.5)
        await control.resume(company, alice_id, call.id)
        assert control.call(company, alice_id, call.id).state == "talking"

        before = datetime.now(UTC)
        await control.start_recording(company, alice_id, call.id)
        recorded = control.call(company, bob_id, call.id)
        assert recorded.recording and recorded.recording_since is not None
        # Both see the one start the 5-minute limit counts from.
        assert before <= recorded.recording_since <= datetime.now(UTC)
        assert control.call(company, alice_id, call.id).recording_since == recorded.recording_since
        with pytest.raises(CallControlError):
            await control.start_recording(company, bob_id, call.id)
        await asyncio.sleep(2)
        await control.stop_recording(company, alice_id, call.id)

        await control.send_dtmf(company, alice_id, call.id, "5#")
        await bob.wait_event("CALL_DTMF_START", timeout=5)
        with pytest.raises(CallControlError):
            await control.send_dtmf(company, alice_id, call.id, "x")

        await control.transfer(company, alice_id, call.id, "1003")
        await carol.wait_event("CALL_ESTABLISHED", timeout=10)
        await alice.wait_event("CALL_CLOSED", timeout=10)
        [transferred] = control.calls(company, carol_id)
        assert transferred.other.number == "1002"
        assert control.calls(company, alice_id) == []
        await asyncio.sleep(2)
        await control.hang_up(company, carol_id, transferred.id)
        await bob.wait_event("CALL_CLOSED", timeout=10)
        await carol.wait_event("CALL_CLOSED", timeout=10)
        bob_samples, rate = bob.received_samples()
    # Bob heard Alice, music while she held, Alice again, then Carol.
    heard = audio.timeline(bob_samples, rate, TONES)
    summary = audio.describe(heard)
    music = audio.other_sound_frames(bob_samples, rate, TONES)
    alice_frames = [i for i, tone in enumerate(heard) if tone == ALICE_TONE]
    carol_frames = [i for i, tone in enumerate(heard) if tone == CAROL_TONE]
    on_hold = [i for i in music if alice_frames[0] < i < alice_frames[-1]]
    assert len(on_hold) * audio.FRAME_MS / 1000 > 1.5, summary
    assert alice_frames[-1] < carol_frames[0], summary
    assert len(carol_frames) * audio.FRAME_MS / 1000 > 1.5, summary
    recordings = sorted((tmp_path / "data" / "recordings").rglob("*.wav"))
    assert len(recordings) == 1
    # Registered, owned by Alice who started it, pointing at that file.
    assert server.db is not None
    async with server.db.session() as session:
        [row] = (await session.execute(select(Recording))).scalars()
    assert (row.company_id, row.owner_user_id, row.stopped_by) == (company, alice_id, "user")
    assert server.config.server.data_dir / row.path == recordings[0]
    assert 1500 < row.duration_ms < 3500


async def test_attended_transfer_joins_the_parties_of_two_calls(
    server: NuageServer, tmp_path: Path
) -> None:
    """Alice holds Bob, calls Carol, then joins them (the app's green arrow): Bob and
    Carol talk, Alice is out of both calls."""
    control = server.control
    assert control is not None
    alice, bob, carol = three_phones(server, tmp_path)
    company, alice_id = ids(server, "1001")
    _, bob_id = ids(server, "1002")
    async with alice, bob, carol:
        first, second = await alice_holds_bob_and_calls_carol(server, (alice, bob, carol))
        await control.attended_transfer(company, alice_id, first.id, second.id)
        for _ in range(2):
            await alice.wait_event("CALL_CLOSED", timeout=10)
        assert control.calls(company, alice_id) == []
        [joined] = control.calls(company, bob_id)
        assert (joined.other.number, joined.state) == ("1003", "talking")
        await asyncio.sleep(3)
        await control.hang_up(company, bob_id, joined.id)
        await carol.wait_event("CALL_CLOSED", timeout=10)
        await bob.wait_event("CALL_CLOSED", timeout=10)
        heard_by_bob = bob.received_audio(TONES)
        heard_by_carol = carol.received_audio(TONES)
    assert server.media is not None and server.media.active_sessions == 0
    summary = audio.describe(heard_by_bob)
    carol_frames = [i for i, tone in enumerate(heard_by_bob) if tone == CAROL_TONE]
    assert len(carol_frames) * audio.FRAME_MS / 1000 > 2.0, summary
    assert max(i for i, tone in enumerate(heard_by_bob) if tone == ALICE_TONE) < carol_frames[0]
    tail = heard_by_carol[-100:]
    assert audio.share(tail, BOB_TONE) > 0.8, audio.describe(heard_by_carol)


def seconds_heard(phone: BaresipPhone) -> dict[frozenset[float], float]:
    """How long ``phone`` heard each combination of the three tones (after its call)."""
    samples, rate = phone.received_samples()
    heard: dict[frozenset[float], float] = {}
    for tones in audio.tones_in_frames(samples, rate, TONES):
        heard[tones] = heard.get(tones, 0.0) + audio.FRAME_MS / 1000
    return heard


async def test_two_calls_merged_into_a_conference_that_outlives_a_party(
    server: NuageServer, tmp_path: Path
) -> None:
    """Alice holds Bob, calls Carol, merges the calls (F15): each of the three hears the
    other two and not itself; Bob leaves and Alice and Carol go on; when Alice leaves,
    Carol, alone, is hung up."""
    control = server.control
    assert control is not None
    alice, bob, carol = three_phones(server, tmp_path)
    company, alice_id = ids(server, "1001")
    _, bob_id = ids(server, "1002")
    _, carol_id = ids(server, "1003")
    async with alice, bob, carol:
        first, second = await alice_holds_bob_and_calls_carol(server, (alice, bob, carol))
        with pytest.raises(CallControlError):
            await control.conference(company, alice_id, second.id, second.id)

        await control.conference(company, alice_id, second.id, first.id)
        await alice.wait_event("CALL_CLOSED", timeout=10)  # her dialog of the first call
        [merged] = control.calls(company, alice_id)
        assert merged.state == "conference"
        assert {p.number for p in merged.participants} == {"1002", "1003"}
        [bobs] = control.calls(company, bob_id)
        assert {p.number for p in bobs.participants} == {"1001", "1003"}
        with pytest.raises(CallControlError):
            await control.transfer(company, alice_id, merged.id, "1002")
        await asyncio.sleep(3)

        await control.hang_up(company, bob_id, bobs.id)
        await bob.wait_event("CALL_CLOSED", timeout=10)
        [carols] = control.calls(company, carol_id)
        assert [p.number for p in carols.participants] == ["1001"]
        await asyncio.sleep(3)

        await control.hang_up(company, alice_id, merged.id)
        await alice.wait_event("CALL_CLOSED", timeout=10)
        await carol.wait_event("CALL_CLOSED", timeout=10)
        assert control.calls(company, carol_id) == []
        heard = {phone.user: seconds_heard(phone) for phone in (alice, bob, carol)}
    assert server.media is not None and server.media.active_sessions == 0
    for phone, own, others in (
        ("1001", ALICE_TONE, {BOB_TONE, CAROL_TONE}),
        ("1002", BOB_TONE, {ALICE_TONE, CAROL_TONE}),
        ("1003", CAROL_TONE, {ALICE_TONE, BOB_TONE}),
    ):
        # Each heard the other two together for the three seconds of the conference...
        assert heard[phone].get(frozenset(others), 0) > 2.5, (phone, heard[phone])
        # ...and never itself.
        with_own = sum(seconds for tones, seconds in heard[phone].items() if own in tones)
        assert with_own < 0.2, (phone, heard[phone])
    # Once Bob left, Alice and Carol heard each other alone.
    assert heard["1001"].get(frozenset({CAROL_TONE}), 0) > 2.5, heard["1001"]
    assert heard["1003"].get(frozenset({ALICE_TONE}), 0) > 2.5, heard["1003"]


async def test_switching_between_a_held_call_and_a_new_one(
    server: NuageServer, tmp_path: Path
) -> None:
    """F12: Alice holds Bob, calls Carol, then goes back and forth: whoever she holds
    hears music, whoever she resumes hears her again."""
    control = server.control
    assert control is not None
    alice, bob, carol = three_phones(server, tmp_path)
    company, alice_id = ids(server, "1001")
    async with alice, bob, carol:
        with_bob, with_carol = await alice_holds_bob_and_calls_carol(server, (alice, bob, carol))
        # Back to Bob: Carol on hold.
        await control.hold(company, alice_id, with_carol.id)
        await control.resume(company, alice_id, with_bob.id)
        states = {c.id: c.state for c in control.calls(company, alice_id)}
        assert states == {with_bob.id: "talking", with_carol.id: "on hold"}
        await asyncio.sleep(2)
        # And to Carol again.
        await control.hold(company, alice_id, with_bob.id)
        await control.resume(company, alice_id, with_carol.id)
        await asyncio.sleep(2)
        for call in (with_bob, with_carol):
            await control.hang_up(company, alice_id, call.id)
        await bob.wait_event("CALL_CLOSED", timeout=10)
        await carol.wait_event("CALL_CLOSED", timeout=10)
        heard = {phone.user: phone.received_samples() for phone in (bob, carol)}
    assert server.media is not None and server.media.active_sessions == 0
    for user, tone_order in (("1002", "AMAM"), ("1003", "AMA")):
        samples, rate = heard[user]
        timeline = audio.timeline(samples, rate, TONES)
        music = set(audio.other_sound_frames(samples, rate, TONES))
        # Runs of at least half a second: Alice's tone (A) or music (M).
        runs: list[str] = []
        for label, frames in itertools.groupby(
            "A" if tone == ALICE_TONE else "M" if i in music else "-"
            for i, tone in enumerate(timeline)
        ):
            if label != "-" and len(list(frames)) >= 25 and (not runs or runs[-1] != label):
                runs.append(label)
        assert "".join(runs) == tone_order, (user, audio.describe(timeline))


async def test_a_recording_stops_by_itself_at_its_limit(
    server: NuageServer, tmp_path: Path
) -> None:
    """The 5-minute limit, shortened to 2 s: the file ends there, holds both parties in
    their channels, and the row says the limit stopped it; the call goes on."""
    control = server.control
    assert control is not None and server.service is not None
    recordings = server.service.calls.recordings
    assert recordings is not None
    recordings.max_seconds = 2.0
    alice, bob, carol = three_phones(server, tmp_path)
    company, alice_id = ids(server, "1001")
    async with alice, bob, carol:
        await alice_calls_bob(alice, bob, carol)
        [call] = control.calls(company, alice_id)
        await asyncio.sleep(1)
        await control.start_recording(company, alice_id, call.id)
        await asyncio.sleep(4)
        assert not control.call(company, alice_id, call.id).recording
        assert control.call(company, alice_id, call.id).state == "talking"
        await control.hang_up(company, alice_id, call.id)
        await bob.wait_event("CALL_CLOSED", timeout=10)
    [path] = sorted((tmp_path / "data" / "recordings").rglob("*.wav"))
    samples, rate = audio.read_wav(path)
    assert 1.9 <= len(samples) / rate <= 2.1
    assert server.db is not None
    async with server.db.session() as session:
        [row] = (await session.execute(select(Recording))).scalars()
    assert row.stopped_by == "limit" and 1900 <= row.duration_ms <= 2100


async def test_star_three_on_a_phone_merges_its_two_calls(
    server: NuageServer, tmp_path: Path
) -> None:
    """A SIP phone with no conference button: Alice holds Bob on her phone, calls Carol,
    keys *3, and the three are in one conference."""
    control = server.control
    assert control is not None
    alice, bob, carol = three_phones(server, tmp_path)
    company, carol_id = ids(server, "1003")
    async with alice, bob, carol:
        await alice_calls_bob(alice, bob, carol)
        await asyncio.sleep(1.1)
        await alice.command("hold")
        await asyncio.sleep(1.1)
        await alice.dial(f"sip:1003@{DOMAIN}")
        await carol.wait_event("CALL_ESTABLISHED", timeout=10)
        await asyncio.sleep(1.1)
        await alice.command("sndcode", "*3")
        await alice.wait_event("CALL_CLOSED", timeout=10)  # her dialog with Bob
        [merged] = control.calls(company, carol_id)
        assert merged.state == "conference"
        assert {p.number for p in merged.participants} == {"1001", "1002"}
        await asyncio.sleep(3)
        await alice.hangup()
        await bob.hangup()
        await carol.wait_event("CALL_CLOSED", timeout=10)
        heard = seconds_heard(carol)
    assert heard.get(frozenset({ALICE_TONE, BOB_TONE}), 0) > 2.0, heard
