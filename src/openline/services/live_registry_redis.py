"""The live registry for many nodes: Redis carries commands to the node that owns a call.

Each node keeps its own calls in an ``InProcessRegistry`` and listens on its Redis channel
``<prefix>:node:<node id>``. A node asked to act on a call it does not run (the database
row names the owner) publishes the command there and waits for the owner's answer on a
reply list (``BLPOP``): cancel, a mid-call control, or the start of a watch stream. Redis
tells the sender how many subscribers received a command, so a dead owner is known at
once (no subscriber) instead of after a timeout.

Watch streams: the watcher subscribes to ``<prefix>:watch:<conversation id>`` and asks the
owner to forward; the owner forwards the call's engine events there, in order, while the
watcher keeps renewing its interest (``WATCH_TTL_S``), and sends ``{"type": "ended"}``
when the call ends.

A reconnecting peer is handed to its call only on the owner node; each node's presence
key (``<prefix>:nodes:<id>``) holds the URL it serves, so a node that receives a
reconnect for another node's call relays the socket there (``api/phonic/relay.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

from redis.asyncio import Redis

from openline.services.control_channel import decode_control, dumps, encode_control, event_dict
from openline.services.live_registry import (
    WATCH_BUFFER,
    InProcessRegistry,
    LiveCall,
    OwnerUnreachable,
)
from openline.transports.base import CallTransport, Control, ControlRejected

log = logging.getLogger(__name__)

#: how long a watcher's interest lasts unless renewed (it renews every third of it)
WATCH_TTL_S = 15.0
#: a node's presence key expires this long after its last renewal
NODE_TTL_S = 15.0


class RedisLiveRegistry:
    """``LiveRegistry`` over Redis pub/sub (commands) and lists (replies)."""

    def __init__(self, redis: Redis, node_id: str, *, prefix: str = "openline",
                 cancel_timeout_s: float = 5.0, reply_timeout_s: float = 5.0,
                 url: str | None = None) -> None:
        self.redis, self.node_id, self.prefix = redis, node_id, prefix
        #: where other nodes reach this one (reconnect relay); "" for a process without HTTP
        self.url = url or ""
        self.reply_timeout_s = reply_timeout_s
        self.local_calls = InProcessRegistry(node_id, cancel_timeout_s=cancel_timeout_s)
        self._listener: asyncio.Task[None] | None = None
        self._forwarders: dict[str, asyncio.Task[None]] = {}
        self._forward_queues: dict[str, asyncio.Queue[dict[str, Any] | None]] = {}
        self._remote_watch_until: dict[str, float] = {}
        self._subscribed = asyncio.Event()

    # ----- local calls (the in-process registry does the work) ---------------------------
    def add(self, call: LiveCall) -> None:
        self.local_calls.add(call)

    def remove(self, conversation_id: str) -> None:
        self.local_calls.remove(conversation_id)
        self._remote_watch_until.pop(conversation_id, None)

    def local(self, conversation_id: str) -> LiveCall | None:
        return self.local_calls.local(conversation_id)

    def local_ids(self) -> list[str]:
        return self.local_calls.local_ids()

    async def wait_idle(self, timeout_s: float) -> None:
        """Until no call is live on this node, or ``timeout_s`` has passed."""
        await self.local_calls.wait_idle(timeout_s)

    async def wait_for_peer(self, conversation_id: str, workspace_id: str,
                            timeout_s: float) -> CallTransport | None:
        return await self.local_calls.wait_for_peer(conversation_id, workspace_id, timeout_s)

    async def offer_peer(self, conversation_id: str, workspace_id: str,
                         transport: CallTransport) -> bool:
        return await self.local_calls.offer_peer(conversation_id, workspace_id, transport)

    # ----- commands that may cross nodes --------------------------------------------------
    async def cancel(self, conversation_id: str, owner_node: str | None) -> bool:
        if self.local(conversation_id) is not None:
            return await self.local_calls.cancel(conversation_id, owner_node)
        if owner_node is None or owner_node == self.node_id:
            return False
        try:
            reply = await self._request(owner_node, {"op": "cancel",
                                                     "conversation_id": conversation_id})
        except OwnerUnreachable:
            return False
        return bool(reply.get("ok"))

    async def control(self, conversation_id: str, owner_node: str | None,
                      command: Control) -> None:
        if self.local(conversation_id) is not None or owner_node in (None, self.node_id):
            await self.local_calls.control(conversation_id, owner_node, command)
            return
        reply = await self._request(owner_node, {
            "op": "control", "conversation_id": conversation_id,
            "control": encode_control(command)})
        error = reply.get("error")
        if error:
            raise ControlRejected(str(error.get("message")), str(error.get("code")),
                                  error.get("param_errors"))

    async def watch(self, conversation_id: str, owner_node: str | None
                    ) -> AsyncIterator[dict[str, Any]]:
        if self.local(conversation_id) is not None or owner_node in (None, self.node_id):
            async for item in self.local_calls.watch(conversation_id, owner_node):
                yield item
            return
        pubsub = self.redis.pubsub()
        await pubsub.subscribe(self._key("watch", conversation_id))
        try:
            await self._request(owner_node, {"op": "watch", "conversation_id": conversation_id})
            renew_at = asyncio.get_running_loop().time() + WATCH_TTL_S / 3
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True,
                                                   timeout=WATCH_TTL_S / 3)
                if asyncio.get_running_loop().time() >= renew_at:
                    renew_at = asyncio.get_running_loop().time() + WATCH_TTL_S / 3
                    await self._request(owner_node, {"op": "watch",
                                                     "conversation_id": conversation_id})
                if message is None or message.get("type") != "message":
                    continue
                data = json.loads(message["data"])
                if data.get("type") == "ended":
                    return
                yield data
        finally:
            with contextlib.suppress(Exception):
                await pubsub.unsubscribe()
                await pubsub.aclose()

    def publish(self, conversation_id: str, event: Any) -> None:
        self.local_calls.publish(conversation_id, event)
        queue = self._forward_queues.get(conversation_id)
        if queue is not None:
            _offer(queue, event_dict(event))

    # ----- request / reply ------------------------------------------------------------
    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    async def _request(self, node: str, message: dict[str, Any]) -> dict[str, Any]:
        """Send ``message`` to ``node`` and wait for its answer."""
        reply_to = self._key("reply", uuid.uuid4().hex)
        receivers = await self.redis.publish(self._key("node", node),
                                             dumps({**message, "reply_to": reply_to}))
        if not receivers:
            raise OwnerUnreachable(f"node {node} is not connected")
        answer = await self.redis.blpop([reply_to], timeout=self.reply_timeout_s)
        if answer is None:
            raise OwnerUnreachable(f"node {node} did not answer in {self.reply_timeout_s} s")
        data: dict[str, Any] = json.loads(answer[1])
        return data

    async def _answer(self, message: dict[str, Any]) -> None:
        reply: dict[str, Any]
        try:
            reply = await self._execute(message)
        except ControlRejected as exc:
            reply = {"error": {"message": exc.message, "code": exc.code,
                               "param_errors": exc.param_errors}}
        except Exception as exc:  # the requester must hear of it rather than time out
            log.exception("control channel: %s failed", message.get("op"))
            reply = {"error": {"message": str(exc), "code": "internal_error"}}
        reply_to = str(message.get("reply_to") or "")
        if reply_to:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.rpush(reply_to, dumps(reply))
                pipe.expire(reply_to, 60)
                await pipe.execute()

    async def _execute(self, message: dict[str, Any]) -> dict[str, Any]:
        conversation_id = str(message.get("conversation_id"))
        if self.local(conversation_id) is None:
            return {"ok": False, "error": {"message": "not live on this node",
                                           "code": "not_live"}}
        op = message.get("op")
        if op == "cancel":
            return {"ok": await self.local_calls.cancel(conversation_id, self.node_id)}
        if op == "control":
            await self.local_calls.control(conversation_id, self.node_id,
                                           decode_control(message.get("control") or {}))
            return {"ok": True}
        if op == "watch":
            self._start_forwarding(conversation_id)
            return {"ok": True}
        return {"ok": False, "error": {"message": f"unknown op {op!r}", "code": "bad_op"}}

    # ----- watch forwarding on the owner ------------------------------------------------
    def _start_forwarding(self, conversation_id: str) -> None:
        loop = asyncio.get_running_loop()
        self._remote_watch_until[conversation_id] = loop.time() + WATCH_TTL_S
        if conversation_id in self._forwarders:
            return
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(WATCH_BUFFER)
        task = loop.create_task(self._forward(conversation_id, queue),
                                name=f"watch-forward-{conversation_id}")
        self._forwarders[conversation_id] = task
        self._forward_queues[conversation_id] = queue

        def forget(_: asyncio.Task[None]) -> None:
            self._forwarders.pop(conversation_id, None)
            self._forward_queues.pop(conversation_id, None)

        task.add_done_callback(forget)

    async def _forward(self, conversation_id: str,
                       queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        """Owner side: publish the call's events in order while someone watches."""
        channel = self._key("watch", conversation_id)
        loop = asyncio.get_running_loop()
        call = self.local(conversation_id)
        finished = asyncio.ensure_future(call.wait_finished()) if call else None
        try:
            while self._remote_watch_until.get(conversation_id, 0) > loop.time():
                if finished is None or finished.done():
                    break
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({getter, finished}, timeout=1.0,
                                             return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    await self.redis.publish(channel, dumps(getter.result() or {}))
                else:
                    getter.cancel()
            while not queue.empty():  # what was said before the end still goes out
                item = queue.get_nowait()
                if item is not None:
                    await self.redis.publish(channel, dumps(item))
            if finished is None or finished.done():
                await self.redis.publish(channel, dumps({"type": "ended"}))
        finally:
            if finished is not None:
                finished.cancel()

    # ----- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        """Listen for commands addressed to this node; returns once subscribed."""
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="control-channel")
            await asyncio.wait_for(self._subscribed.wait(), 10)

    async def stop(self) -> None:
        for task in [self._listener, *self._forwarders.values()]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._listener = None
        await self.redis.delete(self._key("nodes", self.node_id))

    async def node_url(self, node_id: str) -> str | None:
        """The URL a live node announced (``None``: gone, or it serves no HTTP)."""
        value = await self.redis.get(self._key("nodes", node_id))
        text = value.decode() if isinstance(value, bytes) else value
        return text if text and text != "-" else None

    async def alive_nodes(self) -> set[str]:
        """Nodes whose presence key is fresh (diagnostics)."""
        keys = [k async for k in self.redis.scan_iter(self._key("nodes", "*"))]
        prefix = len(self._key("nodes", ""))
        return {(k.decode() if isinstance(k, bytes) else k)[prefix:] for k in keys}

    async def _listen(self) -> None:
        channel = self._key("node", self.node_id)
        tasks: set[asyncio.Task[None]] = set()
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(channel)
                await self.redis.set(self._key("nodes", self.node_id), self.url or "-",
                                     ex=int(NODE_TTL_S))
                self._subscribed.set()
                renew_at = asyncio.get_running_loop().time() + NODE_TTL_S / 3
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True,
                                                       timeout=1.0)
                    if asyncio.get_running_loop().time() >= renew_at:
                        renew_at = asyncio.get_running_loop().time() + NODE_TTL_S / 3
                        await self.redis.set(self._key("nodes", self.node_id), self.url or "-",
                                             ex=int(NODE_TTL_S))
                    if message is None or message.get("type") != "message":
                        continue
                    task = asyncio.create_task(self._answer(json.loads(message["data"])))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis restarted or the connection dropped: resubscribe
                log.exception("control channel: connection lost; resubscribing")
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()


def _offer(queue: asyncio.Queue[Any], item: Any) -> None:
    if queue.full():
        with contextlib.suppress(asyncio.QueueEmpty):
            queue.get_nowait()
    queue.put_nowait(item)
