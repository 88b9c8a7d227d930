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

The speech's onset is where its sound begins, not its first *voiced* frame: the VAD marks
an unvoiced onset late (Silero: "stop" 137 ms, "sorry" 107 ms, "hold" 57 ms after the
sound starts; a vowel 21 ms). At the speech start, the frames right before the first voiced
one that stand out of the background (an "s", an "h") are counted as speech too
(``onset_lead_frames``), so "voiced for ``min_interruption_ms``" and the barge-in looks are
timed from when the caller started to talk. Background noise alone never starts speech: the
VAD still has to hear voice first.

The speech's end is likewise where its sound ends. Silero's probability lags the sound by
a frame or two: on digital silence right after a word it still reads 0.3-0.9 (0.8 frames
on average over 66 espeak-ng lines), so the silence, and every wait timed from it
(speculation, end-of-turn probes, ``min_silence_ms``), started up to 64 ms late. When the
VAD calls a frame silent, the quiet frames right before it that it had still called voiced
(below the background floor of the onset, at most ``END_MAX_LAG_FRAMES``) are counted as
silence too. Only the tail of a voiced run is re-read, and only once the VAD itself has
heard the silence, so quiet speech in a noisy line is never cut into pauses by level alone.
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
#: the most frames an unvoiced onset may add before the first voiced one (160 ms: a long "s")
ONSET_MAX_LEAD_FRAMES = 5
#: a frame belongs to the onset when its RMS is this many times the background's, and at
#: least ONSET_MIN_RMS (about -50 dBFS: digital silence or a quiet line is no onset)
ONSET_NOISE_RATIO = 4.0
ONSET_MIN_RMS = 100.0
#: the most trailing frames of a voiced run that count as silence when they were quiet
#: (the VAD's lag after the sound ends: up to two frames in our recordings)
END_MAX_LAG_FRAMES = 2


def _rms(frame: npt.NDArray[np.int16]) -> float:
    return float(np.sqrt(np.mean(np.square(frame, dtype=np.float64))))


def sound_floor(before: list[npt.NDArray[np.int16]]) -> float:
    """The level (RMS) a frame needs to count as sound, not background, judged on the
    frames ``before`` the first voiced one (oldest first): the level of the quieter older
    frames (a lower quartile: a long onset may reach into them) times
    ``ONSET_NOISE_RATIO``, and at least ``ONSET_MIN_RMS``."""
    older = [_rms(f) for f in before[:-ONSET_MAX_LEAD_FRAMES]]
    background = float(np.percentile(older, 25)) if len(older) >= 3 else 0.0
    return max(ONSET_MIN_RMS, ONSET_NOISE_RATIO * background)


def onset_lead_frames(before: list[npt.NDArray[np.int16]], floor: float) -> int:
    """How many of the frames ``before`` the first voiced one (oldest first) are the
    speech's unvoiced onset: the trailing run at or above ``floor`` (``sound_floor``)."""
    lead = 0
    for level in (_rms(f) for f in reversed(before[-ONSET_MAX_LEAD_FRAMES:])):
        if level < floor:
            break
        lead += 1
    return lead


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
        #: voiced time in the current turn, the unvoiced onset included (module docstring)
        self.voiced_ms = 0.0
        self._onset_frames = 0  # frames since the turn's onset, pauses included
        self._floor = ONSET_MIN_RMS  # the turn's sound floor (``sound_floor``)
        self._quiet_tail = 0  # trailing quiet frames of the current voiced run
        #: on the frame where a silence began: how many frames before it (voiced by the
        #: VAD, but quiet) were counted as silence too (module docstring); else 0
        self.end_lag_frames = 0

    @property
    def speech_ms(self) -> float:
        """Time since the turn's onset (see the module docstring), pauses included."""
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
                before = self._turn[:-self._speech_frames]
                self._floor, self._quiet_tail = sound_floor(before), 0
                sounded = self._speech_frames + onset_lead_frames(before, self._floor)
                self.voiced_ms = sounded * FRAME_MS
                self._onset_frames = sounded
                return TurnEvent.SPEECH_START
            return None
        self._turn.append(frame)
        self._onset_frames += 1
        self.end_lag_frames = 0
        if voiced:
            self.voiced_ms += FRAME_MS
            was_paused = self._silence_frames >= self._pause_frames
            self._silence_frames = 0
            self._voiced = True
            self._quiet_tail = self._quiet_tail + 1 if _rms(frame) < self._floor else 0
            return TurnEvent.RESUME if was_paused else None
        silent_before = self._silence_frames
        if self._voiced:  # the silence begins: the VAD's quiet lag frames belong to it
            self.end_lag_frames = min(self._quiet_tail, END_MAX_LAG_FRAMES)
            self.voiced_ms -= self.end_lag_frames * FRAME_MS
            self._silence_frames += self.end_lag_frames
        self._voiced, self._quiet_tail = False, 0
        self._silence_frames += 1
        if self.silence_ms >= self.s.min_silence_ms:
            return TurnEvent.END
        if silent_before < self._pause_frames <= self._silence_frames:
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
        self._quiet_tail = self.end_lag_frames = 0
