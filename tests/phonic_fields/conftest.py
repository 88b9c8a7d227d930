"""Servers with scripted providers whose parts the tests inspect (what the TTS was asked
to say, which language the recogniser was asked for)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from openline.providers.stt.base import RawTranscript, STTCapabilities
from openline.providers.testing import (
    FAKE_VOICES,
    EnergyVAD,
    FakeSTT,
    FakeTTS,
    ScriptedLLM,
    ScriptedReply,
)
from openline.providers.tts.base import Voice
from openline.voice.session import Providers
from tests.conftest import LiveServer, start_server

#: the fakes' English voices, plus a Spanish one
VOICES = (*FAKE_VOICES, Voice("sofia", "Sofia", "Fake voice (tone)", "fake", ("es-ES",), 16000))


class EnglishOnlySTT(FakeSTT):
    """Declares what the bundled Whisper tiny.en declares once loaded: English only."""

    capabilities = STTCapabilities(languages=("en",))


class DetectingSTT(FakeSTT):
    """Scripted turns ``(text, detected language[, clearest language])``; records the
    language each recognition asked for.

    Asked for no language (detection), it reports the turn's detected language; asked for
    one, it "hears" the turn in that language, as Whisper does, most confidently in the
    clearest one (when given). Asked again for the same audio, it answers the same turn."""

    def __init__(self, turns: Sequence[tuple[str, ...]]) -> None:
        super().__init__()
        self.turns = list(turns)
        self.asked: list[str | None] = []
        self._last: tuple[bytes, tuple[str, ...]] | None = None

    def _transcribe_sync(self, audio: npt.NDArray[np.float32], language: str | None,
                         hotwords: list[str]) -> RawTranscript:
        self.asked.append(language)
        key = audio.tobytes()
        if self._last is not None and self._last[0] == key:
            turn = self._last[1]
        else:
            turn = self.turns.pop(0) if self.turns else ("hello", "en")
            self._last = (key, turn)
        text, detected, clearest = turn[0], turn[1], (turn[2] if len(turn) > 2 else None)
        confidence = 1.0 if clearest is None else (0.9 if language == clearest else 0.4)
        return RawTranscript(text, language or detected, confidence)


@dataclass
class Stack:
    server: LiveServer
    providers: Providers

    @property
    def tts(self) -> FakeTTS:
        assert isinstance(self.providers.tts, FakeTTS)
        return self.providers.tts

    @property
    def llm(self) -> ScriptedLLM:
        assert isinstance(self.providers.llm, ScriptedLLM)
        return self.providers.llm


StackFactory = Callable[..., Stack]


@pytest.fixture
def make_stack(tmp_path: Path) -> Iterator[StackFactory]:
    stacks: list[Stack] = []

    def make(replies: Sequence[ScriptedReply | str] = (), *, stt: FakeSTT | None = None,
             **settings: Any) -> Stack:
        providers = Providers(EnergyVAD(), stt or FakeSTT(default="hello"),
                              ScriptedLLM(list(replies)), FakeTTS(VOICES, ms_per_char=20))
        server = start_server(f"sqlite+aiosqlite:///{tmp_path / 'fields.db'}", tmp_path,
                              providers, **settings)
        stacks.append(Stack(server, providers))
        return stacks[-1]

    yield make
    for stack in stacks:
        stack.server.stop()
