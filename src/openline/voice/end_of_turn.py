"""The end-of-turn decision: VAD silence combined with an audio end-of-turn model.

A fixed silence is either slow (every caller who finishes cleanly waits it out) or unsafe
(a caller pausing while dictating is cut off). With an end-of-turn model the wait depends
on what the caller sounded like when they stopped:

* at ``probe_ms`` of silence (and again at each later probe) the model hears the turn's
  audio, the pause included, and says complete (P >= ``threshold``) or not;
* **complete**: the turn ends at once (no further fixed wait: the probe already waited
  ``probe_ms``);
* **incomplete**: the turn ends at ``max(min_silence_ms, incomplete_silence_ms)`` unless a
  later probe says complete, or the caller resumes;
* **no verdict** (no model installed, the model failed): the fixed ``min_silence_ms``, as
  before.

The words count too: a "complete" from the audio model is overruled when the speculative
transcript (ready by then: recognition starts at the first pause) ends mid-sentence
(``sounds_unfinished``: "...for", "...is March", "...four five seven"), or when the text
end-of-turn model (``providers/vad/text_turn.py``) gives the words P(finished) below
``text_threshold`` ("Could you tell me?"). Smart Turn judges prosody, and synthetic or flat
voices mislead it; the transcript catches those cases.

Speculation is untouched: recognition and generation still start at the first pause
(``TurnSettings.speculate_after_ms``) and overlap with the probes, so a "complete" verdict
finds the reply already prepared.

Dialect mapping (Phonic ``vad_min_silence_duration_ms``, default 800): it is
``min_silence_ms``, the fixed silence when there is no model, and the *floor* of the wait
for a turn the model calls incomplete. A value at or below the first probe (e.g. 150 ms)
means "end on that silence": the model is not consulted, since a fixed wait that short is
already faster than a probe.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from openline.voice.endpointing_rules import EndpointingRule, rule_timeout_ms

#: words no finished sentence ends on, not even a question: articles, conjunctions,
#: possessive determiners, fillers ("Can you check whether?" is still a caller mid-sentence;
#: Whisper often writes a "?" after a rising "whether" or "if")
_NEVER_FINAL_TEXT = """
a an the and or but because if whether than my your our their um uh er
"""
#: words a finished *statement* rarely ends on (a question may: "Who am I talking to?"):
#: prepositions, pronouns and auxiliaries, month names (a date goes on), digits spelled
#: out (a number being dictated: "four five seven"), and the nouns that introduce a value
#: the caller is about to give ("the account is under the name ...", "my number is ...")
_DANGLING_TEXT = """
so when where what how why that which who whose
to of for from with at by in on into onto about around before after until over under
between through during without within per via then as like just also not very
his her its this these those is are was were am be been will
would can could should have has had do does did i we you he she they it me us
january february march april may june july august september october november december
zero oh one two three four five six seven eight nine
name number address email code called named spelled
"""
_NEVER_FINAL = frozenset(_NEVER_FINAL_TEXT.split())
_DANGLING = frozenset(_DANGLING_TEXT.split()) | _NEVER_FINAL
_LAST_WORD = re.compile(r"([A-Za-z0-9']+)[^A-Za-z0-9']*$")
#: endings that leave a sentence open even as a question (matched on the lowercased words):
#: * a verb that takes two objects with only the person given ("Could you tell me?", "Can
#:   you send us?": *what*?);
#: * "weather" after a verb of finding out: the recogniser's spelling of "whether" ("Can
#:   you check weather?"), which, bare, is not how "the weather" is asked about;
#: * a number, code or ID that is one word so far and not a full value ("My policy number
#:   is seven", misheard "is Sanran."): those are read out in several words or as one
#:   run of at least four digits.
_OPEN_ENDINGS = re.compile(
    r"\b(?:(?:tell|show|give|send|bring|hand|pass|lend|offer)\s+(?:me|us|him|her|them)"
    r"|(?:check|know|see|ask|asking|wonder|wondering|sure|out)\s+weather"
    r"|(?:number|code|id|pin)\s+is\s+(?!\d{4,}\b)[a-z0-9-]+)\W*$")
#: the recogniser trails off with an ellipsis or a dash where the speech did ("if...")
_TRAILING_OFF = re.compile(r"(\.\.\.|\u2026|-)\s*$")


def sounds_unfinished(transcript: str) -> bool:
    """The words say the caller is mid-sentence: the transcript trails off ("..."), ends on
    a word no sentence ends on ("the", "whether", even before a "?") or an open ending
    (``_OPEN_ENDINGS``: "tell me?", "check weather?", "number is seven"), or, when it is
    not a question, on a function word, a month, a value-introducing noun or a digit
    (dictating a number). A false alarm costs a longer wait (the bound), never a cut-off."""
    text = transcript.strip()
    if not text:
        return False
    if _TRAILING_OFF.search(text) or _OPEN_ENDINGS.search(text.lower()):
        return True
    match = _LAST_WORD.search(text)
    if match is None:
        return False
    last = match.group(1).lower()
    if last in _NEVER_FINAL:
        return True
    if text.endswith("?"):
        return False
    return last in _DANGLING or last[-1].isdigit()


#: a transcript that ends on one of these ends on a number (Whisper writes most as digits)
_NUMBER_WORDS = frozenset({"zero", "one", "two", "three", "four", "five", "six", "seven",
                           "eight", "nine", "ten", "eleven", "twelve", "hundred", "thousand"})


@dataclass(frozen=True)
class TranscriptWaits:
    """For turns without the end-of-turn model: the silence a turn needs by how its
    transcript ends (Vapi's ``transcriptionEndpointingPlan``). A number first (the
    recogniser often puts a full stop after a number still being dictated), then a
    sentence-ending ``.``, ``?`` or ``!``, else no punctuation."""

    punctuation_ms: int = 100
    no_punctuation_ms: int = 1500
    number_ms: int = 400

    @property
    def longest_ms(self) -> int:
        """The wait when the transcript is not known (yet)."""
        return max(self.punctuation_ms, self.no_punctuation_ms, self.number_ms)

    def wait_ms(self, transcript: str) -> int:
        """The silence after which a turn heard as ``transcript`` ends."""
        text = transcript.strip()
        match = _LAST_WORD.search(text)
        last = match.group(1).lower() if match else ""
        if last and (last[-1].isdigit() or last in _NUMBER_WORDS):
            return self.number_ms
        if text.endswith((".", "?", "!")):
            return self.punctuation_ms
        return self.no_punctuation_ms


@dataclass(frozen=True)
class EndOfTurnPolicy:
    """How the model's verdicts turn into a commit (see the module docstring)."""

    #: silences (ms) at which the model is asked; the first is the fastest possible commit
    probe_ms: tuple[int, ...] = (192, 512)
    #: P(complete) at or above this ends the turn
    threshold: float = 0.5
    #: the longest wait for a turn the model calls incomplete (never below min_silence_ms)
    incomplete_silence_ms: int = 1200
    #: the text model's P(finished) below this overrules a "complete" from the audio
    text_threshold: float = 0.05
    #: instead of the threshold: the silence (ms) a turn needs as a function of the
    #: model's P(still speaking) = 1 - P(complete) at the first probe, 1 when the words
    #: sound unfinished (LiveKit's ``waitFunction``; clamped to 0..MAX_WAIT_MS)
    wait_function: Callable[[float], float] | None = None


#: the longest wait a wait function may set
MAX_WAIT_MS = 15_000


def _wait_ms(function: Callable[[float], float], x: float) -> float | None:
    """The function's wait for P(still speaking) ``x``, clamped; None when it fails."""
    try:
        value = float(function(x))
    except (ArithmeticError, ValueError, TypeError):
        return None
    return min(float(MAX_WAIT_MS), max(0.0, value)) if math.isfinite(value) else None


class Verdict(enum.Enum):
    NONE = "none"  # not asked yet, asking, or the model is unavailable
    COMPLETE = "complete"
    INCOMPLETE = "incomplete"


class EndOfTurnDecision:
    """One conversation's decision state; ``reset()`` at every speech start or resume."""

    def __init__(self, policy: EndOfTurnPolicy | None, min_silence_ms: int,
                 *, model_available: bool, transcript_waits: TranscriptWaits | None = None,
                 rules: Sequence[EndpointingRule] = ()) -> None:
        first = policy.probe_ms[0] if policy and policy.probe_ms else 0
        self.policy = policy if (policy is not None and model_available and policy.probe_ms
                                 and min_silence_ms > first) else None
        self.min_silence_ms = min_silence_ms
        #: without the model: the silence by the transcript's ending (None: fixed silence)
        self.transcript_waits = transcript_waits if self.policy is None else None
        self.transcript: str | None = None  # this speech run's words (waits, rules)
        self.rules = tuple(rules)
        self.assistant_text = ""  # what the assistant last said before this turn (rules)
        self.verdict = Verdict.NONE
        self.probability: float | None = None
        self.wait_ms: float | None = None  # what the wait function asked for this run
        function = self.policy.wait_function if self.policy else None
        #: the wait function's longest wait over P in [0, 1] (the bound with it)
        self._longest_wait = max((w for k in range(21) if (w := _wait_ms(function, k / 20))
                                  is not None), default=0.0) if function else 0.0
        self.failed = False  # the model failed this turn: fall back to the fixed silence
        self.pending = False  # a probe is running
        self._asked: set[int] = set()
        self.generation = 0  # identifies the current speech run (a verdict is for one run)

    @property
    def enabled(self) -> bool:
        return self.policy is not None

    @property
    def bound_ms(self) -> int:
        """The longest silence a turn can last before it ends regardless of the model."""
        if self.policy is None:
            waits = self.transcript_waits
            return max(self.min_silence_ms, waits.longest_ms if waits else 0)
        return max(self.min_silence_ms, self.policy.incomplete_silence_ms,
                   math.ceil(self._longest_wait))

    @property
    def needs_words(self) -> bool:
        """The transcript decides too (transcript waits, or a rule on the caller's words)."""
        return self.transcript_waits is not None or any(r.customer for r in self.rules)

    @property
    def longest_ms(self) -> int:
        """The longest silence any rule or the decision may wait (the detector's bound)."""
        return max([self.bound_ms, *(r.timeout_ms for r in self.rules)])

    def reset(self) -> None:
        """Speech (re)started: earlier verdicts were about audio that has since grown."""
        self.verdict = Verdict.NONE
        self.probability = None
        self.wait_ms = None
        self.failed = False
        self.pending = False
        self.transcript = None
        self._asked.clear()
        self.generation += 1

    def probe_due(self, silence_ms: float) -> bool:
        """True once per probe point reached (the caller then runs the model). Never while
        a probe is still running: on a busy machine a second one would only queue behind
        it (the later probe point is taken once the first answers "incomplete")."""
        if self.policy is None or self.failed or self.pending or rule_timeout_ms(
                self.rules, self.assistant_text, self.transcript) is not None:
            return False  # (a matching rule decides alone)
        for probe in self.policy.probe_ms:
            if silence_ms >= probe and probe not in self._asked:
                self._asked.update(p for p in self.policy.probe_ms if p <= silence_ms)
                self.pending = self.verdict is not Verdict.COMPLETE
                return self.pending
        return False

    def record(self, generation: int, probability: float | None,
               transcript: str | None = None, text_probability: float | None = None) -> bool:
        """A probe's result (None: the model failed) and, if known, the turn's transcript
        and the text model's P(finished) for it. False when it came too late to count
        (speech resumed meanwhile)."""
        if generation != self.generation:
            return False
        self.pending = False
        if probability is None:
            self.failed = True
            return True
        self.probability = probability
        assert self.policy is not None
        unfinished = (transcript is not None and sounds_unfinished(transcript)) or (
            text_probability is not None and text_probability < self.policy.text_threshold)
        if self.policy.wait_function is not None:  # the wait decides, once
            wait = _wait_ms(self.policy.wait_function, 1.0 if unfinished else 1 - probability)
            self.wait_ms = self.bound_ms if wait is None else wait
            self.verdict = Verdict.COMPLETE
            return True
        complete = probability >= self.policy.threshold and not unfinished
        self.verdict = Verdict.COMPLETE if complete else Verdict.INCOMPLETE
        return True

    def record_words(self, generation: int, transcript: str) -> bool:
        """The speech run's transcript, for ``transcript_waits`` and the rules on the
        caller's words; False when it came too late (speech resumed meanwhile)."""
        if generation != self.generation:
            return False
        self.transcript = transcript
        return True

    def should_end(self, silence_ms: float) -> bool:
        """Does a silence of ``silence_ms`` end the turn, given what the model said?"""
        rule_ms = rule_timeout_ms(self.rules, self.assistant_text, self.transcript)
        if rule_ms is not None:
            return silence_ms >= rule_ms
        if self.transcript_waits is not None:
            wait = (self.bound_ms if self.transcript is None else
                    max(self.min_silence_ms, self.transcript_waits.wait_ms(self.transcript)))
            return silence_ms >= wait
        if self.policy is None or self.failed:
            return silence_ms >= self.min_silence_ms
        if self.verdict is Verdict.COMPLETE:
            return silence_ms >= max(self.policy.probe_ms[0], self.wait_ms or 0)
        return silence_ms >= self.bound_ms
