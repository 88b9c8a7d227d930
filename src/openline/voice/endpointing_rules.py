"""Endpointing rules: a turn's silence set by what was said (Vapi's
``startSpeakingPlan.customEndpointingRules``).

A rule matches on the assistant's last message before the caller spoke ("what's your
account number?": wait longer for someone looking it up), on the caller's words so far (a
number being read out), or on both; a matching rule's timeout is the silence that ends the
turn, ahead of the end-of-turn model and the transcript waits. Rules are tried in order and
the first that matches wins; a rule on the caller's words counts only once a transcript of
the turn is there (the speculative one, at the first pause).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class EndpointingRule:
    """``timeout_ms`` of silence ends a turn when every given pattern matches (a search)."""

    timeout_ms: int
    assistant: re.Pattern[str] | None = None
    customer: re.Pattern[str] | None = None

    def matches(self, assistant_text: str, customer_text: str | None) -> bool:
        """Whether it applies, given the caller's words so far (None: not heard yet)."""
        if self.assistant is not None and not self.assistant.search(assistant_text):
            return False
        if self.customer is not None:
            return customer_text is not None and bool(self.customer.search(customer_text))
        return True


def rule_timeout_ms(rules: Sequence[EndpointingRule], assistant_text: str,
                    customer_text: str | None) -> int | None:
    """The first matching rule's timeout, or None when none matches."""
    for rule in rules:
        if rule.matches(assistant_text, customer_text):
            return rule.timeout_ms
    return None


def compile_pattern(pattern: str, options: Sequence[str] = ()) -> re.Pattern[str]:
    """A rule's regex with Vapi's options (``ignore-case``, ``whole-word``, ``multi-line``);
    ``re.error`` for a pattern Python cannot compile."""
    flags = (re.IGNORECASE if "ignore-case" in options else 0) | (
        re.MULTILINE if "multi-line" in options else 0)
    if "whole-word" in options:
        pattern = rf"\b(?:{pattern})\b"
    return re.compile(pattern, flags)
