"""Silero VAD v6 on onnxruntime, using the model file shipped inside ``faster-whisper``.

No torch and no download: ``faster_whisper/assets/silero_vad_v6.onnx`` is part of that
wheel. The model takes 512 new samples plus the previous frame's last 64 samples as
context, and carries an LSTM state (h, c) between frames; that state lives in the stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from openline.domain.errors import ProviderUnavailable
from openline.providers.vad.base import VAD, VADStream, frame_to_float32

_CONTEXT = 64


def bundled_silero_path() -> Path:
    """Path of the Silero VAD v6 ONNX file inside the installed faster-whisper package."""
    path = Path(str(resources.files("faster_whisper.assets").joinpath("silero_vad_v6.onnx")))
    if not path.is_file():
        raise ProviderUnavailable(f"silero-vad: model not found at {path}")
    return path


@dataclass(frozen=True)
class SileroOptions:
    """Options for ``SileroVAD``: ``model_path`` None means the bundled v6 model."""

    model_path: Path | None = None
    threads: int = 1


class SileroStream(VADStream):
    """One stream's Silero state: LSTM h/c and the 64-sample context."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self.reset()

    def reset(self) -> None:
        """Zero the recurrent state and the context."""
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros(_CONTEXT, dtype=np.float32)

    def process(self, frame: npt.ArrayLike) -> float:
        """Speech probability of one 512-sample 16 kHz frame."""
        samples = frame_to_float32(frame, self.frame_samples)
        model_input = np.concatenate([self._context, samples])[np.newaxis, :]
        prob, self._h, self._c = self._session.run(
            None, {"input": model_input, "h": self._h, "c": self._c}
        )
        self._context = samples[-_CONTEXT:]
        return float(prob.reshape(-1)[0])


class SileroVAD(VAD):
    """Silero VAD v6 (ONNX). One session shared by all streams; onnxruntime ``run`` is
    thread-safe and each stream passes its own state."""

    name = "silero-vad"

    def __init__(self, options: SileroOptions | None = None) -> None:
        super().__init__()
        self.options = options or SileroOptions()
        self._session: Any = None

    async def _load(self) -> None:
        path = self.options.model_path or bundled_silero_path()
        self._session = await self.runner.run(self._create_session, path)

    def _create_session(self, path: Path) -> Any:
        import onnxruntime

        opts = onnxruntime.SessionOptions()
        # One frame is tiny: extra threads only add synchronisation overhead.
        opts.intra_op_num_threads = self.options.threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        return onnxruntime.InferenceSession(
            str(path), sess_options=opts, providers=["CPUExecutionProvider"]
        )

    def _make_stream(self) -> SileroStream:
        return SileroStream(self._session)

    async def _close(self) -> None:
        self._session = None
