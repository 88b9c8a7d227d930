"""The Vapi speaking plans a call's engine takes from its assistant (``call_limits``):
``smartEndpointingEnabled`` false ends turns on the silence alone, ``voiceSeconds`` is the
barge-in threshold, the phrase lists are the acknowledgement words and interruption cues
(their effect on a conversation: tests/voice/test_acknowledgements.py)."""

from __future__ import annotations

import pytest

from openline.domain.errors import ValidationFailed
from openline.services.vapi.assistant_map import call_limits, check_limits
from openline.services.vapi.speaking_plans import LIVEKIT_WAIT, wait_function
from openline.voice.acknowledgements import ACKNOWLEDGEMENT_WORDS, INTERRUPTION_CUES
from openline.voice.config import SessionConfig
from openline.voice.end_of_turn import TranscriptWaits


def test_the_speaking_plans_map_onto_the_session() -> None:
    fields = call_limits({
        "startSpeakingPlan": {"waitSeconds": 0.6, "smartEndpointingEnabled": False},
        "stopSpeakingPlan": {"voiceSeconds": 0.3, "numWords": 0, "backoffSeconds": 1.5,
                             "acknowledgementPhrases": ["I got it", "roger"],
                             "interruptionPhrases": ["hold up", "Don't"]}})
    assert fields == {"end_of_turn": None, "min_interruption_ms": 300,
                      "interruption_backoff_ms": 1500,
                      "acknowledgement_words": frozenset({"i", "got", "it", "roger"}),
                      "interruption_cues": frozenset({"hold", "up", "dont"})}
    session = SessionConfig(conversation_id="c")
    for key, value in fields.items():
        setattr(session, key, value)  # as the Vapi call's seam applies them
    assert session.end_of_turn is None and session.min_interruption_ms == 300


def test_the_transcription_plan_sets_the_waits_of_turns_without_the_model() -> None:
    plan = {"onPunctuationSeconds": 0.2, "onNumberSeconds": 0.9}  # the third: Vapi's default
    fields = call_limits({"startSpeakingPlan": {"smartEndpointingEnabled": False,
                                                "transcriptionEndpointingPlan": plan}})
    assert fields == {"end_of_turn": None, "transcript_waits": TranscriptWaits(
        punctuation_ms=200, no_punctuation_ms=1500, number_ms=900)}
    # With the end-of-turn model on, Vapi does not use it either ("only used if
    # smartEndpointingPlan is not set"): nothing changes.
    assert call_limits({"startSpeakingPlan": {"transcriptionEndpointingPlan": plan}}) == {}


def test_custom_endpointing_rules_become_the_sessions_rules() -> None:
    fields = call_limits({"startSpeakingPlan": {"customEndpointingRules": [
        {"type": "assistant", "regex": "account number", "timeoutSeconds": 3,
         "regexOptions": [{"type": "ignore-case", "enabled": True},
                          {"type": "whole-word", "enabled": False}]},
        {"type": "both", "assistantRegex": "interested", "customerRegex": "yes|no",
         "customerRegexOptions": [{"type": "whole-word", "enabled": True}],
         "timeoutSeconds": 0.2}]}})
    account, yes_no = fields["endpointing_rules"]
    assert account.timeout_ms == 3000 and account.customer is None
    assert account.assistant is not None and account.assistant.search("ACCOUNT NUMBER")
    assert yes_no.timeout_ms == 200 and yes_no.customer is not None
    assert yes_no.customer.search("yes") and not yes_no.customer.search("eyes")
    assert list(fields) == ["endpointing_rules"]  # the end-of-turn model stays on beside


def test_livekit_wait_functions_are_evaluated_like_mathjs() -> None:
    livekit = wait_function(LIVEKIT_WAIT)
    assert livekit(0.0) == pytest.approx(20)
    assert livekit(0.5) == pytest.approx(20 + 500 * 0.5 ** 0.5 + 2500 * 0.125)  # ^ binds tight
    assert livekit(1.0) == pytest.approx(3020)
    assert wait_function("4000 * (1 - cos(pi * x))")(1.0) == pytest.approx(8000)
    for bad in ("x +", "__import__('os').system('true')", "foo(x)", "y * 2", "x.real"):
        with pytest.raises(ValueError):
            wait_function(bad)


def test_the_smart_endpointing_plan_picks_the_wait() -> None:
    fields = call_limits({"startSpeakingPlan": {"smartEndpointingPlan": {
        "provider": "livekit", "waitFunction": "100 + 1000 * x"}}})
    policy = fields["end_of_turn"]
    assert policy.wait_function is not None and policy.wait_function(0.5) == 600
    default = call_limits({"startSpeakingPlan": {"smartEndpointingPlan": {
        "provider": "livekit"}}})["end_of_turn"]
    assert default.wait_function(1.0) == pytest.approx(3020)  # LiveKit's default function
    # "vapi": the end-of-turn model as configured, even with the deprecated flag off.
    assert call_limits({"startSpeakingPlan": {"smartEndpointingEnabled": False,
                                              "smartEndpointingPlan": {"provider": "vapi"}}}
                       ) == {}


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
    ({"stopSpeakingPlan": {"backoffSeconds": 11}}, "stopSpeakingPlan.backoffSeconds"),
    ({"startSpeakingPlan": {"smartEndpointingPlan": {"provider": "deepgram"}}},
     "startSpeakingPlan.smartEndpointingPlan.provider"),
    ({"startSpeakingPlan": {"smartEndpointingPlan": {"provider": "custom-endpointing-model"}}},
     "startSpeakingPlan.smartEndpointingPlan.provider"),
    ({"startSpeakingPlan": {"smartEndpointingPlan": {"provider": "livekit",
                                                     "waitFunction": "20 + sqr(x)"}}},
     "startSpeakingPlan.smartEndpointingPlan.waitFunction"),
    ({"startSpeakingPlan": {"customEndpointingRules": {"type": "customer"}}},
     "startSpeakingPlan.customEndpointingRules"),
    ({"startSpeakingPlan": {"customEndpointingRules": [{"type": "caller", "regex": "x",
                                                        "timeoutSeconds": 1}]}},
     "startSpeakingPlan.customEndpointingRules[0].type"),
    ({"startSpeakingPlan": {"customEndpointingRules": [{"type": "customer", "regex": "x",
                                                        "timeoutSeconds": 16}]}},
     "startSpeakingPlan.customEndpointingRules[0].timeoutSeconds"),
    ({"startSpeakingPlan": {"customEndpointingRules": [
        {"type": "customer", "regex": "x", "timeoutSeconds": 1},
        {"type": "both", "assistantRegex": "a", "customerRegex": "(b", "timeoutSeconds": 1}]}},
     "startSpeakingPlan.customEndpointingRules[1].customerRegex"),
    ({"startSpeakingPlan": {"customEndpointingRules": [
        {"type": "assistant", "regex": "x", "timeoutSeconds": 1,
         "regexOptions": [{"type": "global", "enabled": True}]}]}},
     "startSpeakingPlan.customEndpointingRules[0].regexOptions"),
    ({"startSpeakingPlan": {"transcriptionEndpointingPlan": 0.4}},
     "startSpeakingPlan.transcriptionEndpointingPlan"),
    ({"startSpeakingPlan": {"transcriptionEndpointingPlan": {"onNumberSeconds": 4}}},
     "startSpeakingPlan.transcriptionEndpointingPlan.onNumberSeconds"),
    ({"startSpeakingPlan": {"transcriptionEndpointingPlan": {"onPunctuationSeconds": "0"}}},
     "startSpeakingPlan.transcriptionEndpointingPlan.onPunctuationSeconds"),
])
def test_speaking_plans_vapi_refuses_are_refused(plans: dict[str, object], key: str) -> None:
    with pytest.raises(ValidationFailed) as failed:
        check_limits(plans)  # a call's assistant; check_body runs the same checks on storing
    assert list(failed.value.param_errors) == [key]
