"""G.711 mu-law / A-law and the named wire formats Openline speaks.

Wire format names follow the Phonic dialect: ``pcm_44100``, ``pcm_24000``, ``pcm_16000``,
``pcm_8000`` (16-bit little-endian mono) and ``mulaw_8000`` (G.711 mu-law, 8 kHz, one byte
per sample). ``alaw_8000`` is also understood for SIP/RTP (PCMA) but is not one of the
public wire names.

Encoding uses 65,536-entry lookup tables built once at import: one fancy-index per
frame is the fastest exact vectorised G.711 in numpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from openline.audio.pcm import Int16Array, int16_to_pcm16, pcm16_to_int16

Encoding = Literal["pcm16", "mulaw", "alaw"]

_MULAW_BIAS = 0x84


def _build_mulaw_decode() -> Int16Array:
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    sign = codes & 0x80
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = (((mantissa << 3) + _MULAW_BIAS) << exponent) - _MULAW_BIAS
    return np.where(sign != 0, -magnitude, magnitude).astype(np.int16)


def _build_mulaw_encode() -> npt.NDArray[np.uint8]:
    # Sun/CCITT reference algorithm on 14-bit magnitudes (what audioop and most
    # telephony stacks do), so our bytes match other implementations exactly.
    samples = np.arange(-32768, 32768, dtype=np.int32) >> 2
    negative = samples < 0
    magnitude = np.minimum(np.where(negative, -samples, samples), 8159) + (_MULAW_BIAS >> 2)
    # segment = index of the first segment end (0x3F, 0x7F, ... 0x1FFF) >= magnitude
    segment = np.searchsorted(np.array([0x3F << i | ((1 << i) - 1) for i in range(8)]), magnitude)
    mantissa = (magnitude >> (segment + 1)) & 0x0F
    mask = np.where(negative, 0x7F, 0xFF)
    code = np.where(segment >= 8, 0x7F, (segment << 4) | mantissa)  # >= 8: clipped peak
    return (code ^ mask).astype(np.uint8)


def _build_alaw_decode() -> Int16Array:
    codes = np.arange(256, dtype=np.int32) ^ 0x55
    sign = codes & 0x80
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = np.where(
        exponent == 0,
        (mantissa << 4) + 8,
        ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0),
    )
    return np.where(sign != 0, magnitude, -magnitude).astype(np.int16)


def _build_alaw_encode() -> npt.NDArray[np.uint8]:
    samples = np.arange(-32768, 32768, dtype=np.int32)
    sign = np.where(samples >= 0, 0x80, 0)
    magnitude = np.where(samples >= 0, samples, -samples - 1) >> 3  # 13-bit magnitude
    magnitude = np.minimum(magnitude, 0x0FFF)
    exponent = np.where(
        magnitude < 32, 0, np.floor(np.log2(np.maximum(magnitude, 1))).astype(np.int32) - 4
    )
    mantissa = np.where(exponent == 0, magnitude >> 1, magnitude >> exponent) & 0x0F
    return ((sign | (exponent << 4) | mantissa) ^ 0x55).astype(np.uint8)


_MULAW_DECODE = _build_mulaw_decode()
_MULAW_ENCODE = _build_mulaw_encode()
_ALAW_DECODE = _build_alaw_decode()
_ALAW_ENCODE = _build_alaw_encode()


def mulaw_encode(samples: npt.ArrayLike) -> npt.NDArray[np.uint8]:
    """Encode int16 samples to G.711 mu-law bytes (as a uint8 array)."""
    arr = np.asarray(samples, dtype=np.int16)
    return _MULAW_ENCODE[arr.astype(np.int32) + 32768]


def mulaw_decode(codes: bytes | npt.ArrayLike) -> Int16Array:
    """Decode G.711 mu-law codes (bytes or uint8 array) to int16 samples."""
    arr = (
        np.frombuffer(codes, dtype=np.uint8)
        if isinstance(codes, bytes | bytearray)
        else (np.asarray(codes, dtype=np.uint8))
    )
    return _MULAW_DECODE[arr]


def alaw_encode(samples: npt.ArrayLike) -> npt.NDArray[np.uint8]:
    """Encode int16 samples to G.711 A-law bytes (as a uint8 array)."""
    arr = np.asarray(samples, dtype=np.int16)
    return _ALAW_ENCODE[arr.astype(np.int32) + 32768]


def alaw_decode(codes: bytes | npt.ArrayLike) -> Int16Array:
    """Decode G.711 A-law codes (bytes or uint8 array) to int16 samples."""
    arr = (
        np.frombuffer(codes, dtype=np.uint8)
        if isinstance(codes, bytes | bytearray)
        else (np.asarray(codes, dtype=np.uint8))
    )
    return _ALAW_DECODE[arr]


@dataclass(frozen=True)
class AudioFormat:
    """A mono wire format: how bytes on the wire map to int16 samples at a rate."""

    name: str
    sample_rate: int
    encoding: Encoding

    @property
    def bytes_per_sample(self) -> int:
        """Bytes one sample takes on the wire (2 for PCM16, 1 for G.711)."""
        return 2 if self.encoding == "pcm16" else 1

    def decode(self, data: bytes) -> Int16Array:
        """Wire bytes -> int16 samples at ``sample_rate``."""
        if self.encoding == "pcm16":
            return pcm16_to_int16(data)
        if self.encoding == "mulaw":
            return mulaw_decode(data)
        return alaw_decode(data)

    def encode(self, samples: npt.ArrayLike) -> bytes:
        """int16 samples at ``sample_rate`` -> wire bytes."""
        if self.encoding == "pcm16":
            return int16_to_pcm16(samples)
        if self.encoding == "mulaw":
            return mulaw_encode(samples).tobytes()
        return alaw_encode(samples).tobytes()

    def num_samples(self, num_bytes: int) -> int:
        """How many samples ``num_bytes`` of this format hold."""
        return num_bytes // self.bytes_per_sample

    def duration_s(self, num_bytes: int) -> float:
        """Seconds of audio in ``num_bytes`` of this format."""
        return self.num_samples(num_bytes) / self.sample_rate

    def bytes_for_ms(self, ms: float) -> int:
        """Bytes needed for ``ms`` milliseconds (whole samples)."""
        return round(ms * self.sample_rate / 1000.0) * self.bytes_per_sample


PCM_44100 = AudioFormat("pcm_44100", 44100, "pcm16")
PCM_24000 = AudioFormat("pcm_24000", 24000, "pcm16")
PCM_16000 = AudioFormat("pcm_16000", 16000, "pcm16")
PCM_8000 = AudioFormat("pcm_8000", 8000, "pcm16")
MULAW_8000 = AudioFormat("mulaw_8000", 8000, "mulaw")
ALAW_8000 = AudioFormat("alaw_8000", 8000, "alaw")

WIRE_FORMATS: dict[str, AudioFormat] = {
    f.name: f for f in (PCM_44100, PCM_24000, PCM_16000, PCM_8000, MULAW_8000)
}
"""The five public wire format names, in the order the Phonic dialect lists them."""

_ALL_FORMATS: dict[str, AudioFormat] = {**WIRE_FORMATS, ALAW_8000.name: ALAW_8000}


def audio_format(name: str) -> AudioFormat:
    """Look up a format by name (the five wire names, plus ``alaw_8000``).

    Raises ``ValueError`` for an unknown name; callers at the edge turn that into a
    validation error.
    """
    try:
        return _ALL_FORMATS[name]
    except KeyError:
        known = ", ".join(_ALL_FORMATS)
        raise ValueError(f"unknown audio format {name!r} (known: {known})") from None
