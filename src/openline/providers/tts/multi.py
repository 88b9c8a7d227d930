"""``MultiTTS``: several TTS families behind one ``TTS``, routed by voice id.

Typical use: ``MultiTTS([PiperTTS(...), EspeakTTS()], default_voice_id="joe")``. Children
that fail to load (e.g. no espeak-ng binary) are left out and reported in
``unavailable``; loading fails only if no child loads. On duplicate ids the earlier child
wins.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence

from openline.domain.errors import ProviderError, ProviderUnavailable
from openline.providers.tts.base import TTS, AudioChunk, Voice

log = logging.getLogger(__name__)


class MultiTTS(TTS):
    """Routes ``synthesize`` to the child TTS that owns the voice."""

    name = "multi-tts"

    def __init__(self, children: Sequence[TTS], *, default_voice_id: str | None = None) -> None:
        super().__init__()
        if not children:
            raise ValueError("MultiTTS needs at least one child TTS")
        self.children = list(children)
        self._default = default_voice_id
        self._owner: dict[str, TTS] = {}
        self.unavailable: dict[str, str] = {}

    @property
    def default_voice_id(self) -> str:
        """The configured default voice if offered, else the first voice."""
        if self._default and self._default in self._owner:
            return self._default
        return self.voices()[0].id

    async def _load(self) -> None:
        voices: list[Voice] = []
        for child in self.children:
            try:
                await child.load()
            except ProviderError as exc:
                log.warning("TTS %s unavailable: %s", child.name, exc.message)
                self.unavailable[child.name] = exc.message
                continue
            for voice in child.voices():
                if voice.id not in self._owner:
                    self._owner[voice.id] = child
                    voices.append(voice)
        if not voices:
            raise ProviderUnavailable(f"no TTS could be loaded: {self.unavailable}")
        self._set_voices(voices)

    async def _stream(self, text: str, voice: Voice, speed: float) -> AsyncIterator[AudioChunk]:
        async for chunk in self._owner[voice.id].synthesize(text, voice.id, speed=speed):
            yield chunk

    async def _close(self) -> None:
        for child in self.children:
            await child.aclose()
