"""Mixing, gain and level helpers on int16/float32 mono buffers."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from openline.audio.pcm import Int16Array, as_float32


def clip_to_int16(samples: npt.ArrayLike) -> Int16Array:
    """Float samples in [-1, 1] -> int16, hard-clipping anything beyond full scale."""
    arr = np.asarray(samples, dtype=np.float32)
    return np.clip(np.rint(arr * 32768.0), -32768, 32767).astype(np.int16)


def apply_gain(samples: npt.ArrayLike, gain: float) -> Int16Array:
    """Scale int16 samples by a linear ``gain`` with clipping."""
    return clip_to_int16(as_float32(samples) * gain)


def db_to_gain(db: float) -> float:
    """Decibels -> linear amplitude factor."""
    return float(10.0 ** (db / 20.0))


def rms(samples: npt.ArrayLike) -> float:
    """Root-mean-square level relative to full scale (0.0 for empty input)."""
    arr = as_float32(samples)
    if arr.size == 0:
        return 0.0
    return float(np.sqrt(np.mean(np.square(arr, dtype=np.float64))))


def dbfs(samples: npt.ArrayLike) -> float:
    """RMS level in dBFS (``-inf`` for silence)."""
    level = rms(samples)
    return float(20.0 * np.log10(level)) if level > 0 else float("-inf")


def _pad(arr: npt.NDArray[np.float32], length: int) -> npt.NDArray[np.float32]:
    if arr.size >= length:
        return arr
    return np.concatenate([arr, np.zeros(length - arr.size, dtype=np.float32)])


def mix(*tracks: npt.ArrayLike, gains: tuple[float, ...] | None = None) -> Int16Array:
    """Sum mono tracks (int16 or float) into one int16 track with clipping.

    Shorter tracks are padded with silence to the longest one. ``gains`` optionally
    gives one linear gain per track.
    """
    if not tracks:
        return np.zeros(0, dtype=np.int16)
    if gains is not None and len(gains) != len(tracks):
        raise ValueError("need exactly one gain per track")
    floats = [as_float32(t) for t in tracks]
    length = max(f.size for f in floats)
    total = np.zeros(length, dtype=np.float32)
    for i, f in enumerate(floats):
        total += _pad(f, length) * (gains[i] if gains is not None else 1.0)
    return clip_to_int16(total)


def to_stereo(left: npt.ArrayLike, right: npt.ArrayLike) -> Int16Array:
    """Place two mono tracks into one ``(n, 2)`` int16 array, padding the shorter one.

    Recordings put the caller on the left channel and the assistant on the right.
    """
    lf, rf = as_float32(left), as_float32(right)
    length = max(lf.size, rf.size)
    return np.stack([clip_to_int16(_pad(lf, length)), clip_to_int16(_pad(rf, length))], axis=1)
