"""Speech-to-text contract: recognise one utterance at a time.

``STT.transcribe(audio, language=None, hotwords=())`` takes mono float32 samples in
[-1, 1] at 16 kHz and returns a ``Transcript``. Implementations provide the blocking hook
``_transcribe_sync``; the base runs it on the provider's runner and owns timing, error
translation and two latency features the engine relies on:

* **Coalescing**: concurrent calls with identical input share one recognition. The
  engine may start a *speculative* transcription when the endpointing silence wait
  begins, then ask again for the same audio when the turn is confirmed; the second call
  joins (or reuses) the first instead of recognising twice.
* **Cancel safety**: cancelling an ``await transcribe(...)`` never breaks the model. If
  the recognition has not started yet it is dropped; if it is already running in its
  thread it cannot be interrupted, so it completes in the background (occupying the
  runner until then) and its result is kept for an identical follow-up call. The last
  few results are cached by a digest of the audio.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from openline.audio.pcm import as_float32
from openline.providers.base import CallStats, Provider, wrap_error

SAMPLE_RATE = 16000
_T = TypeVar("_T")


@dataclass(frozen=True)
class STTCapabilities:
    """What an STT can do. ``languages`` empty means any language the model knows."""

    streaming: bool = False
    languages: tuple[str, ...] = ()
    hotwords: bool = True


@dataclass(frozen=True)
class Transcript:
    """Result of one recognition.

    ``audio_s`` is the utterance length; ``processing_s`` the recognition wall time
    (0 for a reused result, with ``reused`` set).
    """

    text: str
    language: str
    audio_s: float
    processing_s: float
    confidence: float | None = None
    reused: bool = False


@dataclass(frozen=True)
class RawTranscript:
    """What an implementation's hook returns; the base adds timing."""

    text: str
    language: str
    confidence: float | None = None


#: audio digest, language, hotwords, first words only
_Key = tuple[str, str | None, tuple[str, ...], bool]


class STT(Provider, ABC):
    """Batch speech recogniser with coalescing and a small result cache."""

    sample_rate: int = SAMPLE_RATE
    capabilities: STTCapabilities = STTCapabilities()
    cache_size: int = 8

    def __init__(self, *, max_concurrency: int = 1) -> None:
        super().__init__(max_concurrency=max_concurrency)
        self._inflight: dict[_Key, tuple[asyncio.Task[Transcript], list[int]]] = {}
        self._cache: OrderedDict[_Key, Transcript] = OrderedDict()

    async def transcribe(
        self,
        audio: npt.ArrayLike,
        *,
        language: str | None = None,
        hotwords: Sequence[str] = (),
    ) -> Transcript:
        """Recognise ``audio`` (float32 mono 16 kHz; int16 is converted).

        ``language`` is an ISO 639-1 hint (None = model default / detect). ``hotwords``
        are phrases to bias recognition toward (names, product words: the agent's
        boosted keywords). Raises ``ProviderError`` on failure.
        """
        return await self._shared(audio, language, tuple(hotwords), first_words=False)

    async def first_words(self, audio: npt.ArrayLike, *, language: str | None = None
                          ) -> Transcript:
        """The first few words of a short clip, as soon as the provider can tell them: a
        backchannel look ("uh-huh" or "wait"?) needs no more, and every millisecond of it
        delays the barge-in. By default a plain ``transcribe`` without hotwords."""
        return await self._shared(audio, language, (), first_words=True)

    async def _shared(self, audio: npt.ArrayLike, language: str | None,
                      hotwords: tuple[str, ...], *, first_words: bool) -> Transcript:
        """One recognition per distinct input: coalesced, cached, cancel-safe."""
        await self.ensure_loaded()
        samples = _as_float32(audio)
        key = (_digest(samples), language, hotwords, first_words)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return replace(cached, processing_s=0.0, reused=True)
        entry = self._inflight.get(key)
        if entry is None:
            task = asyncio.create_task(self._recognise(key, samples))
            entry = (task, [0])
            self._inflight[key] = entry
        task, waiters = entry
        waiters[0] += 1
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            waiters[0] -= 1
            if waiters[0] == 0 and not task.done():
                # Nobody wants it any more: drop it if it has not reached a thread yet
                # (a running thread finishes anyway; see module docstring).
                task.cancel()
            raise
        finally:
            if task.done() and self._inflight.get(key) is entry:
                self._inflight.pop(key, None)

    async def _recognise(self, key: _Key, samples: npt.NDArray[np.float32]) -> Transcript:
        _, language, hotwords, first_words = key
        stats = self.metrics.op("first_words" if first_words else "transcribe")
        start = time.perf_counter()
        try:
            raw = await (self._run_hook(stats, start, self._first_words_sync, samples,
                                        language)
                         if first_words else
                         self._run_hook(stats, start, self._transcribe_sync, samples,
                                        language, list(hotwords)))
        finally:
            self._inflight.pop(key, None)
        return self._remember(key, self._result(raw, samples, start, stats))

    async def _run_hook(self, stats: CallStats, start: float,
                        hook: Callable[..., _T], *args: Any) -> _T:
        """A blocking hook on the runner; a failure is counted and raised as a
        ``ProviderError`` (a cancellation passes through)."""
        try:
            return await self.runner.run(hook, *args)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            stats.record(time.perf_counter() - start, failed=True)
            raise wrap_error(self.name, exc) from exc

    def _result(self, raw: RawTranscript, samples: npt.NDArray[np.float32], start: float,
                stats: CallStats | None) -> Transcript:
        """``raw`` as a ``Transcript``; counted in ``stats`` when it is a final one."""
        elapsed = time.perf_counter() - start
        if stats is not None:
            stats.record(elapsed)
        return Transcript(text=raw.text.strip(), language=raw.language,
                          audio_s=samples.size / self.sample_rate, processing_s=elapsed,
                          confidence=raw.confidence)

    def _remember(self, key: _Key, result: Transcript) -> Transcript:
        self._cache[key] = result
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return result

    async def transcribe_staged(
        self, audio: npt.ArrayLike, *, language: str | None = None,
        hotwords: Sequence[str] = (),
    ) -> tuple[Transcript, asyncio.Task[Transcript] | None]:
        """``transcribe`` in two steps where the provider has them: the unaided transcript
        as soon as it exists and, when ``hotwords`` may still change it, the final
        transcript to come (a task: cancel it when no longer wanted). A reply can start on
        the first while the keyword pass runs. Otherwise the final transcript and None."""
        await self.ensure_loaded()
        samples = _as_float32(audio)
        key = (_digest(samples), language, tuple(hotwords), False)
        if not hotwords or key in self._cache or key in self._inflight:
            return await self._shared(samples, language, key[2], first_words=False), None
        stats = self.metrics.op("transcribe")
        start = time.perf_counter()
        first, rest = await self._run_hook(stats, start, self._transcribe_staged_sync,
                                           samples, language, list(hotwords))
        if rest is None:
            return self._remember(key, self._result(first, samples, start, stats)), None

        async def finish(rest: Callable[[], RawTranscript]) -> Transcript:
            raw = await self._run_hook(stats, start, rest)
            return self._remember(key, self._result(raw, samples, start, stats))

        return self._result(first, samples, start, None), asyncio.create_task(finish(rest))

    @abstractmethod
    def _transcribe_sync(
        self, audio: npt.NDArray[np.float32], language: str | None, hotwords: list[str]
    ) -> RawTranscript:
        """Hook: blocking recognition of one utterance (runs on ``self.runner``)."""

    def _transcribe_staged_sync(
        self, audio: npt.NDArray[np.float32], language: str | None, hotwords: list[str]
    ) -> tuple[RawTranscript, Callable[[], RawTranscript] | None]:
        """Hook for ``transcribe_staged``: the first transcript and, if the keywords may
        still change it, the blocking rest of the work (run on ``self.runner`` too). By
        default one step."""
        return self._transcribe_sync(audio, language, hotwords), None

    def _first_words_sync(self, audio: npt.NDArray[np.float32], language: str | None
                          ) -> RawTranscript:
        """Hook for ``first_words``: override where the first words come cheaper than a
        whole transcript."""
        return self._transcribe_sync(audio, language, [])


def _as_float32(audio: npt.ArrayLike) -> npt.NDArray[np.float32]:
    arr = np.asarray(audio)
    if arr.ndim != 1:
        raise ValueError("STT expects mono (1-D) audio")
    return np.ascontiguousarray(as_float32(arr))


def _digest(samples: npt.NDArray[np.float32]) -> str:
    return hashlib.blake2b(samples.tobytes(), digest_size=16).hexdigest()
