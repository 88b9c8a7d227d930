"""Split streamed LLM text into speakable sentences as early as is safe."""

from __future__ import annotations

import re

# A sentence ends at . ! ? (optionally followed by closing quotes/brackets) and whitespace.
_END = re.compile(r"([.!?]+[\"')\]]*)(\s+)")
# Abbreviations that end in a period but do not end a sentence.
_ABBREVIATIONS = frozenset({"mr.", "mrs.", "ms.", "dr.", "st.", "vs.", "etc.", "e.g.", "i.e.",
                            "jr.", "sr.", "no.", "approx.", "inc.", "ltd."})
#: Speak a long clause early rather than wait for its full stop (first-audio latency).
MAX_CHARS_BEFORE_COMMA_SPLIT = 120
#: The reply's first clause goes to synthesis on its own ("Sure," / "Of course, ...") as
#: soon as it is complete: the caller hears the reply start while the model is still
#: writing the sentence, and the first synthesis is short (Piper's cost grows with length).
#: It is complete at its mark, not one token later when the next word's space arrives: the
#: embedded model writes a token every 27-40 ms on two cores. A mark after a digit waits
#: for what follows ("1,000", "2:30").
_CLAUSE = re.compile(r"[,;:](\s+|$)")
#: ... and so is a first sentence once its "!", "?" or "." is written: the model's next
#: token is the line's end (another 20-30 ms on one thread) or the next sentence. A "."
#: after a word of one letter ("J.", "p.") or a digit ("5." of "5.30"), or in "..", waits
#: for what follows, and so does one after an abbreviation ("Dr.", ``_ends_no_sentence``);
#: a dotted one ("p.m.", "U.S.") ends the sentence as it would with a space after it
_FIRST_END = re.compile(r"(?:[!?]|(?<=[A-Za-z]{2})\.|(?<=[A-Za-z]\.[A-Za-z])\.)$")
#: a one-letter word with a full stop: an initial ("J. Smith"), mostly
_INITIAL = re.compile(r"[a-z]\.")
FIRST_CLAUSE_MAX_WORDS = 8


class SentenceSplitter:
    """Feed text deltas, get complete sentences; ``flush()`` returns the remainder."""

    def __init__(self, *, first_clause: bool = True) -> None:
        self._buffer = ""
        #: the next piece may be a clause (nothing has been emitted yet)
        self._first = first_clause

    def push(self, delta: str) -> list[str]:
        """Add ``delta``; return the sentences it completed (possibly none)."""
        self._buffer += delta
        out: list[str] = []
        start = 0
        for match in _END.finditer(self._buffer):
            end = match.end(1)
            candidate = self._buffer[start:end].strip()
            last_word = candidate.rsplit(None, 1)[-1].lower() if candidate else ""
            if _ends_no_sentence(last_word):  # (a decimal never matches: no space in it)
                continue
            if candidate:
                out.append(candidate)
            start = match.end()
        self._buffer = self._buffer[start:]
        if self._first and not out:
            out += self._first_clause()
        self._first = self._first and not out
        if len(self._buffer) > MAX_CHARS_BEFORE_COMMA_SPLIT:
            cut = self._buffer.rfind(", ")
            if cut > 20:
                out.append(self._buffer[: cut + 1].strip())
                self._buffer = self._buffer[cut + 2 :]
        return out

    def _first_clause(self) -> list[str]:
        """The leading clause of the reply, once its comma (or ; :) has been written, or a
        short first sentence once its "!", "?" or sentence-ending "." has (``_FIRST_END``)."""
        match = _CLAUSE.search(self._buffer) or _FIRST_END.search(self._buffer)
        if match is None or _in_number(self._buffer, match.start()):
            return []
        clause = self._buffer[: match.start() + 1].strip()
        if clause.endswith(".") and _ends_no_sentence(clause.rsplit(None, 1)[-1].lower()):
            return []
        if not clause or len(clause.split()) > FIRST_CLAUSE_MAX_WORDS:
            return []  # a long clause: wait for the sentence (Piper splits long ones itself)
        self._buffer = self._buffer[match.end():]
        return [clause]

    def flush(self) -> str:
        """The text left over at the end of the stream (may be empty)."""
        rest, self._buffer = self._buffer.strip(), ""
        return rest


def _ends_no_sentence(word: str) -> bool:
    """Does the (lowercased) ``word``, its full stop included, end no sentence: an
    abbreviation ("dr.", "e.g.") or an initial ("j.")?"""
    return word in _ABBREVIATIONS or _INITIAL.fullmatch(word) is not None


def _in_number(text: str, mark: int) -> bool:
    """The mark at ``mark`` may be inside a number: it follows a digit and a digit follows
    it (``3.5``, ``1,000``), or nothing has been written after it yet (``1,`` may become
    ``1,000``, ``2:`` ``2:30``)."""
    return mark > 0 and text[mark - 1].isdigit() and (
        mark + 1 == len(text) or text[mark + 1].isdigit())
