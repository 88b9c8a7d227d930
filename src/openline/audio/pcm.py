"""PCM16 bytes <-> numpy conversions and duration helpers.

Openline's internal sample format is mono int16 (``np.int16``) at a known rate; models
want float32 in [-1, 1]. These helpers are the only place that conversion happens so
scaling stays consistent (32768 for int16 -> float, 32767 on the way back with clipping).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Int16Array = npt.NDArray[np.int16]
Float32Array = npt.NDArray[np.float32]

_INT16_SCALE = 32768.0


def pcm16_to_int16(data: bytes) -> Int16Array:
    """Decode 16-bit little-endian PCM bytes into an int16 array (copy, writable)."""
    if len(data) % 2:
        raise ValueError(f"PCM16 data must have an even number of bytes, got {len(data)}")
    return np.frombuffer(data, dtype="<i2").astype(np.int16)


def int16_to_pcm16(samples: npt.ArrayLike) -> bytes:
    """Encode int16 samples as 16-bit little-endian PCM bytes."""
    return np.asarray(samples, dtype=np.int16).astype("<i2", copy=False).tobytes()


def int16_to_float32(samples: npt.ArrayLike) -> Float32Array:
    """Scale int16 samples to float32 in [-1, 1)."""
    return (np.asarray(samples, dtype=np.int16).astype(np.float32) / _INT16_SCALE).astype(
        np.float32
    )


def as_float32(samples: npt.ArrayLike) -> Float32Array:
    """int16 scaled to [-1, 1); anything else taken as float samples already."""
    arr = np.asarray(samples)
    if arr.dtype == np.int16:
        return int16_to_float32(arr)
    return arr.astype(np.float32, copy=False)


def float32_to_int16(samples: npt.ArrayLike) -> Int16Array:
    """Scale float samples in [-1, 1] to int16, clipping anything outside the range."""
    arr = np.asarray(samples, dtype=np.float32)
    return np.clip(np.rint(arr * _INT16_SCALE), -32768, 32767).astype(np.int16)


def pcm16_to_float32(data: bytes) -> Float32Array:
    """Decode PCM16 bytes straight to float32 in [-1, 1)."""
    return int16_to_float32(pcm16_to_int16(data))


def float32_to_pcm16(samples: npt.ArrayLike) -> bytes:
    """Encode float samples in [-1, 1] as PCM16 bytes."""
    return int16_to_pcm16(float32_to_int16(samples))


def duration_s(num_samples: int, sample_rate: int) -> float:
    """Duration in seconds of ``num_samples`` at ``sample_rate``."""
    if sample_rate <= 0:
        raise ValueError("sample_rate must be positive")
    return num_samples / sample_rate


def pcm16_duration_s(data: bytes, sample_rate: int) -> float:
    """Duration in seconds of mono PCM16 bytes."""
    return duration_s(len(data) // 2, sample_rate)


def samples_for_ms(ms: float, sample_rate: int) -> int:
    """Number of samples covering ``ms`` milliseconds (rounded to nearest)."""
    return round(ms * sample_rate / 1000.0)


def silence(num_samples: int) -> Int16Array:
    """A block of int16 digital silence."""
    return np.zeros(max(0, num_samples), dtype=np.int16)
