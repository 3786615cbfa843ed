"""Spoken prompts shipped in the package, their loader, and the beep."""

from __future__ import annotations

import subprocess
import sys
import wave
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from nuage.media import g711
from nuage.media.dtmf import InbandDtmfDetector
from nuage.media.player import FRAME_SECONDS
from nuage.media.prompts import (
    BEEP_FREQUENCY,
    BEEP_SECONDS,
    LANGUAGES,
    PROMPT_NAMES,
    PromptFormatError,
    Prompts,
    read_wav,
)

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "generate-prompts.py"
PROMPTS_DIR = resources.files("nuage").joinpath("data", "prompts")
EVERY_PROMPT = [(name, language) for name in PROMPT_NAMES for language in LANGUAGES]


def _pcm(sound_frames: list[bytes]) -> g711.Pcm:
    return g711.ulaw_decode(b"".join(sound_frames))


@pytest.mark.parametrize(("name", "language"), EVERY_PROMPT)
def test_every_prompt_is_8_khz_mono_16_bit_speech_of_sensible_length(
    name: str, language: str
) -> None:
    with (
        PROMPTS_DIR.joinpath(language, f"{name}.wav").open("rb") as stream,
        wave.open(stream, "rb") as wav,
    ):
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
        assert wav.getcomptype() == "NONE"
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float64)
    assert 0.5 <= len(pcm) / 8000 <= 12.0
    # Levelled speech sits near -24 dBFS; under -40 dBFS it would be as good as silent.
    assert np.sqrt(np.mean(pcm**2)) > 32768 * 10 ** (-40 / 20)
    # Not clipped: no sample at full scale, and headroom left for the codec.
    assert np.max(np.abs(pcm)) < 32768 * 10 ** (-1 / 20)
    # Silence trimmed: speech starts and ends within a few tenths of a second.
    loud = np.flatnonzero(np.abs(pcm) > 0.01 * np.max(np.abs(pcm)))
    assert loud[0] < 0.3 * 8000 and len(pcm) - loud[-1] < 0.3 * 8000


def test_the_package_holds_exactly_the_prompts_the_loader_knows() -> None:
    shipped = {
        (language.name, wav.name.removesuffix(".wav"))
        for language in PROMPTS_DIR.iterdir()
        if language.is_dir()
        for wav in language.iterdir()
        if wav.name.endswith(".wav")
    }
    assert shipped == {(language, name) for name, language in EVERY_PROMPT}


def test_the_language_choice_is_the_same_recording_in_every_language() -> None:
    recordings = {
        PROMPTS_DIR.joinpath(language, "ivr_language.wav").read_bytes() for language in LANGUAGES
    }
    assert len(recordings) == 1


@pytest.mark.parametrize(("name", "language"), EVERY_PROMPT)
def test_prompts_are_not_heard_as_dtmf(name: str, language: str) -> None:
    pcm = Prompts().sound(name, language).frames("PCMU", 8000)
    assert InbandDtmfDetector().feed(_pcm(pcm)) == []


def test_a_prompt_is_loaded_once_and_shared() -> None:
    prompts = Prompts()
    sound = prompts.sound("goodbye", "fr")
    assert prompts.sound("goodbye", "fr") is sound
    assert prompts.sound("goodbye", "nl") is not sound
    # Its encoded frames are shared too: a call playing it encodes nothing.
    assert sound.frames("PCMA", 8000) is prompts.sound("goodbye", "fr").frames("PCMA", 8000)


def test_a_prompt_keeps_every_sample_as_whole_frames() -> None:
    sound = Prompts().sound("voicemail_greeting", "nl")
    raw = PROMPTS_DIR.joinpath("nl", "voicemail_greeting.wav")
    assert len(sound) * sound.samples_per_frame == len(read_wav(raw))
    assert sound.samples_per_frame == round(8000 * FRAME_SECONDS)


def test_prompts_in_different_languages_differ() -> None:
    prompts = Prompts()
    frames = {b"".join(prompts.sound("goodbye", lang).frames("PCMU", 8000)) for lang in LANGUAGES}
    assert len(frames) == len(LANGUAGES)


@pytest.mark.parametrize("language", ["de", "", "xx-YY"])
def test_an_unknown_language_falls_back_to_english(language: str) -> None:
    prompts = Prompts()
    assert prompts.sound("invalid_choice", language) is prompts.sound("invalid_choice", "en")


@pytest.mark.parametrize(("tag", "language"), [("fr-BE", "fr"), ("nl_BE", "nl"), ("EN", "en")])
def test_a_language_tag_picks_its_primary_language(tag: str, language: str) -> None:
    prompts = Prompts()
    assert prompts.sound("goodbye", tag) is prompts.sound("goodbye", language)


def test_an_unknown_prompt_is_a_key_error_naming_it() -> None:
    with pytest.raises(KeyError, match="no prompt named 'hello'"):
        Prompts().sound("hello", "fr")


def test_loading_is_lazy_and_reports_a_wrong_format(tmp_path: Path) -> None:
    directory = tmp_path / "prompts"
    (directory / "en").mkdir(parents=True)
    with wave.open(str(directory / "en" / "goodbye.wav"), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(b"\x00\x00" * 1600)
    (directory / "en" / "invalid_choice.wav").write_bytes(b"not a wav file")
    Prompts(tmp_path / "nowhere")  # reads nothing until a prompt is asked for
    prompts = Prompts(directory)
    with pytest.raises(PromptFormatError, match=r"16000 Hz.*must be 8000 Hz mono 16-bit"):
        prompts.sound("goodbye", "en")
    with pytest.raises(PromptFormatError, match=r"invalid_choice\.wav: not a PCM WAV"):
        prompts.sound("invalid_choice", "en")


def test_the_beep_is_a_400_ms_tone_at_its_frequency() -> None:
    prompts = Prompts()
    beep = prompts.beep()
    assert prompts.beep() is beep
    assert BEEP_FREQUENCY not in (1000.0, 1500.0, 2000.0)  # the test tones
    pcm = _pcm(beep.frames("PCMU", 8000)).astype(np.float64)
    assert len(pcm) == round(BEEP_SECONDS * 8000)
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm))))
    peak = np.fft.rfftfreq(len(pcm), 1 / 8000)[np.argmax(spectrum)]
    assert abs(peak - BEEP_FREQUENCY) <= 8000 / len(pcm)
    # A pure tone: the rest of the spectrum (beyond ±50 Hz of the peak) is 30 dB down.
    frequencies = np.fft.rfftfreq(len(pcm), 1 / 8000)
    elsewhere = spectrum[np.abs(frequencies - BEEP_FREQUENCY) > 50]
    assert np.max(elsewhere) < np.max(spectrum) / 30
    assert np.max(np.abs(pcm)) < 32768 * 10 ** (-6 / 20)
    assert InbandDtmfDetector().feed(pcm.astype(np.int16)) == []


def test_the_committed_prompts_are_what_the_script_generates() -> None:
    # Needs espeak-ng (scripts/install-system-deps.sh installs it), and the same version
    # as generated the files: a new espeak-ng means regenerating them.
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
