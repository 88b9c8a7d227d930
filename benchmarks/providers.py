"""Measure the embedded providers on this machine.

Run: ``.venv/bin/python benchmarks/providers.py`` (needs espeak-ng for the eSpeak row).
Prints VAD ms/frame, STT seconds per utterance and WER on Piper speech, Piper and eSpeak
time to first audio, and llama.cpp load time, time to first token and tokens/s.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from openline.audio.resample import resample
from openline.providers.llm.base import ChatMessage, GenerationOptions
from openline.providers.llm.llama_cpp import LlamaCppLLM, LlamaCppOptions, ensure_embedded_gguf
from openline.providers.stt.faster_whisper import FasterWhisperSTT
from openline.providers.tts.base import TTS
from openline.providers.tts.espeak import EspeakTTS
from openline.providers.tts.piper import PiperTTS
from openline.providers.vad.silero import SileroVAD

SENTENCES = [
    "Hello, I would like to book a table for two people tomorrow evening.",
    "Can you tell me when the pharmacy opens on Saturday morning?",
    "My order number is seven four two and it has not arrived yet.",
    "I need to change the delivery address to my office downtown.",
    "Thank you very much, that is all I needed today.",
]


def wer(ref: str, hyp: str) -> float:
    r, h = (re.findall(r"[a-z0-9']+", s.lower()) for s in (ref, hyp))
    prev = list(range(len(h) + 1))
    for i, rw in enumerate(r, 1):
        cur = [i] + [0] * len(h)
        for j, hw in enumerate(h, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (rw != hw))
        prev = cur
    return prev[-1] / max(len(r), 1)


async def first_audio_ms(tts: TTS, text: str, voice: str) -> float:
    start = time.perf_counter()
    async for _ in tts.synthesize(text, voice):
        return (time.perf_counter() - start) * 1000
    return float("nan")


async def speech(tts: TTS, text: str, voice: str) -> np.ndarray:
    chunks = [c async for c in tts.synthesize(text, voice)]
    return resample(np.concatenate([c.samples for c in chunks]), chunks[0].sample_rate, 16000)


async def bench_tts_vad_stt() -> None:
    piper = PiperTTS()
    await piper.load()
    print(f"piper load: {piper.metrics.load_s:.2f} s")
    for text in ("Hello.", "Sure, I can help you with that.", SENTENCES[0]):
        ms = statistics.median([await first_audio_ms(piper, text, "joe") for _ in range(3)])
        print(f"piper first audio ({len(text.split())} words): {ms:.0f} ms")
    if shutil.which("espeak-ng"):
        espeak = EspeakTTS()
        await espeak.load()
        ms = await first_audio_ms(espeak, SENTENCES[0], "espeak-en-us")
        print(f"espeak first audio: {ms:.0f} ms ({len(espeak.voices())} voices)")
    audio = [await speech(piper, s, "joe") for s in SENTENCES]

    vad = SileroVAD()
    await vad.load()
    stream = vad.stream()
    joined = np.concatenate(audio)
    start = time.perf_counter()
    probs = stream.probabilities(joined)
    print(f"silero vad: {(time.perf_counter() - start) * 1000 / probs.size:.3f} ms/frame")

    stt = FasterWhisperSTT()
    await stt.load()
    print(f"whisper load: {stt.metrics.load_s:.2f} s")
    await stt.transcribe(audio[0][::-1].copy())  # warm-up
    times, errors = [], []
    for ref, samples in zip(SENTENCES, audio, strict=True):
        result = await stt.transcribe(samples)
        times.append(result.processing_s)
        errors.append(wer(ref, result.text))
        print(f"  {result.processing_s:.2f} s  WER {errors[-1]:.2f}  {result.text!r}")
    print(f"whisper tiny.en: {statistics.mean(times):.2f} s/utterance, "
          f"mean WER {statistics.mean(errors):.3f}")  # fmt: skip


async def bench_llm() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        path = ensure_embedded_gguf(Path(tmp))
        print(f"gguf assemble: {time.perf_counter() - start:.2f} s")
        llm = LlamaCppLLM(LlamaCppOptions(gguf_path=path, seed=1))
        await llm.load()
        print(f"llama.cpp load: {llm.metrics.load_s:.2f} s")
        messages = [ChatMessage.system("You answer calls for a dental clinic."),
                    ChatMessage.user("Hello, can I make an appointment for Monday?")]  # fmt: skip
        for _ in range(3):
            done = await llm.complete(messages, options=GenerationOptions(temperature=0.0))
            print(f"  ttft {done.ttft_s * 1000:.0f} ms  {done.text!r}")  # type: ignore[operator]
        long = await llm.complete(
            [ChatMessage.user("Tell me a long story about a dragon.")],
            options=GenerationOptions(max_tokens=200, stop=(), temperature=0.8),
        )
        gen_s = long.duration_s - (long.ttft_s or 0.0)
        print(f"llama.cpp gemma-3-270m: {(long.completion_tokens or 0) / gen_s:.0f} tokens/s")
        await llm.aclose()


async def main() -> None:
    await bench_tts_vad_stt()
    await bench_llm()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
