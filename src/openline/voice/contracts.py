"""What a conversation needs from its owner and hands back (re-exported by ``session``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from openline.domain.tool_call import ToolCallRecord
from openline.providers.llm.base import LLM
from openline.providers.stt.base import STT
from openline.providers.tts.base import TTS
from openline.providers.vad.base import VAD, EndOfTurnModel, TextEndOfTurnModel
from openline.voice import events as ev
from openline.voice.recorder import Recorder


@dataclass
class Providers:
    vad: VAD
    stt: STT
    llm: LLM
    tts: TTS
    #: the audio end-of-turn model (None: endpointing is the fixed VAD silence)
    turn: EndOfTurnModel | None = None
    #: the text end-of-turn model, consulted with the audio one (None: the words are
    #: judged by ``end_of_turn.sounds_unfinished`` alone)
    turn_text: TextEndOfTurnModel | None = None


@dataclass
class ItemRecord:
    """A finished turn, as the store keeps it."""

    role: str
    text: str
    started_at: datetime
    duration_ms: float
    voice_id: str | None = None
    audio_speed: float | None = None
    system_prompt: str | None = None
    tool_calls: list[ToolCallRecord] = field(default_factory=list)


@dataclass
class ConversationResult:
    ended_by: str
    latencies_ms: list[float]
    interruptions_count: int
    underruns: int
    recorder: Recorder
    stage_timings: list[dict[str, float]]


class ConversationObserver(Protocol):
    """Persistence hooks: items as each turn completes, late tool results, transfers."""

    async def item(self, record: ItemRecord) -> None: ...

    async def tool_result(self, record: ToolCallRecord) -> None: ...

    async def transferred(self, agent_id: str, agent_name: str) -> None: ...


Send = Callable[[ev.EngineEvent], Awaitable[None]]
