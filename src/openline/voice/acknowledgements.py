"""The caller's backchannels: "uh-huh", "okay", "right" while the assistant speaks.

An acknowledgement is not a request to stop. Voice alone cannot tell "uh-huh" from
"wait, stop" early enough, so once the caller has been voiced for ``min_interruption_ms``
over the assistant, the listener recognises what it has heard so far (a short, separate
recognition) and decides:

* words that are all acknowledgements, or no words at all (a cough, noise, echo): keep
  speaking, and keep listening: if the caller goes on past ``backchannel_max_ms`` of voice
  it is an interruption whatever the words;
* anything else ("wait", "no", "stop", a question): barge in at once.

When such a turn ends while the assistant is still speaking and it is only an
acknowledgement, it is dropped: no ``input_text``, no user item, no reply (the Phonic dialect
has no event for it). If the assistant *was* cut off and the turn turns out to be an
acknowledgement or noise, the assistant resumes (``Assistant._resume_after_noise``).

Default acknowledgement words: Vapi's ``stopSpeakingPlan.acknowledgementPhrases`` defaults
(split into words) plus hesitation sounds Whisper writes for a backchannel ("uh", "mm").
"Thank you" is left out on purpose: Whisper hears the first 300 ms of "excuse me" as it.

The words are looked at twice (``BACKCHANNEL_PROBES_MS`` after the speech's first voiced
frame, once ``min_interruption_ms`` of it is voiced): an interruption must stop the
assistant within 400 ms of its onset (issue 13), and at 256 ms most are heard ("Wait.",
"No.", "Sorry."); a later look, at 352 ms, catches the rest ("excuse me" is "Okay." at
first). On the 40 espeak clips of benchmarks/turn_taking.py (10 acknowledgements and 10
interruptions, 2 voices), cut 240-300 ms after the onset, Whisper tiny.en misheard 1-3
acknowledgements as words and heard 18-20 interruptions; under 240 ms it guessed ("yes"
-> "the end.", "uh-huh" -> "Bye bye.").
"""

from __future__ import annotations

import re

ACKNOWLEDGEMENT_WORDS = frozenset({
    "i", "understand", "see", "got", "it", "hear", "you", "im", "listening", "with",
    "right", "okay", "ok", "sure", "alright", "gotcha", "understood", "yeah", "yes", "yep",
    "uh", "huh", "uhhuh", "uh-huh", "mm", "hmm", "mhm", "mhmm", "mm-hmm", "mmhmm", "ah",
    "oh", "um", "hm", "aha", "cool", "great", "fine", "good", "all",
    "mmm", "yup", "exactly", "perfect", "nice", "wow",
})
#: hums as Whisper spells them ("Mmm", "Mm-hmm", "Hmmm"): only m and h
_HUM = re.compile(r"^[mh]+$")
#: voiced time at which the words are first looked at
#: first and second look (8 and 11 frames of 32 ms); the second only if the first heard an
#: acknowledgement or nothing
BACKCHANNEL_PROBES_MS = (256, 352)
#: an acknowledgement is short; a longer run of these words is a real turn
MAX_ACKNOWLEDGEMENT_WORDS = 4
_WORD = re.compile(r"[a-z]+(?:-[a-z]+)*")


def acknowledgement_words(text: str) -> list[str]:
    """The words of a transcript as the classifier sees them (lowercase, no punctuation;
    apostrophes dropped: "I'm" -> "im")."""
    return _WORD.findall(text.lower().replace("'", "").replace("\u2019", ""))


def is_backchannel(text: str, words: frozenset[str] = ACKNOWLEDGEMENT_WORDS) -> bool:
    """True for a transcript that is only an acknowledgement (or has no words at all)."""
    found = acknowledgement_words(text)
    if len(found) > MAX_ACKNOWLEDGEMENT_WORDS:
        return False
    return all(w in words or all(p in words or _HUM.match(p) for p in w.split("-"))
               for w in found)
