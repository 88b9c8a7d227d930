"""End-call phrases: does an assistant utterance contain one (whole words, any case)?"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache


@lru_cache(maxsize=64)
def _pattern(phrases: tuple[str, ...]) -> re.Pattern[str] | None:
    # Words joined by any whitespace, bounded by non-word characters: "bye" does not end
    # a call on "goodbye", and "talk to you later" matches across a line break.
    parts = ["\\s+".join(re.escape(w) for w in p.split()) for p in phrases if p.split()]
    if not parts:
        return None
    return re.compile(r"(?<!\w)(?:" + "|".join(parts) + r")(?!\w)", re.IGNORECASE)


def says_end_phrase(text: str, phrases: Sequence[str]) -> bool:
    """True when ``text`` contains one of ``phrases`` as whole words, ignoring case."""
    pattern = _pattern(tuple(phrases))
    return pattern is not None and pattern.search(text) is not None
