"""The text end-of-turn model in the decision: a "complete" from the audio model is
overruled when the words do not end a turn. Policy alone, then the engine on a virtual
clock with scripted models (the real model: tests/providers/test_text_turn.py)."""

from __future__ import annotations

from openline.providers.vad.base import TextEndOfTurnModel
from openline.voice.end_of_turn import EndOfTurnDecision, Verdict
from tests.voice.harness import virtual
from tests.voice.test_end_of_turn import POLICY, endpointing_with_words


class ScriptedTextModel(TextEndOfTurnModel):
    """Answers every check with ``prob`` (None: raises, a failing model)."""

    name = "scripted-text-turn"

    def __init__(self, prob: float | None) -> None:
        super().__init__()
        self.prob = prob
        self.asked: list[str] = []

    def _complete_sync(self, text: str) -> float:
        self.asked.append(text)
        if self.prob is None:
            raise RuntimeError("model broke")
        return self.prob


def test_a_low_text_probability_overrules_a_complete_audio_verdict() -> None:
    d = EndOfTurnDecision(POLICY, 800, model_available=True)
    d.probe_due(224)
    d.record(d.generation, 0.97, "I called yesterday.", POLICY.text_threshold / 2)
    assert d.verdict is Verdict.INCOMPLETE and not d.should_end(900)
    d.probe_due(512)
    d.record(d.generation, 0.97, "I called yesterday about my bill.", 0.6)
    assert d.verdict is Verdict.COMPLETE and d.should_end(512)
    d.reset()
    d.probe_due(224)
    d.record(d.generation, 0.97, "What time do you open?", None)  # no text verdict
    assert d.verdict is Verdict.COMPLETE


@virtual
async def test_engine_waits_when_the_words_do_not_end_a_turn() -> None:
    model = ScriptedTextModel(0.003)
    waited = await endpointing_with_words("I called yesterday.", model)
    assert 1150 <= waited < 1300, waited  # the bound, not the first probe
    assert model.asked == ["I called yesterday."]  # once: the second probe reuses it


@virtual
async def test_engine_ends_at_the_first_probe_when_the_words_end_a_turn() -> None:
    model = ScriptedTextModel(0.8)
    waited = await endpointing_with_words("What time do you close?", model)
    assert 190 <= waited < 300, waited
    assert model.asked == ["What time do you close?"]


@virtual
async def test_a_failing_text_model_leaves_the_decision_to_the_audio_model() -> None:
    waited = await endpointing_with_words("I called yesterday.", ScriptedTextModel(None))
    assert 190 <= waited < 300, waited


@virtual
async def test_words_the_rules_call_unfinished_are_not_sent_to_the_text_model() -> None:
    model = ScriptedTextModel(0.9)
    waited = await endpointing_with_words("I would like to book a table for", model)
    assert 1150 <= waited < 1300, waited
    assert model.asked == []
