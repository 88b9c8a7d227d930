"""G.711 and wire-format codecs."""

from __future__ import annotations

import numpy as np
import pytest

from openline.audio.codecs import (
    WIRE_FORMATS,
    alaw_decode,
    alaw_encode,
    audio_format,
    mulaw_decode,
    mulaw_encode,
)
from openline.audio.pcm import (
    float32_to_int16,
    int16_to_float32,
    int16_to_pcm16,
    pcm16_duration_s,
    pcm16_to_int16,
)

ALL_INT16 = np.arange(-32768, 32768, dtype=np.int16)


def test_pcm16_round_trip_is_exact_and_little_endian() -> None:
    samples = np.array([0, 1, -1, 32767, -32768, 258], dtype=np.int16)
    data = int16_to_pcm16(samples)
    assert data[:2] == b"\x00\x00" and data[-2:] == b"\x02\x01"
    assert np.array_equal(pcm16_to_int16(data), samples)
    assert pcm16_duration_s(b"\x00" * 32000, 16000) == 1.0
    with pytest.raises(ValueError):
        pcm16_to_int16(b"\x00\x00\x00")


def test_float_conversion_clips_and_round_trips() -> None:
    assert np.array_equal(float32_to_int16(int16_to_float32(ALL_INT16)), ALL_INT16)
    assert float32_to_int16(np.array([2.0, -2.0], dtype=np.float32)).tolist() == [32767, -32768]


@pytest.mark.parametrize(
    ("encode", "decode"), [(mulaw_encode, mulaw_decode), (alaw_encode, alaw_decode)]
)
def test_g711_round_trip_error_is_bounded(encode, decode) -> None:  # type: ignore[no-untyped-def]
    decoded = decode(encode(ALL_INT16)).astype(np.int32)
    error = np.abs(decoded - ALL_INT16.astype(np.int32))
    magnitude = np.abs(ALL_INT16.astype(np.int32))
    # Logarithmic companding: relative error within ~1/16 of the value (plus a small floor).
    assert np.all(error <= magnitude / 16 + 16), int(error.max())
    # Decoding is a fixed point: re-encoding decoded values gives the same codes.
    codes = encode(ALL_INT16)
    assert np.array_equal(encode(decode(codes)), codes)


def test_mulaw_known_values() -> None:
    # ITU-T G.711: silence encodes to 0xFF, full-scale positive to 0x80, negative to 0x00.
    assert mulaw_encode(np.array([0, 32767, -32768], dtype=np.int16)).tolist() == [255, 128, 0]
    assert mulaw_decode(b"\xff\x7f").tolist() == [0, 0]
    assert alaw_encode(np.array([0], dtype=np.int16)).tolist() == [0xD5]


def test_matches_stdlib_audioop_when_available() -> None:
    audioop = pytest.importorskip("audioop")  # removed in Python 3.13
    data = ALL_INT16.tobytes()
    assert mulaw_encode(ALL_INT16).tobytes() == audioop.lin2ulaw(data, 2)
    assert alaw_encode(ALL_INT16).tobytes() == audioop.lin2alaw(data, 2)
    assert mulaw_decode(bytes(range(256))).tobytes() == audioop.ulaw2lin(bytes(range(256)), 2)


def test_wire_formats_by_name() -> None:
    assert list(WIRE_FORMATS) == ["pcm_44100", "pcm_24000", "pcm_16000", "pcm_8000", "mulaw_8000"]
    tone = (np.sin(np.arange(160) / 3) * 8000).astype(np.int16)
    for name, fmt in WIRE_FORMATS.items():
        wire = fmt.encode(tone)
        assert len(wire) == 160 * fmt.bytes_per_sample
        assert fmt.duration_s(len(wire)) == pytest.approx(160 / fmt.sample_rate)
        back = fmt.decode(wire)
        tolerance = 0 if name.startswith("pcm") else 300
        assert np.max(np.abs(back.astype(int) - tone.astype(int))) <= tolerance
    mulaw = audio_format("mulaw_8000")
    assert (mulaw.sample_rate, mulaw.encoding, mulaw.bytes_per_sample) == (8000, "mulaw", 1)
    assert mulaw.bytes_for_ms(20) == 160
    assert audio_format("pcm_16000").bytes_for_ms(20) == 640
    with pytest.raises(ValueError, match="unknown audio format"):
        audio_format("opus_48000")
