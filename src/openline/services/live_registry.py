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
from collections.abc import AsyncIterator
from typing import Any, Protocol, runtime_checkable

from openline.services.control_channel import event_dict
from openline.transports.base import CallTransport, Control, ControlRejected

#: the new peer can arrive before the server noticed that the old one dropped
DROP_NOTICE_S = 1.0
#: events a slow watcher may fall behind by; older ones are dropped (watching is advisory)
WATCH_BUFFER = 256


class OwnerUnreachable(Exception):
    """The node that owns a call did not answer (gone, or too slow)."""


class LiveCall(Protocol):
    """What the registry needs of a running call."""

    @property
    def id(self) -> str: ...

    @property
    def workspace_id(self) -> str: ...

    def end(self, ended_by: str) -> None: ...

    async def wait_finished(self) -> None: ...


@runtime_checkable
class ControllableCall(LiveCall, Protocol):
    """A call that runs its engine (a ringing phone call does not yet)."""

    async def control(self, command: Control) -> None:
        """Apply a mid-call control (raises ``ControlRejected``)."""
        ...


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

    async def control(self, conversation_id: str, owner_node: str | None,
                      command: Control) -> None:
        """Apply ``command`` on the owner node (``ControlRejected``, ``OwnerUnreachable``)."""
        ...

    def watch(self, conversation_id: str, owner_node: str | None
              ) -> AsyncIterator[dict[str, Any]]:
        """The call's engine events as JSON data, from now until it ends."""
        ...

    def publish(self, conversation_id: str, event: Any) -> None:
        """The owner's hook: one engine event of a local call, for its watchers."""
        ...

    async def node_url(self, node_id: str) -> str | None:
        """Where another live node serves HTTP (reconnect relay); ``None`` if unknown."""
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
        self._watchers: dict[str, set[asyncio.Queue[dict[str, Any] | None]]] = {}

    def add(self, call: LiveCall) -> None:
        self._calls[call.id] = call
        self._idle.clear()

    def remove(self, conversation_id: str) -> None:
        self._calls.pop(conversation_id, None)
        for queue in self._watchers.pop(conversation_id, ()):
            _offer(queue, None)  # the call ended: its watch streams end
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

    async def control(self, conversation_id: str, owner_node: str | None,
                      command: Control) -> None:
        call = self._calls.get(conversation_id)
        if call is None:
            raise OwnerUnreachable("the conversation is not live on this node")
        if not isinstance(call, ControllableCall):
            raise ControlRejected("The conversation has not started yet", "not_started")
        await call.control(command)

    async def watch(self, conversation_id: str, owner_node: str | None
                    ) -> AsyncIterator[dict[str, Any]]:
        if conversation_id not in self._calls:
            return
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(WATCH_BUFFER)
        self._watchers.setdefault(conversation_id, set()).add(queue)
        try:
            while (item := await queue.get()) is not None:
                yield item
        finally:
            self._watchers.get(conversation_id, set()).discard(queue)

    def publish(self, conversation_id: str, event: Any) -> None:
        queues = self._watchers.get(conversation_id)
        if not queues:
            return  # nobody watches: no serialisation on the hot path
        data = event_dict(event)
        for queue in queues:
            _offer(queue, data)

    async def node_url(self, node_id: str) -> str | None:
        return None  # one node: there is no other


def _offer(queue: asyncio.Queue[Any], item: Any) -> None:
    """Put without blocking; a full queue drops its oldest entry (drop-oldest policy)."""
    if queue.full():
        with contextlib.suppress(asyncio.QueueEmpty):
            queue.get_nowait()
    queue.put_nowait(item)
