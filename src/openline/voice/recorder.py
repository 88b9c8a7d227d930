"""Both sides of a conversation, aligned in time, saved as one stereo WAV.

Left channel: the caller (16 kHz, as received). Right: the assistant, placed at the
moment each frame was sent. Tracks live in memory for the conversation's length
(16 kHz int16 = 115 MB per hour of two-sided audio).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

from openline.audio.mix import to_stereo
from openline.audio.resample import resample
from openline.audio.wav import write_wav

RATE = 16_000


class Recorder:
    def __init__(self) -> None:
        self._t0 = time.monotonic()
        self._caller: list[npt.NDArray[np.int16]] = []
        self._caller_len = 0
        self._assistant: list[tuple[int, npt.NDArray[np.int16]]] = []

    def caller(self, samples: npt.NDArray[np.int16]) -> None:
        """Append caller audio (16 kHz); the inbound stream is continuous."""
        self._caller.append(samples)
        self._caller_len += samples.size

    def assistant(self, samples: npt.NDArray[np.int16], rate: int, at: float) -> None:
        """Place assistant audio sent at monotonic time ``at``."""
        pcm = samples if rate == RATE else np.asarray(resample(samples, rate, RATE), np.int16)
        offset = max(0, int((at - self._t0) * RATE))
        self._assistant.append((offset, pcm))

    def stereo(self) -> npt.NDArray[np.int16]:
        """The interleaved stereo recording so far."""
        caller = np.concatenate(self._caller) if self._caller else np.zeros(0, np.int16)
        length = max([caller.size] + [o + p.size for o, p in self._assistant])
        right = np.zeros(length, dtype=np.int32)
        for offset, pcm in self._assistant:
            right[offset:offset + pcm.size] += pcm
        right16 = np.clip(right, -32768, 32767).astype(np.int16)
        left = np.zeros(length, dtype=np.int16)
        left[: caller.size] = caller
        return to_stereo(left, right16)

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        write_wav(tmp, self.stereo(), RATE)
        tmp.replace(path)
        return path
