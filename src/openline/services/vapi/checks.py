"""Type checks on values of Vapi request bodies (JSON: a bool is not a number)."""

from __future__ import annotations

import math
from typing import Any


def is_number(value: Any) -> bool:
    """A finite JSON number (not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool) \
        and math.isfinite(value)


def is_phrase_list(value: Any, shortest: int, longest: int) -> bool:
    """A list of strings, each ``shortest`` to ``longest`` characters long."""
    return isinstance(value, list) and all(
        isinstance(p, str) and shortest <= len(p) <= longest for p in value)
