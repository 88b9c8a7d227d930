"""PII redaction for agents with ``enable_redaction``: what is stored is already redacted.

What is found, and how:

* phone numbers: Google's libphonenumber (the ``phonenumbers`` package), which finds
  numbers in running text in national and international formats (``+1 415 555 0100``,
  ``(415) 555-0100``, ``020 7946 0958``), checked against the numbering plan of the
  agent's region (US by default) or any region for ``+`` numbers;
* e-mail addresses;
* payment card numbers: 13-19 digits, optionally in groups split by spaces or dashes,
  that pass the Luhn check (so order numbers of the same length are left alone);
* US social security numbers written ``123-45-6789``;
* IBANs that pass their mod-97 check.

Each finding becomes a typed placeholder (``[PHONE_NUMBER]``, ``[EMAIL_ADDRESS]``,
``[CREDIT_CARD]``, ``[US_SSN]``, ``[IBAN]``). Not covered: numbers spoken as words
("five five five ..."), names, postal addresses, dates of birth: that needs a named-entity
model (Presidio with a spaCy model), which Openline does not download. Audio recordings
are not altered.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import phonenumbers

PHONE, EMAIL, CARD, SSN, IBAN = ("[PHONE_NUMBER]", "[EMAIL_ADDRESS]", "[CREDIT_CARD]",
                                 "[US_SSN]", "[IBAN]")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# Digits in groups separated by single spaces or dashes, 13-19 digits in all.
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_SSN = re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum of a card number (digits only)."""
    total = 0
    for i, char in enumerate(reversed(digits)):
        value = int(char)
        if i % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _iban_valid(candidate: str) -> bool:
    compact = candidate.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    rotated = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rotated)) % 97 == 1


def _cards(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", match.group())
        return CARD if 13 <= len(digits) <= 19 and luhn_valid(digits) else match.group()

    return _CARD.sub(replace, text)


def _phones(text: str, region: str) -> str:
    spans = [(m.start, m.end) for m in phonenumbers.PhoneNumberMatcher(
        text, region, leniency=phonenumbers.Leniency.VALID)]
    for start, end in reversed(spans):
        text = text[:start] + PHONE + text[end:]
    return text


def redact(text: str, region: str = "US") -> str:
    """``text`` with every finding replaced by its placeholder (see the module notes)."""
    if not text:
        return text
    out = _EMAIL.sub(EMAIL, text)
    out = _IBAN.sub(lambda m: IBAN if _iban_valid(m.group()) else m.group(), out)
    out = _SSN.sub(SSN, out)
    out = _cards(out)  # before phone numbers: a card's digit groups can look like one
    return _phones(out, region)


def redact_lines(lines: Iterable[str], region: str = "US") -> list[str]:
    return [redact(line, region) for line in lines]


def redact_document(value: Any) -> Any:
    """Every string inside a JSON document redacted (tool-call bodies and answers)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [redact_document(v) for v in value]
    if isinstance(value, dict):
        return {k: redact_document(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class Protection:
    """A conversation's data-protection settings, read from its configuration snapshot
    (the agent's ``enable_redaction``, ``data_retention_policy`` and
    ``external_storage_policy`` with the call's overrides)."""

    redact: bool = False
    zero_retention: bool = False
    transcripts_hours: int | None = None
    audio_hours: int | None = None
    external_storage: str | None = None

    @classmethod
    def of(cls, config: Mapping[str, Any] | None) -> Protection:
        config = config or {}
        policy = config.get("data_retention_policy") or {}
        return cls(
            redact=bool(config.get("enable_redaction")),
            zero_retention=bool(policy.get("zero_data_retention")),
            transcripts_hours=(policy.get("transcripts") or {}).get("delete_after_hours"),
            audio_hours=(policy.get("audio_recordings") or {}).get("delete_after_hours"),
            external_storage=config.get("external_storage_policy") or None)

    def text(self, value: str | None) -> str | None:
        """What may be stored of a transcript: nothing under zero retention, redacted
        when redaction is on, else the text itself."""
        if value is None or self.zero_retention:
            return None
        return redact(value) if self.redact else value

    def document(self, value: Any) -> Any:
        """What may be stored of a tool call's JSON (see :meth:`text`)."""
        return redact_document(value) if self.redact else value

    @property
    def keeps_anything(self) -> bool:
        return not self.zero_retention
