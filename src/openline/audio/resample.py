"""Sample-rate conversion backed by libsoxr (the ``soxr`` package).

``resample`` converts a whole buffer; ``StreamingResampler`` keeps filter state across
chunks so chunked real-time audio (20 ms telephony frames, TTS sentences) converts
without clicks at chunk boundaries. Both accept and return mono int16 or float32 and keep
the input dtype.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt
import soxr

Quality = Literal["QQ", "LQ", "MQ", "HQ", "VHQ"]

_SUPPORTED = (np.dtype(np.int16), np.dtype(np.float32))


def _check(samples: npt.ArrayLike) -> np.ndarray:
    arr = np.asarray(samples)
    if arr.dtype not in _SUPPORTED:
        raise TypeError(f"resampling supports int16 or float32 samples, got {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError("resampling expects mono (1-D) samples")
    return np.ascontiguousarray(arr)


def resample(
    samples: npt.ArrayLike, from_rate: int, to_rate: int, *, quality: Quality = "HQ"
) -> np.ndarray:
    """Resample a whole mono buffer from ``from_rate`` to ``to_rate`` (dtype preserved)."""
    arr = _check(samples)
    if from_rate == to_rate or arr.size == 0:
        return arr.copy()
    out: np.ndarray = soxr.resample(arr, from_rate, to_rate, quality=quality)
    return out.astype(arr.dtype, copy=False)


class StreamingResampler:
    """Stateful resampler for one mono stream of chunks.

    Call ``process(chunk)`` for each chunk as it arrives and ``flush()`` once at the end
    of the stream to drain the filter's tail. The output lags the input by the filter
    delay (a few ms at HQ), so a chunk may come back shorter than its ideal length; the
    total over the stream is right. Not thread-safe: one instance per stream.
    """

    def __init__(
        self,
        from_rate: int,
        to_rate: int,
        *,
        dtype: type[np.int16] | type[np.float32] = np.int16,
        quality: Quality = "HQ",
    ) -> None:
        if from_rate <= 0 or to_rate <= 0:
            raise ValueError("sample rates must be positive")
        self.from_rate = from_rate
        self.to_rate = to_rate
        self.dtype = np.dtype(dtype)
        if self.dtype not in _SUPPORTED:
            raise TypeError(f"unsupported dtype {self.dtype}")
        self._quality: Quality = quality
        # Same rate: pass through untouched, no filter delay.
        self._stream: soxr.ResampleStream | None = None
        if from_rate != to_rate:
            self._stream = soxr.ResampleStream(
                from_rate, to_rate, 1, dtype=self.dtype.name, quality=quality
            )

    def process(self, chunk: npt.ArrayLike) -> np.ndarray:
        """Feed one chunk; returns whatever output is ready (may be empty)."""
        arr = _check(chunk).astype(self.dtype, copy=False)
        if self._stream is None:
            return arr.copy()
        out: np.ndarray = self._stream.resample_chunk(arr, last=False)
        return out

    def flush(self) -> np.ndarray:
        """End the stream: returns the remaining tail and resets for reuse."""
        if self._stream is None:
            return np.zeros(0, dtype=self.dtype)
        out: np.ndarray = self._stream.resample_chunk(np.zeros(0, dtype=self.dtype), last=True)
        self.reset()
        return out

    def reset(self) -> None:
        """Drop any buffered state (e.g. after a barge-in clears the output)."""
        if self._stream is not None:
            self._stream.clear()
