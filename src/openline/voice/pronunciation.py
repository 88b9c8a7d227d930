"""The agent's ``pronunciation_dictionary``: words respelled before they reach the TTS.

Each entry ``{word, pronunciation}`` replaces whole occurrences of ``word`` (never part of
a longer word: "Phuket" does not touch "Phukets") in the text given to the synthesizer.
Matching is case-aware:

* an entry whose case matches exactly always wins ("US" -> "you ess" for "US");
* otherwise the entry matches the word in any case ("Phuket" also for "PHUKET",
  "phuket"), except an all-capital entry of two or more letters (an acronym: "US" must
  not change "us"), which only matches exactly.

Only the audio changes: the words the caller is said to have heard (``audio_chunk`` text,
the transcript, the stored item) stay the original ones. ``PronouncingTTS`` wraps the
conversation's TTS (composition, like ``MultiTTS``), so every utterance kind is covered.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator, Iterable, Sequence

from openline.providers.tts.base import TTS, AudioChunk, Voice
from openline.voice.contracts import Providers

#: sentence pieces, as the synthesizers split them (end punctuation kept)
_SENTENCE = re.compile(r"[^.!?]+[.!?]*\s*|[.!?]+\s*")


def _is_acronym(word: str) -> bool:
    letters = [c for c in word if c.isalpha()]
    return len(letters) >= 2 and all(c.isupper() for c in letters)


class Pronunciations:
    """A compiled dictionary: ``apply(text)`` respells the words it knows."""

    def __init__(self, entries: Iterable[tuple[str, str]]) -> None:
        self.exact: dict[str, str] = {}
        self.folded: dict[str, str] = {}
        for word, spoken in entries:
            word = word.strip()
            if not word:
                continue
            self.exact[word] = spoken
            if not _is_acronym(word):
                self.folded.setdefault(word.casefold(), spoken)
        words = sorted(self.exact, key=len, reverse=True)  # the longest entry wins
        self._pattern = re.compile(
            r"(?<!\w)(?:" + "|".join(re.escape(w) for w in words) + r")(?!\w)",
            re.IGNORECASE) if words else None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def apply(self, text: str) -> str:
        """``text`` with every known word replaced by its pronunciation."""
        if self._pattern is None:
            return text
        return self._pattern.sub(self._replace, text)

    def _replace(self, match: re.Match[str]) -> str:
        found = match.group(0)
        spoken = self.exact.get(found)
        if spoken is None:
            spoken = self.folded.get(found.casefold())
        return found if spoken is None else spoken


class PronouncingTTS(TTS):
    """A TTS that respells dictionary words, sentence by sentence, before ``inner`` speaks.

    Chunks keep the *original* sentence as their text (where the inner TTS reports one),
    so what was heard is recorded in the agent's own words."""

    name = "pronouncing-tts"

    def __init__(self, inner: TTS, dictionary: Pronunciations) -> None:
        super().__init__()
        self.inner, self.dictionary = inner, dictionary

    async def _load(self) -> None:
        await self.inner.load()
        self._set_voices(self.inner.voices())

    async def _stream(self, text: str, voice: Voice, speed: float) -> AsyncIterator[AudioChunk]:
        for sentence in _SENTENCE.findall(text) or [text]:
            spoken = self.dictionary.apply(sentence)
            first = True
            async for chunk in self.inner.synthesize(spoken, voice.id, speed=speed):
                if spoken == sentence or not chunk.text:
                    yield chunk  # nothing respelled, or the inner TTS names no words
                    continue
                yield AudioChunk(chunk.samples, chunk.sample_rate,
                                 sentence.strip() if first else "")
                first = False


def with_pronunciations(providers: Providers, entries: Sequence[tuple[str, str]]
                        ) -> Providers:
    """``providers`` themselves when the dictionary is empty, else with the TTS wrapped."""
    dictionary = Pronunciations(entries)
    if not dictionary:
        return providers
    return dataclasses.replace(providers, tts=PronouncingTTS(providers.tts, dictionary))
