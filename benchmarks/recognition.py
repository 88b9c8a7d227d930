"""Recognition: word error rate per condition, with and without keyword boosting.

A script, not a timed test. Everything is generated at run time (nothing downloaded):

* **Callers**: 22 sentences x 4 voices = 88 utterances per format. Voices: espeak-ng
  en-us 165 wpm, en-gb 150 wpm, en-us+f3 180 wpm, and every installed Piper voice (the
  bundled "joe"; more with ``--voices-dir``).
* **Subsets**: ``plain`` (receptionist questions), ``domain`` (names, products, medical
  and billing words), ``numbers`` (phone numbers, dates, IDs, an e-mail address).
* **Formats**: 16 kHz PCM, and phone audio: 8 kHz G.711 mu-law, decoded and brought back
  to 16 kHz with the engine's own input resampler (``listening.input_quality``).
* **Boosting conditions**: ``none``; ``keywords`` (the agent's ``boosted_keywords``,
  offered as Whisper context the way the engine does); ``auto`` (only the vocabulary
  ``voice/vocabulary.py`` derives from the agent's prompt, welcome and tools); ``both``.
* The recogniser is the embedded one: Whisper tiny.en via faster-whisper, greedy
  (``--beam 1``, as ``boot/providers.py`` builds it), short-window decoding.

**Scoring**: WER = word-level Levenshtein distance / reference words, summed over the
subset (not averaged per sentence). Both texts are normalised first (``normalise``):
lowercase; "@" -> "at"; a "." between letters -> "dot"; hyphens and other punctuation ->
spaces; "mr/mrs/dr" -> "mister/missus/doctor"; ordinals ("3rd") and numbers written as
digits are spelled as words: one or two digits as a number ("21" -> "twenty one"), four
digits starting 19/20 as a year ("1985" -> "nineteen eighty five"), "2:30" -> "two
thirty", any other digit string digit by digit ("4572" -> "four five seven two"); "oh" as
a digit is "zero"; "alright" -> "all right", "ok" -> "okay".

Usage::

    .venv/bin/python benchmarks/recognition.py --write-docs
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_busy_s, log, machine, write_between

SECTION = "Recognition"
ESPEAK_VOICES = (("en-us", 165), ("en-gb", 150), ("en-us+f3", 180))
SENTENCES: dict[str, tuple[str, ...]] = {
    "plain": (
        "What time do you open tomorrow morning?",
        "Can I speak to someone at the front desk?",
        "I would like to make an appointment for next week.",
        "Do you have any openings on Friday afternoon?",
        "How long does a regular visit usually take?",
        "Is there parking close to the office?",
        "I need to cancel my visit on Monday.",
        "Thank you so much for your help today.",
    ),
    "domain": (
        "I have a billing question about my invoice.",
        "How much does teeth whitening cost?",
        "Can you check the availability of Doctor Nakamura?",
        "I need a periodontal cleaning and a fluoride treatment.",
        "Does my Delta Dental insurance cover Invisalign?",
        "What is the copay for a root canal?",
        "I was prescribed amoxicillin after my extraction.",
        "Is the deductible applied before the orthodontist visit?",
    ),
    "numbers": (
        "My phone number is four five seven two one nine eight.",
        "My date of birth is March third, nineteen eighty five.",
        "The appointment is on June twenty first at two thirty.",
        "My email is jordan dot miller at gmail dot com.",
        "My member ID is seven three three one nine.",
        "Please call me back at eight zero five, five five five, zero one four two.",
    ),
}
#: the benchmark agent: a dental clinic (what a user would configure)
AGENT_PROMPT = (
    "You are the receptionist of Bright Smile Dental. Our dentists are Doctor Nakamura and "
    "Doctor Patel. We offer cleanings, periodontal care, fluoride treatments, teeth "
    "whitening, root canals, extractions and Invisalign. We accept Delta Dental and Cigna "
    "insurance and explain copays and deductibles. Help callers with billing questions and "
    "appointment availability, and collect their date of birth, phone number and email.")
AGENT_WELCOME = "Thank you for calling Bright Smile Dental, how can I help?"
BOOSTED_KEYWORDS = ("billing", "teeth whitening", "availability", "Doctor Nakamura",
                    "periodontal", "fluoride", "Delta Dental", "Invisalign", "copay",
                    "root canal", "amoxicillin", "deductible", "orthodontist", "extraction")
CONDITIONS = ("none", "keywords", "auto", "both")


@dataclass(frozen=True)
class AgentTool:
    name: str
    description: str
    parameters: dict[str, Any]


AGENT_TOOLS = (
    AgentTool("book_appointment", "Book a visit with one of our dentists.", {
        "type": "object", "properties": {
            "service": {"type": "string", "enum": [
                "cleaning", "teeth whitening", "root canal", "Invisalign consultation",
                "periodontal treatment", "orthodontist referral"]},
            "dentist": {"type": "string", "enum": ["Doctor Nakamura", "Doctor Patel"]}}}),
    AgentTool("check_insurance", "Check whether an insurance plan covers a treatment.", {
        "type": "object", "properties": {
            "provider": {"type": "string", "enum": ["Delta Dental", "Cigna", "Aetna"]}}}),
    AgentTool("billing_lookup", "Look up an invoice, a copay or the deductible.", {
        "type": "object", "properties": {"invoice": {"type": "string"}}}),
)


# --------------------------------------------------------------------------- normalisation
_ONES_TEXT = ("zero one two three four five six seven eight nine ten eleven twelve thirteen "
              "fourteen fifteen sixteen seventeen eighteen nineteen")
_TENS_TEXT = "_ _ twenty thirty forty fifty sixty seventy eighty ninety"
_ONES, _TENS = _ONES_TEXT.split(), _TENS_TEXT.split()
_ORDINAL_SUFFIX = re.compile(r"\b(\d+)(st|nd|rd|th)\b")
_ORDINALS = {"1": "first", "2": "second", "3": "third", "4": "fourth", "5": "fifth",
             "6": "sixth", "7": "seventh", "8": "eighth", "9": "ninth", "10": "tenth",
             "11": "eleventh", "12": "twelfth", "13": "thirteenth", "20": "twentieth",
             "21": "twenty first", "22": "twenty second", "23": "twenty third",
             "30": "thirtieth", "31": "thirty first"}
_WORDS = {"mr": "mister", "mrs": "missus", "dr": "doctor", "ok": "okay", "alright": "all right",
          "e-mail": "email", "oh": "zero", "id": "i d"}


def _two_digits(n: int) -> str:
    if n < 20:
        return _ONES[n]
    tens, ones = divmod(n, 10)
    return _TENS[tens] + ("" if ones == 0 else " " + _ONES[ones])


def _spell(digits: str) -> str:
    if len(digits) <= 2:
        return _two_digits(int(digits))
    if len(digits) == 4 and digits[:2] in ("19", "20") and digits[2] != "0":
        return f"{_two_digits(int(digits[:2]))} {_two_digits(int(digits[2:]))}"
    return " ".join(_ONES[int(d)] for d in digits)


def normalise(text: str) -> list[str]:
    """The words scored (see the module docstring for the rules)."""
    text = text.lower().replace("@", " at ")
    text = re.sub(r"(?<=[a-z])\.(?=[a-z])", " dot ", text)
    text = _ORDINAL_SUFFIX.sub(lambda m: " " + _ORDINALS.get(m.group(1), _spell(m.group(1)))
                               + " ", text)
    text = re.sub(r"\b(\d{1,2}):(\d{2})\b",
                  lambda m: f" {_spell(m.group(1))} {_spell(m.group(2))} ", text)
    text = re.sub(r"(?<=\d)[,.\-](?=\d)", " ", text)  # 4.5.7.2, 805-555: digit groups
    text = re.sub(r"\d+", lambda m: " " + _spell(m.group(0)) + " ", text)
    words = re.findall(r"[a-z']+", text.replace("-", " "))
    out: list[str] = []
    for word in (w.strip("'") for w in words):
        out += _WORDS.get(word, word).split()
    return [w for w in out if w]


def edits(ref: list[str], hyp: list[str]) -> int:
    """Word-level Levenshtein distance."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


# --------------------------------------------------------------------------- audio


@dataclass
class Utterance:
    subset: str
    text: str
    voice: str
    audio16: Any  # int16 16 kHz
    phone: Any  # the same through 8 kHz mu-law, back at 16 kHz


def espeak(text: str, voice: str, speed: int, workdir: Path) -> Any:
    from openline.audio.resample import resample
    from openline.audio.wav import read_wav

    path = workdir / "utt.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), text],
                   check=True, timeout=30)
    samples, rate = read_wav(path)
    return np.asarray(resample(samples, rate, 16_000), dtype=np.int16)


def phone_line(audio16: Any) -> Any:
    """16 kHz -> 8 kHz mu-law -> what the engine feeds the recogniser."""
    from openline.audio.codecs import mulaw_decode, mulaw_encode
    from openline.audio.resample import resample
    from openline.voice.listening import input_quality

    narrow = np.asarray(resample(audio16, 16_000, 8_000, quality="HQ"), dtype=np.int16)
    decoded = mulaw_decode(mulaw_encode(narrow).tobytes())
    return np.asarray(resample(decoded, 8_000, 16_000, quality=input_quality(8_000)),
                      dtype=np.int16)


async def utterances(workdir: Path, voices_dir: Path | None) -> list[Utterance]:
    from openline.audio.resample import resample
    from openline.providers.tts.piper import PiperOptions, PiperTTS

    out: list[Utterance] = []
    async with PiperTTS(PiperOptions(voices_dir=voices_dir)) as piper:
        piper_voices = [v.id for v in piper.voices()]
        for subset, lines in SENTENCES.items():
            for text in lines:
                for voice, speed in ESPEAK_VOICES:
                    audio = espeak(text, voice, speed, workdir)
                    out.append(Utterance(subset, text, f"espeak {voice} {speed}", audio,
                                         phone_line(audio)))
                for voice_id in piper_voices:
                    chunks = [c async for c in piper.synthesize(text, voice_id)]
                    audio = np.asarray(resample(np.concatenate([c.samples for c in chunks]),
                                                chunks[0].sample_rate, 16_000), dtype=np.int16)
                    out.append(Utterance(subset, text, f"piper {voice_id}", audio,
                                         phone_line(audio)))
    return out


# --------------------------------------------------------------------------- measuring


def hotwords_for(condition: str) -> tuple[str, ...]:
    from openline.voice.vocabulary import domain_vocabulary

    auto = tuple(domain_vocabulary(AGENT_PROMPT, AGENT_WELCOME, AGENT_TOOLS))
    return {"none": (), "keywords": BOOSTED_KEYWORDS, "auto": auto,
            "both": BOOSTED_KEYWORDS + tuple(a for a in auto if a not in BOOSTED_KEYWORDS)
            }[condition]


async def measure(utts: list[Utterance], beam: int) -> dict[str, Any]:
    from openline.providers.stt.faster_whisper import FasterWhisperOptions, FasterWhisperSTT

    rows: dict[tuple[str, str, str], dict[str, float]] = {}
    examples: list[tuple[str, str, str, str]] = []
    stt = FasterWhisperSTT(FasterWhisperOptions(beam_size=beam))
    async with stt:
        await stt.transcribe(np.zeros(16_000, dtype=np.float32))  # warm-up
        for fmt in ("16k", "phone"):
            for condition in CONDITIONS:
                hotwords = hotwords_for(condition)
                for u in utts:
                    audio = u.audio16 if fmt == "16k" else u.phone
                    result = await stt.transcribe(audio, language="en", hotwords=hotwords)
                    ref, hyp = normalise(u.text), normalise(result.text)
                    row = rows.setdefault((fmt, condition, u.subset),
                                          {"edits": 0, "words": 0, "s": 0.0, "n": 0})
                    row["edits"] += edits(ref, hyp)
                    row["words"] += len(ref)
                    row["s"] += result.processing_s
                    row["n"] += 1
                    if ref != hyp and fmt == "16k" and condition in ("none", "both"):
                        examples.append((condition, u.voice, u.text, result.text))
    return {"rows": rows, "examples": examples, "auto": list(hotwords_for("auto"))}


def table(result: dict[str, Any]) -> str:
    rows = result["rows"]
    lines = ["| format | boosting | plain WER | domain WER | numbers WER | all WER | "
             "mean recognition ms |", "|---|---|---|---|---|---|---|"]
    for fmt in ("16k", "phone"):
        for condition in CONDITIONS:
            cells = []
            total_e = total_w = 0
            seconds: list[float] = []
            for subset in SENTENCES:
                r = rows[(fmt, condition, subset)]
                cells.append(f"{r['edits'] / r['words']:.3f}")
                total_e += r["edits"]
                total_w += r["words"]
                seconds.append(r["s"] / r["n"])
            name = "16 kHz PCM" if fmt == "16k" else "8 kHz mu-law"
            lines.append(f"| {name} | {condition} | {' | '.join(cells)} | "
                         f"{total_e / total_w:.3f} | {statistics.mean(seconds) * 1000:.0f} |")
    return "\n".join(lines)


def domain_gain(result: dict[str, Any], fmt: str, condition: str) -> float:
    """Relative WER reduction on the domain subset against ``none``."""
    rows = result["rows"]
    base = rows[(fmt, "none", "domain")]
    boosted = rows[(fmt, condition, "domain")]
    before = base["edits"] / base["words"]
    return (before - boosted["edits"] / boosted["words"]) / before if before else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--beam", type=int, default=1, help="beam size (default 1, as served)")
    parser.add_argument("--voices-dir", type=Path, default=None, help="extra Piper voices")
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--examples", type=int, default=12, help="misrecognitions to print")
    args = parser.parse_args(argv)
    if shutil.which("espeak-ng") is None:
        parser.error("espeak-ng is needed to synthesize the callers")
    with tempfile.TemporaryDirectory(prefix="openline-recognition-") as tmp:
        utts = asyncio.run(utterances(Path(tmp), args.voices_dir))
    log(f"{len(utts)} utterances x 2 formats x {len(CONDITIONS)} conditions")
    busy0, t0 = cpu_busy_s(), time.monotonic()
    result = asyncio.run(measure(utts, args.beam))
    share = (cpu_busy_s() - busy0) / max(1e-9, time.monotonic() - t0) / 2
    text = table(result)
    print(f"\n{text}\n\nauto vocabulary: {result['auto']}")
    for fmt in ("16k", "phone"):
        gains = ", ".join(f"{c} {domain_gain(result, fmt, c):+.0%}" for c in CONDITIONS[1:])
        print(f"domain WER reduction ({fmt}): {gains}")
    for condition, voice, ref, hyp in result["examples"][: args.examples]:
        print(f"  [{condition}] {voice}: {ref!r} -> {hyp!r}")
    if args.write_docs:
        gains = "; ".join(
            f"{'16 kHz' if fmt == '16k' else 'phone'}: " + ", ".join(
                f"{c} {-domain_gain(result, fmt, c):+.0%}" for c in CONDITIONS[1:])
            for fmt in ("16k", "phone"))
        body = (f"Run {date.today().isoformat()} on a {machine()}, {len(utts)} utterances per "
                f"format, Whisper tiny.en beam {args.beam}; the machine was {share:.0%} busy "
                f"over 2 cores during the run, this benchmark included (WER does not depend "
                f"on it, recognition ms does). Reproduce: `.venv/bin/python "
                f"benchmarks/recognition.py --beam {args.beam} --write-docs`.\n\n{text}\n\n"
                f"Domain-subset WER change against no boosting: {gains}.\n\nAutomatic "
                f"vocabulary of the benchmark agent: {', '.join(result['auto'])}.\n")
        write_between(f"recognition-beam{args.beam}", body, SECTION)
    return 0


if __name__ == "__main__":
    sys.exit(main())
