"""Where live calls are found, and how commands reach the node that runs them.

One process holds the calls it runs (``local``). Commands for a call (cancel; hand-off of
a reconnecting peer) go through the registry, so that with several nodes a cancel sent to
any node reaches the owner. ``InProcessRegistry`` is the single-node implementation; the
scale-out issue adds a Redis one with the same interface.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from typing import Protocol

from openline.transports.base import CallTransport

#: the new peer can arrive before the server noticed that the old one dropped
DROP_NOTICE_S = 1.0


class LiveCall(Protocol):
    """What the registry needs of a running call."""

    @property
    def id(self) -> str: ...

    @property
    def workspace_id(self) -> str: ...

    def end(self, ended_by: str) -> None: ...

    async def wait_finished(self) -> None: ...


def default_node_id() -> str:
    """A name for this process that is unique among the nodes sharing a database."""
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class LiveRegistry(Protocol):
    """The live calls of this node, and the control channel to other nodes."""

    node_id: str

    def add(self, call: LiveCall) -> None: ...

    def remove(self, conversation_id: str) -> None: ...

    def local(self, conversation_id: str) -> LiveCall | None: ...

    def local_ids(self) -> list[str]: ...

    async def wait_idle(self, timeout_s: float) -> None:
        """Until no call is live on this node, or ``timeout_s`` has passed."""
        ...

    async def cancel(self, conversation_id: str, owner_node: str | None) -> bool:
        """End the call ``user_canceled`` on whichever node owns it; True once it ended."""
        ...

    async def wait_for_peer(self, conversation_id: str, workspace_id: str,
                            timeout_s: float) -> CallTransport | None:
        """Called by a call whose peer dropped: the peer that comes back, or None."""
        ...

    async def offer_peer(self, conversation_id: str, workspace_id: str,
                         transport: CallTransport) -> bool:
        """A peer reconnects: hand it to the waiting call; False when nothing waits."""
        ...


class InProcessRegistry:
    """Single-node registry: calls in a dict, reconnect hand-off through futures."""

    def __init__(self, node_id: str | None = None, *, cancel_timeout_s: float = 5.0) -> None:
        self.node_id = node_id or default_node_id()
        self.cancel_timeout_s = cancel_timeout_s
        self._calls: dict[str, LiveCall] = {}
        self._waiting: dict[str, tuple[str, asyncio.Future[CallTransport]]] = {}
        self._idle = asyncio.Event()
        self._idle.set()

    def add(self, call: LiveCall) -> None:
        self._calls[call.id] = call
        self._idle.clear()

    def remove(self, conversation_id: str) -> None:
        self._calls.pop(conversation_id, None)
        if not self._calls:
            self._idle.set()

    def local(self, conversation_id: str) -> LiveCall | None:
        return self._calls.get(conversation_id)

    def local_ids(self) -> list[str]:
        return list(self._calls)

    async def wait_idle(self, timeout_s: float) -> None:
        """Until no call is live on this node, or ``timeout_s`` has passed."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._idle.wait()

    async def cancel(self, conversation_id: str, owner_node: str | None) -> bool:
        call = self._calls.get(conversation_id)
        if call is None:
            return False  # one node: nobody else can be running it
        call.end("user_canceled")
        async with asyncio.timeout(self.cancel_timeout_s):
            await call.wait_finished()
        return True

    async def wait_for_peer(self, conversation_id: str, workspace_id: str,
                            timeout_s: float) -> CallTransport | None:
        future: asyncio.Future[CallTransport] = asyncio.get_running_loop().create_future()
        self._waiting[conversation_id] = (workspace_id, future)
        try:
            async with asyncio.timeout(timeout_s):
                return await future
        except TimeoutError:
            return None
        finally:
            self._waiting.pop(conversation_id, None)

    async def offer_peer(self, conversation_id: str, workspace_id: str,
                         transport: CallTransport) -> bool:
        entry = self._waiting.get(conversation_id)
        if entry is None and conversation_id in self._calls:
            await asyncio.sleep(DROP_NOTICE_S)
            entry = self._waiting.get(conversation_id)
        if entry is None or entry[0] != workspace_id or entry[1].done():
            return False
        entry[1].set_result(transport)
        return True
