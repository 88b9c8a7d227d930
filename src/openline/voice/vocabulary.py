"""Automatic domain vocabulary: the words an agent's callers are likely to say that a
general recogniser is likely to miss, taken from the agent itself.

Sources: the system prompt, the welcome message, the tools' names, descriptions and the
``enum`` values of their parameters. Kept: names (capitalised words that do not start a
sentence, and runs of them: "Doctor Patel", "Bright Smile Dental"), enum values, the words
of tool names ("book_cleaning" -> "book cleaning"), and long uncommon words (>= 8
letters: "whitening" is 9, "periodontal" 11). Dropped: a stop list of common words and
template placeholders. The result is ordered by source (names and enum values first) and
capped, because Whisper's prompt holds ~100 tokens and the recogniser hears the *last*
part of it.

``benchmarks/recognition.py`` measures whether offering these words helps: for an agent
without ``boosted_keywords`` they cut the domain-subset WER by a third to a half (plain
speech unchanged, thanks to the recogniser's gated boosting); added to configured keywords
they dilute them. So the engine offers them only to agents without keywords
(``SessionConfig.auto_vocabulary``, ``Listener.hotwords``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

MAX_TERMS = 24
MIN_LONG_WORD = 8
MAX_NAME_WORDS = 4  # a longer capitalised run is a title or shouting, not a name
_SENTENCE = re.compile(r"(?<=[.!?:;\n])\s+")
_TOKEN = re.compile(r"[A-Za-z][A-Za-z'\-]*[A-Za-z]|[A-Za-z]")
_PLACEHOLDER = re.compile(r"\{\{.*?\}\}")
#: words that are capitalised or long without being domain words
_COMMON_TEXT = """
a an the and or but if then so of to in on at by for with from as is are was were be been
being i you he she it we they me him her us them my your our their this that these those
please thank thanks hello hi yes no not do does did can could will would should may might
must shall have has had what when where which who whom why how all any each every some such
only own same than too very just also always never sometimes often usually today tomorrow
monday tuesday wednesday thursday friday saturday sunday january february march april june
july august september october november december answer answers respond responses assistant
customer customers caller callers always sentence sentences friendly helpful polite short
briefly question questions information available
something everything anything nothing someone everyone conversation conversations
important remember following whatever however therefore otherwise additional necessary
"""
_COMMON = frozenset(_COMMON_TEXT.split())


def domain_vocabulary(prompt: str = "", welcome: str = "",
                      tools: Iterable[Any] = (), *, limit: int = MAX_TERMS) -> list[str]:
    """Terms for the recogniser from an agent's texts and tools (see the module doc).

    ``tools``: objects with ``name``, ``description`` and ``parameters`` (a JSON Schema),
    such as ``RuntimeTool`` or ``ToolSpec``.
    """
    tools = list(tools)
    names: list[str] = []
    long_words: list[str] = []
    for text in (prompt, welcome, *(t.description for t in tools)):
        found_names, found_long = _scan(_PLACEHOLDER.sub(" ", text or ""))
        names += found_names
        long_words += found_long
    enums = [str(v) for t in tools for v in _enum_values(t.parameters)]
    tool_words = [t.name.replace("_", " ").replace("-", " ") for t in tools]
    return _unique([*names, *enums, *tool_words, *long_words], limit)


def _scan(text: str) -> tuple[list[str], list[str]]:
    """Names (runs of capitalised words not starting a sentence) and long rare words."""
    names: list[str] = []
    long_words: list[str] = []
    for sentence in _SENTENCE.split(text):
        tokens = _TOKEN.findall(sentence)
        run: list[str] = []
        for index, token in enumerate(tokens):
            lower = token.lower()
            capital = token[0].isupper() and index > 0 and lower not in _COMMON
            if capital:
                run.append(token)
                continue
            if run:
                names += _name(run)
                run = []
            if len(token) >= MIN_LONG_WORD and lower not in _COMMON:
                long_words.append(lower)
        if run:
            names += _name(run)
    return names, long_words


def _name(run: list[str]) -> list[str]:
    return [" ".join(run)] if len(run) <= MAX_NAME_WORDS else []


def _enum_values(schema: Any) -> Iterator[Any]:
    """Every ``enum`` value anywhere in a JSON Schema (strings only: numbers need no help)."""
    if isinstance(schema, dict):
        for value in schema.get("enum", []) or []:
            if isinstance(value, str) and value.strip():
                yield value.replace("_", " ")
        for child in schema.values():
            yield from _enum_values(child)
    elif isinstance(schema, list):
        for child in schema:
            yield from _enum_values(child)


def _unique(terms: Sequence[str], limit: int) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for term in terms:
        key = term.lower().strip()
        if not key or key in seen or key in _COMMON:
            continue
        seen.add(key)
        out.append(term.strip())
        if len(out) >= limit:
            break
    return out
