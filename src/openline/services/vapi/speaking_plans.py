"""Vapi's speaking plans (``startSpeakingPlan``, ``stopSpeakingPlan``) as the engine's
session fields, and the checks Vapi makes on them; docs/architecture.md has the mapping."""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import simpleeval

from openline.services.vapi.checks import is_number, is_phrase_list
from openline.voice.acknowledgements import phrase_words
from openline.voice.end_of_turn import EndOfTurnPolicy, TranscriptWaits
from openline.voice.endpointing_rules import EndpointingRule, compile_pattern

#: transcriptionEndpointingPlan key -> TranscriptWaits field (Vapi: 0 to 3 seconds each)
_TRANSCRIPT_WAITS = {"onPunctuationSeconds": "punctuation_ms",
                     "onNoPunctuationSeconds": "no_punctuation_ms",
                     "onNumberSeconds": "number_ms"}


_SMART = "startSpeakingPlan.smartEndpointingPlan"
#: LiveKit's default ``waitFunction`` (Vapi's documented default)
LIVEKIT_WAIT = "20 + 500 * sqrt(x) + 2500 * x^3"
_MATH: dict[str, Any] = {name: getattr(math, name) for name in (
    "sqrt", "cbrt", "exp", "log", "log10", "sin", "cos", "tan", "floor", "ceil")}
_MATH.update(abs=abs, min=min, max=max, pow=math.pow)
_NOT_MATH = (ast.Attribute, ast.Subscript, ast.JoinedStr, ast.List, ast.Tuple, ast.Dict,
             ast.Set, ast.Compare, ast.BoolOp, ast.IfExp)


def wait_function(expression: str) -> Callable[[float], float]:
    """LiveKit's ``waitFunction``, a mathjs expression of ``x`` (P(still speaking)) in
    milliseconds, as a function (arithmetic, ``^`` for powers, ``pi``, ``e`` and the
    usual math functions); ValueError when it is not one."""
    text = expression.replace("^", "**")  # mathjs's power, with Python's precedence
    try:
        tree = simpleeval.SimpleEval().parse(text)
    except (SyntaxError, simpleeval.InvalidExpression) as exc:
        raise ValueError(f"{expression!r} is not an expression: {exc}") from exc

    def wait(x: float) -> float:
        evaluator = simpleeval.SimpleEval(functions=_MATH,
                                          names={"x": x, "pi": math.pi, "e": math.e})
        for node in _NOT_MATH:  # numbers only: no attributes, indexing, strings or lists
            evaluator.nodes.pop(node, None)
        try:
            return float(evaluator.eval(text, previously_parsed=tree))
        except simpleeval.InvalidExpression as exc:
            raise ValueError(str(exc)) from exc

    try:
        wait(0.5)
    except (ArithmeticError, ValueError, TypeError) as exc:
        raise ValueError(f"{expression!r} cannot be evaluated: {exc}") from exc
    return wait


def _smart_plan_errors(plan: Any) -> dict[str, str]:
    providers = ("vapi", "livekit", "custom-endpointing-model")
    if not isinstance(plan, dict) or plan.get("provider") not in providers:
        return {f"{_SMART}.provider": f"{_SMART}.provider must be one of "
                + ", ".join(providers)}
    if plan["provider"] == "custom-endpointing-model":
        return {f"{_SMART}.provider": f"{_SMART}.provider 'custom-endpointing-model' is not "
                "supported: Openline ends turns with its own model ('vapi' or 'livekit')"}
    function = plan.get("waitFunction")
    if function is None:
        return {}
    if not isinstance(function, str):
        return {f"{_SMART}.waitFunction": f"{_SMART}.waitFunction must be a string"}
    try:
        wait_function(function)
    except ValueError as exc:
        return {f"{_SMART}.waitFunction": f"{_SMART}.waitFunction: {exc}"}
    return {}


#: customEndpointingRules type -> its (pattern key, options key, EndpointingRule field)
_RULE_PATTERNS = {
    "assistant": (("regex", "regexOptions", "assistant"),),
    "customer": (("regex", "regexOptions", "customer"),),
    "both": (("assistantRegex", "assistantRegexOptions", "assistant"),
             ("customerRegex", "customerRegexOptions", "customer"))}
_REGEX_OPTIONS = ("ignore-case", "whole-word", "multi-line")
_RULES = "startSpeakingPlan.customEndpointingRules"


def _options(value: Any) -> tuple[str, ...]:
    """The enabled ``regexOptions`` (Vapi: all disabled by default)."""
    return tuple(o["type"] for o in value or () if isinstance(o, dict) and o.get("enabled"))


def _rule(rule: Mapping[str, Any]) -> EndpointingRule:
    """One checked rule (``speaking_plan_errors``) as the engine's."""
    patterns = {field: compile_pattern(rule[key], _options(rule.get(options)))
                for key, options, field in _RULE_PATTERNS[rule["type"]]}
    return EndpointingRule(round(float(rule["timeoutSeconds"]) * 1000), **patterns)


def _rule_errors(rules: Any) -> dict[str, str]:
    if not isinstance(rules, list):
        return {_RULES: f"{_RULES} must be an array"}
    for i, rule in enumerate(rules):
        at = f"{_RULES}[{i}]"
        if not isinstance(rule, dict) or rule.get("type") not in _RULE_PATTERNS:
            return {f"{at}.type": f"{at}.type must be one of assistant, customer, both"}
        timeout: Any = rule.get("timeoutSeconds")
        if not (is_number(timeout) and 0 <= timeout <= 15):
            return {f"{at}.timeoutSeconds": f"{at}.timeoutSeconds must be a number from 0 to 15"}
        for key, options_key, _ in _RULE_PATTERNS[rule["type"]]:
            options = rule.get(options_key)
            if options is not None and not (isinstance(options, list) and all(
                    isinstance(o, dict) and o.get("type") in _REGEX_OPTIONS
                    and isinstance(o.get("enabled"), bool) for o in options)):
                return {f"{at}.{options_key}": f"{at}.{options_key} must be options of "
                        "type " + ", ".join(_REGEX_OPTIONS) + " with a boolean enabled"}
            if not isinstance(rule.get(key), str):
                return {f"{at}.{key}": f"{at}.{key} must be a string"}
            try:
                compile_pattern(rule[key], _options(options))
            except re.error as exc:
                return {f"{at}.{key}": f"{at}.{key} is not a valid regular expression: {exc}"}
    return {}


def speaking_plan_errors(body: Mapping[str, Any]) -> dict[str, str]:
    """The speaking-plan keys ``speaking_plan_fields`` maps, with Vapi's types and ranges."""
    errors: dict[str, str] = {}
    start, stop = body.get("startSpeakingPlan"), body.get("stopSpeakingPlan")
    if isinstance(start, dict) and "smartEndpointingEnabled" in start and not (
            isinstance(start["smartEndpointingEnabled"], bool)
            or start["smartEndpointingEnabled"] == "livekit"):
        errors["startSpeakingPlan.smartEndpointingEnabled"] = (
            "startSpeakingPlan.smartEndpointingEnabled must be a boolean or 'livekit'")
    plan = start.get("transcriptionEndpointingPlan") if isinstance(start, dict) else None
    if plan is not None and not isinstance(plan, dict):
        errors["startSpeakingPlan.transcriptionEndpointingPlan"] = (
            "startSpeakingPlan.transcriptionEndpointingPlan must be an object")
    if isinstance(start, dict) and start.get("smartEndpointingPlan") is not None:
        errors.update(_smart_plan_errors(start["smartEndpointingPlan"]))
    if isinstance(start, dict) and start.get("customEndpointingRules") is not None:
        errors.update(_rule_errors(start["customEndpointingRules"]))
    waits: Mapping[str, Any] = plan if isinstance(plan, dict) else {}
    for key in _TRANSCRIPT_WAITS:
        value = waits.get(key)
        if value is not None and not (is_number(value) and 0 <= value <= 3):
            errors[f"startSpeakingPlan.transcriptionEndpointingPlan.{key}"] = (
                f"startSpeakingPlan.transcriptionEndpointingPlan.{key} must be a number "
                "from 0 to 3")
    if not isinstance(stop, dict):
        return errors
    seconds = stop.get("voiceSeconds")
    if seconds is not None and not (is_number(seconds) and 0 <= seconds <= 0.5):
        errors["stopSpeakingPlan.voiceSeconds"] = (
            "stopSpeakingPlan.voiceSeconds must be a number from 0 to 0.5")
    backoff = stop.get("backoffSeconds")
    if backoff is not None and not (is_number(backoff) and 0 <= backoff <= 10):
        errors["stopSpeakingPlan.backoffSeconds"] = (
            "stopSpeakingPlan.backoffSeconds must be a number from 0 to 10")
    for key in ("acknowledgementPhrases", "interruptionPhrases"):
        phrases = stop.get(key)
        if phrases is not None and not is_phrase_list(phrases, 1, 240):
            errors[f"stopSpeakingPlan.{key}"] = (
                f"stopSpeakingPlan.{key} must be strings of 1 to 240 characters")
    return errors


def speaking_plan_fields(assistant: Mapping[str, Any]) -> dict[str, Any]:
    """The session fields a call takes from its assistant's speaking plans."""
    fields: dict[str, Any] = {}
    start, stop = assistant.get("startSpeakingPlan"), assistant.get("stopSpeakingPlan")
    if isinstance(start, dict) and start.get("smartEndpointingEnabled") is False:
        fields["end_of_turn"] = None  # the turn ends on the silence alone (waitSeconds)
        plan = start.get("transcriptionEndpointingPlan")
        if isinstance(plan, dict):  # ... or by how its words end, at least waitSeconds
            fields["transcript_waits"] = TranscriptWaits(**{
                name: round(float(plan[key]) * 1000)
                for key, name in _TRANSCRIPT_WAITS.items() if is_number(plan.get(key))})
    smart = start.get("smartEndpointingPlan") if isinstance(start, dict) else None
    if isinstance(smart, dict):  # ahead of smartEndpointingEnabled (deprecated by it)
        if smart.get("provider") == "livekit":
            fields["end_of_turn"] = EndOfTurnPolicy(wait_function=wait_function(
                smart.get("waitFunction") or LIVEKIT_WAIT))
        else:
            fields.pop("end_of_turn", None)  # "vapi": the end-of-turn model as configured
    rules = start.get("customEndpointingRules") if isinstance(start, dict) else None
    if isinstance(rules, list) and rules:  # ahead of the model and the waits above
        fields["endpointing_rules"] = tuple(_rule(rule) for rule in rules)
    if not isinstance(stop, dict):
        return fields
    if is_number(stop.get("voiceSeconds")):
        fields["min_interruption_ms"] = round(float(stop["voiceSeconds"]) * 1000)
    if is_number(stop.get("backoffSeconds")):
        fields["interruption_backoff_ms"] = round(float(stop["backoffSeconds"]) * 1000)
    for key, field in (("acknowledgementPhrases", "acknowledgement_words"),
                       ("interruptionPhrases", "interruption_cues")):
        phrases = stop.get(key)
        if isinstance(phrases, list):
            fields[field] = phrase_words([p for p in phrases if isinstance(p, str)])
    return fields
