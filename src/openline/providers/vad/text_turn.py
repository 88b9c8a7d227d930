"""A text end-of-turn model: the embedded Gemma 3 270M (llama.cpp) asked whether a line of a
phone-call transcript ends where the caller stopped.

Why a language model: the audio model (Smart Turn) judges prosody, and a caller who pauses
after "I called yesterday" or "I need an appointment" (before "... about my bill", "... for
my daughter") sounds finished, and the word rules of ``voice/end_of_turn.py`` see a whole
sentence. Whether it goes on is a question for a model of text. No end-of-utterance
model ships inside a PyPI package, but the base model we already ship predicts the next
token: after a few-shot transcript of complete caller lines, P(the line ends here) is the
probability mass of the tokens that end a line (".", "?", "!", a newline) among its 20 most
likely next tokens. Trailing punctuation from the recogniser is removed first (Whisper puts
a "." or "?" after everything it hears).

Measured on 30 complete and 19 unfinished lines (benchmarks/turn_taking.py's set as
Whisper heard it, plus short answers): every complete line scored at least 0.05 ("Yes."
included), and 12 of the 19 unfinished ones scored below it. A low score is an overrule of
a "complete" from the audio (wait up to the bound), never a faster end.

Cost: the few-shot prefix stays in llama.cpp's prompt cache, so a check evaluates only the
transcript's tokens (8-12): 90-120 ms on one core of a 2-core Xeon, 50-70 ms on two, alone.
It runs while the audio model does (``voice/listening.py``), but next to the recogniser and
the audio model a check took 130-330 ms with one thread and 400-800 ms with two (llama.cpp's
threads wait for each other when the cores are taken), which puts it on the critical path:
hence off by default (``OPENLINE_END_OF_TURN_TEXT_MODEL``), for machines with cores to spare.
Its own llama.cpp context (256 tokens), separate from the reply model's slots, so a check
never queues behind a reply; the weights are the same memory-mapped file.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openline.domain.errors import ProviderError, ProviderUnavailable
from openline.providers.vad.base import TextEndOfTurnModel

#: complete caller lines, so the model continues with a complete one (and ends it)
PREFIX = (
    "Phone call transcript. The caller speaks in short complete sentences.\n"
    "Caller: Hi, I'd like to check on my order.\n"
    "Caller: Yes.\n"
    "Caller: My name is Sarah Jones.\n"
    "Caller: What time do you open tomorrow?\n"
    "Caller: "
)
#: a next token starting with one of these ends the line
_LINE_END = frozenset(".?!\n")
_TRAILING = re.compile(r"[\s.?!,;:\u2026-]+$")
#: only the end of a long turn matters, and the context is small
MAX_WORDS = 48
TOP_TOKENS = 20


def caller_line(text: str) -> str:
    """The transcript as the model sees it: its last ``MAX_WORDS`` words, without the
    recogniser's trailing punctuation."""
    words = text.split()[-MAX_WORDS:]
    return _TRAILING.sub("", " ".join(words))


@dataclass(frozen=True)
class LlamaTextTurnOptions:
    """``gguf_path``: e.g. ``providers.llm.llama_cpp.ensure_embedded_gguf(data_dir)``."""

    gguf_path: Path
    n_threads: int = 1


class LlamaTextTurnModel(TextEndOfTurnModel):
    """P(complete) from a base language model's next-token distribution (module docstring).
    One check at a time, on ``n_threads`` threads (one by default: see the module docstring)."""

    name = "text-turn"

    def __init__(self, options: LlamaTextTurnOptions) -> None:
        super().__init__()
        self.options = options
        self._server: Any = None

    async def _load(self) -> None:
        self._server = await self.runner.run(self._create_server)
        await self.runner.run(self._complete_sync, "Hello")  # puts the prefix in the cache

    def _create_server(self) -> Any:
        import xllamacpp

        if not Path(self.options.gguf_path).is_file():
            raise ProviderUnavailable(f"text-turn: GGUF not found at {self.options.gguf_path}")
        params = xllamacpp.CommonParams()
        params.model.path = str(self.options.gguf_path)
        params.n_ctx = 256
        params.n_parallel = 1
        for cpu in (params.cpuparams, params.cpuparams_batch):
            cpu.n_threads = self.options.n_threads
            cpu.poll = 0  # between checks the threads sleep: the recogniser needs the cores
        params.verbosity = -1
        return xllamacpp.Server(params)

    def _complete_sync(self, text: str) -> float:
        line = caller_line(text)
        if not line:
            return 1.0  # no words to judge: the audio decides
        response = self._server.handle_completions({
            "prompt": PREFIX + line, "n_predict": 1, "n_probs": TOP_TOKENS,
            "temperature": 0.0, "cache_prompt": True,
        })
        try:
            top = response["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
        except (KeyError, IndexError, TypeError) as exc:
            raise ProviderError(f"text-turn: no token probabilities in {response!r:.200}") from exc
        return min(1.0, sum(math.exp(t["logprob"]) for t in top
                            if t["token"][:1] in _LINE_END))

    async def _close(self) -> None:
        self._server = None
