"""Text-to-speech contract.

``TTS.voices()`` lists ``Voice``s with stable lowercase ids; ``TTS.synthesize(text,
voice_id, speed=1.0)`` is an async iterator of ``AudioChunk`` (mono int16 at the voice's
native rate) that yields as soon as each piece of audio exists, typically one chunk per
sentence. Resampling to the wire rate is the caller's job (``openline.audio.resample``).

``speed`` 0.5-1.5 scales the speaking rate (values outside are clamped). Closing or
cancelling the iterator stops synthesis: nothing further is generated, although a chunk
already being computed in a thread finishes first.

Implementations publish their voices with ``_set_voices`` in ``_load`` and provide the
async generator hook ``_stream``; the base owns voice lookup (``UnknownVoice``), speed
clamping, text sanitising (``clean_text``), time to first audio and error translation.
"""

from __future__ import annotations

import re
import time
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from openline.audio.pcm import Int16Array
from openline.domain.errors import ProviderError
from openline.providers.base import BlockingRunner, Provider, wrap_error

MIN_SPEED = 0.5
MAX_SPEED = 1.5

T = TypeVar("T")


class UnknownVoice(ProviderError):
    """The requested voice id is not offered by this TTS."""

    code = "voice_not_found"


@dataclass(frozen=True)
class Voice:
    """A voice a TTS can speak with. ``id`` is lowercase and stable across restarts."""

    id: str
    name: str
    description: str
    family: str
    languages: tuple[str, ...]
    sample_rate: int
    gender: str | None = None


@dataclass(frozen=True)
class AudioChunk:
    """Mono int16 audio at ``sample_rate``; ``text`` is the sentence it speaks, if known."""

    samples: Int16Array
    sample_rate: int
    text: str = ""

    @property
    def duration_s(self) -> float:
        """Length of the chunk in seconds."""
        return self.samples.size / self.sample_rate


#: Format characters that carry meaning in writing (joiners in Persian, Indic scripts, emoji).
_KEPT_FORMAT = frozenset("\u200c\u200d")
#: Terminal escape sequences (``ESC [ ... m`` colours and the like) go whole, not just the ESC.
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
_LINE_BREAKS = str.maketrans({"\r": "\n", "\u2028": "\n", "\u2029": "\n", "\x85": "\n"})


def clean_text(text: str) -> str:
    """Text every engine can speak: NFC-normalised; line and paragraph separators become
    ``\\n``; terminal escape sequences, control characters (other than newline and tab),
    lone surrogates and invisible
    format characters (zero-width space, BOM, bidi overrides, soft hyphen) are removed.

    Without it a NUL made Piper raise (every call with such a welcome failed) and cut
    eSpeak's speech short at the NUL; a lone surrogate cannot even be encoded as UTF-8."""
    text = _ANSI_ESCAPE.sub("", text.replace("\r\n", "\n").translate(_LINE_BREAKS))
    text = unicodedata.normalize("NFC", text)
    return "".join(c for c in text if c in "\n\t" or c in _KEPT_FORMAT
                   or unicodedata.category(c) not in ("Cc", "Cf", "Cs"))


def clamp_speed(speed: float) -> float:
    """Clamp a speaking-rate factor into the supported 0.5-1.5 range."""
    return min(MAX_SPEED, max(MIN_SPEED, float(speed)))


class TTS(Provider, ABC):
    """Base of all TTS providers."""

    def __init__(self, *, max_concurrency: int = 1) -> None:
        super().__init__(max_concurrency=max_concurrency)
        self._voices: dict[str, Voice] = {}

    def _set_voices(self, voices: list[Voice]) -> None:
        """For implementations' ``_load``: publish the discovered voices (first id wins)."""
        found: dict[str, Voice] = {}
        for voice in voices:
            found.setdefault(voice.id, voice)
        self._voices = found

    def voices(self) -> list[Voice]:
        """Voices offered, in a stable order. Call ``load()`` first."""
        if not self.loaded:
            raise RuntimeError(f"{self.name}: call `await tts.load()` before voices()")
        return list(self._voices.values())

    def voice(self, voice_id: str) -> Voice:
        """The voice with ``voice_id``; raises ``UnknownVoice``."""
        try:
            return self._voices[voice_id]
        except KeyError:
            raise UnknownVoice(f"{self.name}: unknown voice {voice_id!r}") from None

    def has_voice(self, voice_id: str) -> bool:
        """Whether ``voice_id`` is offered (after ``load()``)."""
        return voice_id in self._voices

    async def synthesize(
        self, text: str, voice_id: str, *, speed: float = 1.0
    ) -> AsyncGenerator[AudioChunk, None]:
        """Stream speech for ``text`` (cleaned by ``clean_text``); see the module docstring."""
        await self.ensure_loaded()
        voice = self.voice(voice_id)
        text = clean_text(text)
        if not text.strip():
            return
        stats = self.metrics.op("synthesize")
        first = self.metrics.op("first_audio")
        start = time.perf_counter()
        got_first = False
        failed = False
        try:
            async for chunk in self._stream(text, voice, clamp_speed(speed)):
                if chunk.samples.size == 0:
                    continue
                if not got_first:
                    got_first = True
                    first.record(time.perf_counter() - start)
                yield chunk
        except ProviderError:
            failed = True
            raise
        except Exception as exc:
            failed = True
            raise wrap_error(self.name, exc) from exc
        finally:
            stats.record(time.perf_counter() - start, failed=failed)

    @abstractmethod
    def _stream(self, text: str, voice: Voice, speed: float) -> AsyncIterator[AudioChunk]:
        """Hook: async generator of chunks for ``text`` in ``voice`` at ``speed``."""


async def iterate_in_thread(
    runner: BlockingRunner, make_iterator: Callable[[], Iterator[T]]
) -> AsyncIterator[T]:
    """Drive a blocking iterator on ``runner``, one ``next()`` per runner call.

    Stopping early (break, aclose, cancellation) simply stops pulling: the blocking
    iterator is closed after any in-flight ``next()`` has returned.
    """
    iterator = await runner.run(make_iterator)
    sentinel = object()
    try:
        while True:
            item = await runner.run(next, iterator, sentinel)
            if item is sentinel:
                return
            yield item  # type: ignore[misc]
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            # Queue the close behind any next() still running in the pool: closing a
            # generator from here while a thread executes it would raise.
            runner.submit_nowait(close)


def silence_chunk(seconds: float, sample_rate: int) -> AudioChunk:
    """A chunk of digital silence (e.g. a pause between sentences)."""
    return AudioChunk(np.zeros(int(seconds * sample_rate), dtype=np.int16), sample_rate)
