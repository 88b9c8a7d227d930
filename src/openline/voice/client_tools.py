"""The client side of ``custom_websocket`` tools: ``tool_call`` out, ``tool_call_output`` in."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from openline.voice import events as ev


class ClientToolChannel:
    """Implements the runtime's ``ClientChannel`` over the engine's outbound events."""

    def __init__(self, emit: Callable[[ev.EngineEvent], Awaitable[None]],
                 emit_now: Callable[[ev.EngineEvent], None]) -> None:
        self._emit, self._emit_now = emit, emit_now
        self._waiting: dict[str, asyncio.Future[Any]] = {}

    async def request(self, call_id: str, name: str, arguments: dict[str, Any]) -> Any:
        """Ask the client to run the tool; resolves with its output (the caller times out)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[call_id] = future
        try:
            await self._emit(ev.ToolCallRequest(call_id, name, arguments))
            return await future
        finally:
            self._waiting.pop(call_id, None)

    def deliver(self, call_id: str, output: Any) -> bool:
        """The client's ``tool_call_output``; False when no such call is waiting."""
        future = self._waiting.get(call_id)
        if future is None or future.done():
            return False
        future.set_result(output)
        return True

    def interrupted(self, call_id: str, name: str) -> None:
        self._emit_now(ev.ToolCallInterrupted(call_id, name))
