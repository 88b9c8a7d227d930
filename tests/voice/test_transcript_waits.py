"""Turns without the end-of-turn model, ended by how their transcript ends (Vapi's
``transcriptionEndpointingPlan``): the rule alone, then the engine on a virtual clock."""

from __future__ import annotations

import pytest

from openline.providers.testing import EnergyVAD, FakeSTT, FakeTTS, ScriptedLLM
from openline.voice.end_of_turn import EndOfTurnDecision, EndOfTurnPolicy, TranscriptWaits
from openline.voice.session import Providers
from openline.voice.turns import TurnSettings
from tests.voice.harness import end_of_turn_ms, make, virtual

WAITS = TranscriptWaits(punctuation_ms=300, no_punctuation_ms=1500, number_ms=700)


@pytest.mark.parametrize(("heard", "wait"), [
    ("What time do you open?", 300), ("Thanks.", 300), ("Great!", 300),
    ("My number is 4 5 7.", 700), ("The code is 12", 700), ("It is two three one", 700),
    ("I would like to", 1500), ("So, um,", 1500), ("", 1500)])
def test_the_wait_follows_the_transcripts_ending(heard: str, wait: int) -> None:
    assert WAITS.wait_ms(heard) == wait


def test_the_decision_waits_by_the_words_and_never_below_the_floor() -> None:
    d = EndOfTurnDecision(None, 400, model_available=True, transcript_waits=WAITS)
    assert d.bound_ms == 1500 and not d.should_end(1400)  # no words yet: the longest wait
    assert d.record_words(d.generation, "Hello there.")
    assert not d.should_end(399) and d.should_end(400)  # 300 for the full stop, floor 400
    stale = d.generation
    d.reset()  # the caller spoke again: the words were about a shorter turn
    assert d.transcript is None and not d.record_words(stale, "Hi.")
    assert not d.should_end(1000)


def test_the_end_of_turn_model_takes_precedence() -> None:
    d = EndOfTurnDecision(EndOfTurnPolicy(), 800, model_available=True,
                          transcript_waits=WAITS)
    assert d.enabled and d.transcript_waits is None


async def _endpointing_ms(heard: str, waits: TranscriptWaits | None) -> float:
    providers = Providers(EnergyVAD(), FakeSTT(default=heard), ScriptedLLM(["Sure."]),
                          FakeTTS(ms_per_char=20))
    conv, log, _ = make(providers=providers, end_of_turn=None, transcript_waits=waits,
                        turn=TurnSettings(min_silence_ms=200, prebuffer_ms=200))
    return await end_of_turn_ms(conv, log)


@virtual
async def test_engine_ends_a_punctuated_turn_soon_and_waits_on_a_number() -> None:
    assert 290 <= await _endpointing_ms("Can I book a table?", WAITS) < 400
    assert 690 <= await _endpointing_ms("My number is 4 5 7.", WAITS) < 800
    assert 1490 <= await _endpointing_ms("I would like to", WAITS) < 1600


@virtual
async def test_engine_without_a_plan_uses_the_fixed_silence() -> None:
    assert 190 <= await _endpointing_ms("My number is 4 5 7.", None) < 300
