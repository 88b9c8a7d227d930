"""A multilingual conversation: which language the recogniser listens for, and switches.

``default_language``, ``additional_languages`` and ``multilingual_mode`` decide the
language each user turn is recognised in (the service layer has already left out what
the installed recogniser cannot do, with a warning):

* ``request`` (the default): the conversation stays in its current language; it switches
  when the caller names another of the agent's languages ("can we speak Spanish?",
  "en español"), from the next turn on;
* ``auto``: every turn is recognised with language detection, kept to the agent's
  languages (a turn detected as anything else is recognised again in each of them, and
  the most confident transcript is kept);
* ``initial``: the first turn is detected, and its language is kept for the rest.

On a switch the voice becomes the one chosen for that language (``additional_voice_ids``:
``voices``), and the model is told to answer in it. ``LanguageSTT`` wraps the
conversation's recogniser, so every recognition path follows the policy.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt

from openline.domain.languages import LANGUAGE_NAMES, language_name
from openline.providers.stt.base import STT, RawTranscript, Transcript

if TYPE_CHECKING:
    from openline.voice.session import Conversation

Mode = Literal["auto", "request", "initial"]
SWITCH_NOTE = "The caller now speaks {name}. From now on, reply in {name}."


@dataclass(frozen=True)
class LanguageSettings:
    """The languages of one conversation (default first) and a voice per language."""

    languages: tuple[str, ...] = ("en",)
    mode: Mode = "request"
    #: language -> voice id (languages without an entry keep the conversation's voice)
    voices: tuple[tuple[str, str], ...] = ()

    @property
    def multilingual(self) -> bool:
        return len(self.languages) > 1


@dataclass
class LanguagePolicy:
    """The current language, and when it changes (see the module docstring)."""

    settings: LanguageSettings
    current: str = ""
    locked: bool = False  # ``initial``: the first turn decided
    switches: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.current = self.current or self.settings.languages[0]

    def listen_for(self) -> str | None:
        """The language to recognise the next turn in (None: detect it)."""
        mode = self.settings.mode
        if mode == "auto" or (mode == "initial" and not self.locked):
            return None
        return self.current

    def heard(self, text: str, detected: str | None) -> str | None:
        """A recognised turn; returns the new language when the conversation switches."""
        mode, new = self.settings.mode, None
        if mode == "request":
            new = self._requested(text)
        elif detected in self.settings.languages and (mode == "auto" or not self.locked):
            new = detected
        if mode == "initial" and text:
            self.locked = True
        if new is None or new == self.current:
            return None
        self.current = new
        self.switches.append(new)
        return new

    def _requested(self, text: str) -> str | None:
        words = text.casefold()
        named = [code for code in self.settings.languages if code != self.current
                 and any(re.search(rf"(?<!\w){re.escape(n)}(?!\w)", words)
                         for n in LANGUAGE_NAMES.get(code, ()))]
        return named[0] if len(named) == 1 else None


class LanguageSTT(STT):
    """The conversation's recogniser, driven by its ``LanguagePolicy``."""

    name = "language-stt"

    def __init__(self, inner: STT, conv: Conversation, policy: LanguagePolicy) -> None:
        super().__init__()
        self.inner, self.conv, self.policy = inner, conv, policy
        self.capabilities = inner.capabilities

    async def _load(self) -> None:
        await self.inner.load()

    async def transcribe(self, audio: npt.ArrayLike, *, language: str | None = None,
                         hotwords: Sequence[str] = ()) -> Transcript:
        """Recognise in the policy's language (the engine's hint is the default one)."""
        wanted = self.policy.listen_for()
        result = await self.inner.transcribe(audio, language=wanted, hotwords=hotwords)
        if wanted is None and result.language not in self.policy.settings.languages:
            result = await self._best_of_agents_languages(audio, hotwords)
        switched = self.policy.heard(result.text, result.language)
        if switched is not None:
            self._switch(switched)
        return result

    async def transcribe_staged(
        self, audio: npt.ArrayLike, *, language: str | None = None,
        hotwords: Sequence[str] = (),
    ) -> tuple[Transcript, asyncio.Task[Transcript] | None]:
        """One step: the policy judges (and may switch on) the final transcript only."""
        return await self.transcribe(audio, language=language, hotwords=hotwords), None

    async def first_words(self, audio: npt.ArrayLike, *, language: str | None = None
                          ) -> Transcript:
        """A backchannel look, in the language the policy listens for. It never switches
        the language: a look is not a turn."""
        return await self.inner.first_words(audio, language=self.policy.listen_for() or language)

    async def _best_of_agents_languages(self, audio: npt.ArrayLike,
                                        hotwords: Sequence[str]) -> Transcript:
        """Detected as none of the agent's languages (a short or accented turn): recognise
        it in each of them, current first, and keep the most confident transcript."""
        policy = self.policy
        order = [policy.current, *(c for c in policy.settings.languages if c != policy.current)]
        best: Transcript | None = None
        for code in order:
            heard = await self.inner.transcribe(audio, language=code, hotwords=hotwords)
            if best is None or (heard.confidence or 0.0) > (best.confidence or 0.0):
                best = heard
        assert best is not None
        return best

    def _switch(self, code: str) -> None:
        conv = self.conv
        voice = dict(self.policy.settings.voices).get(code, conv.cfg.voice_id)
        # Replaced, never mutated: the service layer's SessionConfig may be shared.
        conv.cfg = dataclasses.replace(conv.cfg, language=code, voice_id=voice)
        conv.chat.add_system(SWITCH_NOTE.format(name=language_name(code)))

    def _transcribe_sync(self, audio: npt.NDArray[np.float32], language: str | None,
                         hotwords: list[str]) -> RawTranscript:
        raise NotImplementedError("LanguageSTT delegates transcribe() to its inner STT")


def attach(conv: Conversation) -> LanguagePolicy | None:
    """Put a multilingual conversation's recogniser under its policy (None: one language)."""
    settings = conv.cfg.languages
    if not settings.multilingual:
        return None
    policy = LanguagePolicy(settings)
    conv.p = dataclasses.replace(conv.p, stt=LanguageSTT(conv.p.stt, conv, policy))
    return policy
