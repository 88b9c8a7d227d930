"""Turn detection: VAD probabilities per frame -> speech start / pause / end of turn.

The detector runs on 16 kHz frames of 512 samples (32 ms). It reports:

* ``SPEECH_START`` once ``min_speech_ms`` of speech has accumulated;
* ``PAUSE`` after ``speculate_after_ms`` of silence: the engine may start recognising
  speculatively here, while the endpointing wait is still running (waiting a little
  first skips the short gaps between words, whose cancelled recognitions would still
  occupy the recogniser's thread);
* ``RESUME`` when speech comes back before the wait ends (speculation is discarded);
* ``END`` when silence has lasted ``min_silence_ms``: the user's turn is over.

It also keeps the turn's audio, with ``prebuffer_ms`` of audio before the speech start,
so the recogniser hears the first syllable.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FRAME_SAMPLES = 512
SAMPLE_RATE = 16_000
FRAME_MS = FRAME_SAMPLES * 1000 / SAMPLE_RATE


class TurnEvent(enum.Enum):
    SPEECH_START = "speech_start"
    PAUSE = "pause"
    RESUME = "resume"
    END = "end"


@dataclass(frozen=True)
class TurnSettings:
    """From the agent's / config's VAD settings."""

    threshold: float = 0.38
    min_speech_ms: int = 50
    min_silence_ms: int = 800
    prebuffer_ms: int = 500
    speculate_after_ms: int = 96


class TurnDetector:
    """Stateful per-stream endpointing. Not thread-safe; one per conversation."""

    def __init__(self, settings: TurnSettings) -> None:
        self.s = settings
        # Hysteresis: speech continues until the probability falls well below the threshold.
        self._off = max(0.05, settings.threshold - 0.15)
        pre_frames = max(1, int(settings.prebuffer_ms / FRAME_MS))
        self._pause_frames = max(1, round(
            min(settings.speculate_after_ms, settings.min_silence_ms) / FRAME_MS))
        self._pre: deque[npt.NDArray[np.int16]] = deque(maxlen=pre_frames)
        self._turn: list[npt.NDArray[np.int16]] = []
        self._speech_frames = 0
        self._silence_frames = 0
        self.in_speech = False  # a turn has started (SPEECH_START sent)
        self._voiced = False  # the current frame run is voiced
        self.voiced_ms = 0.0  # voiced time in the current turn
        self._onset_frames = 0  # frames since the turn's first voiced frame, pauses included

    @property
    def speech_ms(self) -> float:
        """Time since the turn's first voiced frame, pauses included."""
        return self._onset_frames * FRAME_MS

    @property
    def silence_ms(self) -> float:
        return self._silence_frames * FRAME_MS

    def feed(self, frame: npt.NDArray[np.int16], probability: float) -> TurnEvent | None:
        """Consume one frame and its speech probability."""
        voiced = probability >= (self._off if self._voiced else self.s.threshold)
        if not self.in_speech:
            self._pre.append(frame)
            self._speech_frames = self._speech_frames + 1 if voiced else 0
            self._voiced = voiced
            if self._speech_frames * FRAME_MS >= max(self.s.min_speech_ms, FRAME_MS):
                self.in_speech = True
                self._turn = list(self._pre)
                self._pre.clear()
                self._silence_frames = 0
                self.voiced_ms = self._speech_frames * FRAME_MS
                self._onset_frames = self._speech_frames
                return TurnEvent.SPEECH_START
            return None
        self._turn.append(frame)
        self._onset_frames += 1
        if voiced:
            self.voiced_ms += FRAME_MS
            was_paused = self._silence_frames >= self._pause_frames
            self._silence_frames = 0
            self._voiced = True
            return TurnEvent.RESUME if was_paused else None
        self._voiced = False
        self._silence_frames += 1
        if self.silence_ms >= self.s.min_silence_ms:
            return TurnEvent.END
        if self._silence_frames == self._pause_frames:
            return TurnEvent.PAUSE
        return None

    def turn_audio(self, *, trim_trailing_silence: bool = True) -> npt.NDArray[np.int16]:
        """The current turn's audio (prebuffer included), optionally without the final pause."""
        frames = self._turn
        if trim_trailing_silence and self._silence_frames:
            keep = max(0, len(frames) - max(0, self._silence_frames - 3))
            frames = frames[:keep]
        if not frames:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(frames)

    def reset(self) -> None:
        """Forget the current turn (after END, or when input is discarded)."""
        self._turn = []
        self._speech_frames = 0
        self._silence_frames = 0
        self.in_speech = False
        self._voiced = False
        self.voiced_ms = 0.0
        self._onset_frames = 0
