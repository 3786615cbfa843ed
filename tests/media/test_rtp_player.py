"""RTP packets, the shared 20 ms clock, sounds and music on hold."""

from __future__ import annotations

import asyncio
import itertools
import struct

import numpy as np
import pytest

from nuage.media import g711, music
from nuage.media.player import FrameClock, Playback, Sound, UnsupportedCodecError, can_encode
from nuage.media.rtp import RtpError, RtpPacket, RtpSender


def test_sender_numbers_packets_and_parse_reads_them_back() -> None:
    sender = RtpSender(8)
    first = RtpPacket.parse(sender.packet(b"\xd5" * 160, 160, marker=True))
    second = RtpPacket.parse(sender.packet(b"\x55" * 160, 160))
    assert (first.payload_type, first.marker, first.payload) == (8, True, b"\xd5" * 160)
    assert second.sequence == (first.sequence + 1) & 0xFFFF
    assert second.timestamp == (first.timestamp + 160) & 0xFFFFFFFF
    assert second.ssrc == first.ssrc and not second.marker


def test_parse_skips_csrcs_extension_and_padding() -> None:
    header = struct.pack("!BBHII", 0x80 | 0x20 | 0x10 | 2, 0, 7, 1600, 42)
    csrcs = struct.pack("!II", 1, 2)
    extension = struct.pack("!HH", 0xBEDE, 1) + b"\x00" * 4
    packet = header + csrcs + extension + b"abc" + b"\x00\x00\x03"
    parsed = RtpPacket.parse(packet)
    assert (parsed.sequence, parsed.ssrc, parsed.payload) == (7, 42, b"abc")


@pytest.mark.parametrize(
    "data",
    [b"", b"\x80\x00", b"\x40" + b"\x00" * 11, struct.pack("!BBHII", 0xA0, 0, 1, 1, 1) + b"\x09"],
)
def test_parse_rejects_what_is_not_rtp(data: bytes) -> None:
    with pytest.raises(RtpError):
        RtpPacket.parse(data)


def test_music_on_hold_is_sixteen_seconds_of_unclipped_sound() -> None:
    pcm = music.render()
    assert len(pcm) == 16 * 8000
    assert 0 < np.max(np.abs(pcm.astype(np.int32))) < 32767
    frames = pcm.astype(np.float64).reshape(-1, 160) / 32768
    rms = np.sqrt(np.mean(frames**2, axis=1))
    # Music all along: no silent 20 ms frame, little energy at the test tones of 1 kHz and up.
    assert np.min(rms) > 0.005
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
    frequencies = np.fft.rfftfreq(len(pcm), 1 / 8000)
    assert np.sum(spectrum[frequencies >= 950] ** 2) < 0.05 * np.sum(spectrum**2)


def test_a_sound_is_encoded_once_per_codec() -> None:
    pcm = (np.arange(800) % 100 * 100).astype(np.int16)
    sound = Sound("ramp", pcm)
    assert len(sound) == 5
    ulaw = sound.frames("pcmu", 8000)
    assert ulaw is sound.frames("PCMU", 8000)
    assert ulaw[1] == g711.ulaw_encode(pcm[160:320])
    assert sound.frames("PCMA", 8000)[0] == g711.alaw_encode(pcm[:160])
    assert can_encode("PCMU", 8000) and can_encode("opus", 48000)
    assert not can_encode("G729", 8000)
    with pytest.raises(UnsupportedCodecError):
        sound.frames("G729", 8000)


def test_wideband_codecs_play_one_payload_per_frame_with_their_clock() -> None:
    sound = Sound("tone", (np.sin(np.arange(1600) * 0.5) * 8000).astype(np.int16))
    sent: list[bytes] = []
    for encoding, rate, step in (("G722", 8000, 160), ("opus", 48000, 960)):
        sent.clear()
        playback = Playback(sound, encoding, rate, 101, sent.append, loop=False)
        for tick in range(12):
            playback.on_tick(tick)
        assert len(sent) == len(sound) == 10
        stamps = [int.from_bytes(packet[4:8], "big") for packet in sent]
        assert {b - a for a, b in itertools.pairwise(stamps)} == {step}
        assert all(packet[1] & 0x7F == 101 for packet in sent)


async def test_the_clock_ticks_every_20_ms_for_all_listeners_like_a_radio() -> None:
    pcm = np.repeat(np.arange(10, dtype=np.int16) * 1000, 160)
    sound = Sound("steps", pcm)
    clock = FrameClock()
    received: dict[str, list[bytes]] = {"one": [], "two": []}
    one = Playback(sound, "PCMU", 8000, 0, received["one"].append)
    two = Playback(sound, "PCMA", 8000, 8, received["two"].append)
    loop = asyncio.get_running_loop()
    started = loop.time()
    clock.add(one)
    clock.add(two)
    await asyncio.sleep(0.5)
    clock.remove(one)
    clock.remove(two)
    elapsed = loop.time() - started
    assert len(clock) == 0
    for name, payload_type in (("one", 0), ("two", 8)):
        packets = [RtpPacket.parse(data) for data in received[name]]
        # One packet per 20 ms, give or take a tick of scheduling.
        assert abs(len(packets) - elapsed / 0.02) <= 2
        assert packets[0].marker and not any(p.marker for p in packets[1:])
        assert {p.payload_type for p in packets} == {payload_type}
        assert all(b.timestamp - a.timestamp == 160 for a, b in itertools.pairwise(packets))
    # Both listeners heard the same frame of the sound at each tick.
    decoded_one = [
        int(g711.ulaw_decode(p.payload)[0]) for p in map(RtpPacket.parse, received["one"])
    ]
    decoded_two = [
        int(g711.alaw_decode(p.payload)[0]) for p in map(RtpPacket.parse, received["two"])
    ]
    assert [round(v, -3) for v in decoded_one] == [round(v, -3) for v in decoded_two]
