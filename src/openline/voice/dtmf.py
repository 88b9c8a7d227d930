"""Keypad digits from the caller (telephony), collected into one user turn.

Digits are collected until ``#`` or ``timeout_s`` without a further digit, then committed
as one turn ("The caller pressed 1 2 3."), which the assistant answers like speech.
``#`` only ends the entry; ``*`` and ``A``-``D`` are digits like the others.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from openline.voice.clock import Clock

DTMF_TIMEOUT_S = 2.0
DIGITS = frozenset("0123456789*ABCD")


def dtmf_text(digits: str) -> str:
    """How a keypad entry appears in the conversation."""
    return f"The caller pressed {' '.join(digits)}."


class DtmfCollector:
    """Collects digits; ``commit(digits)`` is called once per entry."""

    def __init__(self, clock: Clock, commit: Callable[[str], None],
                 spawn: Callable[[Coroutine[Any, Any, None], str], bool], *,
                 timeout_s: float = DTMF_TIMEOUT_S) -> None:
        self.clock, self.timeout_s = clock, timeout_s
        self._commit, self._spawn = commit, spawn
        self._digits: list[str] = []
        self._generation = 0  # a newer digit makes older timers moot

    def push(self, digits: str) -> None:
        for digit in digits.upper():
            if digit == "#":
                self._flush()
            elif digit in DIGITS:
                self._digits.append(digit)
        if self._digits:
            self._generation += 1
            self._spawn(self._expire(self._generation), "dtmf")

    async def _expire(self, generation: int) -> None:
        await self.clock.sleep(self.timeout_s)
        if generation == self._generation:
            self._flush()

    def _flush(self) -> None:
        digits, self._digits = "".join(self._digits), []
        self._generation += 1
        if digits:
            self._commit(digits)
