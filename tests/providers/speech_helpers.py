"""Helpers for provider tests: word error rate and audio utilities."""

from __future__ import annotations

import re

import numpy as np

from openline.audio.resample import resample
from openline.providers.tts.base import TTS


def normalise_words(text: str) -> list[str]:
    """Lowercase words without punctuation (numbers kept as written)."""
    return re.findall(r"[a-z0-9']+", text.lower().replace("-", " "))


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate: word-level Levenshtein distance / reference length."""
    ref, hyp = normalise_words(reference), normalise_words(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1] / len(ref)


async def speak_16k(tts: TTS, text: str, voice_id: str, speed: float = 1.0) -> np.ndarray:
    """Synthesise ``text`` and return int16 audio at 16 kHz."""
    chunks = [c async for c in tts.synthesize(text, voice_id, speed=speed)]
    assert chunks, "TTS produced no audio"
    rate = chunks[0].sample_rate
    audio = np.concatenate([c.samples for c in chunks])
    return resample(audio, rate, 16000)
