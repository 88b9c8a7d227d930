"""Keyword boosting with the real recogniser (Whisper tiny.en) on generated speech, and the
automatic domain vocabulary."""

from __future__ import annotations

import io
import subprocess
import wave

import numpy as np
import pytest

from openline.audio.resample import resample
from openline.providers.stt.faster_whisper import FasterWhisperOptions, FasterWhisperSTT
from openline.voice.tools import RuntimeTool
from openline.voice.vocabulary import domain_vocabulary
from tests.providers.speech_helpers import wer

KEYWORDS = ("billing", "teeth whitening", "availability", "Doctor Nakamura", "periodontal",
            "fluoride", "Delta Dental", "Invisalign", "copay", "root canal", "amoxicillin",
            "deductible", "orthodontist", "extraction")
#: phrases Whisper tiny.en gets wrong unaided in this voice (measured: benchmarks/recognition.py)
DOMAIN = ("I have a billing question about my invoice.", "How much does teeth whitening cost?",
          "What is the copay for a root canal?")


def _espeak(text: str) -> np.ndarray:
    raw = subprocess.run(["espeak-ng", "-v", "en-us", "-s", "165", "--stdout", text],
                         capture_output=True, check=True).stdout
    with wave.open(io.BytesIO(raw)) as w:
        audio = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        return np.asarray(resample(audio, w.getframerate(), 16_000), dtype=np.int16)


@pytest.fixture(scope="module")
async def stt():  # type: ignore[no-untyped-def]
    async with FasterWhisperSTT(FasterWhisperOptions(beam_size=1)) as model:
        yield model


async def test_a_long_keyword_list_still_leaves_room_for_the_transcript(stt) -> None:  # type: ignore[no-untyped-def]
    """Regression: the keyword context used to eat CTranslate2's max_length; with 14
    keywords every recognition came back empty."""
    result = await stt.transcribe(_espeak("Is there parking close to the office?"),
                                  hotwords=KEYWORDS)
    assert wer("Is there parking close to the office?", result.text) <= 0.15, result.text


async def test_boosting_fixes_domain_words_and_keeps_plain_speech(stt) -> None:  # type: ignore[no-untyped-def]
    plain, boosted = [], []
    for text in DOMAIN:
        audio = _espeak(text)
        plain.append(wer(text, (await stt.transcribe(audio)).text))
        boosted.append(wer(text, (await stt.transcribe(audio, hotwords=KEYWORDS)).text))
    assert sum(plain) > 0  # the unaided model really misses these
    assert sum(boosted) <= 0.4 * sum(plain), (plain, boosted)
    text = "Can I speak to someone at the front desk?"
    assert wer(text, (await stt.transcribe(_espeak(text), hotwords=KEYWORDS)).text) <= 0.12


def test_domain_vocabulary_takes_names_enums_tool_words_and_rare_words() -> None:
    tools = [RuntimeTool("book_appointment", "Book a visit with Doctor Patel.", "webhook", {
        "type": "object", "properties": {"service": {"type": "string", "enum": [
            "teeth_whitening", "root canal", 3]}}})]
    terms = domain_vocabulary(
        "You are the receptionist of Bright Smile Dental. We offer periodontal care. "
        "Greet {{customer_name}} politely. Always answer briefly.",
        "Welcome to Bright Smile Dental!", tools)
    assert terms[:2] == ["Bright Smile Dental", "Doctor Patel"]
    for term in ("teeth whitening", "root canal", "book appointment", "receptionist",
                 "periodontal"):
        assert term in terms, (term, terms)
    lowered = [t.lower() for t in terms]
    assert "greet" not in lowered and "always" not in lowered and "customer_name" not in lowered
    assert len(lowered) == len(set(lowered))
    names = [f"Zor{a}{b}" for a in "abcdefghij" for b in "klmnopqrst"]
    assert domain_vocabulary(f"We see {' and '.join(names)}.", limit=5) == names[:5]
    assert domain_vocabulary("Call Zeta Omega Delta Gamma Kappa Sigma now.") == []


def test_the_engine_offers_keywords_or_else_the_agents_own_vocabulary() -> None:
    from openline.providers.testing import EnergyVAD, FakeSTT, FakeTTS, ScriptedLLM
    from openline.voice.clock import run_virtual
    from openline.voice.session import Providers
    from tests.voice.harness import make, play, silence, tone

    async def heard_with(**settings: object) -> list[str]:
        import asyncio

        stt = FakeSTT(default="hello")
        providers = Providers(EnergyVAD(), stt, ScriptedLLM(["Hi."]), FakeTTS(ms_per_char=20))
        conv, _, _ = make(providers=providers, system_prompt=(
            "You are the receptionist of Bright Smile Dental. We offer periodontal care."),
            **settings)
        task = asyncio.create_task(conv.run())
        await play(conv, tone(500))
        await play(conv, silence(600))
        conv.end("user")
        await task
        assert stt.calls
        return stt.calls[-1][2]

    auto = run_virtual(heard_with())
    assert "Bright Smile Dental" in auto and "periodontal" in auto
    assert run_virtual(heard_with(boosted_keywords=("Invisalign",))) == ["Invisalign"]
    assert run_virtual(heard_with(auto_vocabulary=False)) == []


class CountingSTT(FasterWhisperSTT):
    """Counts decoder passes and encoder runs."""

    passes = 0
    encodings = 0

    def _decode(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.passes += 1
        return super()._decode(*args, **kwargs)

    def _encode(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.encodings += 1
        return super()._encode(*args, **kwargs)


async def test_keywords_are_not_tried_on_a_confident_transcript() -> None:
    """One decoder pass when the unaided transcript is confident, two when it is not (a
    domain phrase), and two always when the confidence bar is out of reach."""
    confident = _espeak("Can I speak to someone at the front desk?")
    unsure = _espeak(DOMAIN[1])
    async with CountingSTT(FasterWhisperOptions(beam_size=1)) as stt:
        heard = await stt.transcribe(confident, hotwords=KEYWORDS)
        assert stt.passes == 1 and (heard.confidence or 0) >= 0.85, heard
        boosted = await stt.transcribe(unsure, hotwords=KEYWORDS)
        assert stt.passes == 3 and "whitening" in boosted.text.lower(), boosted
    async with CountingSTT(FasterWhisperOptions(beam_size=1, boost_below_confidence=1.01)
                           ) as always:
        await always.transcribe(confident, hotwords=KEYWORDS)
        assert always.passes == 2


async def test_the_staged_recognition_gives_the_unaided_words_first() -> None:
    """``transcribe_staged``: a confident transcript is final at once (one pass, no keyword
    pass to come); an unsure domain phrase comes back unaided first, then the keyword pass
    (on the same encoding: no second encoder run) brings the keyword, and a plain
    ``transcribe`` of the same audio afterwards reuses that final result."""
    confident = _espeak("Can I speak to someone at the front desk?")
    unsure = _espeak(DOMAIN[1])
    async with CountingSTT(FasterWhisperOptions(beam_size=1)) as stt:
        heard, rest = await stt.transcribe_staged(confident, hotwords=KEYWORDS)
        assert rest is None and stt.passes == 1 and (heard.confidence or 0) >= 0.85
        first, rest = await stt.transcribe_staged(unsure, hotwords=KEYWORDS)
        assert rest is not None and stt.passes == 2
        assert "whitening" not in first.text.lower(), first  # Whisper alone misses it
        final = await rest
        assert stt.passes == 3 and "whitening" in final.text.lower(), final
        assert stt.encodings == 2  # one per utterance
        again = await stt.transcribe(unsure, hotwords=KEYWORDS)
        assert again.reused and again.text == final.text and stt.passes == 3
        plain, none = await stt.transcribe_staged(unsure)  # no keywords: one step
        assert none is None and plain.text == first.text
