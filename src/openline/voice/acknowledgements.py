"""The caller's backchannels: "uh-huh", "okay", "right" while the assistant speaks.

An acknowledgement is not a request to stop. Voice alone cannot tell "uh-huh" from
"wait, stop" early enough, so once the caller has been voiced for ``min_interruption_ms``
over the assistant, the listener recognises what it has heard so far (a short, separate
recognition) and decides:

* words that are all acknowledgements, or no words at all (a cough, noise, echo): keep
  speaking, and keep listening: if the caller goes on past ``backchannel_max_ms`` of voice
  it is an interruption whatever the words;
* anything else ("wait", "no", "stop", a question): barge in (see the looks below).

When such a turn ends while the assistant is still speaking and it is only an
acknowledgement, it is dropped: no ``input_text``, no user item, no reply (the Phonic dialect
has no event for it). If the assistant *was* cut off and the turn turns out to be an
acknowledgement or noise, the assistant resumes (``Assistant._resume_after_noise``).

Default acknowledgement words: Vapi's ``stopSpeakingPlan.acknowledgementPhrases`` defaults
(split into words) plus hesitation sounds Whisper writes for a backchannel ("uh", "mm").
"Thank you" is left out on purpose: Whisper hears the first 300 ms of "excuse me" as it.

The words are looked at twice (``BACKCHANNEL_PROBES_MS`` after the speech's first voiced
frame, once ``min_interruption_ms`` of it is voiced), because an interruption must stop
the assistant within 400 ms of its onset (issue 13) and Whisper tiny.en guesses on so
little audio:

* each look asks the recogniser for its ``first_words`` (a smaller window and a few
  tokens: a look must be fast);
* the first look (256 ms) barges in on an interruption cue ("Wait.", "No.", "Sorry.",
  "Hold on": ``sounds_like_interruption``) or three words that are not all
  acknowledgements. What an acknowledgement cut that short is misheard as is one random
  word or two ("uh-huh" -> "Afer", "mm-hmm" -> "and anthem", "alright" -> "BOLA"), rarely
  a cue;
* the second look (288 ms) barges in on anything that is not an acknowledgement ("hold
  on" was "Phone." at first). It is a trade: a hum misheard at 288 ms interrupts too,
  but later than 288 ms the interruptions it catches would stop the assistant more than
  400 ms after their onset;
* at the end of the turn, the whole turn's transcript decides; but when a look heard an
  acknowledgement, one or two words that are no interruption cue (whatever does not
  ``sounds_like_interruption``) are taken for a misheard one: on the en-gb "uh-huh",
  "mm-hmm" and "got it" the whole turn came back as "Afer", "and anthem" and "Guarded"
  in a benchmark run, where the same clips cut at 300 ms were heard as "Uh-huh.", "Mm."
  and "Got it.".

On the 40 espeak clips of benchmarks/turn_taking.py (10 acknowledgements and 10
interruptions, 2 voices) cut 260 ms after the onset, plain classification misheard 3
acknowledgements as words and heard 19 interruptions; at 300-360 ms, 1 and 20. Under
240 ms it guessed ("yes" -> "the end.", "uh-huh" -> "Bye bye.").
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
#: sounds, not words, as Whisper spells them: hums ("Mmm", "Mm-hmm", "Hmmm") and what it
#: writes for a hum it cannot place ("Fff" for the first 288 ms of an en-gb "uh-huh"):
#: humming and hissing letters only. Not any vowel-less token: the first 320 ms of
#: "actually" and "excuse me" come back as "x".
_SOUND = re.compile(r"^[hmnfsz]+$")
#: acknowledgement words only inside a phrase ("I see", "got it", "with you"): alone they
#: are the start of a sentence ("actually" is heard as "I" at 288-320 ms)
_NOT_ALONE = frozenset({"i", "it", "with", "all"})
#: the two looks at the words, from the speech's first voiced frame (8 and 9 frames)
BACKCHANNEL_PROBES_MS = (256, 288)
#: words that open an interruption: the first look barges in on these alone
INTERRUPTION_CUES = frozenset({
    "wait", "stop", "no", "nope", "hold", "hang", "sorry", "excuse", "pardon", "actually",
    "what", "hey", "listen", "but", "not", "wrong", "cancel", "hello", "thats", "never",
})
#: an acknowledgement is short; a longer run of these words is a real turn
MAX_ACKNOWLEDGEMENT_WORDS = 4
#: digits are words too: "3 3 1" is a caller dictating, not a sound
_WORD = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def acknowledgement_words(text: str) -> list[str]:
    """The words of a transcript as the classifier sees them (lowercase, no punctuation;
    apostrophes dropped: "I'm" -> "im")."""
    return _WORD.findall(text.lower().replace("'", "").replace("\u2019", ""))


def is_backchannel(text: str, words: frozenset[str] = ACKNOWLEDGEMENT_WORDS) -> bool:
    """True for a transcript that is only an acknowledgement, sounds ("Mm", "Fff") or
    nothing at all.
    Repeats count once: Whisper loops on short clips ("Got it Got it Got it")."""
    found = acknowledgement_words(text)
    distinct = _without_repeats(found)
    if len(distinct) > MAX_ACKNOWLEDGEMENT_WORDS or (distinct and _NOT_ALONE.issuperset(distinct)):
        return False
    return all(w in words or all(p in words or _SOUND.match(p) for p in w.split("-"))
               for w in found)


def _without_repeats(words: list[str]) -> list[str]:
    """``words`` with immediate repeats of a 1-3 word run collapsed ("got it got it" ->
    "got it"; "yeah yeah" -> "yeah")."""
    out: list[str] = []
    for word in words:
        out.append(word)
        for n in (1, 2, 3):
            if len(out) >= 2 * n and out[-n:] == out[-2 * n:-n]:
                del out[-n:]
                break
    return out


def sounds_like_interruption(text: str, words: frozenset[str] = ACKNOWLEDGEMENT_WORDS,
                             cues: frozenset[str] = INTERRUPTION_CUES) -> bool:
    """True when a transcript is not an acknowledgement (``words``) and has a word that
    opens an interruption (``cues``: "wait", "no", "sorry") or three words or more."""
    if is_backchannel(text, words):
        return False
    found = _without_repeats(acknowledgement_words(text))
    return len(found) >= 3 or any(w in cues for w in found)


def phrase_words(phrases: list[str] | tuple[str, ...]) -> frozenset[str]:
    """The words of a dialect's phrase list as the classifier compares them (Vapi's
    ``acknowledgementPhrases`` / ``interruptionPhrases``: "i got it" -> i, got, it)."""
    return frozenset(w for phrase in phrases for w in acknowledgement_words(phrase))

