"""Smart Turn v3 (BSD-2, Daily) end-of-turn model on onnxruntime.

The model is the ONNX file that ships inside the ``pipecat-ai`` wheel
(``pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx``). It is located through
the installed distribution's file list (``importlib.metadata``): the ``pipecat`` package is
never imported, so none of the framework's dependencies are needed (Openline installs the
wheel with ``--no-deps``; its ``soxr~=1.0.0`` pin conflicts with ours, and it would pull
numba). Nothing is downloaded.

Input: the last 8 s of the turn (left-padded with silence), zero-mean/unit-variance
normalised, as Whisper log-mel features (80 x 800), computed with faster-whisper's feature
extractor, which matches the transformers ``WhisperFeatureExtractor(chunk_length=8)`` the
model was trained with (max abs difference ~1e-5 on our fixtures). Output: P(complete).
About 30-60 ms per call on one core of this machine.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from openline.domain.errors import ProviderUnavailable
from openline.providers.vad.base import EndOfTurnModel

DISTRIBUTION = "pipecat-ai"
MODEL_FILE = "pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx"
WINDOW_SAMPLES = 8 * 16_000
N_FRAMES = 800


def installed_smart_turn_path() -> Path:
    """Path of the Smart Turn v3.2 ONNX file inside the installed ``pipecat-ai`` wheel."""
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError as exc:
        raise ProviderUnavailable(
            f"smart-turn: the {DISTRIBUTION} distribution is not installed "
            f"(pip install --no-deps {DISTRIBUTION})") from exc
    path = Path(str(dist.locate_file(MODEL_FILE)))
    if not path.is_file():
        raise ProviderUnavailable(f"smart-turn: {MODEL_FILE} not found in {DISTRIBUTION}")
    return path


@dataclass(frozen=True)
class SmartTurnOptions:
    """``model_path`` None = the file inside the installed ``pipecat-ai`` distribution."""

    model_path: Path | None = None
    threads: int = 1


def smart_turn_features(audio: npt.NDArray[np.float32], extractor: Any) -> npt.NDArray[np.float32]:
    """The model's input (1 x 80 x 800) for ``audio`` (float32, 16 kHz)."""
    if audio.size >= WINDOW_SAMPLES:
        window = audio[-WINDOW_SAMPLES:]
    else:
        window = np.pad(audio, (WINDOW_SAMPLES - audio.size, 0))
    normalised = (window - window.mean()) / np.sqrt(window.var() + 1e-7)
    features = extractor(normalised.astype(np.float32), padding=0)[:, :N_FRAMES]
    return np.ascontiguousarray(features[None], dtype=np.float32)


class SmartTurnModel(EndOfTurnModel):
    """Smart Turn v3.2 (CPU build). onnxruntime ``run`` is thread-safe; one session is
    shared by every conversation, one call at a time (``max_concurrency`` 1: the model is
    small and this machine has two cores)."""

    name = "smart-turn"

    def __init__(self, options: SmartTurnOptions | None = None) -> None:
        super().__init__()
        self.options = options or SmartTurnOptions()
        self._session: Any = None
        self._extractor: Any = None

    async def _load(self) -> None:
        path = self.options.model_path or installed_smart_turn_path()
        self._session, self._extractor = await self.runner.run(self._create, path)
        await self.runner.run(self._predict_sync, np.zeros(1600, dtype=np.float32))  # warm up

    def _create(self, path: Path) -> tuple[Any, Any]:
        import onnxruntime
        from faster_whisper.feature_extractor import FeatureExtractor

        opts = onnxruntime.SessionOptions()
        opts.intra_op_num_threads = self.options.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3
        session = onnxruntime.InferenceSession(str(path), sess_options=opts,
                                               providers=["CPUExecutionProvider"])
        return session, FeatureExtractor(feature_size=80, chunk_length=8)

    def _predict_sync(self, audio: npt.NDArray[np.float32]) -> float:
        features = smart_turn_features(audio, self._extractor)
        out = self._session.run(None, {"input_features": features})[0]
        return float(np.asarray(out).reshape(-1)[0])

    async def _close(self) -> None:
        self._session = None
        self._extractor = None
