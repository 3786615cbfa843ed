"""Blind transfer between real phones: Bob, called by Alice, transfers her to Carol with a
REFER; Alice and Carol then hear each other and Bob is out of the call."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import quote

from e2e.server import DOMAIN, USERS, NuageProcess, acme_plan, running_nuage
from peers import audio
from peers.baresip import BaresipPhone
from peers.ports import free_port
from peers.sipp import SippServer, account_row, run_sipp

ALICE_TONE, BOB_TONE, CAROL_TONE = 1000.0, 1500.0, 2000.0
TONES = (ALICE_TONE, BOB_TONE, CAROL_TONE)


def _phone(
    tmp_path: Path, sip_target: str, extension: str, tone: float, answermode: str = "auto"
) -> BaresipPhone:
    wav = audio.write_tone_wav(tmp_path / f"{extension}.wav", tone)
    return BaresipPhone(
        tmp_path,
        extension,
        tone_wav=wav,
        domain=DOMAIN,
        password=USERS[extension][2],
        proxy=f"sip:{sip_target}",
        answermode=answermode,
    )


async def test_blind_transfer_connects_the_caller_to_the_target(tmp_path: Path) -> None:
    async with running_nuage(tmp_path / "nuage", acme_plan(5999)) as nuage:
        alice = _phone(tmp_path, nuage.sip_target, "1001", ALICE_TONE)
        bob = _phone(tmp_path, nuage.sip_target, "1002", BOB_TONE)
        carol = _phone(tmp_path, nuage.sip_target, "1003", CAROL_TONE)
        async with alice, bob, carol:
            for phone in (alice, bob, carol):
                await phone.wait_event("REGISTER_OK", timeout=10)
            await alice.dial(f"sip:1002@{DOMAIN}")
            await alice.wait_event("CALL_ESTABLISHED", timeout=10)
            await bob.wait_event("CALL_ESTABLISHED", timeout=10)
            await asyncio.sleep(1.5)
            await bob.command("transfer", f"sip:1003@{DOMAIN}")
            await carol.wait_event("CALL_ESTABLISHED", timeout=10)
            await bob.wait_event("CALL_CLOSED", timeout=10)
            await asyncio.sleep(3)
            assert (await nuage.counters())["active_calls"] == 1
            await carol.hangup()
            await alice.wait_event("CALL_CLOSED", timeout=10)
            heard_by_alice = alice.received_audio(TONES)
            heard_by_carol = carol.received_audio(TONES)
        await nuage.assert_idle()
    # Alice heard Bob, then Carol; Carol heard Alice only.
    summary = audio.describe(heard_by_alice)
    bob_frames = [i for i, tone in enumerate(heard_by_alice) if tone == BOB_TONE]
    carol_frames = [i for i, tone in enumerate(heard_by_alice) if tone == CAROL_TONE]
    assert bob_frames and len(carol_frames) * audio.FRAME_MS / 1000 > 2.0, summary
    assert max(bob_frames) < min(carol_frames), summary
    assert audio.share(heard_by_carol, ALICE_TONE) > 0.7, audio.describe(heard_by_carol)


async def test_a_refused_transfer_comes_back_to_the_transferor(tmp_path: Path) -> None:
    """Bob is a sipp phone (baresip hangs up itself when its transfer fails): Carol
    declines, Bob gets the 486 in a NOTIFY, and Alice is back with Bob."""
    async with running_nuage(tmp_path / "nuage", acme_plan(5999)) as nuage:
        alice = _phone(tmp_path, nuage.sip_target, "1001", ALICE_TONE)
        carol = _phone(tmp_path, nuage.sip_target, "1003", CAROL_TONE, answermode="manual")
        bob_port = free_port()
        await _register_sipp(nuage, "1002", bob_port, tmp_path)
        audio.write_ulaw_wav(tmp_path / "tone.wav", audio.tone(BOB_TONE, 30))
        bob = SippServer(
            "uas_refer.xml",
            workdir=tmp_path,
            local_port=bob_port,
            calls=1,
            hold_ms=3000,
            keys={"refer_to": f"sip:1003@{DOMAIN}"},
        )
        async with alice, carol, bob:
            for phone in (alice, carol):
                await phone.wait_event("REGISTER_OK", timeout=10)
            await alice.dial(f"sip:1002@{DOMAIN}")
            await alice.wait_event("CALL_ESTABLISHED", timeout=10)
            await carol.wait_event("CALL_INCOMING", timeout=10)
            await asyncio.sleep(1.5)  # Alice hears music while Carol's phone rings
            await carol.hangup()  # Carol declines: 486
            await alice.wait_event("CALL_CLOSED", timeout=15)  # Bob hangs up at last
            samples, rate = alice.received_samples()
            bob_result = await bob.wait(10)
            bob_result.assert_ok(1)
        await nuage.assert_idle()
    progress = bob_result.actions.read_text()
    assert "transfer progress: SIP/2.0 486" in progress, progress
    heard_by_alice = audio.timeline(samples, rate, TONES)
    summary = audio.describe(heard_by_alice)
    bob_frames = [i for i, tone in enumerate(heard_by_alice) if tone == BOB_TONE]
    # Once Bob is heard (a frame or two of the stream's start may be neither).
    music = [i for i in audio.other_sound_frames(samples, rate, TONES) if i > bob_frames[0]]
    # Bob, then music while Carol rang, then Bob again once she declined.
    assert len(music) * audio.FRAME_MS / 1000 > 1.0, summary
    assert bob_frames[0] < music[0] and bob_frames[-1] > music[-1], summary
    assert len([i for i in bob_frames if i > music[-1]]) * audio.FRAME_MS / 1000 > 1.5, summary
    assert CAROL_TONE not in heard_by_alice, summary


async def _register_sipp(nuage: NuageProcess, extension: str, port: int, workdir: Path) -> None:
    result = await run_sipp(
        "register_auth.xml",
        nuage.sip_target,
        workdir=workdir,
        name=f"register-{extension}",
        local_port=port,
        inject=[account_row(extension, USERS[extension][2], DOMAIN)],
    )
    result.assert_ok(1)


def _dialog_of(messages: Path) -> tuple[str, str, str]:
    """Call-ID, remote (To) tag and local (From) tag of the dialog a sipp caller's log
    shows established (its INVITE's 200 OK)."""
    text = messages.read_text(errors="replace")
    for block in text.split("\n\n"):
        if "SIP/2.0 200" in block and "INVITE" in block.split("CSeq:", 1)[-1][:30]:
            headers = {
                line.split(":", 1)[0].strip().lower(): line.split(":", 1)[1].strip()
                for line in block.splitlines()
                if ":" in line
            }
            call_id = headers["call-id"]
            to_tag = headers["to"].split("tag=", 1)[1].split(";")[0]
            from_tag = headers["from"].split("tag=", 1)[1].split(";")[0]
            return call_id, to_tag, from_tag
    raise AssertionError(f"no established dialog in {messages}")


async def test_attended_transfer_from_a_phone_with_replaces(tmp_path: Path) -> None:
    """Alice's phone (sipp) talks to Carol, then calls Bob and REFERs him to Carol with
    Replaces naming her call with Carol (RFC 5589 7): Bob and Carol end up talking,
    Alice is hung up in both calls."""
    async with running_nuage(tmp_path / "nuage", acme_plan(5999)) as nuage:
        bob = _phone(tmp_path, nuage.sip_target, "1002", BOB_TONE)
        carol = _phone(tmp_path, nuage.sip_target, "1003", CAROL_TONE)
        alice = [account_row("1001", USERS["1001"][2], DOMAIN)]
        async with bob, carol:
            for phone in (bob, carol):
                await phone.wait_event("REGISTER_OK", timeout=10)
            consultation = asyncio.create_task(
                run_sipp(
                    "uac_wait_bye.xml",
                    nuage.sip_target,
                    workdir=tmp_path,
                    name="consultation",
                    service="1003",
                    inject=alice,
                )
            )
            await carol.wait_event("CALL_ESTABLISHED", timeout=10)
            await asyncio.sleep(0.5)
            call_id, to_tag, from_tag = _dialog_of(tmp_path / "consultation.messages.log")
            transfer = await run_sipp(
                "uac_refer_replaces.xml",
                nuage.sip_target,
                workdir=tmp_path,
                name="transferor",
                service="1002",
                hold_ms=1000,
                inject=alice,
                keys={
                    # Escaped as a URI header value must be (RFC 3261 19.1.1): "@" too.
                    "replaces_call_id": quote(call_id, safe=""),
                    "replaces_to_tag": to_tag,
                    "replaces_from_tag": from_tag,
                },
            )
            transfer.assert_ok(1)
            (await consultation).assert_ok(1)
            await asyncio.sleep(3)
            await bob.hangup()
            await carol.wait_event("CALL_CLOSED", timeout=10)
            heard_by_bob = bob.received_audio(TONES)
            heard_by_carol = carol.received_audio(TONES)
        await nuage.assert_idle()
    assert audio.share(heard_by_bob[-100:], CAROL_TONE) > 0.8, audio.describe(heard_by_bob)
    assert audio.share(heard_by_carol[-100:], BOB_TONE) > 0.8, audio.describe(heard_by_carol)
