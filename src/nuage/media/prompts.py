"""Spoken prompts (recording notice, voicemail, menus) in French, Dutch and English.

The prompts are WAVs shipped in the package (``nuage/data/prompts/<language>/<name>.wav``),
generated with espeak-ng by ``scripts/generate-prompts.py``: 8 kHz mono 16-bit, the rate
calls are played at, so loading one is reading it and cutting it into frames. Each
(prompt, language) is loaded once, the first time a call asks for it, and that one
``Sound`` (with its per-codec frames) is shared by every call that plays it.
"""

from __future__ import annotations

import math
import wave
from importlib import resources
from importlib.resources.abc import Traversable

import numpy as np
import numpy.typing as npt

from nuage.media.g711 import Pcm
from nuage.media.player import Sound

# Counts of new messages with their own recording; more is "more than nine".
NEW_COUNT_PROMPTS = 9
PROMPT_NAMES = (
    "recording_started",
    "recording_stopped",
    "transfer_failed",
    "voicemail_greeting",
    "voicemail_menu",
    "voicemail_no_messages",
    "voicemail_pin",
    "voicemail_pin_wrong",
    # "You have N new messages", one recording per count: each language words the
    # singular and the plural differently, which joined pieces could not.
    *(f"voicemail_new_{count}" for count in range(1, NEW_COUNT_PROMPTS + 1)),
    "voicemail_new_many",
    "voicemail_end_menu",
    "voicemail_record_greeting",
    "voicemail_greeting_saved",
    "invalid_choice",
    "goodbye",
    "ivr_language",
)
LANGUAGES = ("fr", "nl", "en")
FALLBACK_LANGUAGE = "en"

RATE = 8000
BEEP_FREQUENCY = 1400.0
"""Hz: clear of the test tones (1000, 1500, 2000 Hz) and of every DTMF frequency."""
BEEP_SECONDS = 0.4
# -12 dBFS: plainly heard over speech levelled near -24 dBFS, far from clipping in G.711.
_BEEP_LEVEL = 0.25
RINGBACK_FREQUENCY = 425.0
RINGBACK_SILENCE_SECONDS = 3.0
# Raised-cosine edges: a tone switched on and off abruptly clicks.
_BEEP_RAMP_SECONDS = 0.010


class PromptFormatError(ValueError):
    """A prompt file that is not 8 kHz mono 16-bit PCM WAV."""


def read_wav(file: Traversable) -> Pcm:
    """The samples of an 8 kHz mono 16-bit PCM WAV."""
    try:
        with file.open("rb") as stream, wave.open(stream, "rb") as wav:
            params = wav.getparams()
            if (params.framerate, params.nchannels, params.sampwidth) != (RATE, 1, 2):
                raise PromptFormatError(
                    f"{file.name}: {params.framerate} Hz, {params.nchannels} channel(s), "
                    f"{8 * params.sampwidth}-bit; prompts must be {RATE} Hz mono 16-bit"
                )
            data = wav.readframes(params.nframes)
    except (wave.Error, EOFError) as error:
        raise PromptFormatError(f"{file.name}: not a PCM WAV file ({error})") from error
    # WAV samples are little-endian whatever the machine.
    return np.frombuffer(data, dtype="<i2").astype(np.int16)


def _tone(frequency: float, seconds: float, rate: int) -> npt.NDArray[np.float64]:
    """A sine at the beep's level, with raised-cosine edges."""
    t = np.arange(round(seconds * rate)) / rate
    ramp = round(_BEEP_RAMP_SECONDS * rate)
    envelope = np.ones(len(t))
    edge = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
    envelope[:ramp] = edge
    envelope[-ramp:] = edge[::-1]
    return _BEEP_LEVEL * envelope * np.sin(2 * math.pi * frequency * t)


def render_beep(rate: int = RATE) -> Pcm:
    """The beep before a recording or a voicemail message, as 16-bit samples."""
    return np.round(_tone(BEEP_FREQUENCY, BEEP_SECONDS, rate) * 32767).astype(np.int16)


def render_ringback(rate: int = RATE) -> Pcm:
    """One period of the ringing tone a caller hears while the callee rings: 425 Hz,
    1 s on, 3 s off (the European tone of ETSI ES 201 970, Belgium's cadence)."""
    silence = np.zeros(round(RINGBACK_SILENCE_SECONDS * rate))
    period: npt.NDArray[np.float64] = np.concatenate(
        (_tone(RINGBACK_FREQUENCY, 1.0, rate), silence)
    )
    return np.round(period * 32767).astype(np.int16)


class Prompts:
    """The prompts of one directory (the package's by default), loaded on first use."""

    def __init__(self, root: Traversable | None = None) -> None:
        # Resolved only when a prompt is first played: importing costs no file access.
        self._root = root
        self._sounds: dict[tuple[str, str], Sound] = {}
        self._beep: Sound | None = None
        self._ringback: Sound | None = None

    def sound(self, name: str, language: str) -> Sound:
        """Prompt ``name`` in ``language`` (an ISO 639-1 code such as "fr", or a tag such
        as "nl-BE"); in English when there is no such language."""
        if name not in PROMPT_NAMES:
            raise KeyError(f"no prompt named {name!r}; prompts are {', '.join(PROMPT_NAMES)}")
        language = _language(language)
        key = (name, language)
        sound = self._sounds.get(key)
        if sound is None:
            pcm = read_wav(self._directory().joinpath(language, f"{name}.wav"))
            sound = self._sounds[key] = Sound(f"prompt {name} ({language})", pcm)
        return sound

    def beep(self) -> Sound:
        if self._beep is None:
            self._beep = Sound("beep", render_beep())
        return self._beep

    def ringback(self) -> Sound:
        if self._ringback is None:
            self._ringback = Sound("ringback", render_ringback())
        return self._ringback

    def _directory(self) -> Traversable:
        if self._root is None:
            self._root = package_prompts()
        return self._root


def package_prompts() -> Traversable:
    """Where the package's recordings are: <language>/<name>.wav."""
    return resources.files("nuage").joinpath("data", "prompts")


def missing_languages(name: str) -> list[str]:
    """The languages in which the package has no recording of prompt ``name`` (read
    without loading any audio)."""
    root = package_prompts()
    return [lang for lang in LANGUAGES if not root.joinpath(lang, f"{name}.wav").is_file()]


def _language(tag: str) -> str:
    # "fr-BE", "nl_BE", "EN": the primary subtag is what picks the recording.
    primary = tag.replace("_", "-").split("-", 1)[0].lower()
    return primary if primary in LANGUAGES else FALLBACK_LANGUAGE
