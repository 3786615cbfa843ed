#!/usr/bin/env python3
"""Generate Nuage's spoken prompts with espeak-ng into ``src/nuage/data/prompts``.

The WAVs are committed: the server never needs espeak-ng, only this script does. Each
prompt is 8 kHz mono 16-bit PCM, the rate calls are played at, so the server reads it
as is. The same espeak-ng gives the same bytes, and ``--check`` verifies that the
committed files are what this script makes of the texts below.

    .venv/bin/python scripts/generate-prompts.py           # (re)write the prompts
    .venv/bin/python scripts/generate-prompts.py --check   # exit 1 if they are stale

Needs only numpy and the standard library, besides the espeak-ng binary.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt

Signal = npt.NDArray[np.float64]

OUTPUT = Path(__file__).resolve().parent.parent / "src" / "nuage" / "data" / "prompts"
RATE = 8000
LANGUAGES = ("fr", "nl", "en")
# "The pound key" (for #) is American usage, so the English voice is American too.
VOICES = {"fr": "fr-fr", "nl": "nl", "en": "en-us"}
# Words per minute; espeak-ng's default (175) is hurried for a phone line.
SPEED = 160

# Counts of new messages with a recording of their own (nuage.media.prompts).
NEW_COUNT_PROMPTS = 9


def _new_messages(count: int) -> dict[str, str]:
    """ "You have N new messages": the singular is worded apart in every language."""
    if count == 1:
        return {
            "fr": "Vous avez un nouveau message.",
            "nl": "U hebt één nieuw bericht.",
            "en": "You have one new message.",
        }
    return {
        "fr": f"Vous avez {count} nouveaux messages.",
        "nl": f"U hebt {count} nieuwe berichten.",
        "en": f"You have {count} new messages.",
    }


# Every prompt, by name then language. A tuple of (language, sentence) pairs instead of a
# mapping is one prompt for every language, each sentence spoken by its own voice.
PROMPTS: dict[str, dict[str, str] | tuple[tuple[str, str], ...]] = {
    "recording_started": {
        "fr": "Cet appel est enregistré.",
        "nl": "Dit gesprek wordt opgenomen.",
        "en": "This call is being recorded.",
    },
    "recording_stopped": {
        "fr": "L'enregistrement est arrêté.",
        "nl": "De opname is gestopt.",
        "en": "Recording stopped.",
    },
    "transfer_failed": {
        "fr": "Le transfert a échoué. Vous retrouvez votre correspondant.",
        "nl": "Het doorverbinden is mislukt. U bent terug bij uw gesprekspartner.",
        "en": "The transfer failed. You are back with your caller.",
    },
    "voicemail_greeting": {
        "fr": (
            "Votre correspondant n'est pas disponible. "
            "Veuillez laisser un message après le signal sonore."
        ),
        "nl": "De persoon die u belt, is niet bereikbaar. Spreek na de toon een bericht in.",
        "en": ("Your correspondent is not available. Please leave a message after the tone."),
    },
    "voicemail_menu": {
        "fr": (
            "Tapez 1 pour réécouter, 2 pour conserver, 3 pour supprimer, "
            "4 pour le message suivant, 5 pour enregistrer votre annonce d'accueil, "
            "dièse pour raccrocher."
        ),
        "nl": (
            "Druk op 1 om opnieuw te beluisteren, 2 om te bewaren, 3 om te wissen, "
            "4 voor het volgende bericht, 5 om uw begroeting in te spreken, "
            "hekje om op te hangen."
        ),
        "en": (
            "Press 1 to listen again, 2 to save, 3 to delete, 4 for the next message, "
            "5 to record your greeting, pound to hang up."
        ),
    },
    "voicemail_no_messages": {
        "fr": "Vous n'avez pas de nouveau message.",
        "nl": "U hebt geen nieuwe berichten.",
        "en": "You have no new messages.",
    },
    "voicemail_pin": {
        "fr": "Veuillez composer votre code secret, suivi de la touche dièse.",
        "nl": "Voer uw pincode in, gevolgd door het hekje.",
        # Lower case: espeak-ng spells "PIN" out letter by letter.
        "en": "Please enter your pin, followed by the pound key.",
    },
    "voicemail_pin_wrong": {
        "fr": "Code secret incorrect.",
        "nl": "Onjuiste pincode.",
        "en": "Wrong pin.",
    },
    **{f"voicemail_new_{count}": _new_messages(count) for count in range(1, NEW_COUNT_PROMPTS + 1)},
    "voicemail_new_many": {
        "fr": "Vous avez plus de neuf nouveaux messages.",
        "nl": "U hebt meer dan negen nieuwe berichten.",
        "en": "You have more than nine new messages.",
    },
    "voicemail_end_menu": {
        "fr": "Pour enregistrer votre annonce d'accueil, tapez 5.",
        "nl": "Druk op 5 om uw begroeting in te spreken.",
        "en": "To record your greeting, press 5.",
    },
    "voicemail_record_greeting": {
        "fr": "Enregistrez votre annonce après le signal sonore, puis tapez la touche dièse.",
        "nl": "Spreek uw begroeting in na de toon en druk dan op het hekje.",
        "en": "Record your greeting after the tone, then press the pound key.",
    },
    "voicemail_greeting_saved": {
        "fr": "Votre annonce est enregistrée.",
        "nl": "Uw begroeting is opgeslagen.",
        "en": "Your greeting is saved.",
    },
    "invalid_choice": {
        "fr": "Choix non valide.",
        "nl": "Ongeldige keuze.",
        "en": "Invalid choice.",
    },
    "goodbye": {
        "fr": "Au revoir.",
        "nl": "Tot ziens.",
        "en": "Goodbye.",
    },
    "ivr_language": (
        ("en", "For English, press 1."),
        ("fr", "Pour le français, tapez 2."),
        ("nl", "Voor Nederlands, druk 3."),
    ),
}

# Silence kept before and after speech, and added between the sentences of a prompt
# spoken by several voices (where espeak-ng's own sentence pause is trimmed away).
_EDGE_SECONDS = 0.100
_SENTENCE_GAP_SECONDS = 0.300
# Speech starts and ends where the signal first and last reaches this far below its peak.
_TRIM_DB = -40.0
# Level: the loudest 20 ms of each sentence at -16 dBFS RMS, which puts the whole of it
# near the telephone's nominal speech level (about -24 dBFS); samples stay under -3 dBFS.
_LOUDEST_DBFS = -16.0
_PEAK_CEILING_DBFS = -3.0
_LEVEL_WINDOW_SECONDS = 0.020
# Resampling filter: a Kaiser-windowed sinc of this many input samples, cut off at 3.9 kHz.
# With beta 8.6 it is flat (to 0.1 dB) to about 3.4 kHz, the top of the telephone band,
# and 85 dB down from about 4.4 kHz, so what folds back over 4 kHz lands above 3.6 kHz.
_FILTER_TAPS = 128
_CUTOFF_HZ = 3900.0
_KAISER_BETA = 8.6


def segments(name: str, language: str) -> tuple[tuple[str, str], ...]:
    """The (voice language, sentence) pairs that make up one prompt in one language."""
    texts = PROMPTS[name]
    if isinstance(texts, tuple):
        return texts
    return ((language, texts[language]),)


def speak(text: str, language: str) -> tuple[Signal, int]:
    """espeak-ng's rendering of ``text``, as floats in [-1, 1], and its sample rate."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "speech.wav"
        command = ["espeak-ng", "--stdin", "-b", "1", "-z"]
        command += ["-v", VOICES[language], "-s", str(SPEED), "-w", str(path)]
        subprocess.run(command, input=text.encode(), check=True)
        with wave.open(str(path), "rb") as file:
            if (file.getnchannels(), file.getsampwidth()) != (1, 2):
                raise RuntimeError(f"espeak-ng wrote {file.getparams()}; expected mono 16-bit")
            rate = file.getframerate()
            pcm = np.frombuffer(file.readframes(file.getnframes()), dtype="<i2")
    return pcm.astype(np.float64) / 32768.0, rate


def resample(signal: Signal, rate_in: int, rate_out: int) -> Signal:
    """``signal`` at ``rate_out``: a polyphase windowed-sinc filter, whose cut-off removes
    what ``rate_out`` cannot carry before it can fold back into the band."""
    common = math.gcd(rate_in, rate_out)
    up, down = rate_out // common, rate_in // common
    half = _FILTER_TAPS // 2
    # Output sample n sits at input position n * down / up: an integer part (base) and one
    # of ``up`` fractional phases, each with its own row of filter weights.
    position = np.arange(math.ceil(len(signal) * up / down)) * down
    base, phase = position // up, position % up
    offsets = np.arange(-half + 1, half + 1)
    distance = offsets[np.newaxis, :] - np.arange(up)[:, np.newaxis] / up
    cutoff = min(_CUTOFF_HZ, rate_out / 2) / rate_in
    window = np.i0(_KAISER_BETA * np.sqrt(np.clip(1 - (distance / half) ** 2, 0, None)))
    weights = np.sinc(2 * cutoff * distance) * window
    weights /= weights.sum(axis=1, keepdims=True)  # unity gain at DC for every phase
    padded = np.concatenate([np.zeros(half), signal, np.zeros(half + 1)])
    out = np.zeros(len(position))
    for column, offset in enumerate(offsets):
        out += padded[base + offset + half] * weights[phase, column]
    return out


def trimmed(signal: Signal, rate: int) -> Signal:
    """The speech in ``signal`` with ``_EDGE_SECONDS`` of what surrounds it either side."""
    loud = np.flatnonzero(np.abs(signal) >= np.max(np.abs(signal)) * 10 ** (_TRIM_DB / 20))
    edge = round(_EDGE_SECONDS * rate)
    start, end = loud[0] - edge, loud[-1] + 1 + edge
    # Where espeak-ng left less silence than the edge, zeros make up the difference.
    padded = np.concatenate([np.zeros(edge), signal, np.zeros(edge)])
    return padded[start + edge : end + edge]


def levelled(signal: Signal, rate: int) -> Signal:
    window = round(_LEVEL_WINDOW_SECONDS * rate)
    whole = len(signal) // window * window
    loudest = float(np.max(np.sqrt(np.mean(signal[:whole].reshape(-1, window) ** 2, axis=1))))
    gain = 10 ** (_LOUDEST_DBFS / 20) / loudest
    gain = min(gain, 10 ** (_PEAK_CEILING_DBFS / 20) / float(np.max(np.abs(signal))))
    return signal * gain


def render(name: str, language: str) -> npt.NDArray[np.int16]:
    """One prompt as 16-bit samples at ``RATE``, a whole number of 20 ms frames long."""
    parts: list[Signal] = []
    for index, (voice, text) in enumerate(segments(name, language)):
        speech, rate = speak(text, voice)
        if index:
            parts.append(np.zeros(round(_SENTENCE_GAP_SECONDS * RATE)))
        # Each sentence is levelled alone: the voices do not speak equally loud.
        parts.append(levelled(trimmed(resample(speech, rate, RATE), RATE), RATE))
    signal = np.concatenate(parts)
    # The player drops a last partial frame; pad so that it keeps the whole tail.
    frame = round(_LEVEL_WINDOW_SECONDS * RATE)
    signal = np.concatenate([signal, np.zeros(-len(signal) % frame)])
    return np.round(np.clip(signal, -1.0, 32767 / 32768) * 32768).astype(np.int16)


def write_wav(path: Path, pcm: npt.NDArray[np.int16]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(2)
        file.setframerate(RATE)
        file.writeframes(pcm.astype("<i2").tobytes())


def generate(directory: Path) -> set[Path]:
    """Write every prompt under ``directory``; return their paths relative to it."""
    written: set[Path] = set()
    for name, texts in PROMPTS.items():
        # A prompt shared by all languages is rendered once and written in each.
        shared = render(name, LANGUAGES[0]) if isinstance(texts, tuple) else None
        for language in LANGUAGES:
            pcm = shared if shared is not None else render(name, language)
            relative = Path(language) / f"{name}.wav"
            write_wav(directory / relative, pcm)
            written.add(relative)
    return written


def existing(directory: Path) -> set[Path]:
    return {path.relative_to(directory) for path in directory.glob("*/*.wav")}


def check() -> int:
    with tempfile.TemporaryDirectory() as scratch:
        fresh = Path(scratch)
        expected = generate(fresh)
        committed = existing(OUTPUT) if OUTPUT.is_dir() else set()
        problems = [f"missing: {path}" for path in sorted(expected - committed)]
        problems += [
            f"not generated by this script: {path}" for path in sorted(committed - expected)
        ]
        problems += [
            f"differs: {path}"
            for path in sorted(expected & committed)
            if (fresh / path).read_bytes() != (OUTPUT / path).read_bytes()
        ]
    if problems:
        version = subprocess.run(
            ["espeak-ng", "--version"], check=False, capture_output=True, text=True
        )
        print(f"prompts in {OUTPUT} are stale ({version.stdout.strip()}):", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        print("regenerate them with scripts/generate-prompts.py", file=sys.stderr)
        return 1
    print(f"{len(expected)} prompts up to date")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--check",
        action="store_true",
        help="regenerate into a temporary directory and fail if the committed files differ",
    )
    if parser.parse_args().check:
        return check()
    written = generate(OUTPUT)
    # A prompt renamed or removed from PROMPTS must not linger in the package.
    for stale in existing(OUTPUT) - written:
        (OUTPUT / stale).unlink()
    print(f"wrote {len(written)} prompts to {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
