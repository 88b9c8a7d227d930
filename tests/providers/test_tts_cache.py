"""``CachedTTS``: short texts spoken before are replayed, whole syntheses only, bounded."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from pathlib import Path

import numpy as np
import pytest

from openline.boot.providers import build_tts
from openline.domain.errors import ProviderError
from openline.providers.testing import FakeTTS
from openline.providers.tts.base import TTS, AudioChunk
from openline.providers.tts.cache import CachedTTS, cache_scope
from openline.providers.tts.multi import MultiTTS
from openline.providers.tts.piper import PiperTTS
from openline.settings import Settings


@asynccontextmanager
async def _scoped(scope: str = "project:a") -> AsyncIterator[None]:
    with cache_scope(scope):
        yield


async def _say(tts: TTS, text: str, voice: str = "joe", speed: float = 1.0
               ) -> list[AudioChunk]:
    return [chunk async for chunk in tts.synthesize(text, voice, speed=speed)]


def _same(a: list[AudioChunk], b: list[AudioChunk]) -> bool:
    return len(a) == len(b) and all(
        x.text == y.text and x.sample_rate == y.sample_rate
        and np.array_equal(x.samples, y.samples) for x, y in zip(a, b, strict=True))


async def test_a_text_spoken_again_is_replayed_not_synthesised() -> None:
    inner = FakeTTS()
    async with CachedTTS(inner, max_bytes=1 << 20) as tts, _scoped():
        first = await _say(tts, "Sure, I can help.")
        again = await _say(tts, "Sure, I can help.")
        assert _same(first, again) and len(inner.requests) == 1
        assert tts.metrics.op("cache_hit").calls == 1
        assert tts.metrics.op("synthesize").calls == 2  # both count as this TTS's work
        # another voice, another rate, other words: each a synthesis of its own
        await _say(tts, "Sure, I can help.", voice="ava")
        await _say(tts, "Sure, I can help.", speed=1.2)
        await _say(tts, "Sure, I can help!")
        assert len(inner.requests) == 4
        # the text as it would be spoken: a stray control character changes nothing
        assert _same(await _say(tts, "Sure, I can\x00 help."), first)
        assert len(inner.requests) == 4
        with pytest.raises(ValueError, match="read-only"):
            again[0].samples[0] = 1  # every replay shares the stored samples


async def test_long_texts_and_stopped_or_failed_syntheses_are_not_kept() -> None:
    inner = FakeTTS()
    async with CachedTTS(inner, max_bytes=1 << 20, max_chars=30) as tts, _scoped():
        long = "This sentence is longer than thirty characters."
        await _say(tts, long)
        await _say(tts, long)
        assert len(inner.requests) == 2
        async with aclosing(tts.synthesize("One. Two. Three.", "joe")) as stream:
            async for _ in stream:
                break  # a barge-in: the rest is never synthesised
        assert len(await _say(tts, "One. Two. Three.")) == 3  # all of it, synthesised
        assert len(inner.requests) == 4
        inner.fail_next()
        with pytest.raises(ProviderError):
            await _say(tts, "Hello.")
        assert len(await _say(tts, "Hello.")) == 1 and len(inner.requests) == 6
        await _say(tts, "Hello.")
        assert len(inner.requests) == 6  # now it was whole: kept


async def test_the_least_recently_used_audio_goes_when_the_budget_is_full() -> None:
    inner = FakeTTS(ms_per_char=50.0)  # "Word n." (7 chars): 350 ms = 11,200 bytes
    async with CachedTTS(inner, max_bytes=8 * 11_200) as tts, _scoped():  # room for eight
        for n in range(10):
            await _say(tts, f"Word {n}.")
        assert tts.cached_bytes == 8 * 11_200
        for n in (9, 2):  # the newest and the oldest still there
            await _say(tts, f"Word {n}.")
        assert len(inner.requests) == 10
        await _say(tts, "Word 1.")  # dropped for the newer ones, as was "Word 0."
        assert len(inner.requests) == 11
        # audio over an eighth of the budget is never kept (it would push out the rest)
        await _say(tts, "A longer line of forty-four characters, or so")
        await _say(tts, "A longer line of forty-four characters, or so")
        assert len(inner.requests) == 13


async def test_piper_speaks_a_first_clause_once(piper: PiperTTS) -> None:
    """The embedded voice: the second "Sure," comes back at once, sample for sample."""
    tts = CachedTTS(piper, max_bytes=1 << 20)
    await tts.load()
    voice = piper.voices()[0].id
    before = piper.metrics.op("synthesize").calls
    with cache_scope("project:a"):
        first = await _say(tts, "Sure, let me check.", voice)
        start = time.perf_counter()
        again = await _say(tts, "Sure, let me check.", voice)
    assert time.perf_counter() - start < 0.005
    assert _same(first, again) and first[0].samples.size > 0
    assert piper.metrics.op("synthesize").calls == before + 1


def test_the_cache_is_on_by_default_and_off_at_zero(tmp_path: Path) -> None:
    on = build_tts(Settings(data_dir=tmp_path))
    assert isinstance(on, CachedTTS) and on.max_bytes == 16 << 20
    assert isinstance(on.inner, MultiTTS)
    off = build_tts(Settings(data_dir=tmp_path, tts_cache_mb=0))
    assert isinstance(off, MultiTTS)
    with pytest.raises(ValueError, match="max_bytes"):
        CachedTTS(FakeTTS(), max_bytes=0)


async def test_audio_is_shared_within_one_scope_only() -> None:
    """Another project's call that said the same words gets no faster reply (nothing to
    time), and outside a scope nothing is kept."""
    inner = FakeTTS()
    async with CachedTTS(inner, max_bytes=1 << 20) as tts:
        await _say(tts, "Hi John Smith,")
        await _say(tts, "Hi John Smith,")
        assert len(inner.requests) == 2 and tts.cached_bytes == 0
        with cache_scope("project:a"):
            await _say(tts, "Hi John Smith,")
        with cache_scope("project:b"):
            await _say(tts, "Hi John Smith,")
        assert len(inner.requests) == 4
        with cache_scope("project:a"):
            await _say(tts, "Hi John Smith,")
        assert len(inner.requests) == 4
