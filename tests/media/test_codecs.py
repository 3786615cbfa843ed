"""The codec registry: every codec carries a tone through, keeps 20 ms per packet, and a
decoder fed garbage raises CodecError or returns samples, never anything else."""

from __future__ import annotations

import av
import numpy as np
import pytest

from nuage.media import codecs, g711

RATE = codecs.SAMPLE_RATE
FRAME = codecs.FRAME_SAMPLES

# (encoding, clock rate, channels) as SDP would give them.
CODECS = [("PCMU", 8000, 1), ("PCMA", 8000, 1), ("G722", 8000, 1), ("opus", 48000, 2)]


def tone(frames: int, frequency: float = 1000.0, amplitude: float = 10000.0) -> g711.Pcm:
    t = np.arange(frames * FRAME) / RATE
    return np.rint(amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.int16)


def frames_of(pcm: g711.Pcm) -> list[g711.Pcm]:
    return [pcm[i : i + FRAME] for i in range(0, len(pcm), FRAME)]


def rms(samples: g711.Pcm) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))


@pytest.mark.parametrize(("encoding", "clock_rate", "channels"), CODECS)
def test_a_tone_survives_each_codec(encoding: str, clock_rate: int, channels: int) -> None:
    encoder = codecs.encoder_for(encoding, clock_rate, channels)
    decoder = codecs.decoder_for(encoding, clock_rate, channels)
    sent = tone(30)
    decoded = [decoder.decode(encoder.encode(frame)) for frame in frames_of(sent)]

    assert [len(frame) for frame in decoded] == [FRAME] * 30
    assert all(frame.dtype == np.int16 for frame in decoded)
    # Past the warm-up (codec lookahead, filter delay: a few ms at most).
    heard = np.concatenate(decoded[5:])
    spectrum = np.abs(np.fft.rfft(heard * np.hanning(len(heard)))) ** 2
    frequencies = np.fft.rfftfreq(len(heard), 1 / RATE)
    assert abs(frequencies[spectrum.argmax()] - 1000) < 5
    # The tone holds >= 99 % of the energy: what the codec adds is 20 dB below it.
    assert spectrum[abs(frequencies - 1000) < 50].sum() / spectrum.sum() > 0.99
    assert 0.85 < rms(heard) / rms(sent) < 1.15


@pytest.mark.parametrize(("encoding", "size"), [("PCMU", 160), ("PCMA", 160), ("G722", 160)])
def test_20_ms_payload_sizes(encoding: str, size: int) -> None:
    encoder = codecs.encoder_for(encoding, 8000)
    assert [len(encoder.encode(frame)) for frame in frames_of(tone(5))] == [size] * 5


def test_opus_gives_one_voice_sized_packet_per_frame_from_the_first() -> None:
    encoder = codecs.encoder_for("OPUS", 48000, 2)
    sizes = [len(encoder.encode(frame)) for frame in frames_of(tone(10))]
    # 24 kbit/s is 60 bytes per 20 ms; VBR spends less on a steady tone.
    assert all(0 < size <= 120 for size in sizes)


def test_the_g711_path_is_the_g711_tables() -> None:
    frame = np.random.default_rng(7).integers(-32768, 32768, FRAME).astype(np.int16)
    every_code = bytes(range(256))
    pcmu = codecs.encoder_for("PCMU", 8000), codecs.decoder_for("PCMU", 8000)
    pcma = codecs.encoder_for("PCMA", 8000), codecs.decoder_for("PCMA", 8000)
    assert pcmu[0].encode(frame) == g711.ulaw_encode(frame)
    assert pcma[0].encode(frame) == g711.alaw_encode(frame)
    assert np.array_equal(pcmu[1].decode(every_code), g711.ulaw_decode(every_code))
    assert np.array_equal(pcma[1].decode(every_code), g711.alaw_decode(every_code))


@pytest.mark.parametrize(("encoding", "clock_rate", "channels"), CODECS)
def test_garbage_raises_codec_error_or_decodes_and_the_stream_goes_on(
    encoding: str, clock_rate: int, channels: int
) -> None:
    decoder = codecs.decoder_for(encoding, clock_rate, channels)
    rng = np.random.default_rng(1)
    payloads = [b"", b"\x00", b"\xff" * 3, bytes(range(256))]
    payloads += [rng.bytes(int(rng.integers(1, 400))) for _ in range(200)]
    for payload in payloads:
        try:
            samples = decoder.decode(payload)
        except codecs.CodecError:
            continue
        assert samples.dtype == np.int16
        assert samples.ndim == 1
    # An empty payload must not end the stream (FFmpeg reads one as end of stream).
    assert len(decoder.decode(b"")) == 0
    encoder = codecs.encoder_for(encoding, clock_rate, channels)
    assert len(decoder.decode(encoder.encode(tone(1)))) == FRAME


def test_a_payload_decodes_to_the_time_it_holds() -> None:
    assert len(codecs.decoder_for("PCMU", 8000).decode(bytes(80))) == 80
    # G.722: one byte per 16 kHz sample pair, so one 8 kHz sample.
    g722 = codecs.decoder_for("G722", 8000)
    assert [len(g722.decode(bytes(size))) for size in (320, 320, 160)] == [320, 320, 160]


def _peer_opus(layout: str, milliseconds: int) -> list[bytes]:
    """What a peer might send: stereo, or packets of other than 20 ms."""
    context = av.CodecContext.create("libopus", "w")
    context.sample_rate = 48000
    context.layout = layout
    context.format = "s16"
    context.options = {"frame_duration": str(milliseconds)}
    context.open()
    samples = 48 * milliseconds
    channels = context.channels
    t = np.arange(samples * 4) / 48000
    wave = np.rint(10000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)
    packets: list[bytes] = []
    for i in range(4):
        chunk = np.repeat(wave[i * samples : (i + 1) * samples], channels)
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout=layout)
        frame.sample_rate = 48000
        packets += [bytes(packet) for packet in context.encode(frame)]
    return packets


@pytest.mark.parametrize(("layout", "milliseconds"), [("stereo", 20), ("mono", 40)])
def test_opus_from_a_peer_decodes_to_mono_8_khz(layout: str, milliseconds: int) -> None:
    decoder = codecs.decoder_for("opus", 48000, 2)
    decoded = [decoder.decode(packet) for packet in _peer_opus(layout, milliseconds)]
    assert [len(frame) for frame in decoded] == [8 * milliseconds] * 4
    assert rms(decoded[-1]) > 3000


@pytest.mark.parametrize(
    ("encoding", "clock_rate", "channels"),
    [
        ("G729", 8000, 1),
        ("PCMU", 16000, 1),
        ("OPUS", 8000, 1),
        ("G722", 16000, 1),
        ("PCMU", 8000, 2),
    ],
)
def test_unsupported_codecs_are_refused(encoding: str, clock_rate: int, channels: int) -> None:
    with pytest.raises(codecs.UnsupportedCodecError):
        codecs.encoder_for(encoding, clock_rate, channels)
    with pytest.raises(codecs.UnsupportedCodecError):
        codecs.decoder_for(encoding, clock_rate, channels)


def test_supported() -> None:
    assert codecs.supported("PCMU", 8000)
    assert codecs.supported("G722", 8000)
    assert codecs.supported("OPUS", 48000)
    assert not codecs.supported("G722", 16000)
    assert not codecs.supported("telephone-event", 8000)


@pytest.mark.parametrize(
    ("encoding", "clock_rate", "channels"),
    [("pcmu", 8000, 1), ("Pcma", 8000, 1), ("g722", 8000, 1), ("Opus", 48000, 2)],
)
def test_names_are_case_insensitive(encoding: str, clock_rate: int, channels: int) -> None:
    assert codecs.supported(encoding, clock_rate)
    encoder = codecs.encoder_for(encoding, clock_rate, channels)
    decoder = codecs.decoder_for(encoding, clock_rate, channels)
    assert len(decoder.decode(encoder.encode(tone(1)))) == FRAME


def test_stateful_codecs_get_one_instance_per_stream() -> None:
    assert codecs.encoder_for("G722", 8000) is not codecs.encoder_for("G722", 8000)
    assert codecs.decoder_for("OPUS", 48000, 2) is not codecs.decoder_for("OPUS", 48000, 2)


@pytest.mark.parametrize(("encoding", "clock_rate", "channels"), CODECS)
def test_encoders_take_exactly_one_frame(encoding: str, clock_rate: int, channels: int) -> None:
    encoder = codecs.encoder_for(encoding, clock_rate, channels)
    with pytest.raises(ValueError):
        encoder.encode(tone(2))
    with pytest.raises(ValueError):
        encoder.encode(tone(1).astype(np.int32))
