"""What a baresip phone hears, checked while its call goes on: the last second of what it
received, polled until it holds the expected sound (or a timeout says what it held)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from e2e.test_transfer import TONES
from peers import audio
from peers.baresip import BaresipPhone


async def phone_hears(
    phone: BaresipPhone,
    what: Callable[[audio.Samples, int], Sequence[bool]],
    label: str,
    seconds: float = 1.0,
    within: float = 10.0,
) -> None:
    """Until the last ``seconds`` of what ``phone`` received are all ``what`` (per 20 ms
    frame, a frame or two of leeway)."""
    frames = int(seconds * 1000 / audio.FRAME_MS)
    verdicts: Sequence[bool] = []
    for _ in range(int(within / 0.1)):
        samples, rate = phone.received_samples()
        if rate:
            verdicts = what(samples, rate)[-frames:]
            if len(verdicts) == frames and sum(verdicts) >= frames - 2:
                return
        await asyncio.sleep(0.1)
    samples, rate = phone.received_samples()
    summary = audio.describe(audio.timeline(samples, rate, TONES)[-150:]) if rate else "nothing"
    raise AssertionError(f"{phone.user} did not hear {label}: last 3 s {summary}")


def tone(frequency: float) -> Callable[[audio.Samples, int], list[bool]]:
    return lambda samples, rate: [t == frequency for t in audio.timeline(samples, rate, TONES)]


def silence(samples: audio.Samples, rate: int) -> list[bool]:
    return [not loud for loud in audio.loud_frames(samples, rate)]


def music(samples: audio.Samples, rate: int) -> list[bool]:
    others = set(audio.other_sound_frames(samples, rate, TONES))
    return [i in others for i in range(len(audio.loud_frames(samples, rate)))]
