"""Builds the model providers an Openline process talks with, from its settings."""

from __future__ import annotations

import asyncio
import logging
import os
import time

from openline.domain.errors import ProviderUnavailable
from openline.domain.languages import LanguageSupport, tag_language
from openline.providers.llm.base import LLM
from openline.providers.llm.llama_cpp import LlamaCppLLM, LlamaCppOptions, ensure_embedded_gguf
from openline.providers.llm.openai_compat import OpenAICompatLLM, OpenAICompatOptions
from openline.providers.stt.faster_whisper import FasterWhisperOptions, FasterWhisperSTT
from openline.providers.tts.base import TTS
from openline.providers.tts.cache import CachedTTS
from openline.providers.tts.espeak import EspeakTTS
from openline.providers.tts.multi import MultiTTS
from openline.providers.tts.piper import PiperOptions, PiperTTS
from openline.providers.vad.base import EndOfTurnModel, TextEndOfTurnModel
from openline.providers.vad.silero import SileroOptions, SileroVAD
from openline.providers.vad.smart_turn import SmartTurnModel, installed_smart_turn_path
from openline.providers.vad.text_turn import LlamaTextTurnModel, LlamaTextTurnOptions
from openline.services.voices import VoiceInfo
from openline.settings import Settings
from openline.voice.session import Providers

log = logging.getLogger("openline")


def llm_thread_count(configured: int | None) -> int:
    """Threads for the embedded LLM: ``configured``, else half the CPUs this process may
    run on, at least one and at most two. The LLM and the TTS run at once in every reply
    (the first clause is synthesised while the model writes on); on two cores, two LLM
    threads made them wait for each other (docs/benchmarks.md "Embedded concurrency").
    Two was the fixed count before; more was not measured, so bigger machines keep it."""
    if configured is not None:
        return configured
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return min(2, max(1, (cpus or 2) // 2))


def build_llm(settings: Settings) -> LLM:
    """An OpenAI-compatible server when configured, else the embedded llama.cpp model."""
    if settings.llm_base_url:
        return OpenAICompatLLM(OpenAICompatOptions(
            base_url=settings.llm_base_url, model=settings.llm_model,
            api_key=settings.llm_api_key))
    gguf = settings.llm_gguf or ensure_embedded_gguf(settings.ensure_data_dir() / "models")
    return LlamaCppLLM(LlamaCppOptions(gguf_path=gguf, n_parallel=settings.llm_parallel,
                                       prompt_caches=settings.llm_prompt_caches,
                                       n_threads=llm_thread_count(settings.llm_threads),
                                       n_threads_batch=settings.llm_batch_threads,
                                       seed=settings.llm_seed))


def build_turn_model(settings: Settings) -> EndOfTurnModel | None:
    """Smart Turn from the installed ``pipecat-ai`` wheel; None (fixed silence) without it
    or when ``end_of_turn_model`` is off."""
    if not settings.end_of_turn_model:
        return None
    try:
        installed_smart_turn_path()
    except ProviderUnavailable as exc:
        log.warning("%s; end of turn falls back to the fixed VAD silence", exc.message)
        return None
    return SmartTurnModel()


def build_text_turn_model(settings: Settings, audio_model: EndOfTurnModel | None
                          ) -> TextEndOfTurnModel | None:
    """The embedded Gemma as a text end-of-turn model, beside the audio one (without an
    audio model the fixed silence rules and the words are not consulted)."""
    if audio_model is None or not settings.end_of_turn_text_model:
        return None
    try:
        gguf = ensure_embedded_gguf(settings.ensure_data_dir() / "models")
    except ProviderUnavailable as exc:
        log.warning("%s; the end of turn does not consult a text model", exc.message)
        return None
    return LlamaTextTurnModel(LlamaTextTurnOptions(gguf_path=gguf))


def build_tts(settings: Settings) -> TTS:
    """Piper's voices and espeak-ng's, with the cache of short texts unless it is off."""
    tts: TTS = MultiTTS([PiperTTS(PiperOptions(voices_dir=settings.voices_dir,
                                                  threads=settings.tts_threads)),
                         EspeakTTS()], default_voice_id=settings.default_voice)
    if settings.tts_cache_mb:
        tts = CachedTTS(tts, max_bytes=settings.tts_cache_mb << 20)
    return tts


def build_providers(settings: Settings) -> Providers:
    """The embedded stack (or configured replacements); nothing is downloaded."""
    return Providers(
        vad=SileroVAD(SileroOptions()),
        # Greedy decoding: ~100 ms faster per turn than beam 5 here, and the post-call
        # transcript is refined with beam search anyway.
        stt=FasterWhisperSTT(FasterWhisperOptions(model_dir=settings.stt_model_dir,
                                                  beam_size=1, max_concurrency=2,
                                                  cpu_threads=settings.stt_threads)),
        llm=build_llm(settings),
        tts=build_tts(settings),
        turn=(turn := build_turn_model(settings)),
        turn_text=build_text_turn_model(settings, turn),
    )


async def load_all(providers: Providers, *, verbose: bool = True) -> None:
    """Load every model before the first call (a slow first greeting is a known complaint)."""
    for name, provider in (("VAD", providers.vad), ("speech recognition", providers.stt),
                           ("voices", providers.tts), ("language model", providers.llm),
                           ("end-of-turn model", providers.turn),
                           ("text end-of-turn model", providers.turn_text)):
        if provider is None:
            continue
        start = time.perf_counter()
        if verbose:
            print(f"  loading {name}...", end="", flush=True)
        await provider.load()
        if verbose:
            print(f" {time.perf_counter() - start:.1f}s", flush=True)
        await asyncio.sleep(0)


class ProviderVoices:
    """The voices of the loaded TTS, for the REST catalogue and the engine."""

    def __init__(self, providers: Providers, default_voice: str) -> None:
        self.providers = providers
        self.default_voice = default_voice

    def list_voices(self) -> list[VoiceInfo]:
        tts = self.providers.tts
        if not tts.loaded:
            return []
        return [VoiceInfo(v.id, v.name, v.description, v.family, v.languages)
                for v in tts.voices()]

    def installed(self) -> tuple[set[str], str]:
        voices = {v.id for v in self.list_voices()}
        default = self.default_voice if self.default_voice in voices else (
            sorted(voices)[0] if voices else self.default_voice)
        return voices, default


def language_support(providers: Providers) -> LanguageSupport:
    """What the loaded models can do with languages: the recogniser's languages (the
    bundled tiny.en: English only; a multilingual ``OPENLINE_STT_MODEL_DIR``: any) and the
    languages of every installed voice."""
    tts = providers.tts
    voices = tts.voices() if tts.loaded else []
    return LanguageSupport(
        tuple(providers.stt.capabilities.languages),
        {v.id: tuple(dict.fromkeys(tag_language(tag) for tag in v.languages)) for v in voices})
