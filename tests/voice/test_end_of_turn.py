"""The end-of-turn decision: the policy alone, then the engine on a virtual clock with a
scripted model, then the real Smart Turn model on generated speech."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from openline.providers.testing import EnergyVAD, FakeSTT, FakeTTS, ScriptedLLM
from openline.providers.vad.base import EndOfTurnModel, TextEndOfTurnModel
from openline.voice import events as ev
from openline.voice.end_of_turn import EndOfTurnDecision, EndOfTurnPolicy, Verdict
from openline.voice.session import Providers
from openline.voice.turns import TurnSettings
from tests.voice.harness import end_of_turn_ms, make, play, silence, tone, virtual

POLICY = EndOfTurnPolicy(probe_ms=(224, 512), threshold=0.5, incomplete_silence_ms=1200)


class ScriptedTurnModel(EndOfTurnModel):
    """Answers each probe with the next scripted probability (the last one repeats);
    ``None`` in the script raises (a failing model)."""

    name = "scripted-turn"

    def __init__(self, script: list[float | None]) -> None:
        super().__init__()
        self.script = list(script)
        self.heard: list[int] = []  # samples of audio per probe

    def _predict_sync(self, audio: npt.NDArray[np.float32]) -> float:
        self.heard.append(audio.size)
        value = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if value is None:
            raise RuntimeError("model broke")
        return value


# ----- the policy ---------------------------------------------------------------------------
def test_complete_verdict_ends_at_the_first_probe() -> None:
    d = EndOfTurnDecision(POLICY, 800, model_available=True)
    assert d.enabled and d.bound_ms == 1200
    assert not d.probe_due(200) and d.probe_due(224) and not d.probe_due(256)
    assert not d.should_end(224)  # asked, no answer yet: wait (up to the bound)
    assert not d.probe_due(600)  # never a second probe while the first is running
    assert d.record(d.generation, 0.9) and d.verdict is Verdict.COMPLETE
    assert d.should_end(224)


def test_incomplete_verdict_waits_for_the_bound_unless_a_later_probe_says_complete() -> None:
    d = EndOfTurnDecision(POLICY, 800, model_available=True)
    d.probe_due(224)
    d.record(d.generation, 0.2)
    assert not d.should_end(800) and not d.should_end(1199) and d.should_end(1200)
    assert d.probe_due(512)  # the second probe
    d.record(d.generation, 0.7)
    assert d.should_end(512)


def test_a_verdict_for_audio_that_has_since_grown_is_ignored() -> None:
    d = EndOfTurnDecision(POLICY, 800, model_available=True)
    d.probe_due(224)
    stale = d.generation
    d.reset()  # the caller spoke again
    assert not d.record(stale, 0.99) and d.verdict is Verdict.NONE


def test_without_a_model_or_with_a_short_silence_the_fixed_silence_rules() -> None:
    assert not EndOfTurnDecision(POLICY, 800, model_available=False).enabled
    short = EndOfTurnDecision(POLICY, 200, model_available=True)  # 200 <= first probe
    assert not short.enabled and short.bound_ms == 200 and short.should_end(200)
    off = EndOfTurnDecision(None, 800, model_available=True)
    assert not off.enabled and off.should_end(800) and not off.should_end(700)


def test_a_failed_model_falls_back_to_the_fixed_silence() -> None:
    d = EndOfTurnDecision(POLICY, 800, model_available=True)
    d.probe_due(224)
    d.record(d.generation, None)
    assert d.failed and not d.probe_due(512)
    assert not d.should_end(700) and d.should_end(800)


# ----- the engine, virtual clock --------------------------------------------------------------
def _conversation(model: EndOfTurnModel | None, min_silence_ms: int = 800):  # type: ignore[no-untyped-def]
    providers = Providers(EnergyVAD(), FakeSTT(default="hello"), ScriptedLLM(["Hi there."]),
                          FakeTTS(ms_per_char=20), turn=model)
    return make(providers=providers, end_of_turn=POLICY,
                turn=TurnSettings(min_silence_ms=min_silence_ms, prebuffer_ms=200))


async def _endpointing_ms(model: EndOfTurnModel | None, pause_ms: int = 2000,
                          min_silence_ms: int = 800) -> tuple[float, int]:
    """Silence from the last voiced frame to the end of the turn, and the number of turns."""
    conv, log, _ = _conversation(model, min_silence_ms)
    task = __import__("asyncio").create_task(conv.run())
    await play(conv, tone(600))
    spoken_at = conv.clock.monotonic()
    await play(conv, silence(pause_ms))
    conv.end("user")
    await task
    turns = len(log.of(ev.UserFinishedSpeaking))
    if not turns:
        return float("inf"), 0
    return (log.time_of(ev.UserFinishedSpeaking) - spoken_at) * 1000, turns


@virtual
async def test_engine_commits_after_a_short_silence_when_the_model_says_complete() -> None:
    model = ScriptedTurnModel([0.93])
    waited, turns = await _endpointing_ms(model)
    assert turns == 1
    assert 190 <= waited < 300, waited  # the first probe, not the 800 ms silence
    assert len(model.heard) == 1 and model.heard[0] > 600 * 16  # the whole turn + the pause


@virtual
async def test_engine_waits_longer_than_the_fixed_silence_when_the_model_says_incomplete(
        ) -> None:
    model = ScriptedTurnModel([0.1])
    waited, turns = await _endpointing_ms(model)
    assert turns == 1 and 1150 <= waited < 1300, waited
    assert len(model.heard) == 2  # asked at 224 and again at 512 ms


@virtual
async def test_engine_keeps_a_paused_dictation_in_one_turn() -> None:
    """A 900 ms pause mid-sentence (longer than the 800 ms fixed silence) is not an end
    when the model hears an unfinished sentence; the turn ends after the second part."""
    model = ScriptedTurnModel([0.05, 0.05, 0.95])
    conv, log, _ = _conversation(model)
    task = __import__("asyncio").create_task(conv.run())
    await play(conv, tone(500))
    await play(conv, silence(900))
    await play(conv, tone(500))
    await play(conv, silence(600))
    conv.end("user")
    await task
    assert len(log.of(ev.UserFinishedSpeaking)) == 1
    assert len(log.of(ev.UserStartedSpeaking)) == 1


@virtual
async def test_engine_falls_back_to_the_fixed_silence_when_the_model_fails() -> None:
    waited, turns = await _endpointing_ms(ScriptedTurnModel([None]))
    assert turns == 1 and 750 <= waited < 900, waited


@virtual
async def test_engine_without_a_model_uses_the_fixed_silence() -> None:
    waited, turns = await _endpointing_ms(None)
    assert turns == 1 and 750 <= waited < 900, waited


# ----- the real model ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def smart_turn():  # type: ignore[no-untyped-def]
    from openline.providers.vad.smart_turn import SmartTurnModel

    return SmartTurnModel()


def _espeak(text: str) -> np.ndarray:
    import io
    import subprocess
    import wave

    from openline.audio.resample import resample

    raw = subprocess.run(["espeak-ng", "-v", "en-us", "-s", "160", "--stdout", text],
                         capture_output=True, check=True).stdout
    with wave.open(io.BytesIO(raw)) as w:
        audio = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        rate = w.getframerate()
    return np.asarray(resample(audio, rate, 16_000), dtype=np.int16)


COMPLETE = ["What time do you open on Saturday?",
            "I would like to book an appointment for tomorrow."]
INCOMPLETE = "My phone number is four five seven"
#: the int8 model's score for this fragment depends on the CPU: onnxruntime's fused int8
#: kernels saturate on AVX2 without VNNI (0.79 on an AVX2 EPYC, 0.22 with the unfused
#: reference arithmetic); the words overrule such a "complete" (``sounds_unfinished``)
FRAGMENT = "I want to"


@virtual
async def test_smart_turn_hears_finished_and_unfinished_sentences(smart_turn) -> None:  # type: ignore[no-untyped-def]
    """The installed model (from the pipecat-ai wheel) on generated speech + the pause of
    the shipped first probe; a fragment the model may call complete is still incomplete
    once its words count."""
    pause = silence(EndOfTurnPolicy().probe_ms[0])
    done = [await smart_turn.predict(np.concatenate([_espeak(t), pause])) for t in COMPLETE]
    cut = await smart_turn.predict(np.concatenate([_espeak(INCOMPLETE), pause]))
    assert min(done) >= 0.5 > cut, (done, cut)
    fragment = await smart_turn.predict(np.concatenate([_espeak(FRAGMENT), pause]))
    decision = EndOfTurnDecision(POLICY, 800, model_available=True)
    assert decision.record(decision.generation, fragment, FRAGMENT)
    assert decision.verdict is Verdict.INCOMPLETE, fragment


@virtual
async def test_engine_with_the_real_model_answers_a_question_fast_and_waits_on_a_fragment(
        smart_turn) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    async def endpointing(text: str) -> float:
        providers = Providers(EnergyVAD(threshold=0.01), FakeSTT(default="hello"),
                              ScriptedLLM(["Sure."]), FakeTTS(ms_per_char=20), turn=smart_turn)
        conv, log, _ = make(providers=providers, end_of_turn=EndOfTurnPolicy(),
                            turn=TurnSettings(min_silence_ms=800, prebuffer_ms=300))
        task = asyncio.create_task(conv.run())
        await play(conv, _espeak(text))
        spoken_at = conv.clock.monotonic()
        await play(conv, silence(1500))
        conv.end("user")
        await task
        return (log.time_of(ev.UserFinishedSpeaking) - spoken_at) * 1000

    assert await endpointing(COMPLETE[0]) < 400
    assert await endpointing(INCOMPLETE) >= 800


# ----- the words overrule the audio model ----------------------------------------------------
def test_transcripts_that_end_mid_sentence_sound_unfinished() -> None:
    from openline.voice.end_of_turn import sounds_unfinished

    for text in ("I would like to book an appointment for", "My date of birth is March.",
                 "My phone number is 457.", "Can you check whether the", "um",
                 # no sentence ends on these, not even a question Whisper gave a "?"
                 "Can you check whether?", "Is it open on Monday or?",
                 # trailing off, and a value the caller is about to give
                 "I was wondering if...", "My phone number is 457-",
                 "The account is under the name.",
                 # open endings: a second object still to come, "whether" misheard, a
                 # number of one word so far
                 "Could you tell me?", "Can you send us?", "Can you give me",
                 "Can you check weather?",
                 "I'm not sure weather.", "My policy number is Sanran.",
                 "My member ID is 4.", "The code is seven-"):
        assert sounds_unfinished(text), text
    for text in ("What time do you close on Saturdays?", "Thanks, that is all.",
                 "Do you have anything around 7:30?", "", "I need to cancel.",
                 # a question may end on a preposition or on "name"
                 "Who am I talking to?", "What is your name?",
                 # the same words where the sentence is whole
                 "Can you tell me more?", "Could you call me?", "Can you email me?",
                 "What is the weather like?", "Can you check the weather?",
                 "My new number is not working.", "That number is wrong, sorry."):
        assert not sounds_unfinished(text), text


def test_a_complete_verdict_with_an_unfinished_transcript_counts_as_incomplete() -> None:
    d = EndOfTurnDecision(POLICY, 800, model_available=True)
    d.probe_due(224)
    d.record(d.generation, 0.97, "My phone number is four five seven")
    assert d.verdict is Verdict.INCOMPLETE and not d.should_end(900)
    d.probe_due(512)
    d.record(d.generation, 0.97, "What time do you open?")
    assert d.verdict is Verdict.COMPLETE and d.should_end(512)


async def endpointing_with_words(heard: str, text_model: TextEndOfTurnModel | None = None
                                 ) -> float:
    """The audio model says complete; the recogniser hears ``heard`` (and ``text_model``
    judges it). Silence from the last voiced frame to the end of the one turn, in ms."""

    providers = Providers(EnergyVAD(), FakeSTT(default=heard), ScriptedLLM(["Sure."]),
                          FakeTTS(ms_per_char=20), turn=ScriptedTurnModel([0.99]),
                          turn_text=text_model)
    conv, log, _ = make(providers=providers, end_of_turn=POLICY,
                        turn=TurnSettings(min_silence_ms=800, prebuffer_ms=200))
    return await end_of_turn_ms(conv, log, pause_ms=2000)


@virtual
async def test_engine_waits_when_the_speculative_transcript_is_unfinished() -> None:
    """The model says complete, but the recogniser heard "... for": the wait is the bound."""
    waited = await endpointing_with_words("I would like to book a table for")
    assert 1150 <= waited < 1300, waited


# ----- a wait function (LiveKit's waitFunction) --------------------------------------------------
def _linear(x: float) -> float:
    return 200 + 2000 * x


WAITING = EndOfTurnPolicy(probe_ms=(224, 512), wait_function=_linear)


def test_a_wait_function_sets_the_silence_from_the_models_probability() -> None:
    d = EndOfTurnDecision(WAITING, 800, model_available=True)
    assert d.bound_ms == 2200  # its longest wait (x = 1)
    d.record(d.generation, 0.9, "What time do you open?")
    assert d.wait_ms == pytest.approx(400) and not d.should_end(399) and d.should_end(400)
    d.reset()
    d.record(d.generation, 0.99, "I would like to book a table for")  # the words: x = 1
    assert d.wait_ms == pytest.approx(2200)
    d.reset()
    broken = EndOfTurnDecision(EndOfTurnPolicy(wait_function=lambda x: 1 / x), 800,
                               model_available=True)
    broken.record(broken.generation, 1.0)  # x = 0: the function fails, the bound waits
    assert broken.wait_ms == broken.bound_ms


@virtual
async def test_engine_waits_as_long_as_the_wait_function_says() -> None:
    for p, low, high in ((0.2, 1780, 1900), (0.95, 290, 400)):  # 200 + 2000 * (1 - p)
        providers = Providers(EnergyVAD(), FakeSTT(default="hello"), ScriptedLLM(["Hi."]),
                              FakeTTS(ms_per_char=20), turn=ScriptedTurnModel([p]))
        conv, log, _ = make(providers=providers, end_of_turn=WAITING,
                            turn=TurnSettings(min_silence_ms=800, prebuffer_ms=200))
        waited = await end_of_turn_ms(conv, log, pause_ms=3000)
        assert low <= waited < high, (p, waited)
