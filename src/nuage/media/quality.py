"""Call quality as a MOS estimate, from what RTCP measures (loss, jitter, round trip).

A simplified ITU-T G.107 E-model: every input G.107 has besides delay and loss keeps its
default value, which makes R = 93.2 with nothing impaired, there is no advantage factor,
and the delay impairment is G.107's Idd alone (echo is assumed cancelled):

    R = 93.2 - Idd(Ta) - Ie,eff(Ppl, codec)
    Ie,eff = Ie + (95 - Ie) * Ppl / (Ppl / BurstR + Bpl)

Ta, the one-way mouth-to-ear delay, is estimated as half the round trip plus a jitter
buffer of ``JITTER_BUFFER_FACTOR`` times the jitter. Jitter thus costs only delay here;
the packets a real buffer discards as late are loss that RTCP does not report.

The MOS is G.107 Annex B's conversion of R, kept within [1, 4.5]. It is a planning
model's estimate of conversational quality, not a measurement of what was heard.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

R_DEFAULT = 93.2
"""R of a G.711 connection with every G.107 input at its default (G.107 section 7.7)."""

JITTER_BUFFER_FACTOR = 2.0
"""An adaptive jitter buffer holds about two jitter deviations of audio."""

POOR_MOS = 3.6
"""MOS of R = 70, under which G.109 rates a call "many users dissatisfied"."""

Cause = Literal["loss", "jitter", "latency"]


@dataclass(frozen=True, slots=True)
class Codec:
    """A codec's E-model figures: equipment impairment ``ie`` (with no loss) and packet
    loss robustness ``bpl``, on the narrowband R scale."""

    name: str
    ie: float
    bpl: float


# Ie and Bpl from ITU-T G.113 Appendix I (provisional planning values), for random loss.
#
# G.711 is taken with packet loss concealment (Bpl 25.1, G.711 Appendix I PLC) rather
# than without (Bpl 4.3): browsers (WebRTC's NetEq) and current desk phones conceal lost
# G.711 frames. Without PLC, 1 % loss costs 18 R points instead of under 4.
G711 = Codec("G.711", 0.0, 25.1)
G711_WITHOUT_PLC = Codec("G.711 without PLC", 0.0, 4.3)
G729 = Codec("G.729A", 11.0, 19.0)
# G.722 and Opus are wideband. G.113 Appendix IV rates G.722 at 64 kbit/s (Ie,wb 13)
# better than G.711 on the wideband scale (G.107.1), and a codec better than G.711 has
# Ie 0 on this narrowband scale, which cannot show the wideband gain. G.113 gives no
# Opus figures; Opus (at VoIP rates) is treated like G.722. Neither has a narrowband Bpl
# in G.113: both conceal loss, and G.711 with PLC's Bpl stands in for theirs.
G722 = Codec("G.722", 0.0, 25.1)
OPUS = Codec("Opus", 0.0, 25.1)

_BY_ENCODING = {"pcmu": G711, "pcma": G711, "g722": G722, "opus": OPUS, "g729": G729}


def codec_for(encoding: str) -> Codec:
    """The figures for an SDP encoding name (case-insensitive). A codec not in the table
    gets G.711 without PLC: no coding impairment, the largest one for loss."""
    return _BY_ENCODING.get(encoding.lower(), G711_WITHOUT_PLC)


def _checked(name: str, value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, not {value}")
    return max(0.0, value)


def delay_impairment(one_way_ms: float) -> float:
    """G.107's Idd for a mouth-to-ear delay Ta in ms (default delay sensitivity,
    mT = 100 ms, sT = 1): 0 up to 100 ms, then growing ever faster."""
    delay = _checked("delay", one_way_ms)
    if delay <= 100:
        return 0.0
    x = math.log2(delay / 100)
    return 25 * (math.pow(1 + x**6, 1 / 6) - 3 * math.pow(1 + (x / 3) ** 6, 1 / 6) + 2)


def loss_impairment(loss_percent: float, codec: Codec = G711, burst_ratio: float = 1.0) -> float:
    """G.107's effective equipment impairment Ie,eff for a packet loss Ppl in percent;
    ``burst_ratio`` is BurstR, 1 for random loss, above 1 for loss in bursts."""
    loss = min(100.0, _checked("loss", loss_percent))
    if not burst_ratio > 0:
        raise ValueError(f"burst ratio must be positive, not {burst_ratio}")
    return codec.ie + (95 - codec.ie) * loss / (loss / burst_ratio + codec.bpl)


def mouth_to_ear_ms(rtt_ms: float | None, jitter_ms: float) -> float:
    """The one-way delay Ta estimated from the network round trip (None: not measured,
    taken as 0) and the jitter a buffer has to absorb."""
    network = 0.0 if rtt_ms is None else _checked("round trip", rtt_ms) / 2
    return network + JITTER_BUFFER_FACTOR * _checked("jitter", jitter_ms)


def r_to_mos(r: float) -> float:
    """G.107 Annex B: the MOS (conversational quality) of a rating R, within [1, 4.5]."""
    if r <= 0:
        return 1.0
    if r >= 100:
        return 4.5
    # The cubic dips just under 1 for R below about 6.5.
    return max(1.0, 1 + 0.035 * r + r * (r - 60) * (100 - r) * 7e-6)


def r_factor(
    loss_percent: float,
    jitter_ms: float,
    rtt_ms: float | None,
    codec: Codec = G711,
    burst_ratio: float = 1.0,
) -> float:
    """The rating R of a call leg that RTCP describes (see the module docstring)."""
    delay = delay_impairment(mouth_to_ear_ms(rtt_ms, jitter_ms))
    return R_DEFAULT - delay - loss_impairment(loss_percent, codec, burst_ratio)


def mos(
    loss_percent: float,
    jitter_ms: float,
    rtt_ms: float | None,
    codec: Codec = G711,
    burst_ratio: float = 1.0,
) -> float:
    return r_to_mos(r_factor(loss_percent, jitter_ms, rtt_ms, codec, burst_ratio))


@dataclass(frozen=True, slots=True)
class QualitySample:
    """One measurement of a call leg (say, from one RTCP report) and its MOS. ``rtt_ms``
    is None while no round trip has been measured."""

    loss_percent: float
    jitter_ms: float
    rtt_ms: float | None
    mos: float

    @classmethod
    def measure(
        cls, loss_percent: float, jitter_ms: float, rtt_ms: float | None, codec: Codec = G711
    ) -> QualitySample:
        return cls(loss_percent, jitter_ms, rtt_ms, mos(loss_percent, jitter_ms, rtt_ms, codec))


def main_cause(
    sample: QualitySample, codec: Codec = G711, threshold: float = POOR_MOS
) -> Cause | None:
    """What lowers a poor score most, for the app's quality indicator: "loss", "jitter"
    (the delay of the buffer absorbing it) or "latency" (the network's delay). None when
    the score is at or above ``threshold``, or nothing measured impairs it. ``codec`` must
    be the one the sample's MOS was computed for."""
    if sample.mos >= threshold:
        return None
    loss = loss_impairment(sample.loss_percent, codec) - codec.ie
    network = 0.0 if sample.rtt_ms is None else max(0.0, sample.rtt_ms) / 2
    buffer = JITTER_BUFFER_FACTOR * max(0.0, sample.jitter_ms)
    delay = delay_impairment(network + buffer)
    # Idd is not additive; its share of each delay is a proportional split.
    jitter = delay * buffer / (network + buffer) if delay else 0.0
    shares: tuple[tuple[float, Cause], ...] = (
        (loss, "loss"),
        (jitter, "jitter"),
        (delay - jitter, "latency"),
    )
    impairment, cause = max(shares, key=lambda share: share[0])
    return cause if impairment > 0 else None


class QualityTracker:
    """The quality samples of one call, reduced to what the call record keeps: their
    average and the worst. Running sums, not a list: a call can last for hours."""

    __slots__ = ("_jitter", "_loss", "_mos", "_rtt", "_rtt_count", "codec", "count", "worst")

    def __init__(self, codec: Codec = G711) -> None:
        self.codec = codec
        self.count = 0
        self.worst: QualitySample | None = None
        self._loss = 0.0
        self._jitter = 0.0
        self._rtt = 0.0
        self._rtt_count = 0
        self._mos = 0.0

    def add(self, loss_percent: float, jitter_ms: float, rtt_ms: float | None) -> QualitySample:
        """Score a measurement with the call's codec and record it."""
        sample = QualitySample.measure(loss_percent, jitter_ms, rtt_ms, self.codec)
        self.record(sample)
        return sample

    def record(self, sample: QualitySample) -> None:
        self.count += 1
        self._loss += sample.loss_percent
        self._jitter += sample.jitter_ms
        self._mos += sample.mos
        if sample.rtt_ms is not None:
            self._rtt += sample.rtt_ms
            self._rtt_count += 1
        if self.worst is None or sample.mos < self.worst.mos:
            self.worst = sample

    def average(self) -> QualitySample | None:
        """The mean of each figure over the samples (the round trip over those that had
        one); the MOS is the mean of the samples' MOS. None before the first sample."""
        if not self.count:
            return None
        return QualitySample(
            self._loss / self.count,
            self._jitter / self.count,
            self._rtt / self._rtt_count if self._rtt_count else None,
            self._mos / self.count,
        )
