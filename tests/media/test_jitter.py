"""The jitter buffer, driven by simulated arrival times and a simulated 20 ms tick."""

from __future__ import annotations

import random
from collections.abc import Iterable

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from nuage.media.jitter import Concealer, JitterBuffer
from nuage.media.rtp import RtpPacket

TICK = 0.020
# Ticks fall between arrivals, so that "arrived before this tick" is never a tie.
PHASE = 0.005
SSRC = 0x5EED


def packet(
    index: int,
    *,
    first_sequence: int = 1000,
    first_timestamp: int = 80_000,
    ssrc: int = SSRC,
    marker: bool = False,
    timestamp: int | None = None,
) -> RtpPacket:
    """The ``index``-th packet of a stream, its payload the index itself."""
    if timestamp is None:
        timestamp = first_timestamp + 160 * index
    return RtpPacket(
        0,
        (first_sequence + index) & 0xFFFF,
        timestamp & 0xFFFFFFFF,
        ssrc,
        str(index).encode(),
        marker,
    )


def play(
    buffer: JitterBuffer,
    arrivals: Iterable[tuple[float, RtpPacket]],
    until: int,
    start: int = 0,
) -> list[bytes | None]:
    """Push each packet at its arrival time and pop once per tick from tick ``start`` to
    ``until``; what each tick played."""
    pending = sorted(arrivals, key=lambda arrival: arrival[0])
    played: list[bytes | None] = []
    for tick in range(start, until):
        now = tick * TICK + PHASE
        while pending and pending[0][0] <= now:
            arrival, rtp = pending.pop(0)
            buffer.push(rtp, arrival)
        played.append(buffer.pop(now))
    return played


def payloads(indices: Iterable[int]) -> list[bytes]:
    return [str(index).encode() for index in indices]


def frames(played: list[bytes | None]) -> list[bytes]:
    return [payload for payload in played if payload is not None]


def test_in_order_stream_plays_after_the_minimum_delay() -> None:
    buffer = JitterBuffer()
    played = play(buffer, [(i * TICK, packet(i)) for i in range(20)], 40)
    # Two ticks of buffering (40 ms), then every frame once, in order, with no gap.
    assert played[:2] == [None, None]
    assert played[2:22] == payloads(range(20))
    assert buffer.target_delay == 0.040
    stats = buffer.stats
    assert (stats.received, stats.lost, stats.late, stats.duplicate, stats.reset) == (
        20,
        0,
        0,
        0,
        0,
    )
    # The stream ended: a few ticks of underrun, then idle, where None is no longer loss.
    assert 0 < stats.underrun <= 10
    assert not buffer.playing


def test_reordered_packets_play_in_sequence() -> None:
    arrivals = [(i * TICK, packet(i)) for i in range(30)]
    for first in (3, 10, 20):
        # ``first`` overtaken by its successor, on the wire.
        arrivals[first] = ((first + 1) * TICK + 0.001, packet(first))
    arrivals[25] = (27 * TICK + 0.001, packet(25))  # two places behind
    buffer = JitterBuffer()
    assert frames(play(buffer, arrivals, 50)) == payloads(range(30))
    assert (buffer.stats.late, buffer.stats.lost) == (0, 0)


def test_reordered_before_playout_starts_the_stream_earlier() -> None:
    buffer = JitterBuffer()
    arrivals = [(0.0, packet(1)), (0.001, packet(0))]
    arrivals += [(i * TICK, packet(i)) for i in range(2, 10)]
    assert frames(play(buffer, arrivals, 20)) == payloads(range(10))
    assert buffer.stats.late == 0


def test_duplicates_play_once() -> None:
    arrivals = [(i * TICK, packet(i)) for i in range(20)]
    # Each copied at once, and again long after it played.
    arrivals += [(i * TICK + 0.0001, packet(i)) for i in range(20)]
    arrivals += [(i * TICK + 0.15, packet(i)) for i in range(0, 20, 4)]
    buffer = JitterBuffer()
    assert frames(play(buffer, arrivals, 40)) == payloads(range(20))
    assert buffer.stats.duplicate == 25
    assert buffer.stats.late == 0


def test_a_packet_after_its_turn_is_late_and_its_frame_concealed() -> None:
    arrivals = [(i * TICK, packet(i)) for i in range(20) if i != 5]
    arrivals.append((5 * TICK + 0.3, packet(5)))
    buffer = JitterBuffer()
    played = play(buffer, arrivals, 40)
    assert frames(played) == payloads(i for i in range(20) if i != 5)
    start = played.index(b"4")
    assert played[start + 1] is None and played[start + 2] == b"6"
    assert (buffer.stats.late, buffer.stats.lost) == (1, 1)


def test_a_lost_packet_is_one_missing_frame() -> None:
    arrivals = [(i * TICK, packet(i)) for i in range(20) if i != 7]
    buffer = JitterBuffer()
    played = play(buffer, arrivals, 40)
    start = played.index(b"6")
    assert played[start : start + 3] == [b"6", None, b"8"]
    assert frames(played) == payloads(i for i in range(20) if i != 7)
    assert (buffer.stats.lost, buffer.stats.late) == (1, 0)


def test_sequence_and_timestamp_wrap() -> None:
    def wrapping(index: int) -> RtpPacket:
        return packet(index, first_sequence=65530, first_timestamp=2**32 - 800)

    arrivals = [(i * TICK, wrapping(i)) for i in range(20)]
    # 65535 overtaken by 0 across the wrap.
    arrivals[5] = (6 * TICK + 0.001, wrapping(5))
    buffer = JitterBuffer()
    assert frames(play(buffer, arrivals, 40)) == payloads(range(20))
    stats = buffer.stats
    assert (stats.late, stats.lost, stats.duplicate, stats.reset) == (0, 0, 0, 0)
    assert buffer.jitter < 0.002


def test_a_new_ssrc_is_a_new_stream() -> None:
    arrivals = [(i * TICK, packet(i)) for i in range(10)]
    arrivals += [
        (i * TICK, packet(i, ssrc=0xB, first_sequence=40_000, first_timestamp=7))
        for i in range(10, 30)
    ]
    # A straggler of the old stream must not switch back to it.
    arrivals.append((12 * TICK + 0.001, packet(10)))
    buffer = JitterBuffer()
    played = frames(play(buffer, arrivals, 50))
    assert played[-20:] == payloads(range(10, 30))
    assert buffer.stats.reset == 1
    assert buffer.stats.late == 1


def test_a_confirmed_sequence_jump_restarts_a_stray_one_does_not() -> None:
    arrivals = [(i * TICK, packet(i)) for i in range(10)]
    arrivals.append((10 * TICK - 0.001, packet(3000)))  # a stray, far ahead
    arrivals += [(i * TICK, packet(i)) for i in range(10, 20)]
    # Then the sender renumbers: two packets in a row far from the stream.
    arrivals += [(i * TICK, packet(i, first_sequence=30_000)) for i in range(20, 30)]
    buffer = JitterBuffer()
    played = frames(play(buffer, arrivals, 50))
    assert played[:18] == payloads(range(18))
    # The packet that revealed the jump is lost, the one confirming it starts over.
    assert played[-9:] == payloads(range(21, 30))
    assert buffer.stats.reset == 1
    assert buffer.stats.discarded == 2


def test_a_flood_keeps_it_bounded_and_plays_the_newest() -> None:
    buffer = JitterBuffer()
    largest = 0
    for i in range(10_000):
        buffer.push(packet(i), 0.0)
        largest = max(largest, len(buffer))
    assert largest <= 50
    assert buffer.stats.received == 10_000
    assert buffer.stats.reset > 0
    played = frames([buffer.pop(1.0 + tick * TICK) for tick in range(60)])
    assert played and all(int(payload) >= 9_900 for payload in played)
    assert played == sorted(played, key=int)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 0xFFFF),
            st.sampled_from([1, 2, 3]),
            st.booleans(),
            st.integers(0, 3),
        ),
        max_size=400,
    )
)
def test_any_input_keeps_it_bounded(events: list[tuple[int, int, bool, int]]) -> None:
    buffer = JitterBuffer(capacity=16)
    now = 0.0
    for sequence, ssrc, marker, pops in events:
        buffer.push(RtpPacket(0, sequence, sequence * 160, ssrc, b"x", marker), now)
        for _ in range(pops):
            now += TICK
            buffer.pop(now)
        assert len(buffer) <= 16


def jittery(count: int, spread: float, rng: random.Random) -> list[tuple[float, RtpPacket]]:
    return [(i * TICK + rng.uniform(0, spread), packet(i)) for i in range(count)]


def test_the_delay_grows_under_jitter_and_shrinks_back() -> None:
    rng = random.Random(7)
    buffer = JitterBuffer()
    # Five seconds with transit times spread over 100 ms.
    arrivals = jittery(250, 0.100, rng)
    play(buffer, arrivals, 250)
    assert buffer.target_delay >= 0.100
    grown = buffer.target_delay

    # Then twenty seconds of a steady network.
    arrivals = [(i * TICK, packet(i)) for i in range(250, 1250)]
    played = play(buffer, arrivals, 1240, start=250)
    assert buffer.target_delay == 0.040 < grown
    # The buffer itself is back near the target, not just the figure: within the two
    # frames of slack above the two of the target.
    assert len(buffer) <= 4
    played += play(buffer, arrivals[-20:], 1260, start=1240)
    assert frames(played)[-100:] == payloads(range(1150, 1250))


def test_adapting_loses_fewer_packets_than_a_fixed_delay() -> None:
    arrivals = jittery(1000, 0.100, random.Random(11))
    adaptive = JitterBuffer()
    fixed = JitterBuffer(min_delay=0.040, max_delay=0.040, capacity=50)
    play(adaptive, arrivals, 1020)
    play(fixed, arrivals, 1020)
    assert adaptive.stats.late * 5 < fixed.stats.late
    assert adaptive.stats.late < 20


def test_a_talkspurt_after_silence_realigns() -> None:
    talk = [(i * TICK, packet(i, marker=i == 0)) for i in range(10)]
    # Silence suppressed for a second: sequence numbers go on, timestamps jump.
    talk += [
        (i * TICK + 1.0, packet(i, marker=i == 10, timestamp=80_000 + 160 * i + 8000))
        for i in range(10, 20)
    ]
    buffer = JitterBuffer()
    played = play(buffer, talk[:10], 60)
    # Idle during the silence: only its first ticks count as underrun.
    assert not buffer.playing
    assert buffer.stats.underrun == 10
    played += play(buffer, talk[10:], 90, start=60)
    assert frames(played) == payloads(range(20))
    assert (buffer.stats.lost, buffer.stats.late) == (0, 0)
    # The second talkspurt waited its own 40 ms.
    assert played.index(b"10") == 10 + 50 + 2


def test_concealment_fades_the_last_frame_to_silence() -> None:
    concealer = Concealer(samples=160, fade_frames=3)
    assert not np.any(concealer.fill(None))
    tone = np.round(10_000 * np.sin(np.arange(160) / 5)).astype(np.int16)
    assert concealer.fill(tone) is tone
    concealed = [concealer.fill(None) for _ in range(4)]
    energies = [float(np.sum(frame.astype(np.float64) ** 2)) for frame in concealed]
    assert energies[0] > energies[1] > energies[2] > energies[3] == 0
    # The first stand-in starts as the frame it repeats, without a jump.
    assert concealed[0][0] == tone[0]
    assert all(frame.dtype == np.int16 and len(frame) == 160 for frame in concealed)
    # A real frame ends the concealment.
    assert concealer.fill(tone) is tone
    assert np.array_equal(concealer.fill(None)[:1], tone[:1])
