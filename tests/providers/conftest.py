"""Real models, loaded once per test session (they are the slow part)."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from openline.providers.llm.llama_cpp import LlamaCppLLM, LlamaCppOptions, ensure_embedded_gguf
from openline.providers.stt.faster_whisper import FasterWhisperSTT
from openline.providers.tts.espeak import EspeakTTS
from openline.providers.tts.piper import PiperTTS
from openline.providers.vad.silero import SileroVAD


@pytest.fixture(scope="session")
async def silero() -> AsyncIterator[SileroVAD]:
    async with SileroVAD() as vad:
        yield vad


@pytest.fixture(scope="session")
async def whisper() -> AsyncIterator[FasterWhisperSTT]:
    async with FasterWhisperSTT() as stt:
        yield stt


@pytest.fixture(scope="session")
async def piper() -> AsyncIterator[PiperTTS]:
    async with PiperTTS() as tts:
        yield tts


@pytest.fixture(scope="session")
async def espeak() -> AsyncIterator[EspeakTTS]:
    if shutil.which("espeak-ng") is None:
        if os.environ.get("CI"):  # a core path: CI installs espeak-ng and must run it
            pytest.fail("espeak-ng is not installed (scripts/test.sh installs it)")
        pytest.skip("espeak-ng binary not installed (apt-get install espeak-ng)")
    async with EspeakTTS() as tts:
        yield tts


@pytest.fixture(scope="session")
def gguf_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_embedded_gguf(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
async def gemma(gguf_path: Path) -> AsyncIterator[LlamaCppLLM]:
    async with LlamaCppLLM(LlamaCppOptions(gguf_path=gguf_path, seed=7)) as llm:
        yield llm
