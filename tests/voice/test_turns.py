"""The turn detector on its own: frames and probabilities in, turn events out."""

from __future__ import annotations

import numpy as np

from openline.voice.turns import (
    FRAME_MS,
    FRAME_SAMPLES,
    ONSET_MAX_LEAD_FRAMES,
    TurnDetector,
    TurnEvent,
    TurnSettings,
)

SETTINGS = TurnSettings(threshold=0.5, min_speech_ms=64, min_silence_ms=320, prebuffer_ms=96,
                        speculate_after_ms=96)


def _frame(value: int) -> np.ndarray:
    return np.full(FRAME_SAMPLES, value, dtype=np.int16)


def _feed(detector: TurnDetector, probabilities: list[float], value: int | None = None
          ) -> list[TurnEvent | None]:
    """Frames at ``value``; by default speech sounds (1000) and silence is quiet (1)."""
    return [detector.feed(_frame(value if value is not None else 1000 if p >= 0.5 else 1), p)
            for p in probabilities]


def test_speech_starts_after_min_speech_ms() -> None:
    d = TurnDetector(SETTINGS)
    assert _feed(d, [0.0, 0.9]) == [None, None]  # 32 ms of speech: not yet
    assert _feed(d, [0.9]) == [TurnEvent.SPEECH_START]
    assert d.in_speech and d.voiced_ms == 2 * FRAME_MS


def test_a_voiced_blip_shorter_than_min_speech_is_ignored() -> None:
    d = TurnDetector(SETTINGS)
    assert _feed(d, [0.9, 0.0, 0.9, 0.0] * 5) == [None] * 20
    assert not d.in_speech


def test_pause_resume_and_end() -> None:
    d = TurnDetector(SETTINGS)
    _feed(d, [0.9] * 5)
    # 96 ms of silence: a pause (the engine speculates), then speech again: resume.
    assert _feed(d, [0.0] * 3) == [None, None, TurnEvent.PAUSE]
    assert _feed(d, [0.9]) == [TurnEvent.RESUME]
    # A gap shorter than the pause is neither.
    assert _feed(d, [0.0, 0.0, 0.9]) == [None, None, None]
    events = _feed(d, [0.0] * 10)  # 320 ms of silence ends the turn
    assert events[2] is TurnEvent.PAUSE and events[-1] is TurnEvent.END
    assert events.count(TurnEvent.END) == 1 and events[:-1].count(None) == 8


def test_hysteresis_keeps_speech_through_a_dip() -> None:
    d = TurnDetector(SETTINGS)
    _feed(d, [0.9] * 3)
    # Below the threshold (0.5) but above threshold - 0.15: still speech once voiced.
    assert _feed(d, [0.4] * 10) == [None] * 10
    assert d.silence_ms == 0
    d.reset()
    assert _feed(d, [0.4] * 5) == [None] * 5  # not enough to start speech
    assert not d.in_speech


def test_turn_audio_has_the_prebuffer_and_no_trailing_silence() -> None:
    d = TurnDetector(SETTINGS)
    _feed(d, [0.0] * 5, value=7)  # before the speech: the prebuffer keeps the last 3 frames
    _feed(d, [0.9] * 4, value=1000)
    _feed(d, [0.0] * 6, value=0)
    audio = d.turn_audio()
    frames = audio.reshape(-1, FRAME_SAMPLES)[:, 0].tolist()
    # prebuffer (1 of the quiet frames + the 2 voiced that started speech), the other
    # voiced frames, then 3 of the 6 silent frames (a little tail is kept).
    assert frames == [7, 1000, 1000, 1000, 1000, 0, 0, 0]
    assert d.turn_audio(trim_trailing_silence=False).size == 11 * FRAME_SAMPLES


def test_reset_forgets_the_turn() -> None:
    d = TurnDetector(SETTINGS)
    _feed(d, [0.9] * 4)
    d.reset()
    assert not d.in_speech and d.voiced_ms == 0 and d.turn_audio().size == 0
    assert _feed(d, [0.9, 0.9]) == [None, TurnEvent.SPEECH_START]


# ----- the unvoiced onset -------------------------------------------------------------------
ONSET = TurnSettings(threshold=0.5, min_speech_ms=64, min_silence_ms=320, prebuffer_ms=500)


def _feed_levels(detector: TurnDetector, frames: list[tuple[int, float]]
                 ) -> list[TurnEvent | None]:
    return [detector.feed(_frame(level), p) for level, p in frames]


def test_an_unvoiced_onset_before_the_first_voiced_frame_counts_as_speech() -> None:
    """An "s" the VAD does not call voice (3 frames at 1,500 over a quiet line) is part of
    the speech: the time voiced and the time since the onset include it."""
    d = TurnDetector(ONSET)
    quiet, fricative, vowel = (20, 0.0), (1500, 0.1), (3000, 0.9)
    events = _feed_levels(d, [quiet] * 8 + [fricative] * 3 + [vowel] * 2)
    assert events[-1] is TurnEvent.SPEECH_START
    assert d.voiced_ms == 5 * FRAME_MS and d.speech_ms == 5 * FRAME_MS


def test_an_onset_counts_at_most_its_bound_and_never_the_background() -> None:
    long_s = TurnDetector(ONSET)  # 9 loud unvoiced frames: only the last 5 count
    _feed_levels(long_s, [(20, 0.0)] * 6 + [(1500, 0.1)] * 9 + [(3000, 0.9)] * 2)
    assert long_s.voiced_ms == (ONSET_MAX_LEAD_FRAMES + 2) * FRAME_MS
    noisy = TurnDetector(ONSET)  # a line as loud as the "s": nothing stands out of it
    _feed_levels(noisy, [(1500, 0.0)] * 11 + [(3000, 0.9)] * 2)
    assert noisy.voiced_ms == 2 * FRAME_MS
    silent = TurnDetector(ONSET)  # digital silence right before the voice: no onset
    _feed_levels(silent, [(0, 0.0)] * 11 + [(3000, 0.9)] * 2)
    assert silent.voiced_ms == 2 * FRAME_MS


# ----- the speech's end: the VAD's lag -------------------------------------------------------
def test_quiet_frames_the_vad_still_calls_voiced_belong_to_the_silence() -> None:
    """Silero reads 0.3-0.9 on the first frame or two of digital silence after a word:
    those frames count as silence once the VAD hears it, so the pause (and every wait
    timed from it) starts where the sound ended."""
    d = TurnDetector(ONSET)
    _feed_levels(d, [(20, 0.0)] * 6 + [(3000, 0.9)] * 4)
    assert _feed_levels(d, [(0, 0.7), (0, 0.4)]) == [None, None]  # (off: 0.35)
    assert d.silence_ms == 0  # the VAD has not heard the silence yet
    assert _feed_levels(d, [(0, 0.1)]) == [TurnEvent.PAUSE]  # 3 frames = 96 ms of silence
    assert d.end_lag_frames == 2 and d.silence_ms == 3 * FRAME_MS
    assert d.voiced_ms == 4 * FRAME_MS  # the lag frames were not speech either
    assert _feed_levels(d, [(0, 0.0)]) == [None] and d.end_lag_frames == 0


def test_at_most_two_lag_frames_and_only_at_the_end_of_a_voiced_run() -> None:
    long_tail = TurnDetector(ONSET)  # 4 quiet "voiced" frames: only the last 2 are lag
    _feed_levels(long_tail, [(20, 0.0)] * 6 + [(3000, 0.9)] * 3 + [(0, 0.8)] * 4 + [(0, 0.0)])
    assert long_tail.end_lag_frames == 2 and long_tail.silence_ms == 3 * FRAME_MS
    inside = TurnDetector(ONSET)  # a quiet frame inside the speech (a stop's closure)
    _feed_levels(inside, [(20, 0.0)] * 6 + [(3000, 0.9)] * 3 + [(0, 0.8)] + [(3000, 0.9)])
    _feed_levels(inside, [(0, 0.0)])
    assert inside.end_lag_frames == 0 and inside.silence_ms == FRAME_MS


def test_the_lag_is_judged_against_the_lines_background() -> None:
    """Over a noisy line (level 400) a tail at 900 does not stand out (< 4x): lag; a tail
    at 3,000 does: speech, and the silence starts after it."""
    noisy = TurnDetector(ONSET)
    _feed_levels(noisy, [(400, 0.0)] * 8 + [(3000, 0.9)] * 3 + [(900, 0.6), (400, 0.1)])
    assert noisy.end_lag_frames == 1 and noisy.silence_ms == 2 * FRAME_MS
    loud = TurnDetector(ONSET)
    _feed_levels(loud, [(400, 0.0)] * 8 + [(3000, 0.9)] * 3 + [(3000, 0.6), (400, 0.1)])
    assert loud.end_lag_frames == 0 and loud.silence_ms == FRAME_MS
