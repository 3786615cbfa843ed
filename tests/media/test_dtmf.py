"""DTMF: RFC 4733 telephone events, SIP INFO bodies and in-band tones."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nuage.media import g711, music
from nuage.media.dtmf import (
    DIGITS,
    DTMF,
    DTMF_RELAY,
    DigitPressed,
    DigitReleased,
    DtmfError,
    DtmfEventReceiver,
    DtmfEventSender,
    InbandDtmfDetector,
    InfoDigit,
    TelephoneEvent,
    build_dtmf,
    build_dtmf_relay,
    dtmf_tone,
    event_code,
    parse_info_body,
)
from nuage.media.rtp import RtpPacket, RtpSender

EVENT_PT = 101
RATE = 8000


# -- RFC 4733 telephone events ---------------------------------------------------------


@pytest.mark.parametrize("digit", list(DIGITS))
def test_every_digit_round_trips_as_an_event(digit: str) -> None:
    event = TelephoneEvent(event_code(digit), 800, end=True, volume=10)
    payload = event.encode()
    assert len(payload) == 4
    assert payload[0] == DIGITS.index(digit) and payload[1] == 0x80 | 10
    assert TelephoneEvent.decode(payload) == event
    assert TelephoneEvent.decode(payload).digit == digit


@given(st.integers(0, 255), st.integers(0, 0xFFFF), st.booleans(), st.integers(0, 63), st.binary())
def test_any_event_round_trips_and_trailing_bytes_are_ignored(
    code: int, duration: int, end: bool, volume: int, tail: bytes
) -> None:
    event = TelephoneEvent(code, duration, end, volume)
    assert TelephoneEvent.decode(event.encode() + tail) == event


def test_the_reserved_bit_is_ignored_and_short_payloads_refused() -> None:
    assert TelephoneEvent.decode(b"\x0b\x4a\x03\x20") == TelephoneEvent(11, 800, False, 10)
    with pytest.raises(DtmfError):
        TelephoneEvent.decode(b"\x0b\x8a\x03")


@pytest.mark.parametrize(
    "event",
    [TelephoneEvent(256, 0), TelephoneEvent(1, 0x10000), TelephoneEvent(1, 0, volume=64)],
)
def test_events_out_of_range_are_not_encoded(event: TelephoneEvent) -> None:
    with pytest.raises(DtmfError):
        event.encode()


def test_events_past_15_are_not_digits() -> None:
    with pytest.raises(DtmfError):
        _ = TelephoneEvent(16, 0).digit  # flash
    for bad in ("", "E", "55", "a", " "):
        with pytest.raises(DtmfError):
            event_code(bad)


def test_one_digit_is_seven_packets_with_the_marker_one_timestamp_and_three_ends() -> None:
    audio = RtpSender(0)
    start_sequence, start_timestamp = audio.sequence, audio.timestamp
    sender = DtmfEventSender(audio, EVENT_PT)
    packets = [RtpPacket.parse(data) for data in sender.packets("#")]
    events = [TelephoneEvent.decode(packet.payload) for packet in packets]

    assert len(packets) == 7
    assert [p.marker for p in packets] == [True] + [False] * 6
    assert {p.payload_type for p in packets} == {EVENT_PT}
    assert {p.ssrc for p in packets} == {audio.ssrc}
    assert {p.timestamp for p in packets} == {start_timestamp}
    assert [p.sequence for p in packets] == [(start_sequence + i) & 0xFFFF for i in range(7)]
    assert [e.duration for e in events] == [160, 320, 480, 640, 800, 800, 800]
    assert [e.end for e in events] == [False] * 4 + [True] * 3
    assert {(e.digit, e.volume) for e in events} == {("#", 10)}
    # The audio carries on after the 140 ms the packets took, on the same stream.
    after = RtpPacket.parse(audio.packet(b"\xff" * 160, 160))
    assert after.sequence == (start_sequence + 7) & 0xFFFF
    assert after.timestamp == (start_timestamp + 7 * 160) & 0xFFFFFFFF
    assert (after.payload_type, after.ssrc) == (0, audio.ssrc)


def test_the_length_clock_rate_and_volume_can_be_chosen() -> None:
    sender = DtmfEventSender(RtpSender(96), 100, clock_rate=16000, volume=7)
    events = [
        TelephoneEvent.decode(RtpPacket.parse(data).payload)
        for data in sender.packets("7", seconds=0.09)
    ]
    # 320 timestamp units per 20 ms at 16 kHz; the last update is the true length.
    assert [e.duration for e in events] == [320, 640, 960, 1280, 1440, 1440, 1440]
    assert {e.volume for e in events} == {7}


def test_successive_digits_have_their_own_timestamps() -> None:
    sender = DtmfEventSender(RtpSender(8), EVENT_PT)
    first = RtpPacket.parse(sender.packets("1")[0])
    second = RtpPacket.parse(sender.packets("1")[0])
    assert second.timestamp == (first.timestamp + 7 * 160) & 0xFFFFFFFF
    assert second.marker


@pytest.mark.parametrize(("digit", "seconds"), [("x", 0.1), ("1", 0.0), ("1", 9.0)])
def test_the_sender_refuses_what_it_cannot_send(digit: str, seconds: float) -> None:
    audio = RtpSender(0)
    sequence = audio.sequence
    with pytest.raises(DtmfError):
        DtmfEventSender(audio, EVENT_PT).packets(digit, seconds)
    assert audio.sequence == sequence


def _event_packets(digits: str, seconds: float = 0.1) -> list[list[RtpPacket]]:
    sender = DtmfEventSender(RtpSender(0), EVENT_PT)
    return [[RtpPacket.parse(p) for p in sender.packets(d, seconds)] for d in digits]


def _feed(receiver: DtmfEventReceiver, packets: list[RtpPacket]) -> list[object]:
    return [report for packet in packets for report in receiver.feed(packet)]


def test_the_receiver_reports_a_press_on_the_first_packet_and_a_release_at_the_end() -> None:
    (packets,) = _event_packets("9")
    receiver = DtmfEventReceiver(EVENT_PT)
    timestamp = packets[0].timestamp
    assert receiver.feed(packets[0]) == [DigitPressed("9", timestamp)]
    assert [receiver.feed(p) for p in packets[1:4]] == [[], [], []]
    assert receiver.feed(packets[4]) == [DigitReleased("9", timestamp, 100)]
    assert receiver.feed(packets[5]) == receiver.feed(packets[6]) == []


def test_a_lost_first_packet_or_lost_end_packets_still_give_the_digit_once() -> None:
    (packets,) = _event_packets("4")
    timestamp = packets[0].timestamp
    assert _feed(DtmfEventReceiver(EVENT_PT), packets[2:]) == [
        DigitPressed("4", timestamp),
        DigitReleased("4", timestamp, 100),
    ]
    assert _feed(DtmfEventReceiver(EVENT_PT), packets[:4]) == [DigitPressed("4", timestamp)]
    # Only the last retransmitted end arrived: press and release at once.
    assert DtmfEventReceiver(EVENT_PT).feed(packets[6]) == [
        DigitPressed("4", timestamp),
        DigitReleased("4", timestamp, 100),
    ]


def test_the_same_digit_twice_is_two_presses() -> None:
    first, second = _event_packets("55")
    reports = _feed(DtmfEventReceiver(EVENT_PT), first + second)
    assert [r for r in reports if isinstance(r, DigitPressed)] == [
        DigitPressed("5", first[0].timestamp),
        DigitPressed("5", second[0].timestamp),
    ]


def test_the_receiver_ignores_other_payload_types_non_digits_and_garbage() -> None:
    receiver = DtmfEventReceiver(EVENT_PT)
    flash = TelephoneEvent(16, 800, end=True).encode()
    assert receiver.feed(RtpPacket(0, 1, 0, 7, TelephoneEvent(1, 160).encode())) == []
    assert receiver.feed(RtpPacket(EVENT_PT, 2, 0, 7, flash)) == []
    assert receiver.feed(RtpPacket(EVENT_PT, 3, 0, 7, b"\x01")) == []
    assert receiver.feed(RtpPacket(EVENT_PT, 4, 0, 7, TelephoneEvent(1, 160).encode())) == [
        DigitPressed("1", 0)
    ]


def test_a_new_ssrc_with_the_same_timestamp_is_a_new_event() -> None:
    receiver = DtmfEventReceiver(EVENT_PT)
    payload = TelephoneEvent(2, 160).encode()
    assert receiver.feed(RtpPacket(EVENT_PT, 1, 1000, 7, payload)) == [DigitPressed("2", 1000)]
    assert receiver.feed(RtpPacket(EVENT_PT, 1, 1000, 8, payload)) == [DigitPressed("2", 1000)]


@given(st.data(), st.text(DIGITS, min_size=1, max_size=4))
def test_any_loss_duplication_and_order_reports_each_event_once(
    data: st.DataObject, digits: str
) -> None:
    events = _event_packets(digits)
    packets = [p for event in events for p in event]
    arrived = data.draw(st.lists(st.sampled_from(packets), max_size=3 * len(packets)))
    reports = _feed(DtmfEventReceiver(EVENT_PT), arrived)

    pressed = [r for r in reports if isinstance(r, DigitPressed)]
    released = [r for r in reports if isinstance(r, DigitReleased)]
    for digit, event in zip(digits, events, strict=True):
        timestamp = event[0].timestamp
        seen = [p for p in arrived if p.timestamp == timestamp]
        assert pressed.count(DigitPressed(digit, timestamp)) == (1 if seen else 0)
        ended = any(TelephoneEvent.decode(p.payload).end for p in seen)
        assert released.count(DigitReleased(digit, timestamp, 100)) == (1 if ended else 0)
    assert len(pressed) == len({p.timestamp for p in arrived})
    assert len(released) == len(
        {p.timestamp for p in arrived if TelephoneEvent.decode(p.payload).end}
    )


# -- SIP INFO bodies -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        (DTMF_RELAY, b"Signal=5\r\nDuration=160\r\n", InfoDigit("5", 160)),
        (
            "Application/DTMF-Relay; charset=us-ascii",
            b"signal= *\nduration = 250",
            InfoDigit("*", 250),
        ),
        (DTMF_RELAY, b"  SIGNAL = a \r\n\r\n", InfoDigit("A", None)),
        (DTMF_RELAY, b"Duration=100\r\nSignal=#\r\nVolume=10\r\n", InfoDigit("#", 100)),
        (DTMF, b"7", InfoDigit("7")),
        ("application/dtmf", b" d\r\n", InfoDigit("D")),
    ],
)
def test_info_bodies_are_read_loosely(content_type: str, body: bytes, expected: InfoDigit) -> None:
    assert parse_info_body(content_type, body) == expected


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        (DTMF_RELAY, b""),
        (DTMF_RELAY, b"Duration=160\r\n"),
        (DTMF_RELAY, b"Signal=\r\n"),
        (DTMF_RELAY, b"Signal=E\r\n"),
        (DTMF_RELAY, b"Signal=10\r\n"),
        (DTMF_RELAY, b"Signal=12\r\n"),
        (DTMF_RELAY, b"Signal=1\r\nSignal=2\r\n"),
        (DTMF_RELAY, b"Signal=1\r\nDuration=-5\r\n"),
        (DTMF_RELAY, b"Signal=1\r\nDuration=long\r\n"),
        (DTMF_RELAY, b"Signal 1\r\n"),
        (DTMF_RELAY, "Signal=\u0661\r\n".encode()),
        (DTMF, b""),
        (DTMF, b"12"),
        (DTMF, b"Signal=1"),
        ("application/sdp", b"1"),
    ],
)
def test_info_bodies_without_exactly_one_digit_are_refused(content_type: str, body: bytes) -> None:
    with pytest.raises(DtmfError):
        parse_info_body(content_type, body)


@pytest.mark.parametrize("digit", list(DIGITS))
def test_built_info_bodies_read_back(digit: str) -> None:
    assert parse_info_body(DTMF_RELAY, build_dtmf_relay(digit, 250)) == InfoDigit(digit, 250)
    assert parse_info_body(DTMF, build_dtmf(digit)) == InfoDigit(digit)


def test_info_bodies_are_built_as_phones_send_them() -> None:
    assert build_dtmf_relay("5") == b"Signal=5\r\nDuration=160\r\n"
    assert build_dtmf("#") == b"#"
    for bad in ("a", "", "55"):
        with pytest.raises(DtmfError):
            build_dtmf_relay(bad)
        with pytest.raises(DtmfError):
            build_dtmf(bad)


# -- In-band tones ---------------------------------------------------------------------


def _silence(seconds: float) -> g711.Pcm:
    return np.zeros(round(seconds * RATE), dtype=np.int16)


def _keyed(digits: str, on: float = 0.1, off: float = 0.1, lead: float = 0.0123) -> g711.Pcm:
    # The lead puts the tones across frame boundaries, as they fall in a real call.
    parts = [_silence(lead)]
    for digit in digits:
        parts += [dtmf_tone(digit, on), _silence(off)]
    return np.concatenate(parts)


def _with_noise(pcm: g711.Pcm, snr_db: float, seed: int) -> g711.Pcm:
    tone_power = np.mean(dtmf_tone("5", 1.0).astype(np.float64) ** 2)
    noise = np.random.default_rng(seed).normal(
        0, math.sqrt(tone_power / 10 ** (snr_db / 10)), len(pcm)
    )
    return np.clip(np.round(pcm + noise), -32768, 32767).astype(np.int16)


def _detect(pcm: g711.Pcm, chunk: int = 160) -> str:
    detector = InbandDtmfDetector()
    return "".join(
        digit
        for start in range(0, len(pcm), chunk)
        for digit in detector.feed(pcm[start : start + chunk])
    )


def test_the_tone_is_the_digits_row_and_column_at_minus_10_dbfs() -> None:
    tone = dtmf_tone("6", 1.0).astype(np.float64)
    assert len(tone) == RATE
    spectrum = np.abs(np.fft.rfft(tone)) / (RATE / 2) / 32767
    # One-second transform: 1 Hz bins.
    assert set(np.flatnonzero(spectrum > 0.01).tolist()) == {770, 1477}
    assert spectrum[770] == pytest.approx(10 ** (-10 / 20), rel=0.01)
    assert np.max(np.abs(tone)) < 32767


def test_every_digit_is_detected_once() -> None:
    assert _detect(_keyed(DIGITS)) == DIGITS


@pytest.mark.parametrize(
    ("encode", "decode"),
    [(g711.ulaw_encode, g711.ulaw_decode), (g711.alaw_encode, g711.alaw_decode)],
)
def test_every_digit_survives_g711(encode, decode) -> None:  # type: ignore[no-untyped-def]
    assert _detect(decode(encode(_keyed(DIGITS)))) == DIGITS


@pytest.mark.parametrize("seed", range(3))
def test_every_digit_is_detected_in_noise_at_20_db(seed: int) -> None:
    noisy = _with_noise(_keyed(DIGITS), 20, seed)
    assert _detect(g711.ulaw_decode(g711.ulaw_encode(noisy))) == DIGITS


def test_short_tones_and_gaps_as_fast_diallers_send_them() -> None:
    # 60 ms of tone and 50 ms of silence, at any alignment with the frames.
    for lead in (0.0, 0.005, 0.0123, 0.019):
        assert _detect(_keyed("1122#", on=0.06, off=0.05, lead=lead)) == "1122#"


def test_chunking_does_not_change_the_digits() -> None:
    pcm = _keyed("159D")
    assert _detect(pcm, chunk=97) == _detect(pcm, chunk=len(pcm)) == "159D"


def test_a_long_press_is_one_digit_and_a_blip_none() -> None:
    assert _detect(_keyed("8", on=2.0)) == "8"
    assert _detect(_keyed("8", on=0.02)) == ""


def test_quiet_and_twisted_tones() -> None:
    quiet = np.concatenate([_silence(0.01), dtmf_tone("3", 0.1, level_dbfs=-30), _silence(0.1)])
    assert _detect(quiet) == "3"
    faint = np.concatenate([_silence(0.01), dtmf_tone("3", 0.1, level_dbfs=-45), _silence(0.1)])
    assert _detect(faint) == ""
    t = np.arange(800) / RATE
    for column_db, expected in ((-6.0, "1"), (3.0, "1"), (-12.0, ""), (8.0, "")):
        pair = 8000 * np.sin(2 * np.pi * 697 * t) + 8000 * 10 ** (column_db / 20) * np.sin(
            2 * np.pi * 1209 * t
        )
        assert _detect(np.round(pair).astype(np.int16)) == expected, column_db


def _speech_like(seconds: float, seed: int) -> g711.Pcm:
    """Voiced sound (harmonics of a gliding pitch under three formants, two of them near
    DTMF frequencies) and breath noise, at a syllabic rhythm."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * RATE)) / RATE
    pitch = 100 + 80 * np.sin(2 * np.pi * 0.3 * t) ** 2
    phase = 2 * np.pi * np.cumsum(pitch) / RATE
    voiced = np.zeros_like(t)
    for k in range(1, 40):
        harmonic = k * pitch
        gain = sum(
            weight * np.exp(-(((harmonic - formant) / width) ** 2))
            for formant, width, weight in ((700, 150, 1.0), (1220, 200, 0.5), (2600, 300, 0.25))
        )
        voiced += np.where(harmonic < 3800, gain * np.sin(k * phase) / math.sqrt(k), 0.0)
    breath = np.convolve(rng.normal(size=len(t)), np.ones(4) / 4, mode="same")
    syllables = (0.5 * (1 + np.sin(2 * np.pi * 4 * t))) ** 2
    sound = (voiced / np.max(np.abs(voiced)) + 0.3 * breath / np.max(np.abs(breath))) * syllables
    pcm: g711.Pcm = np.round(sound / np.max(np.abs(sound)) * 16000).astype(np.int16)
    return pcm


def test_nothing_is_detected_in_speech_like_sound_a_1_khz_tone_or_music() -> None:
    assert _detect(_speech_like(10.0, seed=1)) == ""
    assert _detect(_with_noise(_silence(2.0), -20, seed=4)) == ""
    t = np.arange(3 * RATE) / RATE
    assert _detect(np.round(10000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)) == ""
    assert _detect(music.render()) == ""
    assert _detect(g711.ulaw_decode(g711.ulaw_encode(music.render()))) == ""


def test_a_digit_over_music_is_still_found() -> None:
    background = music.render()[: 2 * RATE] // 4
    keyed = _keyed("0", lead=0.5)
    mixed = background.astype(np.int32)
    mixed[: len(keyed)] += keyed
    assert _detect(np.clip(mixed, -32768, 32767).astype(np.int16)) == "0"
