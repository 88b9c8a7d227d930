"""A text-only conversation through the engine's reply path (LLM and tools, no audio)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

from openline.providers.llm.base import LLM
from openline.voice.builtins import built_in_specs
from openline.voice.chat_context import ChatContext
from openline.voice.config import SessionConfig
from openline.voice.reply import NoTools, ReplyResult, ReplyTools, Speech, ToolExecutor, generate
from openline.voice.speech import SpeechHandle


class TextSession:
    """Keeps the history; ``turn()`` streams the assistant's sentences."""

    def __init__(self, cfg: SessionConfig, llm: LLM, tools: ToolExecutor | None = None) -> None:
        self.cfg, self.llm, self.tools = cfg, llm, tools or NoTools()
        self.chat = ChatContext(cfg.system_prompt)
        self.last: ReplyResult | None = None
        self.llm_session = uuid.uuid4().hex  # keeps this chat's prompt cached

    async def turn(self, user_text: str) -> AsyncIterator[str]:
        """Send ``user_text``; yields each sentence of the reply as soon as it exists."""
        self.chat.add_user(user_text, "text")
        messages = self.chat.messages()
        handle = SpeechHandle("reply")
        speech = Speech(self.llm, None, self.cfg.output_format, self.cfg.voice_id, 1.0,
                        self.cfg.max_reply_tokens, self.llm_session)
        tools = built_in_specs(self.cfg.built_in_tools)
        task = asyncio.ensure_future(generate(speech, messages, ReplyTools(tools, self.tools),
                                              handle, {}))
        try:
            while (item := await handle.next_sentence()) is not None:
                yield item[1]
            self.last = await task
        finally:
            task.cancel()
        self.chat.add_messages(self.last.messages)
        self.chat.add_assistant(self.last.text)

    @property
    def ended(self) -> bool:
        return bool(self.last and self.last.end_conversation)
