"""``CachedTTS``: the audio of short texts spoken before, replayed instead of synthesised.

Replies open with the same few words again and again ("Sure,", "Yes,", "Of course,", "Let
me check that for you."), a voice agent's welcome message is the same on every call, and
the reply's first clause goes to synthesis on its own (``voice/sentences.py``): so the
first piece of a reply, the one a caller waits for, is the piece most likely to have been
spoken before. Piper's first audio for it costs 60-100 ms of a core on the critical path;
a cached copy costs nothing, and under load the saved core goes to other calls.

* Keyed by voice id, speaking rate and the text as the engine would speak it
  (``clean_text``): the same key is the same audio request. One rendition is kept; a
  neural voice's small variations between runs are not worth a synthesis.
* Only texts up to ``max_chars`` (clauses and short sentences; long ones rarely repeat)
  whose audio fits an eighth of the budget, and only once their synthesis completed:
  a stream stopped early (barge-in) or failed is not stored.
* Bounded by ``max_bytes`` of samples, least recently used first out.
* Shared within one *scope* only (``cache_scope``: the live engine runs each call in its
  project's), and nothing is kept outside one. A reply would otherwise come back
  measurably faster when another tenant's call had said the same words, and a probe
  of "Hi John Smith," would tell who had called.

Hits and misses count as ``synthesize`` calls of this provider (with their time to first
audio); ``cache_hit`` counts the hits.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from openline.providers.tts.base import TTS, AudioChunk, Voice

#: texts longer than this are synthesised every time (a first clause is a few words)
MAX_CHARS = 80

#: scope, voice id, speaking rate, text
_Key = tuple[str, str, float, str]
_SCOPE: ContextVar[str | None] = ContextVar("openline_tts_cache_scope", default=None)


@contextmanager
def cache_scope(scope: str) -> Iterator[None]:
    """Syntheses in this context (and in the tasks it starts) share cached audio with
    those of the same ``scope`` only, e.g. ``"project:<id>"``."""
    token = _SCOPE.set(scope)
    try:
        yield
    finally:
        _SCOPE.reset(token)


class CachedTTS(TTS):
    """``inner`` with a cache of the audio of short texts (see the module docstring)."""

    def __init__(self, inner: TTS, *, max_bytes: int, max_chars: int = MAX_CHARS) -> None:
        super().__init__()
        if max_bytes < 1:
            raise ValueError("max_bytes must be >= 1 (leave the TTS unwrapped for no cache)")
        self.inner = inner
        self.name = f"{inner.name}+cache"
        self.max_bytes, self.max_chars = max_bytes, max_chars
        self._entries: OrderedDict[_Key, tuple[AudioChunk, ...]] = OrderedDict()
        self._bytes = 0

    @property
    def cached_bytes(self) -> int:
        """Bytes of audio held now."""
        return self._bytes

    async def _load(self) -> None:
        await self.inner.load()
        self._set_voices(self.inner.voices())

    async def _stream(self, text: str, voice: Voice, speed: float) -> AsyncIterator[AudioChunk]:
        scope = _SCOPE.get()
        if scope is None:  # no scope, no sharing
            async for chunk in self.inner.synthesize(text, voice.id, speed=speed):
                yield chunk
            return
        key = (scope, voice.id, round(speed, 3), text)
        cached = self._entries.get(key)
        if cached is not None:
            self._entries.move_to_end(key)
            self.metrics.op("cache_hit").record(0.0)
            for chunk in cached:
                yield chunk
            return
        chunks: list[AudioChunk] = []
        async for chunk in self.inner.synthesize(text, voice.id, speed=speed):
            chunks.append(chunk)
            yield chunk
        # reached only when the stream ran to its end: nothing partial is stored
        if len(text) <= self.max_chars:
            self._store(key, chunks)

    def _store(self, key: _Key, chunks: list[AudioChunk]) -> None:
        size = sum(c.samples.nbytes for c in chunks)
        if not chunks or size > self.max_bytes // 8:
            return
        for chunk in chunks:
            chunk.samples.setflags(write=False)  # shared by every replay from now on
        self._entries[key] = tuple(chunks)
        self._bytes += size
        while self._bytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= sum(c.samples.nbytes for c in evicted)

    async def _close(self) -> None:
        self._entries.clear()
        self._bytes = 0
        await self.inner.aclose()
