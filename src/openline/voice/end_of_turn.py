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
(``sounds_unfinished``: "...for", "...is March", "...four five seven"). Smart Turn judges
prosody, and synthetic or flat voices mislead it; the transcript catches those cases.

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
import re
from dataclasses import dataclass

#: words a finished sentence rarely ends on: articles, prepositions, conjunctions,
#: possessives, auxiliaries, fillers, month names (a date goes on) and digits spelled out
#: (a number being dictated: "four five seven")
_DANGLING_TEXT = """
a an the and or but so because if whether when where what how why that which who whose
to of for from with at by in on into onto about around before after until over under
between through during without within per via than then as like just also not very
my your our his her their its this these those is are was were am be been will
would can could should have has had do does did um uh er i we you he she they it me us
january february march april may june july august september october november december
zero oh one two three four five six seven eight nine
"""
_DANGLING = frozenset(_DANGLING_TEXT.split())
_LAST_WORD = re.compile(r"([A-Za-z0-9']+)[^A-Za-z0-9']*$")


def sounds_unfinished(transcript: str) -> bool:
    """The words say the caller is mid-sentence: the transcript ends on a function word, a
    month, or a digit (dictating a number), and not on a question mark. A false alarm
    costs a longer wait (the bound), never a cut-off."""
    text = transcript.strip()
    if not text or text.endswith("?"):
        return False
    match = _LAST_WORD.search(text)
    if match is None:
        return False
    last = match.group(1).lower()
    return last in _DANGLING or last[-1].isdigit()


@dataclass(frozen=True)
class EndOfTurnPolicy:
    """How the model's verdicts turn into a commit (see the module docstring)."""

    #: silences (ms) at which the model is asked; the first is the fastest possible commit
    probe_ms: tuple[int, ...] = (224, 512)
    #: P(complete) at or above this ends the turn
    threshold: float = 0.5
    #: the longest wait for a turn the model calls incomplete (never below min_silence_ms)
    incomplete_silence_ms: int = 1200


class Verdict(enum.Enum):
    NONE = "none"  # not asked yet, asking, or the model is unavailable
    COMPLETE = "complete"
    INCOMPLETE = "incomplete"


class EndOfTurnDecision:
    """One conversation's decision state; ``reset()`` at every speech start or resume."""

    def __init__(self, policy: EndOfTurnPolicy | None, min_silence_ms: int,
                 *, model_available: bool) -> None:
        first = policy.probe_ms[0] if policy and policy.probe_ms else 0
        self.policy = policy if (policy is not None and model_available and policy.probe_ms
                                 and min_silence_ms > first) else None
        self.min_silence_ms = min_silence_ms
        self.verdict = Verdict.NONE
        self.probability: float | None = None
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
            return self.min_silence_ms
        return max(self.min_silence_ms, self.policy.incomplete_silence_ms)

    def reset(self) -> None:
        """Speech (re)started: earlier verdicts were about audio that has since grown."""
        self.verdict = Verdict.NONE
        self.probability = None
        self.failed = False
        self.pending = False
        self._asked.clear()
        self.generation += 1

    def probe_due(self, silence_ms: float) -> bool:
        """True once per probe point reached (the caller then runs the model). Never while
        a probe is still running: on a busy machine a second one would only queue behind
        it (the later probe point is taken once the first answers "incomplete")."""
        if self.policy is None or self.failed or self.pending:
            return False
        for probe in self.policy.probe_ms:
            if silence_ms >= probe and probe not in self._asked:
                self._asked.update(p for p in self.policy.probe_ms if p <= silence_ms)
                self.pending = self.verdict is not Verdict.COMPLETE
                return self.pending
        return False

    def record(self, generation: int, probability: float | None,
               transcript: str | None = None) -> bool:
        """A probe's result (None: the model failed) and, if known, the turn's transcript.
        False when it came too late to count (speech resumed meanwhile)."""
        if generation != self.generation:
            return False
        self.pending = False
        if probability is None:
            self.failed = True
            return True
        self.probability = probability
        assert self.policy is not None
        complete = probability >= self.policy.threshold and not (
            transcript is not None and sounds_unfinished(transcript))
        self.verdict = Verdict.COMPLETE if complete else Verdict.INCOMPLETE
        return True

    def should_end(self, silence_ms: float) -> bool:
        """Does a silence of ``silence_ms`` end the turn, given what the model said?"""
        if self.policy is None or self.failed:
            return silence_ms >= self.min_silence_ms
        if self.verdict is Verdict.COMPLETE:
            return silence_ms >= self.policy.probe_ms[0]
        return silence_ms >= self.bound_ms
