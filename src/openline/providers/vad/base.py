"""Voice activity detection contract.

A ``VAD`` holds the (shared, read-only) model; ``VAD.stream()`` makes one ``VADStream`` per
audio stream, owning that stream's recurrent state. A stream consumes fixed frames of
``frame_samples`` mono samples at ``sample_rate`` (16 kHz, 512 samples = 32 ms) and returns
the speech probability of each frame.

``VADStream.process`` is synchronous on purpose: one frame costs well under a millisecond,
less than handing it to a thread would. Call it from the event loop. Turning
probabilities into speech start/end decisions (hysteresis, minimum durations) is the
engine's endpointing job, not the VAD's.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import numpy.typing as npt

from openline.audio.pcm import as_float32
from openline.providers.base import Provider

SAMPLE_RATE = 16000
FRAME_SAMPLES = 512


def frame_to_float32(frame: npt.ArrayLike, expected: int) -> npt.NDArray[np.float32]:
    """Validate one frame and convert int16/float input to float32 in [-1, 1]."""
    arr = np.asarray(frame)
    if arr.ndim != 1 or arr.size != expected:
        raise ValueError(f"VAD frames must be 1-D with {expected} samples, got {arr.shape}")
    return as_float32(arr)


class VADStream(ABC):
    """Per-stream VAD state. Not thread-safe; one per audio stream."""

    sample_rate: int = SAMPLE_RATE
    frame_samples: int = FRAME_SAMPLES

    @abstractmethod
    def process(self, frame: npt.ArrayLike) -> float:
        """Speech probability (0..1) of one frame (int16 or float32, ``frame_samples`` long)."""

    @abstractmethod
    def reset(self) -> None:
        """Forget the stream's history (e.g. after a long pause or a new call leg)."""

    def probabilities(self, audio: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Process a whole buffer frame by frame (trailing partial frame ignored)."""
        arr = np.asarray(audio)
        count = arr.size // self.frame_samples
        out = np.empty(count, dtype=np.float32)
        for i in range(count):
            start = i * self.frame_samples
            out[i] = self.process(arr[start : start + self.frame_samples])
        return out


class VAD(Provider, ABC):
    """A loaded VAD model; cheap to share across conversations."""

    sample_rate: int = SAMPLE_RATE
    frame_samples: int = FRAME_SAMPLES

    def stream(self) -> VADStream:
        """A new independent stream. Requires ``load()`` to have completed."""
        if not self.loaded:
            raise RuntimeError(f"{self.name}: call `await vad.load()` before stream()")
        return self._make_stream()

    @abstractmethod
    def _make_stream(self) -> VADStream:
        """Hook: build a stream over the loaded model."""


class EndOfTurnModel(Provider, ABC):
    """An audio end-of-turn classifier: has the speaker finished their turn?

    ``predict(audio)`` takes the turn's audio so far (mono, 16 kHz, int16 or float32,
    trailing silence included: the model hears the pause) and returns P(complete) in
    [0, 1]. Inference runs on the provider's runner, off the event loop. Deciding *when*
    to commit from that probability and the silence is the engine's job
    (``voice/end_of_turn.py``).
    """

    sample_rate: int = SAMPLE_RATE

    async def predict(self, audio: npt.ArrayLike) -> float:
        """P(the turn is complete) for ``audio``. Raises ``ProviderError`` on failure."""
        samples = as_float32(np.asarray(audio))
        if samples.ndim != 1:
            raise ValueError("end-of-turn models expect mono (1-D) audio")
        return await self._measured("predict", self._predict_sync, samples)

    @abstractmethod
    def _predict_sync(self, audio: npt.NDArray[np.float32]) -> float:
        """Hook: blocking inference on float32 audio in [-1, 1]."""


class TextEndOfTurnModel(Provider, ABC):
    """A text end-of-turn classifier: do the caller's words so far end a turn?

    ``complete(text)`` takes the transcript of the turn so far and returns P(a finished
    turn) in [0, 1]: low for "Could you tell me", high for "What time do you close?". It
    complements the audio model, which judges prosody and cannot tell a complete sentence
    from a complete-sounding fragment. Inference runs on the provider's runner.
    """

    async def complete(self, text: str) -> float:
        """P(the words end a turn). Raises ``ProviderError`` on failure."""
        return await self._measured("complete", self._complete_sync, text)

    @abstractmethod
    def _complete_sync(self, text: str) -> float:
        """Hook: blocking inference."""
