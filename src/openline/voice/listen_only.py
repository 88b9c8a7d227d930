"""Listen-only calls (``listen_only_inbound_enabled``): greet once, then only transcribe.

On an incoming phone call of such an agent the service layer makes the welcome the
agent's ``listen_only_inbound_message`` (uninterruptible, never generated) and turns the
no-input poke off; the engine then answers no turn: every reply path asks the model
through ``ListeningOnly``, which never says anything nor calls a tool. Caller turns are
still recognised, reported (``input_text``) and stored; the silence limit
(``no_input_end_conversation_sec``) and the call's own limits still end the call.
Explicit ``say`` controls are still spoken: the client asked for exactly those words.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from openline.providers.llm.base import (
    LLM,
    ChatMessage,
    Finish,
    GenerationOptions,
    HookEvent,
    ToolSpec,
)

if TYPE_CHECKING:
    from openline.voice.session import Conversation


class ListeningOnly(LLM):
    """The "model" of a listen-only call: every reply is empty (no words, no tools)."""

    name = "listen-only"

    def __init__(self) -> None:
        super().__init__()
        self.turns_heard = 0

    async def _stream(self, messages: list[ChatMessage], tools: list[ToolSpec],
                      options: GenerationOptions) -> AsyncIterator[HookEvent]:
        self.turns_heard += 1
        yield Finish("stop")


def attach(conv: Conversation) -> bool:
    """Make a listen-only conversation silent after its greeting (False: a normal one)."""
    if not conv.cfg.listen_only:
        return False
    conv.p = dataclasses.replace(conv.p, llm=ListeningOnly())
    return True
