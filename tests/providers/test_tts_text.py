"""Hostile text at the TTS edge: NUL and other control characters through the real Piper and
eSpeak engines (a NUL used to make Piper raise and to cut eSpeak off mid-sentence)."""

from __future__ import annotations

import numpy as np
import pytest

from openline.providers.stt.faster_whisper import FasterWhisperSTT
from openline.providers.tts.base import TTS, clean_text
from openline.providers.tts.espeak import EspeakTTS
from openline.providers.tts.piper import PiperTTS
from tests.providers.speech_helpers import speak_16k, wer

SENTENCE = "Please call me back tomorrow afternoon."
HOSTILE = [
    "Please call me back\x00 tomorrow afternoon.",  # NUL mid-sentence
    "\x00Please call me back tomorrow afternoon.\x00",
    "Please\x07 call\x1b[31m me\x1b[0m back\x08 tomorrow\x7f afternoon.\x1f",
    "Please\u200b call\ufeff me\u202e back\u00ad tomorrow afternoon.\u2066",
    "Please call me back tomorrow\x0b afternoon.\ud800",  # vertical tab, lone surrogate
]


@pytest.mark.parametrize(("raw", "clean"), [
    ("Hello\x00 world.", "Hello world."),
    ("a\x01b\x1fc\x7fd\x9fe", "abcde"),
    ("keep\nnew\tlines", "keep\nnew\tlines"),
    ("one\r\ntwo\rthree\u2028four\u2029five", "one\ntwo\nthree\nfour\nfive"),
    ("\x1b[1;31mred\x1b[0m text", "red text"),
    ("zero\u200bwidth\ufeff bom \u202eoverride\u2066", "zerowidth bom override"),
    ("soft\u00adhyphen", "softhyphen"),
    ("cafe\u0301", "caf\u00e9"),  # NFC
    ("\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645 \U0001f469\u200d\U0001f4bb",  # ZWNJ, ZWJ
     "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645 \U0001f469\u200d\U0001f4bb"),
    ("lone\ud800surrogate", "lonesurrogate"),
    ("\x00\x01\x02", ""),
])
def test_clean_text(raw: str, clean: str) -> None:
    assert clean_text(raw) == clean


async def _duration_s(tts: TTS, text: str, voice: str) -> float:
    return sum([c.duration_s async for c in tts.synthesize(text, voice)])


@pytest.mark.parametrize("text", HOSTILE)
async def test_piper_speaks_text_with_control_characters(
        piper: PiperTTS, whisper: FasterWhisperSTT, text: str) -> None:
    audio = await speak_16k(piper, text, "joe")
    result = await whisper.transcribe(audio.astype(np.float32) / 32768.0)
    assert wer(SENTENCE, result.text) <= 0.15, result.text


@pytest.mark.parametrize("text", HOSTILE)
async def test_espeak_speaks_all_of_it(espeak: EspeakTTS, text: str) -> None:
    """eSpeak stopped reading at a NUL: the speech must be as long as the clean sentence's."""
    clean = await _duration_s(espeak, SENTENCE, "espeak-en-us")
    assert await _duration_s(espeak, text, "espeak-en-us") == pytest.approx(clean, rel=0.1)


async def test_espeak_transcript_keeps_the_words_after_a_nul(
        espeak: EspeakTTS, whisper: FasterWhisperSTT) -> None:
    audio = await speak_16k(espeak, HOSTILE[0], "espeak-en-us")
    result = await whisper.transcribe(audio, hotwords=["tomorrow"])
    assert wer(SENTENCE, result.text) <= 0.3, result.text


@pytest.mark.parametrize("tts_name", ["piper", "espeak"])
async def test_only_control_characters_is_silence_not_an_error(
        request: pytest.FixtureRequest, tts_name: str) -> None:
    tts: TTS = request.getfixturevalue(tts_name)
    voice = "joe" if tts_name == "piper" else "espeak-en-us"
    assert [c async for c in tts.synthesize("\x00\x1b\x07\u200b", voice)] == []
