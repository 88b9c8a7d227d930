"""Endpointing rules (Vapi's ``customEndpointingRules``): the rule alone, then the engine
on a virtual clock, where a matching rule sets the silence that ends the turn."""

from __future__ import annotations

import asyncio

import pytest

from openline.providers.testing import EnergyVAD, FakeSTT, FakeTTS, ScriptedLLM
from openline.voice import events as ev
from openline.voice.endpointing_rules import EndpointingRule, compile_pattern, rule_timeout_ms
from openline.voice.session import Providers
from openline.voice.turns import TurnSettings
from tests.voice.harness import end_of_turn_ms, make, virtual

ACCOUNT = EndpointingRule(3000, assistant=compile_pattern("account number", ["ignore-case"]))
DIGITS = EndpointingRule(2000, customer=compile_pattern(r"\d$"))
YES_NO = EndpointingRule(100, assistant=compile_pattern("interested"),
                         customer=compile_pattern("yes|no", ["whole-word"]))


def test_the_first_matching_rule_wins_and_word_rules_wait_for_the_words() -> None:
    rules = [YES_NO, ACCOUNT, DIGITS]
    assert rule_timeout_ms(rules, "What's your Account Number?", None) == 3000
    assert rule_timeout_ms(rules, "Are you interested?", None) is None  # words not heard yet
    assert rule_timeout_ms(rules, "Are you interested?", "yes please") == 100
    assert rule_timeout_ms(rules, "Are you interested?", "eyes") is None  # whole words only
    assert rule_timeout_ms(rules, "Hello.", "it is 4 5") == 2000
    assert rule_timeout_ms([], "anything", "anything") is None


def test_vapi_regex_options() -> None:
    assert compile_pattern("cat").search("I love cats")  # a search, as RegExp.test
    assert not compile_pattern("cat", ["whole-word"]).search("I love cats")
    assert compile_pattern("^two$", ["multi-line"]).search("one\ntwo")
    assert not compile_pattern("CAT").search("cat")
    with pytest.raises(Exception, match="missing"):
        compile_pattern("(unclosed")


async def _endpointing_ms(rules: tuple[EndpointingRule, ...], heard: str = "hello") -> float:
    """After the welcome "What is your account number?", the caller speaks and pauses."""
    providers = Providers(EnergyVAD(), FakeSTT(default=heard), ScriptedLLM(["Thanks."]),
                          FakeTTS(ms_per_char=5))
    conv, log, _ = make(providers=providers, end_of_turn=None, endpointing_rules=rules,
                        welcome_message="What is your account number?",
                        turn=TurnSettings(min_silence_ms=300, prebuffer_ms=200))

    async def welcomed() -> None:
        await log.wait_for(ev.AssistantFinishedSpeaking)
        await asyncio.sleep(0.2)

    return await end_of_turn_ms(conv, log, pause_ms=4000, before=welcomed)


@virtual
async def test_engine_waits_as_long_as_the_matching_rule_says() -> None:
    assert 290 <= await _endpointing_ms(()) < 400  # no rules: the fixed silence
    assert 2990 <= await _endpointing_ms((ACCOUNT,)) < 3100  # on the assistant's question
    assert 1990 <= await _endpointing_ms((DIGITS,), heard="it is 4 5 7") < 2100
    assert 290 <= await _endpointing_ms((DIGITS,), heard="hello") < 400  # no match
