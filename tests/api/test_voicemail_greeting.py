"""A user's own voicemail greeting, uploaded through the API (the API in process on the
test's database)."""

from __future__ import annotations

import io
import math
import struct
import wave
from pathlib import Path

import httpx
import pytest

from api.test_auth import bearer, login

pytestmark = pytest.mark.db


def wav(seconds: float, *, rate: int = 8000, channels: int = 1) -> bytes:
    frames = b"".join(
        struct.pack("<h", round(8000 * math.sin(2 * math.pi * 440 * n / rate))) * channels
        for n in range(round(seconds * rate))
    )
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(frames)
    return buffer.getvalue()


async def test_a_greeting_is_uploaded_checked_and_removed(
    api: httpx.AsyncClient, tmp_path: Path
) -> None:
    auth = bearer((await login(api))["access_token"])
    route = "/api/v1/me/voicemail/greeting"
    headers = {**auth, "Content-Type": "audio/wav"}
    assert (await api.delete(route, headers=auth)).status_code == 404
    uploaded = await api.put(route, headers=headers, content=wav(2.0))
    assert uploaded.status_code == 204, uploaded.text
    [greeting] = list((tmp_path / "voicemail").rglob("greetings/*.wav"))
    assert greeting.read_bytes() == wav(2.0)
    # Replaced whole by the next one.
    assert (await api.put(route, headers=headers, content=wav(1.5))).status_code == 204
    assert list((tmp_path / "voicemail").rglob("greetings/*.wav")) == [greeting]
    assert greeting.read_bytes() == wav(1.5)
    for refused in (
        b"not a wav at all",
        wav(2.0, rate=16000),
        wav(2.0, channels=2),
        wav(0.5),
    ):
        answer = await api.put(route, headers=headers, content=refused)
        assert answer.status_code == 422 and answer.json()["error"]["code"] == "invalid"
    too_long = await api.put(route, headers=headers, content=wav(61.0))
    assert too_long.status_code == 413
    # Refusals leave the greeting as it was, and nothing half-written behind.
    assert list((tmp_path / "voicemail").rglob("greetings/*.wav")) == [greeting]
    assert greeting.read_bytes() == wav(1.5)
    assert (await api.delete(route, headers=auth)).status_code == 204
    assert not greeting.exists()
    assert (await api.delete(route, headers=auth)).status_code == 404
    assert (await api.put(route, content=wav(2.0))).status_code == 401
