"""Replay: yesterday's calls against today's agent.

* ``replay_conversation`` runs the stored caller track of an ended conversation (the left
  channel of its recording) through an agent, the original one or another of the same
  project, in real time on the engine, as a new conversation with ``origin: "replay"``.
  The caller's audio goes in at the pace it was spoken; what the agent says is played to
  no one (a local real-time pacer), and its turns are stored like any call's. When the
  track ends the replay waits for the agent to finish its reply, then hangs up.
* ``replay_item`` asks the LLM again for one assistant turn, with the history before it
  and an optional new system prompt: 1-10 alternative responses with the tool calls they
  would make. Tools are offered to the LLM but never run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import select

from openline.audio.codecs import AudioFormat
from openline.audio.wav import read_wav
from openline.domain.errors import Conflict, NotFound, OpenlineError, ValidationFailed
from openline.providers.llm.base import LLM, ChatMessage, GenerationOptions, ToolCall
from openline.services import tool_loading
from openline.services.call_setup import StartCall
from openline.services.live import LiveService
from openline.services.masking import mask_headers
from openline.services.principal import Principal
from openline.services.session_config import SessionOverrides
from openline.store import tables as t
from openline.store.db import Database
from openline.voice import events as ev
from openline.voice.io import AudioSink
from openline.voice.tools import PhoneTransfer, RuntimeTool

log = logging.getLogger(__name__)

RATE = 16_000
FRAME_MS = 20
#: after the caller's track ends: how long the agent may take to finish its reply
TAIL_WAIT_S = 20.0
#: silence fed after the track, so the last turn's end is detected
TAIL_SILENCE_MS = 1500
MAX_RESPONSES = 10


class NotReplayable(OpenlineError):
    """The conversation or item cannot be replayed (no audio, no agent, not an assistant
    item); Phonic answers 422."""

    code = "not_replayable"


class ReplayCapacity(OpenlineError):
    """This node already runs as many replays as it may; Phonic answers 503."""

    code = "insufficient_capacity"
    retryable = True


@dataclass(frozen=True)
class ReplayToolCall:
    """A tool call an alternative response would make (not executed)."""

    tool_id: str | None
    tool_name: str
    request_body: dict[str, Any] | None
    endpoint: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReplayResponse:
    text: str
    tool_calls: tuple[ReplayToolCall, ...]


class ReplayTransport:
    """A transport whose caller is a recording: the track goes in at real-time pace.

    After the track it hangs up as soon as the agent has nothing left to say: no caller
    turn waits for its reply and the agent is not speaking.
    """

    def __init__(self, caller: npt.NDArray[np.int16]) -> None:
        self.caller = caller
        self._speaking = False
        self._awaiting_reply = False
        self._changed = asyncio.Event()

    @property
    def settled(self) -> bool:
        return not (self._speaking or self._awaiting_reply)

    async def send_event(self, event: ev.EngineEvent) -> None:
        if isinstance(event, ev.UserStartedSpeaking | ev.UserFinishedSpeaking):
            self._awaiting_reply = True
        elif isinstance(event, ev.AssistantStartedSpeaking):
            self._speaking = True
        elif isinstance(event, ev.AssistantFinishedSpeaking | ev.InterruptedResponse):
            self._speaking = self._awaiting_reply = False
        elif isinstance(event, ev.InputCancelled | ev.AssistantChoseNotToRespond):
            self._awaiting_reply = False
        else:
            return
        self._changed.set()

    async def clear(self) -> None:
        return None

    async def send_dtmf(self, digits: str) -> None:
        return None

    async def transfer(self, destination: PhoneTransfer) -> bool:
        return False  # a replay calls no one

    async def hangup(self, ended_by: str) -> None:
        return None

    async def resumed(self) -> None:
        return None

    def audio_sink(self, output_format: AudioFormat) -> AudioSink | None:
        return None  # the engine's local pacer plays in real time to no one

    async def serve_input(self, call: Any) -> None:
        """The track in 20 ms frames on a real-time schedule, a short silence so the last
        turn ends, then the agent's reply to it (if any); then the caller hangs up."""
        step = RATE * FRAME_MS // 1000
        track = np.concatenate([self.caller, np.zeros(RATE * TAIL_SILENCE_MS // 1000,
                                                      np.int16)])
        start = time.monotonic()
        for i, offset in enumerate(range(0, track.size, step)):
            call.push_audio(track[offset:offset + step].astype("<i2").tobytes())
            delay = start + (i + 1) * FRAME_MS / 1000 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(TAIL_WAIT_S):
                while not self.settled:
                    self._changed.clear()
                    await self._changed.wait()


class ReplayService:
    """Both replays; conversation replays run as background tasks owned here."""

    def __init__(self, db: Database, live: LiveService, llm: LLM, *,
                 max_concurrent: int = 4) -> None:
        self.db, self.live, self.llm = db, live, llm
        self.max_concurrent = max_concurrent
        self._running: dict[str, asyncio.Task[Any]] = {}

    async def replay_conversation(self, who: Principal, conversation_id: str,
                                  agent: str | None) -> str:
        """Start the replay; returns the new conversation's id once it is stored."""
        row = await self._owned(who, conversation_id, "Conversation not found")
        if row.ended_at is None:
            raise Conflict("Cannot replay an active conversation")
        agent_ref = await self._agent(row, agent)
        caller = await asyncio.to_thread(_caller_track, row.recording_path)
        if len(self._running) >= self.max_concurrent:
            raise ReplayCapacity("Insufficient capacity available to start the replay.")
        start = StartCall(who, agent=agent_ref, project=row.project_id,
                          overrides=SessionOverrides(input_format="pcm_16000",
                                                     output_format="pcm_16000"),
                          origin="replay")
        session = await self.live.open(start, ReplayTransport(caller))
        task = asyncio.get_running_loop().create_task(
            self.live.run_session(session), name=f"replay-{session.id}")
        self._running[session.id] = task
        task.add_done_callback(lambda done: self._finished(session.id, done))
        return session.id

    def _finished(self, conversation_id: str, task: asyncio.Task[Any]) -> None:
        self._running.pop(conversation_id, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("replay %s failed", conversation_id, exc_info=task.exception())

    async def _owned(self, who: Principal, conversation_id: str, missing: str
                     ) -> t.Conversation:
        async with self.db.session() as s:
            row = await s.get(t.Conversation, conversation_id)
        if row is None or row.workspace_id != who.workspace_id or (
                who.conversation_ids and conversation_id not in who.conversation_ids):
            raise NotFound(missing)
        return row

    async def _agent(self, row: t.Conversation, name: str | None) -> str:
        """The agent to replay with: ``name`` in the conversation's project, else the
        conversation's own agent (422 when there is none any more)."""
        async with self.db.session() as s:
            if name:
                found = await s.scalar(select(t.Agent.id).where(
                    t.Agent.project_id == row.project_id,
                    (t.Agent.name == name) | (t.Agent.id == name)))
                if found is None:
                    raise NotFound(f"Agent {name!r} not found")
                return str(found)
            if row.agent_id is None or await s.get(t.Agent, row.agent_id) is None:
                raise NotReplayable("Cannot replay a conversation with no agent")
            return row.agent_id

    async def wait_all(self, timeout_s: float) -> None:
        """Until every running replay has ended (tests, shutdown)."""
        tasks = list(self._running.values())
        if tasks:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await asyncio.gather(*tasks, return_exceptions=True)

    # --- one item ---------------------------------------------------------------------------

    async def replay_item(self, who: Principal, item_id: str, system_prompt: str | None,
                          num_responses: int = 1) -> list[ReplayResponse]:
        """Alternative responses for an assistant item of an ended conversation."""
        if isinstance(num_responses, bool) or not isinstance(num_responses, int) or not (
                1 <= num_responses <= MAX_RESPONSES):
            raise ValidationFailed("Invalid parameters: num_responses: must be 1-10",
                                   {"num_responses": "must be an integer from 1 to 10"})
        if system_prompt is not None and not isinstance(system_prompt, str):
            raise ValidationFailed("Invalid parameters: system_prompt: must be a string",
                                   {"system_prompt": "must be a string"})
        async with self.db.session() as s:
            item = await s.get(t.ConversationItem, item_id)
            conv = await s.get(t.Conversation, item.conversation_id) if item else None
        if item is None or conv is None or conv.workspace_id != who.workspace_id:
            raise NotFound("Conversation item not found")
        if conv.ended_at is None:
            raise Conflict("Cannot replay an item from a live conversation")
        async with self.db.session() as s:
            agent = await s.get(t.Agent, conv.agent_id) if conv.agent_id else None
            if agent is None:
                raise NotReplayable("Cannot replay an item with no associated agent")
            if item.role != "assistant":
                raise NotReplayable("Only assistant items can be replayed")
            history = list(await s.scalars(select(t.ConversationItem).where(
                t.ConversationItem.conversation_id == conv.id,
                t.ConversationItem.item_idx < item.item_idx)
                .order_by(t.ConversationItem.item_idx)))
            tools, _ = await tool_loading.load(s, conv.project_id,
                                               agent.spec.get("tools") or [])
        prompt = system_prompt if system_prompt is not None else (
            item.system_prompt or (conv.config or {}).get("system_prompt") or "")
        messages = [ChatMessage.system(prompt), *_history(history)]
        return [await self._one(messages, tools) for _ in range(num_responses)]

    async def _one(self, messages: list[ChatMessage], tools: list[RuntimeTool]
                   ) -> ReplayResponse:
        done = await self.llm.complete(messages, tools=[tool.spec() for tool in tools],
                                       options=GenerationOptions(temperature=0.8))
        by_name = {tool.name: tool for tool in tools}
        calls = tuple(_tool_call(by_name.get(c.name), c.name, c.arguments)
                      for c in done.tool_calls)
        return ReplayResponse(done.text.strip(), calls)


def _history(items: list[t.ConversationItem]) -> list[ChatMessage]:
    """The turns before the replayed one, with their tool rounds (call, then result)."""
    out: list[ChatMessage] = []
    for item in items:
        text = item.post_call_transcript or item.live_transcript or ""
        if text and item.role == "user":
            out.append(ChatMessage.user(text))
        calls = [c for c in item.tool_calls or [] if isinstance(c, dict)]
        if calls:  # the calls and their results, then what was said with them
            out.append(ChatMessage.assistant("", tuple(
                ToolCall(_call_id(c, i), str((c.get("tool") or {}).get("name") or "tool"),
                         str(c.get("arguments") or "{}")) for i, c in enumerate(calls))))
            out += [ChatMessage.tool(_call_id(c, i), _result(c)) for i, c in enumerate(calls)]
        if text and item.role == "assistant":
            out.append(ChatMessage.assistant(text))
    return out


def _call_id(call: dict[str, Any], index: int) -> str:
    return str(call.get("tool_call_id") or call.get("id") or f"call_{index}")


def _result(call: dict[str, Any]) -> str:
    """What the tool answered, as the LLM saw it (JSON), or how it failed."""
    for key in ("response_body", "output", "context"):
        if call.get(key) is not None:
            value = call[key]
            return value if isinstance(value, str) else json.dumps(value)
    return json.dumps({"status": call.get("status"), "error": call.get("error_message")})


def _tool_call(tool: RuntimeTool | None, name: str, arguments: str) -> ReplayToolCall:
    try:
        body = json.loads(arguments or "{}")
    except ValueError:
        body = {"_raw": arguments}
    endpoint: dict[str, Any] = {}
    if tool is not None and tool.kind == "webhook":
        endpoint = {"endpoint_method": tool.config.get("endpoint_method"),
                    "endpoint_url": tool.config.get("endpoint_url"),
                    "endpoint_headers": mask_headers(tool.config.get("endpoint_headers"))}
    elif tool is not None and tool.kind == "context":
        endpoint = {"context": tool.config.get("context")}
    return ReplayToolCall(tool.id if tool else None, name,
                          body if isinstance(body, dict) else {"value": body}, endpoint)


def _caller_track(recording_path: str | None) -> npt.NDArray[np.int16]:
    """The caller's side of a stored recording (422 when there is none)."""
    if not recording_path or not Path(recording_path).exists():
        raise NotReplayable("Cannot replay a conversation without audio (none was kept, "
                            "or the recording was deleted)")
    samples, rate = read_wav(recording_path)
    caller = samples[:, 0] if samples.ndim == 2 else samples
    if rate != RATE:  # every recording is written at 16 kHz; anything else is not ours
        raise NotReplayable("Cannot replay this recording (not a 16 kHz recording)")
    return np.ascontiguousarray(caller, dtype=np.int16)
