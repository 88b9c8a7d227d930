"""WAV read/write (16-bit PCM, mono or stereo) with the stdlib ``wave`` module.

Arrays are int16, shape ``(n,)`` for mono or ``(n, channels)`` for multi-channel
(interleaved on disk). Only 16-bit PCM is supported: that is all Openline produces and
all its recordings need.
"""

from __future__ import annotations

import io
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt

from openline.audio.pcm import Int16Array


def _frames(samples: npt.ArrayLike) -> tuple[Int16Array, int]:
    arr = np.asarray(samples)
    if arr.dtype != np.int16:
        raise TypeError(f"WAV writing expects int16 samples, got {arr.dtype}")
    if arr.ndim == 1:
        return arr, 1
    if arr.ndim == 2:
        return arr, int(arr.shape[1])
    raise ValueError("samples must be 1-D (mono) or 2-D (frames, channels)")


def write_wav_bytes(samples: npt.ArrayLike, sample_rate: int) -> bytes:
    """Encode int16 samples (mono ``(n,)`` or ``(n, ch)``) as a complete WAV file."""
    arr, channels = _frames(samples)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(np.ascontiguousarray(arr).astype("<i2", copy=False).tobytes())
    return buf.getvalue()


def read_wav_bytes(data: bytes) -> tuple[Int16Array, int]:
    """Decode a 16-bit PCM WAV file; returns ``(samples, sample_rate)``.

    Mono files give shape ``(n,)``; others ``(n, channels)``.
    Raises ``ValueError`` for other sample widths or malformed data.
    """
    try:
        with wave.open(io.BytesIO(data), "rb") as wav:
            channels = wav.getnchannels()
            width = wav.getsampwidth()
            rate = wav.getframerate()
            raw = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as exc:
        raise ValueError(f"not a readable WAV file: {exc}") from exc
    if width != 2:
        raise ValueError(f"only 16-bit PCM WAV is supported, got {width * 8}-bit")
    arr = np.frombuffer(raw, dtype="<i2").astype(np.int16)
    if channels > 1:
        arr = arr[: len(arr) - len(arr) % channels].reshape(-1, channels)
    return arr, rate


def write_wav(path: str | Path, samples: npt.ArrayLike, sample_rate: int) -> None:
    """Write int16 samples to a WAV file at ``path``."""
    Path(path).write_bytes(write_wav_bytes(samples, sample_rate))


def read_wav(path: str | Path) -> tuple[Int16Array, int]:
    """Read a 16-bit PCM WAV file from ``path``; see ``read_wav_bytes``."""
    return read_wav_bytes(Path(path).read_bytes())
