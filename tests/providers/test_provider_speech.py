"""TTS -> VAD -> STT with the real embedded models."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest

from openline.audio.noise import NoiseGenerator
from openline.domain.errors import ProviderError
from openline.providers.stt.faster_whisper import FasterWhisperSTT
from openline.providers.tts.base import UnknownVoice
from openline.providers.tts.espeak import EspeakTTS, parse_voice_list
from openline.providers.tts.multi import MultiTTS
from openline.providers.tts.piper import PiperTTS
from openline.providers.vad.silero import SileroVAD
from tests.providers.speech_helpers import speak_16k, wer

SENTENCES = (
    "Hello, I would like to book a table for two people tomorrow evening.",
    "Can you tell me when the pharmacy opens on Saturday morning?",
)


async def test_piper_streams_joe_at_native_rate(piper: PiperTTS) -> None:
    voice = piper.voice("joe")
    assert (voice.family, voice.languages, voice.sample_rate) == ("piper", ("en-US",), 22050)
    start = time.perf_counter()
    chunks = [c async for c in piper.synthesize("Hello there. How are you today?", "joe")]
    assert len(chunks) == 2  # one chunk per sentence
    assert all(c.samples.dtype == np.int16 and c.sample_rate == 22050 for c in chunks)
    total = sum(c.duration_s for c in chunks)
    assert 1.0 < total < 5.0
    assert piper.metrics.op("first_audio").last_s < time.perf_counter() - start
    assert np.abs(np.concatenate([c.samples for c in chunks])).max() > 5000


async def test_speed_changes_duration(piper: PiperTTS) -> None:
    """Speed 0.5 against 1.5 takes about 2.4 times as long. Piper samples its phoneme
    durations, so one clip varies (at 1.5: 1.70-1.78 s, once 2.11 s, which failed a
    single-clip 2x bound): the medians of three clips are compared, with room."""
    import statistics

    text = "This sentence is used to measure speaking rate."

    async def seconds(speed: float) -> float:
        clips = [sum(c.duration_s for c in [c async for c in
                                            piper.synthesize(text, "joe", speed=speed)])
                 for _ in range(3)]
        return statistics.median(clips)

    slow_s, fast_s = await seconds(0.5), await seconds(1.5)
    assert slow_s > 1.8 * fast_s, (slow_s, fast_s)


async def test_unknown_voice_is_a_typed_error(piper: PiperTTS) -> None:
    with pytest.raises(UnknownVoice) as info:
        async for _ in piper.synthesize("hi", "nobody"):
            pass
    assert isinstance(info.value, ProviderError) and info.value.code == "voice_not_found"


async def test_espeak_voices_and_streaming(espeak: EspeakTTS) -> None:
    ids = [v.id for v in espeak.voices()]
    assert "espeak-en-us" in ids and "espeak-en-gb" in ids
    assert all(i == i.lower() and i.startswith("espeak-") for i in ids)
    fast = [c async for c in espeak.synthesize("Testing one two three.", "espeak-en-us", speed=1.5)]
    slow = [c async for c in espeak.synthesize("Testing one two three.", "espeak-en-us", speed=0.5)]
    assert fast[0].sample_rate == 22050
    assert sum(c.duration_s for c in slow) > 1.8 * sum(c.duration_s for c in fast)


def test_parse_espeak_voice_list() -> None:
    listing = (
        "Pty Language       Age/Gender VoiceName          File                 Other Languages\n"
        " 2  en-us           --/M      English_(America)  gmw/en-US            (en 3)\n"
        " 5  xx              --/F      Nowhere            zz/xx\n"
    )
    voices = parse_voice_list(listing, ("en*",))
    assert [(v.id, v.name, v.gender) for v in voices] == [
        ("espeak-en-us", "eSpeak English (America)", "male")
    ]
    assert len(parse_voice_list(listing, None)) == 2


async def test_multi_tts_routes_and_skips_unavailable(piper: PiperTTS) -> None:
    from openline.providers.tts.espeak import EspeakOptions

    multi = MultiTTS([piper, EspeakTTS(EspeakOptions(binary="no-such-espeak"))])
    await multi.load()
    assert multi.default_voice_id == "joe"
    assert "espeak" in multi.unavailable
    chunks = [c async for c in multi.synthesize("Hi.", "joe")]
    assert chunks and chunks[0].sample_rate == 22050


async def test_vad_detects_speech_not_silence_or_noise(piper: PiperTTS, silero: SileroVAD) -> None:
    speech = await speak_16k(piper, SENTENCES[0], "joe")
    silence = np.zeros(16000, dtype=np.int16)
    noise = NoiseGenerator("office", 16000, level=0.03, seed=1).read_int16(16000 * 2)
    audio = np.concatenate([silence, noise, speech, silence])
    stream = silero.stream()
    start = time.perf_counter()
    probs = stream.probabilities(audio)
    per_frame_ms = (time.perf_counter() - start) * 1000 / probs.size
    frame_of = lambda sample: sample // 512  # noqa: E731
    speech_start = frame_of(silence.size + noise.size)
    speech_end = frame_of(silence.size + noise.size + speech.size)
    assert probs[: frame_of(silence.size)].max() < 0.2
    assert np.mean(probs[frame_of(silence.size) : speech_start] > 0.5) < 0.1
    assert np.mean(probs[speech_start:speech_end] > 0.5) > 0.6
    assert probs[speech_end + 10 :].max() < 0.3
    assert per_frame_ms < 2.0, per_frame_ms
    # A fresh stream has its own state: it reproduces the same probabilities.
    again = silero.stream().probabilities(audio)
    assert np.allclose(probs, again, atol=1e-5)


@pytest.mark.parametrize("sentence", SENTENCES)
async def test_whisper_transcribes_piper_speech(
    piper: PiperTTS, whisper: FasterWhisperSTT, sentence: str
) -> None:
    audio = await speak_16k(piper, sentence, "joe")
    result = await whisper.transcribe(audio.astype(np.float32) / 32768.0)
    assert wer(sentence, result.text) <= 0.1, result.text
    assert result.language == "en"
    assert result.audio_s == pytest.approx(audio.size / 16000)
    assert 0 < result.processing_s < 5


async def test_whisper_transcribes_espeak_speech(
    espeak: EspeakTTS, whisper: FasterWhisperSTT
) -> None:
    sentence = "Please call me back tomorrow afternoon."
    audio = await speak_16k(espeak, sentence, "espeak-en-us")
    result = await whisper.transcribe(audio, hotwords=["tomorrow"])
    assert wer(sentence, result.text) <= 0.3, result.text


async def test_speculative_transcription_is_coalesced_and_cancel_safe(
    piper: PiperTTS, whisper: FasterWhisperSTT
) -> None:
    audio = (await speak_16k(piper, "I need to change my delivery address.", "joe")).astype(
        np.float32
    ) / 32768.0
    calls = whisper.metrics.op("transcribe").calls
    # Speculative start, then the confirmed turn asks for the same audio.
    first, second = await asyncio.gather(whisper.transcribe(audio), whisper.transcribe(audio))
    assert first.text == second.text
    assert whisper.metrics.op("transcribe").calls == calls + 1
    reused = await whisper.transcribe(audio)
    assert reused.reused and reused.processing_s == 0.0 and reused.text == first.text
    # Cancel mid-recognition: the model keeps working for the next call.
    other = audio[: audio.size // 2].copy()
    task = asyncio.create_task(whisper.transcribe(other))
    # Cancel once the recognition is in flight. (A fixed 50 ms sleep let a fast machine
    # finish the half-second clip first, and the task was never cancelled.) A cancel
    # before the loop has delivered the thread's result always raises in the task.
    for _ in range(1000):
        if whisper._inflight:
            break
        await asyncio.sleep(0)
    assert whisper._inflight
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    after = await whisper.transcribe(audio[::-1].copy())  # new audio: a real recognition
    assert isinstance(after.text, str)
    assert (await whisper.transcribe(audio)).text == first.text


def test_first_clause_split_for_faster_first_audio() -> None:
    from openline.providers.tts.piper import split_first_clause

    long_first = "Hello, I would like to book a table for two people tomorrow evening. Thanks."
    assert split_first_clause(long_first, 8) == [
        "Hello,",
        "I would like to book a table for two people tomorrow evening. Thanks.",
    ]
    assert split_first_clause("Sure, I can help you with that.", 8) == [
        "Sure, I can help you with that."
    ]
    no_break = "I would like to book a table for two people tomorrow evening."
    assert split_first_clause(no_break, 8) == [no_break]


async def test_long_first_sentence_starts_with_its_first_clause(piper: PiperTTS) -> None:
    text = "Hello, I would like to book a table for two people tomorrow evening."
    chunks = [c async for c in piper.synthesize(text, "joe")]
    assert len(chunks) == 2 and chunks[0].duration_s < chunks[1].duration_s


async def test_first_words_of_a_look_are_short_and_kept_apart(
    espeak: EspeakTTS, whisper: FasterWhisperSTT
) -> None:
    """A backchannel look: half a second of lead-in and the first 288 ms of speech.
    ``first_words`` hears the cue, decodes at most a few tokens where a whole transcript
    of the same clip goes on, and is cached apart from ``transcribe``."""
    from openline.providers.stt.faster_whisper import FIRST_WORDS_TOKENS

    async def clip(text: str, ms: int, speed: float = 1.0) -> np.ndarray:
        speech = (await speak_16k(espeak, text, "espeak-en-us", speed=speed)).astype(np.int16)
        onset = int(np.argmax(np.abs(speech) > 1000))
        return np.concatenate([np.zeros(8000, np.int16), speech[onset:onset + ms * 16]])

    no = await clip("No, that is not what I asked for.", 288)
    assert (await whisper.first_words(no)).text.lower().startswith("no")
    counting = await clip("one two three four five six seven eight nine ten", 1000, 1.5)
    whole = (await whisper.transcribe(counting)).text
    first = (await whisper.first_words(counting)).text
    assert len(first.split()) <= FIRST_WORDS_TOKENS < len(whole.split()), (first, whole)
    assert whole.startswith(first), (first, whole)
    calls = whisper.metrics.op("transcribe").calls
    assert (await whisper.first_words(counting)).reused
    assert not (await whisper.transcribe(no)).reused  # another question, another answer
    assert whisper.metrics.op("transcribe").calls == calls + 1


@pytest.mark.parametrize("threads", [1, 2])
async def test_the_tts_threads_setting_reaches_piper_sessions(tmp_path: Path, threads: int
                                                             ) -> None:
    from openline.boot.providers import build_tts
    from openline.settings import Settings

    tts = build_tts(Settings(data_dir=tmp_path, tts_threads=threads, tts_cache_mb=0))
    assert isinstance(tts, MultiTTS) and isinstance(tts.children[0], PiperTTS)
    piper = tts.children[0]
    await piper.load()
    try:
        session = piper._models["joe"].session
        assert session.get_session_options().intra_op_num_threads == threads
    finally:
        await piper.aclose()


def test_the_model_thread_settings_reach_the_recogniser_and_the_language_model(
        tmp_path: Path) -> None:
    from openline.boot.providers import build_providers
    from openline.providers.llm.llama_cpp import LlamaCppLLM
    from openline.providers.stt.faster_whisper import FasterWhisperSTT
    from openline.settings import Settings

    for threads in (1, 3):
        providers = build_providers(Settings(data_dir=tmp_path, llm_threads=threads,
                                             llm_batch_threads=threads + 1,
                                             stt_threads=threads, llm_seed=threads,
                                             llm_gguf=tmp_path / "model.gguf"))
        assert isinstance(providers.llm, LlamaCppLLM)
        assert isinstance(providers.stt, FasterWhisperSTT)
        assert providers.llm.options.n_threads == threads
        assert providers.llm.options.seed == threads
        assert providers.llm.options.n_threads_batch == threads + 1
        assert providers.stt.options.cpu_threads == threads


@pytest.mark.parametrize(("cpus", "threads"), [(1, 1), (2, 1), (3, 1), (4, 2), (16, 2)])
def test_llm_threads_default_to_half_the_usable_cpus_at_most_two(monkeypatch: pytest.MonkeyPatch,
                                                       cpus: int, threads: int) -> None:
    from openline.boot import providers

    monkeypatch.setattr(providers.os, "sched_getaffinity", lambda pid: set(range(cpus)),
                        raising=False)
    assert providers.llm_thread_count(None) == threads
    assert providers.llm_thread_count(5) == 5


def test_llm_prompt_threads_default_to_the_generating_threads(tmp_path: Path) -> None:
    from openline.boot.providers import build_providers
    from openline.providers.llm.llama_cpp import LlamaCppLLM
    from openline.settings import Settings

    for threads, batch, expected in ((1, None, 1), (2, None, 2), (1, 3, 3)):
        providers = build_providers(Settings(data_dir=tmp_path, llm_threads=threads,
                                             llm_batch_threads=batch,
                                             llm_gguf=tmp_path / "model.gguf"))
        assert isinstance(providers.llm, LlamaCppLLM)
        assert providers.llm.options.batch_threads == expected
