"""Post-call transcripts: re-recognise the caller's turns from the stereo recording.

The recording (``voice/recorder.py``) is a 16 kHz stereo WAV: caller on the left,
assistant on the right, sample 0 at the conversation's start. Each user item's
``started_at``/``duration_ms`` locate its speech; we cut that span (plus a little padding,
because live endpointing trims the edges) and transcribe it again, unhurried, with the
post-call recogniser (beam search, or a larger model when one is configured).

Assistant items keep their text: it is exactly what was synthesised and heard.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from openline.audio.wav import read_wav_bytes
from openline.providers.stt.base import STT

RATE = 16_000
PAD_S = 0.3


@dataclass(frozen=True)
class TurnAudio:
    """Where one stored item sits in the recording."""

    role: str
    live_text: str
    started_at: datetime | None
    duration_ms: float | None


def load_caller_channel(path: Path) -> npt.NDArray[np.int16] | None:
    """The left (caller) channel of a recording, or ``None`` if it is unusable."""
    try:
        samples, rate = read_wav_bytes(path.read_bytes())
    except (OSError, ValueError):
        return None
    if rate != RATE:
        return None
    return samples[:, 0] if samples.ndim == 2 else samples


def segment(caller: npt.NDArray[np.int16], conversation_start: datetime, turn: TurnAudio,
            pad_s: float = PAD_S) -> npt.NDArray[np.int16] | None:
    """The caller's audio for ``turn`` (``None`` when it lies outside the recording)."""
    if turn.started_at is None or not turn.duration_ms:
        return None
    start_s = (turn.started_at - conversation_start).total_seconds() - pad_s
    end_s = start_s + turn.duration_ms / 1000 + 2 * pad_s
    lo, hi = max(0, int(start_s * RATE)), min(caller.size, int(end_s * RATE))
    return caller[lo:hi] if hi - lo >= RATE // 10 else None


async def refine(stt: STT, recording: Path | None, conversation_start: datetime,
                 turns: Sequence[TurnAudio], *, language: str | None = None,
                 hotwords: Sequence[str] = ()) -> list[str]:
    """The post-call text of every turn, in order (live text when audio is unusable)."""
    caller = load_caller_channel(recording) if recording is not None else None
    out: list[str] = []
    for turn in turns:
        audio = segment(caller, conversation_start, turn) \
            if caller is not None and turn.role == "user" else None
        if audio is None:
            out.append(turn.live_text)
            continue
        result = await stt.transcribe(audio, language=language, hotwords=hotwords)
        # An empty re-recognition (noise, clipped span) must not erase what was understood live.
        out.append(result.text or turn.live_text)
    return out
