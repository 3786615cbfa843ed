"""DTMF digits in the three forms phones send them: RTP telephone events (RFC 4733), SIP
INFO bodies (application/dtmf-relay, application/dtmf), and tones in the audio itself.

Sans-I/O like the rest of the media package: packets, bodies and samples in, digits out.
The caller paces what goes on the wire.
"""

from __future__ import annotations

import math
import struct
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from nuage.media import rtp
from nuage.media.g711 import Pcm
from nuage.media.rtp import RtpPacket, RtpSender

DIGITS = "0123456789*#ABCD"
"""The sixteen DTMF keys, in RFC 4733 event-code order (event 10 is ``*``, 11 ``#``)."""


class DtmfError(ValueError):
    """Something that should carry a DTMF digit and does not."""


def event_code(digit: str) -> int:
    """The RFC 4733 event code of ``digit`` (``*`` is 10, ``#`` 11, ``A``-``D`` 12-15)."""
    if len(digit) != 1 or digit not in DIGITS:
        raise DtmfError(f"not a DTMF digit: {digit!r}")
    return DIGITS.index(digit)


# -- RFC 4733 telephone events ---------------------------------------------------------

_EVENT = struct.Struct("!BBH")
_END = 0x80
_VOLUME_MASK = 0x3F


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """One telephone-event payload (RFC 4733 2.3): ``duration`` in RTP timestamp units
    since the event's timestamp, ``volume`` as a power level of -``volume`` dBm0."""

    event: int
    duration: int
    end: bool = False
    volume: int = 10

    @property
    def digit(self) -> str:
        """The key pressed; events past 15 (flash, tones) are not DTMF."""
        if not 0 <= self.event < len(DIGITS):
            raise DtmfError(f"event {self.event} is not a DTMF digit")
        return DIGITS[self.event]

    def encode(self) -> bytes:
        if not 0 <= self.event <= 0xFF:
            raise DtmfError(f"event code out of range: {self.event}")
        if not 0 <= self.volume <= _VOLUME_MASK:
            raise DtmfError(f"volume out of range: {self.volume}")
        if not 0 <= self.duration <= 0xFFFF:
            raise DtmfError(f"duration out of range: {self.duration}")
        return _EVENT.pack(self.event, (_END if self.end else 0) | self.volume, self.duration)

    @classmethod
    def decode(cls, payload: bytes) -> TelephoneEvent:
        """The first event of ``payload``; the reserved bit is ignored as the RFC says."""
        if len(payload) < _EVENT.size:
            raise DtmfError("shorter than a telephone event")
        event, flags, duration = _EVENT.unpack_from(payload)
        return cls(event, duration, bool(flags & _END), flags & _VOLUME_MASK)


class DtmfEventSender:
    """Telephone events for the stream of ``rtp``: same SSRC, same sequence numbers and
    timestamps as the audio it carries (RFC 4733 2.1), with the telephone-event payload
    type in place of the audio's."""

    def __init__(
        self,
        rtp_sender: RtpSender,
        payload_type: int,
        *,
        clock_rate: int = 8000,
        interval: float = 0.020,
        volume: int = 10,
    ) -> None:
        self._rtp = rtp_sender
        self.payload_type = payload_type
        self.clock_rate = clock_rate
        self._step = round(clock_rate * interval)
        self.volume = volume

    def packets(self, digit: str, seconds: float = 0.1) -> list[bytes]:
        """The packets of one key press of ``seconds``, to be sent one per interval.

        All carry the timestamp at which the key went down (RFC 4733 2.5.1.2); the first
        has the marker bit; the duration grows by one interval per packet, and the last
        update, with the E bit, is sent three times (2.5.1.4) so that losing one or two
        does not leave the far end holding the key. The stream's timestamp then moves on by
        the time all these packets take, so audio resumes in step with the clock.
        """
        code = event_code(digit)
        total = round(seconds * self.clock_rate)
        if not 0 < total <= 0xFFFF:
            # Longer events need RFC 4733 segments; no key press is that long.
            raise DtmfError(f"a key press of {seconds} s does not fit one event")
        updates = math.ceil(total / self._step)
        events = [
            TelephoneEvent(code, self._step * n, volume=self.volume) for n in range(1, updates)
        ]
        events += [TelephoneEvent(code, total, end=True, volume=self.volume)] * 3
        timestamp = self._rtp.timestamp
        packets = []
        for index, event in enumerate(events):
            # rtp.RtpSender.packet() moves the timestamp on with every packet and carries
            # the audio's payload type: the header is packed here from its state instead.
            header = rtp.HEADER.pack(
                rtp.VERSION_BITS,
                self.payload_type | (rtp.MARKER if index == 0 else 0),
                self._rtp.sequence,
                timestamp,
                self._rtp.ssrc,
            )
            packets.append(header + event.encode())
            self._rtp.sequence = (self._rtp.sequence + 1) & 0xFFFF
        self._rtp.timestamp = (timestamp + len(events) * self._step) & 0xFFFFFFFF
        return packets


@dataclass(frozen=True, slots=True)
class DigitPressed:
    """A key went down: reported once per event, on whichever of its packets came first."""

    digit: str
    timestamp: int


@dataclass(frozen=True, slots=True)
class DigitReleased:
    """The key came up after ``duration_ms``: reported once, if an end packet arrived."""

    digit: str
    timestamp: int
    duration_ms: int


DtmfReport = DigitPressed | DigitReleased

# Events are told apart by (SSRC, timestamp). Late duplicates and reordered packets trail
# their event by tens of milliseconds, not by sixteen key presses.
_REMEMBERED_EVENTS = 16


class DtmfEventReceiver:
    """Digits from the telephone events of one RTP stream; other payload types, events
    that are not DTMF and payloads too short to read are ignored like corrupt packets.

    Events over about 8 s (RFC 4733 long-duration segments) are reported once per segment.
    """

    def __init__(self, payload_type: int, clock_rate: int = 8000) -> None:
        self.payload_type = payload_type
        self.clock_rate = clock_rate
        # (ssrc, timestamp) -> whether the event's end has been reported.
        self._events: OrderedDict[tuple[int, int], bool] = OrderedDict()

    def feed(self, packet: RtpPacket) -> list[DtmfReport]:
        """What ``packet`` tells that earlier packets did not: nothing, a press, a release,
        or both when the only packet to arrive is an end packet."""
        if packet.payload_type != self.payload_type:
            return []
        try:
            event = TelephoneEvent.decode(packet.payload)
            digit = event.digit
        except DtmfError:
            return []
        key = (packet.ssrc, packet.timestamp)
        reports: list[DtmfReport] = []
        ended = self._events.get(key)
        if ended is None:
            reports.append(DigitPressed(digit, packet.timestamp))
            ended = False
            if len(self._events) >= _REMEMBERED_EVENTS:
                self._events.popitem(last=False)
        if event.end and not ended:
            duration_ms = round(event.duration * 1000 / self.clock_rate)
            reports.append(DigitReleased(digit, packet.timestamp, duration_ms))
            ended = True
        self._events[key] = ended
        return reports


# -- SIP INFO bodies -------------------------------------------------------------------

DTMF_RELAY = "application/dtmf-relay"
DTMF = "application/dtmf"


@dataclass(frozen=True, slots=True)
class InfoDigit:
    """The digit of an INFO request, and its duration when the body gives one."""

    digit: str
    duration_ms: int | None = None


def _info_digit(text: str) -> str:
    digit = text.strip().upper()
    if len(digit) != 1 or digit not in DIGITS:
        raise DtmfError(f"not a DTMF digit: {text!r}")
    return digit


def parse_info_body(content_type: str, body: bytes) -> InfoDigit:
    """The digit of an INFO body of ``content_type`` (parameters and case ignored).

    Field names, digits and spacing are read loosely, as phones write them; a body that
    does not name exactly one DTMF key is refused.
    """
    kind = content_type.split(";", 1)[0].strip().lower()
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError as exc:
        raise DtmfError("INFO body is not ASCII") from exc
    if kind == DTMF:
        return InfoDigit(_info_digit(text))
    if kind != DTMF_RELAY:
        raise DtmfError(f"not a DTMF body: {content_type!r}")
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        name, equals, value = line.partition("=")
        name = name.strip().lower()
        if not equals or name in fields:
            raise DtmfError(f"unreadable dtmf-relay line: {line!r}")
        fields[name] = value.strip()
    if "signal" not in fields:
        raise DtmfError("dtmf-relay body without a Signal")
    duration = fields.get("duration")
    if duration is not None and not (duration.isascii() and duration.isdigit()):
        raise DtmfError(f"bad dtmf-relay Duration: {duration!r}")
    return InfoDigit(_info_digit(fields["signal"]), None if duration is None else int(duration))


def build_dtmf_relay(digit: str, duration_ms: int = 160) -> bytes:
    """An application/dtmf-relay body; 160 ms is what most phones send for a short press."""
    event_code(digit)
    if duration_ms < 0:
        raise DtmfError(f"negative duration: {duration_ms}")
    return f"Signal={digit}\r\nDuration={duration_ms}\r\n".encode("ascii")


def build_dtmf(digit: str) -> bytes:
    """An application/dtmf body: the digit alone."""
    event_code(digit)
    return digit.encode("ascii")


# -- Tones in the audio ----------------------------------------------------------------

ROWS = (697.0, 770.0, 852.0, 941.0)
COLUMNS = (1209.0, 1336.0, 1477.0, 1633.0)
_KEYPAD = ("123A", "456B", "789C", "*0#D")
_FULL_SCALE = 32767.0
# The (row, column) frequencies of each key.
_PAIRS = {
    key: (ROWS[row], COLUMNS[column])
    for row, keys in enumerate(_KEYPAD)
    for column, key in enumerate(keys)
}


def dtmf_tone(digit: str, seconds: float, rate: int = 8000, *, level_dbfs: float = -10.0) -> Pcm:
    """The tone pair of ``digit`` as int16 PCM, each sine ``level_dbfs`` below full scale
    (by default about -7 dBm0 in G.711, within what exchanges send, and the sum of the
    two never clips)."""
    event_code(digit)
    low, high = _PAIRS[digit]
    amplitude = _FULL_SCALE * 10 ** (level_dbfs / 20)
    t = np.arange(round(seconds * rate)) / rate
    pair = amplitude * (np.sin(2 * math.pi * low * t) + np.sin(2 * math.pi * high * t))
    return np.round(np.clip(pair, -_FULL_SCALE, _FULL_SCALE)).astype(np.int16)


FRAME_SECONDS = 0.020
# Each tone of the pair at least this loud (about -33 dBm0 in G.711: quieter than any
# phone sends, louder than line noise).
_MIN_TONE_DBFS = -36.0
# The column tone may be this much weaker than the row tone (lines lose more of the high
# group: "normal" twist), or this much stronger ("reverse" twist).
_NORMAL_TWIST_DB = 8.0
_REVERSE_TWIST_DB = 4.0
# The pair must carry this share of the frame's energy: speech and music spread theirs
# over many frequencies. A frame the tone only partly covers scores about its coverage.
_MIN_PAIR_SHARE = 0.85
# Frames in a row a digit needs before it is reported: 40 ms.
_MIN_FRAMES = 2


class InbandDtmfDetector:
    """Digits sent as tones in the audio, from 20 ms frames of int16 PCM.

    Each frame is tested for one row and one column tone (loud enough, twist within
    limits, the pair dominating the frame); a digit is reported once, after it has been
    heard in two frames in a row, and again only after a frame without it.
    """

    def __init__(self, rate: int = 8000) -> None:
        self.rate = rate
        self._size = round(rate * FRAME_SECONDS)
        n = np.arange(self._size)
        frequencies = np.array(ROWS + COLUMNS)
        # The Goertzel terms (one DFT bin at each exact DTMF frequency, which need not
        # fall on the 50 Hz grid of a 20 ms frame) as one matrix product for all frames:
        # the same numbers as the recursion, without a Python loop per sample.
        self._basis: npt.NDArray[np.complex128] = np.exp(
            -2j * math.pi * np.outer(n, frequencies) / rate
        )
        # The tone energy over a frame of a sine at _MIN_TONE_DBFS.
        self._min_tone = self._size * _FULL_SCALE**2 / 2 * 10 ** (_MIN_TONE_DBFS / 10)
        self._pending: Pcm = np.zeros(0, dtype=np.int16)
        self._candidate: str | None = None
        self._run = 0
        self._held: str | None = None

    def feed(self, pcm: Pcm) -> list[str]:
        """Digits that started in ``pcm``; samples past the last whole frame are kept for
        the next call, so any chunking gives the same digits."""
        samples = np.concatenate((self._pending, np.asarray(pcm, dtype=np.int16)))
        whole = len(samples) // self._size * self._size
        self._pending = samples[whole:]
        digits = []
        for digit in self._classify(samples[:whole].reshape(-1, self._size)):
            if digit is None:
                # A gap: the same key may now be reported again.
                self._held = None
            if digit != self._candidate:
                self._candidate, self._run = digit, 0
            self._run += 1
            if digit is not None and self._run >= _MIN_FRAMES and digit != self._held:
                self._held = digit
                digits.append(digit)
        return digits

    def _classify(self, frames: Pcm) -> list[str | None]:
        signal = frames.astype(np.float64)
        # Energy of each tone over the frame: 2|X|²/N is A²N/2 for a sine of amplitude A.
        tones = 2 * np.abs(signal @ self._basis) ** 2 / self._size
        energy = np.sum(signal**2, axis=1)
        row = np.argmax(tones[:, :4], axis=1)
        column = np.argmax(tones[:, 4:], axis=1)
        indices = np.arange(len(frames))
        low = tones[indices, row]
        high = tones[indices, 4 + column]
        present = (
            (low >= self._min_tone)
            & (high >= self._min_tone)
            & (high >= low * 10 ** (-_NORMAL_TWIST_DB / 10))
            & (high <= low * 10 ** (_REVERSE_TWIST_DB / 10))
            & (low + high >= _MIN_PAIR_SHARE * energy)
        )
        return [
            _KEYPAD[r][c] if hit else None
            for r, c, hit in zip(row.tolist(), column.tolist(), present.tolist(), strict=True)
        ]
