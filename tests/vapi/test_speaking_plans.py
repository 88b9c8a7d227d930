"""The Vapi speaking plans a call's engine takes from its assistant (``call_limits``):
``smartEndpointingEnabled`` false ends turns on the silence alone, ``voiceSeconds`` is the
barge-in threshold, the phrase lists are the acknowledgement words and interruption cues
(their effect on a conversation: tests/voice/test_acknowledgements.py)."""

from __future__ import annotations

import pytest

from openline.domain.errors import ValidationFailed
from openline.services.vapi.assistant_map import call_limits, check_limits
from openline.voice.acknowledgements import ACKNOWLEDGEMENT_WORDS, INTERRUPTION_CUES
from openline.voice.config import SessionConfig


def test_the_speaking_plans_map_onto_the_session() -> None:
    fields = call_limits({
        "startSpeakingPlan": {"waitSeconds": 0.6, "smartEndpointingEnabled": False},
        "stopSpeakingPlan": {"voiceSeconds": 0.3, "numWords": 0,
                             "acknowledgementPhrases": ["I got it", "roger"],
                             "interruptionPhrases": ["hold up", "Don't"]}})
    assert fields == {"end_of_turn": None, "min_interruption_ms": 300,
                      "acknowledgement_words": frozenset({"i", "got", "it", "roger"}),
                      "interruption_cues": frozenset({"hold", "up", "dont"})}
    session = SessionConfig(conversation_id="c")
    for key, value in fields.items():
        setattr(session, key, value)  # as the Vapi call's seam applies them
    assert session.end_of_turn is None and session.min_interruption_ms == 300


def test_without_speaking_plans_the_engine_defaults_stay() -> None:
    assert call_limits({}) == {}
    fields = call_limits({"startSpeakingPlan": {"smartEndpointingEnabled": "livekit"},
                          "stopSpeakingPlan": {}})
    assert fields == {}  # the end-of-turn model stays on
    session = SessionConfig(conversation_id="c")
    assert session.end_of_turn is not None
    assert session.acknowledgement_words == ACKNOWLEDGEMENT_WORDS
    assert session.interruption_cues == INTERRUPTION_CUES


@pytest.mark.parametrize(("plans", "key"), [
    ({"stopSpeakingPlan": {"voiceSeconds": 0.9}}, "stopSpeakingPlan.voiceSeconds"),
    ({"stopSpeakingPlan": {"voiceSeconds": "0.2"}}, "stopSpeakingPlan.voiceSeconds"),
    ({"startSpeakingPlan": {"smartEndpointingEnabled": "yes"}},
     "startSpeakingPlan.smartEndpointingEnabled"),
    ({"stopSpeakingPlan": {"acknowledgementPhrases": "okay"}},
     "stopSpeakingPlan.acknowledgementPhrases"),
    ({"stopSpeakingPlan": {"interruptionPhrases": ["stop", 3]}},
     "stopSpeakingPlan.interruptionPhrases"),
])
def test_speaking_plans_vapi_refuses_are_refused(plans: dict[str, object], key: str) -> None:
    with pytest.raises(ValidationFailed) as failed:
        check_limits(plans)  # a call's assistant; check_body runs the same checks on storing
    assert list(failed.value.param_errors) == [key]
