"""Both sides of a conversation, aligned in time, kept on disk as the call runs.

Two raw 16 kHz int16 tracks are written while the conversation runs (``.caller.pcm``
appended in order; ``.assistant.pcm`` written at the offset of the moment each frame was
sent), so a crash loses at most the last unflushed second. ``finish()`` turns them into
one stereo WAV (caller left, assistant right) and removes them; ``recover()`` does the same
for tracks a crash left behind. Without a directory (tests, ``chat``) tracks stay in memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from openline.audio.mix import to_stereo
from openline.audio.resample import resample
from openline.audio.wav import write_wav
from openline.voice.clock import SYSTEM_CLOCK, Clock

RATE = 16_000
FLUSH_EVERY_S = 1.0


class Recorder:
    def __init__(self, directory: Path | None = None, name: str = "recording", *,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.clock = clock
        self._t0 = clock.monotonic()
        self._last_flush = self._t0
        self.directory, self.name = directory, name
        self._caller_mem: list[npt.NDArray[np.int16]] = []
        self._assistant_mem: list[tuple[int, npt.NDArray[np.int16]]] = []
        self._caller_file: BinaryIO | None = None
        self._assistant_file: BinaryIO | None = None
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            self._caller_file = open(_track(directory, name, "caller"), "wb")  # noqa: SIM115
            self._assistant_file = open(_track(directory, name, "assistant"), "wb")  # noqa: SIM115

    def caller(self, samples: npt.NDArray[np.int16]) -> None:
        """Append caller audio (16 kHz); the inbound stream is continuous."""
        if self._caller_file is None:
            self._caller_mem.append(samples)
        else:
            self._caller_file.write(samples.astype("<i2").tobytes())
            self._maybe_flush()

    def assistant(self, samples: npt.NDArray[np.int16], rate: int, at: float) -> None:
        """Place assistant audio sent at monotonic time ``at``."""
        pcm = samples if rate == RATE else np.asarray(resample(samples, rate, RATE), np.int16)
        offset = max(0, int((at - self._t0) * RATE))
        if self._assistant_file is None:
            self._assistant_mem.append((offset, pcm))
        else:
            self._assistant_file.seek(offset * 2)
            self._assistant_file.write(pcm.astype("<i2").tobytes())
            self._maybe_flush()

    def _maybe_flush(self) -> None:
        now = self.clock.monotonic()
        if now - self._last_flush >= FLUSH_EVERY_S:
            self._last_flush = now
            for f in (self._caller_file, self._assistant_file):
                if f is not None:
                    f.flush()

    def stereo(self) -> npt.NDArray[np.int16]:
        """The stereo recording so far (in-memory recorders)."""
        caller = np.concatenate(self._caller_mem) if self._caller_mem else np.zeros(0, np.int16)
        length = max([caller.size] + [o + p.size for o, p in self._assistant_mem])
        right = np.zeros(length, dtype=np.int16)
        for offset, pcm in self._assistant_mem:
            right[offset:offset + pcm.size] = pcm
        return to_stereo(caller, right)

    def save(self, path: Path) -> Path:
        """Write the stereo WAV (atomically) and drop the raw tracks."""
        if self._caller_file is None or self._assistant_file is None:
            _write(path, self.stereo())
            return path
        for f in (self._caller_file, self._assistant_file):
            f.close()
        assert self.directory is not None
        return assemble(self.directory, self.name, path)


def _track(directory: Path, name: str, side: str) -> Path:
    return directory / f"{name}.{side}.pcm"


def _write(path: Path, stereo: npt.NDArray[np.int16]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    write_wav(tmp, stereo, RATE)
    tmp.replace(path)


def assemble(directory: Path, name: str, path: Path) -> Path:
    """Raw tracks -> stereo WAV at ``path``; the tracks are removed afterwards."""
    tracks = [_track(directory, name, side) for side in ("caller", "assistant")]
    left, right = (np.fromfile(t, dtype="<i2") if t.exists() else np.zeros(0, np.int16)
                   for t in tracks)
    _write(path, to_stereo(left, right))
    for t in tracks:
        t.unlink(missing_ok=True)
    return path


def recover(directory: Path, name: str, path: Path) -> Path | None:
    """After a crash: the recording from the tracks left behind, if any."""
    if not _track(directory, name, "caller").exists():
        return None
    return assemble(directory, name, path)
