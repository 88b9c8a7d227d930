"""Live conversations: start one on any transport, cancel it from any node, recover.

``run_call`` is the one way a conversation runs, whatever the transport or dialect:
prepare (``call_setup``), build the engine, attach the transport (``call_session``), run,
store. Every item is written as its turn completes, so a crash loses at most the turn in
flight; the owner node's lease (``leases``) lets other nodes close it after a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

from openline.audio.codecs import AudioFormat
from openline.domain.errors import Conflict, NotFound
from openline.services import tool_loading
from openline.services.call_session import CallHooks, CallSession
from openline.services.call_setup import (
    CallSetup,
    PreparedCall,
    StartCall,
    TransferDirectory,
    Voices,
)
from openline.services.external_storage import ArtifactKeeper
from openline.services.item_writer import ItemWriter
from openline.services.leases import LeaseKeeper
from openline.services.live_registry import InProcessRegistry, LiveRegistry
from openline.services.outbound import CallContext, HttpWebhookCaller
from openline.services.principal import Principal
from openline.services.redaction import Protection
from openline.services.url_safety import SafeAsyncClient
from openline.store import tables as t
from openline.store.db import Database
from openline.transports.base import CallTransport
from openline.voice.contracts import ConversationObserver
from openline.voice.session import Conversation, ConversationResult, Providers
from openline.voice.tools import PhoneTransfer, RuntimeTool, WebhookCaller

log = logging.getLogger(__name__)
SHUTDOWN_WAIT_S = 10.0


@dataclass(frozen=True)
class CallOpened:
    """What a transport learns when its call starts."""

    conversation_id: str
    input_format: AudioFormat
    output_format: AudioFormat
    warnings: tuple[str, ...]


class CallExtension(Protocol):
    """What a dialect adds to one of its calls (the Vapi dialect's server-URL messages):
    it may wrap the call's transport and item observer, and run its webhook tools."""

    def transport(self, inner: CallTransport) -> CallTransport: ...

    def observer(self, inner: ConversationObserver) -> ConversationObserver: ...

    def webhooks(self, default: WebhookCaller) -> WebhookCaller: ...


#: asked as each call is built (it may add tools to ``prepared.tools``); None: no extension
ExtensionFactory = Callable[[PreparedCall], CallExtension | None]


class LiveService:
    """Starts, tracks and ends the conversations this node runs."""

    #: called with a conversation's id once its end is stored (queues post-call work)
    on_ended: Callable[[str], Awaitable[None]] | None = None
    #: data protection at a call's end (external storage, zero retention, due dates)
    artifacts: ArtifactKeeper | None = None

    def __init__(self, db: Database, providers: Providers, recordings_dir: Path,
                 voices: Voices, *, http: httpx.AsyncClient | None = None,
                 allow_private_urls: bool = False, registry: LiveRegistry | None = None,
                 lease_s: float = 30.0) -> None:
        self.db, self.providers, self.recordings_dir = db, providers, recordings_dir
        self.http = http or SafeAsyncClient(allow_private=allow_private_urls)
        self.allow_private_urls = allow_private_urls
        self.registry = registry or InProcessRegistry()
        self.setup = CallSetup(db, voices, self.http, node_id=self.registry.node_id,
                               lease_s=lease_s, allow_private_urls=allow_private_urls)
        self.leases = LeaseKeeper(db, self.registry.node_id, self.registry.local_ids,
                                  recordings_dir, lease_s=lease_s)
        #: dialects' per-call extensions (the first one that answers applies)
        self.extensions: list[ExtensionFactory] = []

    async def run_call(self, start: StartCall, transport: CallTransport,
                       opened: Callable[[CallOpened], Awaitable[None]] | None = None
                       ) -> ConversationResult:
        """Start a conversation on ``transport`` and run it to its stored end.

        Raises (before anything runs) when it may not start: unknown or disabled agent,
        invalid overrides, concurrency limit, failed configuration endpoint.
        """
        session = await self.open(start, transport)
        return await self.run_session(session, opened)

    async def run_prepared(self, prepared: PreparedCall, transport: CallTransport,
                           opened: Callable[[CallOpened], Awaitable[None]] | None = None
                           ) -> ConversationResult:
        """Run a conversation prepared earlier (``setup.prepare``): a phone call is
        prepared when the carrier asks what to do, and runs once its media arrives."""
        return await self.run_session(self.build(prepared, transport), opened)

    async def run_session(self, session: CallSession,
                          opened: Callable[[CallOpened], Awaitable[None]] | None = None
                          ) -> ConversationResult:
        """Tell the transport its call opened, then run the call to its stored end."""
        if opened is not None:
            resolved = session.prepared.resolved
            await opened(CallOpened(session.id, resolved.session.input_format,
                                    resolved.session.output_format, tuple(resolved.warnings)))
        return await session.run()

    async def open(self, start: StartCall, transport: CallTransport) -> CallSession:
        """Prepare the conversation and build its engine; it runs with ``session.run()``."""
        return self.build(await self.setup.prepare(start), transport)

    def build(self, prepared: PreparedCall, transport: CallTransport) -> CallSession:
        """The engine and call session of a prepared conversation, registered as live."""
        extension = next((e for e in (f(prepared) for f in self.extensions) if e is not None),
                         None)
        if extension is not None:
            transport = extension.transport(transport)
        cfg = prepared.resolved.session
        cfg.runtime_tools, cfg.built_in_tools = prepared.tools
        writer = ItemWriter(self.db, prepared.id, Protection.of(prepared.resolved.snapshot))
        hooks = CallHooks(set_external_id=self.set_external_id, load_tools=self.load_tools,
                          wait_for_peer=self.registry.wait_for_peer, stored=self._stored,
                          artifacts=self._artifacts if self.artifacts else None)
        holder: list[CallSession] = []

        async def send(event: Any) -> None:
            await holder[0].dispatch(event)

        async def transfer(request: PhoneTransfer) -> bool:
            return await holder[0].transfer_to_phone(request)

        call_info = prepared.call_info.stored() if prepared.call_info else None
        webhooks: WebhookCaller = HttpWebhookCaller(
            self.http, CallContext(prepared.id, call_info), allow_private=self.allow_private_urls)
        observer: ConversationObserver = writer
        if extension is not None:
            webhooks, observer = extension.webhooks(webhooks), extension.observer(writer)
        engine = Conversation(
            cfg, self.providers, send, observer, webhooks=webhooks,
            agents=TransferDirectory(self.setup, prepared.project_id),
            recordings_dir=self.recordings_dir, sink=transport.audio_sink(cfg.output_format),
            transfer=transfer)
        session = CallSession(prepared, engine, writer, transport, hooks, self.db,
                              self.recordings_dir)
        holder.append(session)
        self.registry.add(session)
        return session

    async def _artifacts(self, conversation_id: str, recording: Path | None,
                         writer: ItemWriter) -> Path | None:
        assert self.artifacts is not None
        return await self.artifacts.finish(conversation_id, writer.protection, recording,
                                           writer.spoken)

    async def end_unstarted(self, conversation_id: str, ended_by: str) -> None:
        """A prepared conversation that never ran (an unanswered phone call): store its
        end, queue its post-call work, forget it."""
        await self.setup.end_unstarted(conversation_id, ended_by)
        await self._stored(conversation_id)

    async def _stored(self, conversation_id: str) -> None:
        if self.on_ended is not None:
            try:
                await self.on_ended(conversation_id)
            except Exception:  # post-call work is recovered at the next start-up
                log.exception("could not queue post-call work for %s", conversation_id)
        self.registry.remove(conversation_id)

    async def resume(self, who: Principal, conversation_id: str, transport: CallTransport
                     ) -> bool:
        """A dropped peer comes back: hand ``transport`` to its call and wait for the call
        to end. False (at once) when no call of this workspace waits for it."""
        if not await self.registry.offer_peer(conversation_id, who.workspace_id, transport):
            return False
        call = self.registry.local(conversation_id)
        if call is not None:
            await call.wait_finished()
        return True

    async def wait_idle(self, timeout_s: float) -> None:
        """Until no conversation is live on this node, or ``timeout_s`` has passed."""
        await self.registry.wait_idle(timeout_s)

    async def cancel(self, who: Principal, conversation_id: str) -> None:
        """End a live conversation (``user_canceled``) on whichever node runs it.

        404 when unknown, 409 when it already ended; ``TimeoutError`` when the owner did
        not acknowledge in time.
        """
        local = self.registry.local(conversation_id)
        if local is not None and local.workspace_id == who.workspace_id:
            await self.registry.cancel(conversation_id, self.registry.node_id)
            return
        async with self.db.session() as s:
            row = await s.get(t.Conversation, conversation_id)
        if row is None or row.workspace_id != who.workspace_id:
            raise NotFound("Conversation not found")
        if row.ended_at is not None:
            raise Conflict("Conversation already ended")
        if not await self.registry.cancel(conversation_id, row.owner_node):
            raise TimeoutError("the node running this conversation did not acknowledge")

    async def load_tools(self, conversation_id: str, definitions: list[Any]
                         ) -> list[RuntimeTool]:
        """``update_tools_subset``: names of stored tools or built-ins, or inline tools."""
        async with self.db.session() as s:
            row = await s.get(t.Conversation, conversation_id)
            if row is None:
                raise NotFound("Conversation not found")
            tools, _ = await tool_loading.load(s, row.project_id, definitions)
        return tools

    async def set_external_id(self, conversation_id: str, value: str) -> None:
        async with self.db.session() as s:
            row = await s.get(t.Conversation, conversation_id)
            if row is not None:
                row.external_id = value.strip() or None

    async def start_background(self) -> None:
        """At start-up: close what crashed nodes left open, then keep leases fresh."""
        await self.leases.close_expired()
        self.leases.start()

    async def shutdown(self) -> None:
        """End every live conversation (node stopping) and wait for them to be stored."""
        await self.leases.stop()
        calls = [c for c in map(self.registry.local, self.registry.local_ids()) if c]
        for call in calls:
            call.end("error")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SHUTDOWN_WAIT_S):
                for call in calls:
                    await call.wait_finished()
