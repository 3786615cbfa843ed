"""The simplified E-model (ITU-T G.107) and the per-call quality tracker."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nuage.media.quality import (
    G711,
    G711_WITHOUT_PLC,
    G722,
    G729,
    OPUS,
    POOR_MOS,
    QualitySample,
    QualityTracker,
    codec_for,
    delay_impairment,
    loss_impairment,
    main_cause,
    mos,
    mouth_to_ear_ms,
    r_factor,
    r_to_mos,
)

percent = st.floats(0, 100)
milliseconds = st.floats(0, 5000)


def test_clean_g711_call_scores_about_4_4() -> None:
    assert r_factor(0, 0, 20) == pytest.approx(93.2)
    assert mos(0, 0, 20) == pytest.approx(4.41, abs=0.005)


def test_five_percent_random_loss_is_clearly_worse() -> None:
    clean = mos(0, 0, 20)
    # Ie,eff = 95 * 5 / (5 + 25.1) = 15.78: R 77.4, "some users dissatisfied".
    assert mos(5, 0, 20) == pytest.approx(3.92, abs=0.01)
    assert clean - mos(5, 0, 20) > 0.4
    # Without concealment the same loss ruins the call.
    assert mos(5, 0, 20, G711_WITHOUT_PLC) < 2.5


def test_r_to_mos_at_known_points() -> None:
    # G.107 Annex B: MOS = 1 + 0.035 R + R (R - 60) (100 - R) 7e-6.
    assert r_to_mos(93.2) == pytest.approx(4.4093, abs=1e-4)
    assert r_to_mos(70) == pytest.approx(3.597, abs=1e-4)
    assert r_to_mos(50) == pytest.approx(2.575, abs=1e-4)
    assert r_to_mos(-10) == 1.0
    assert r_to_mos(3) == 1.0  # the cubic is just under 1 here
    assert r_to_mos(100) == r_to_mos(120) == 4.5


@given(st.floats(-50, 150), st.floats(-50, 150))
def test_r_to_mos_is_monotonic_and_bounded(a: float, b: float) -> None:
    low, high = sorted((a, b))
    assert 1.0 <= r_to_mos(low) <= r_to_mos(high) <= 4.5


def test_delay_impairment_follows_g107_idd() -> None:
    assert delay_impairment(0) == delay_impairment(100) == 0.0
    # X = log2(Ta / 100); Idd = 25 ((1 + X^6)^(1/6) - 3 (1 + (X/3)^6)^(1/6) + 2).
    assert delay_impairment(200) == pytest.approx(3.044, abs=1e-3)
    assert delay_impairment(400) == pytest.approx(24.07, abs=1e-2)
    assert delay_impairment(150) < delay_impairment(200) < delay_impairment(400)


def test_loss_impairment_follows_g107_ie_eff() -> None:
    assert loss_impairment(0) == 0.0
    assert loss_impairment(2) == pytest.approx(95 * 2 / 27.1)
    assert loss_impairment(2, G729) == pytest.approx(11 + 84 * 2 / 21)
    # Bursty loss (BurstR > 1) hurts more than the same random loss.
    assert loss_impairment(2, G711, burst_ratio=2) > loss_impairment(2)
    assert loss_impairment(100) == pytest.approx(95 * 100 / 125.1)
    with pytest.raises(ValueError):
        loss_impairment(1, burst_ratio=0)


def test_mouth_to_ear_is_half_the_round_trip_plus_the_jitter_buffer() -> None:
    assert mouth_to_ear_ms(200, 0) == 100
    assert mouth_to_ear_ms(200, 30) == 160
    assert mouth_to_ear_ms(None, 10) == 20
    with pytest.raises(ValueError):
        mouth_to_ear_ms(math.nan, 0)


@given(percent, percent, milliseconds, milliseconds)
def test_mos_never_rises_with_more_loss(a: float, b: float, jitter: float, rtt: float) -> None:
    low, high = sorted((a, b))
    for codec in (G711, G711_WITHOUT_PLC, G729, OPUS):
        assert mos(high, jitter, rtt, codec) <= mos(low, jitter, rtt, codec)


@given(percent, milliseconds, milliseconds, st.floats(0, 500))
def test_mos_never_rises_with_more_delay(loss: float, a: float, b: float, jitter: float) -> None:
    low, high = sorted((a, b))
    assert mos(loss, jitter, high) <= mos(loss, jitter, low)
    assert mos(loss, high / 2, 0) <= mos(loss, low / 2, 0)


def test_mos_falls_strictly_once_delay_matters() -> None:
    scores = [mos(0, 0, rtt) for rtt in (300, 400, 600, 800, 1200)]
    assert scores == sorted(scores, reverse=True)
    assert len(set(scores)) == len(scores)
    assert scores[-1] < POOR_MOS


def test_codec_table() -> None:
    assert codec_for("PCMU") is codec_for("pcma") is G711
    assert codec_for("G722") is G722
    assert codec_for("opus") is OPUS
    assert codec_for("G729") is G729
    assert codec_for("GSM") is G711_WITHOUT_PLC
    # Coding impairment alone: G.729A is worse than G.711, G.722 and Opus are not.
    assert mos(0, 0, 20, G729) < mos(0, 0, 20, G722) == mos(0, 0, 20, OPUS) == mos(0, 0, 20)


def test_main_cause_names_the_largest_impairment_of_a_poor_score() -> None:
    good = QualitySample.measure(0.5, 5, 40)
    assert good.mos > POOR_MOS and main_cause(good) is None
    lossy = QualitySample.measure(12, 5, 40)
    assert lossy.mos < POOR_MOS and main_cause(lossy) == "loss"
    far = QualitySample.measure(0.5, 5, 1400)
    assert far.mos < POOR_MOS and main_cause(far) == "latency"
    jittery = QualitySample.measure(0.5, 250, 60)
    assert jittery.mos < POOR_MOS and main_cause(jittery) == "jitter"
    # A strict threshold asks for a cause even of a decent score.
    assert main_cause(QualitySample.measure(2, 5, 40), threshold=4.5) == "loss"
    assert main_cause(QualitySample.measure(0, 0, 20), threshold=4.5) is None


def test_tracker_average_and_worst() -> None:
    tracker = QualityTracker()
    assert tracker.average() is None and tracker.worst is None
    first = tracker.add(0, 4, None)
    bad = tracker.add(8, 30, 200)
    last = tracker.add(1, 8, 100)
    assert tracker.count == 3
    assert tracker.worst == bad
    assert bad.mos < last.mos < first.mos
    average = tracker.average()
    assert average is not None
    assert average.loss_percent == pytest.approx(3)
    assert average.jitter_ms == pytest.approx(14)
    assert average.rtt_ms == pytest.approx(150)  # over the two samples that had one
    assert average.mos == pytest.approx((first.mos + bad.mos + last.mos) / 3)


def test_tracker_scores_with_its_codec() -> None:
    tracker = QualityTracker(G711_WITHOUT_PLC)
    assert tracker.add(3, 0, 20).mos == pytest.approx(mos(3, 0, 20, G711_WITHOUT_PLC))
    assert tracker.add(3, 0, 20).mos < mos(3, 0, 20)
