"""Event webhooks: endpoints over the API, signed deliveries to a real receiver that
sometimes fails, the delivery log, URL safety, and restarts in the middle of the queue."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from openline.api.phonic.views import PhonicEvents
from openline.domain.errors import ValidationFailed
from openline.domain.events import (
    ConversationAnalyzed,
    ConversationEnded,
    ConversationTransferred,
    DomainEvent,
)
from openline.postcall import signing
from openline.postcall.queue import DbJobQueue
from openline.postcall.worker import Worker, WorkerOptions
from openline.providers.testing import FakeSTT, ScriptedLLM
from openline.services.auth import AuthService
from openline.services.commands import CreateWebhookEndpoint
from openline.services.conversations import ConversationService
from openline.services.postcall import PostCallService
from openline.services.principal import Principal
from openline.services.webhooks import RenderedEvent, WebhookOptions, WebhookService
from openline.store import tables as t
from openline.store.db import Database
from tests.conftest import LiveServer
from tests.postcall.conftest import (
    ServerFactory,
    WebhookReceiver,
    scripted_providers,
    wait_until,
)
from tests.postcall.seeding import aseed
from tests.support.llm_server import ScriptedLLMServer


def api(server: LiveServer) -> httpx.Client:
    return httpx.Client(base_url=f"{server.url}/v1",
                        headers={"Authorization": f"Bearer {server.api_key}"})


def test_signature_matches_the_standard_webhooks_reference_vector() -> None:
    # The example from the Standard Webhooks specification / Svix documentation.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = '{"test": 2432232314}'
    assert signing.sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == \
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert signing.new_secret().startswith("whsec_")


def test_endpoints_crud_and_secret_shown_once(make_server: ServerFactory,
                                              llm_server: ScriptedLLMServer) -> None:
    server = make_server(scripted_providers(llm_server))
    with api(server) as http:
        created = http.post("/webhook_endpoints", json={
            "url": "https://example.com/hook", "events": ["conversation.ended"],
            "description": "crm"})
        assert created.status_code == 201
        body = created.json()
        assert body["id"].startswith("whep_") and body["secret"].startswith("whsec_")
        assert body["events"] == ["conversation.ended"]
        listed = http.get("/webhook_endpoints").json()["webhook_endpoints"]
        assert [e["id"] for e in listed] == [body["id"]] and "secret" not in listed[0]
        got = http.get(f"/webhook_endpoints/{body['id']}").json()["webhook_endpoint"]
        assert got["url"] == "https://example.com/hook" and "secret" not in got
        bad = http.post("/webhook_endpoints", json={"url": "https://e.com",
                                                    "events": ["call.started"]})
        assert bad.status_code == 400 and "events" in bad.json()["param_errors"]
        assert http.post("/webhook_endpoints", json={"url": "ftp://e.com"}).status_code == 400
        assert http.get(f"/webhook_endpoints/{body['id']}/deliveries").json() == \
            {"deliveries": []}
        assert http.delete(f"/webhook_endpoints/{body['id']}").json() == {"success": True}
        assert http.get(f"/webhook_endpoints/{body['id']}").status_code == 404


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/hook", "http://localhost/hook",
                                 "http://169.254.169.254/latest/meta-data",
                                 "http://10.1.2.3/", "http://[::1]/x"])
async def test_private_targets_are_refused_unless_allowed(tmp_path: Path, url: str) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'w.db'}")
    await db.migrate()
    who = Principal("ws_x", "x")
    try:
        strict = WebhookService(db, DbJobQueue(db), WebhookOptions(allow_private_urls=False))
        with pytest.raises(ValidationFailed) as refused:
            await strict.create(who, CreateWebhookEndpoint(url))
        assert refused.value.code == "unsafe_url"
    finally:
        await db.dispose()


def _endpoint(server: LiveServer, receiver: WebhookReceiver) -> str:
    with api(server) as http:
        body = http.post("/webhook_endpoints", json={"url": receiver.url}).json()
    receiver.secret = body["secret"]
    return str(body["id"])


def test_restart_in_the_middle_delivers_every_event_exactly_once(
        make_server: ServerFactory, llm_server: ScriptedLLMServer,
        receiver: WebhookReceiver) -> None:
    first = make_server(scripted_providers(llm_server))
    endpoint_id = _endpoint(first, receiver)
    first.stop()
    # Four calls ended while no server ran: the next start queues their post-call work.
    conv_ids = [asyncio.run(aseed(first.database_url)) for _ in range(4)]
    receiver.delay_s, receiver.fail_next = 0.15, 2
    second = make_server(scripted_providers(llm_server))
    wait_until(lambda: len(receiver.ok()) >= 2, what="first deliveries")
    second.stop()  # mid-queue: some events delivered, the rest still queued
    delivered_before = len(receiver.ok())
    assert delivered_before < 8
    third = make_server(scripted_providers(llm_server))
    wait_until(lambda: len(receiver.ok()) >= 8, what="all deliveries")

    ok = receiver.ok()
    assert all(d.valid for d in receiver.deliveries)
    assert Counter(d.message_id for d in ok).most_common(1)[0][1] == 1  # none twice
    events = Counter((json.loads(d.body)["event_type"],
                      json.loads(d.body)["data"]["conversation"]["id"]) for d in ok)
    assert events == {(e, c): 1 for e in ("conversation.ended", "conversation.analysis")
                      for c in conv_ids}
    with api(third) as http:
        log = http.get(f"/webhook_endpoints/{endpoint_id}/deliveries").json()["deliveries"]
    assert sum(d["success"] for d in log) == 8
    failed = [d for d in log if not d["success"]]
    assert len(failed) == 2 and all(d["status_code"] == 500 for d in failed)
    retried = {d["message_id"] for d in failed}
    assert all(any(d["message_id"] == m and d["success"] and d["attempt"] > 1 for d in log)
               for m in retried)


async def test_transferred_event_payload(tmp_path: Path, receiver: WebhookReceiver) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 't.db'}"
    db = Database(url)
    await db.migrate()
    try:
        await AuthService(db, ()).bootstrap()
        conv_id = await aseed(url)
        queue = DbJobQueue(db)
        webhooks = WebhookService(db, queue, WebhookOptions(allow_private_urls=True),
                                  renderers={"phonic": PhonicEvents(lambda c: None)})
        postcall = PostCallService(db, queue, ScriptedLLM(), FakeSTT(), webhooks,
                                   ConversationService(db))
        async with db.session() as s:
            conv = await s.get(t.Conversation, conv_id)
            assert conv is not None
            workspace = await s.get(t.Workspace, conv.workspace_id)
            assert workspace is not None
        who = Principal(workspace.id, workspace.name)
        _, receiver.secret = await webhooks.create(
            who, CreateWebhookEndpoint(receiver.url, ("conversation.transferred",)))
        assert await postcall.conversation_transferred(conv_id, "+15551234567") == 1
        assert await postcall.conversation_transferred(conv_id, "+15551234567") == 0  # deduped
        await Worker(queue, {"webhook.deliver": webhooks.deliver},
                     WorkerOptions(poll_s=0.05)).run_until_idle()
        await webhooks.close()
    finally:
        await db.dispose()
    [delivery] = receiver.ok()
    body = json.loads(delivery.body)
    assert body["event_type"] == "conversation.transferred" and delivery.valid
    assert body["data"]["transferred_to"] == "+15551234567"
    assert body["data"]["conversation"]["id"] == conv_id
    assert body["data"]["conversation"]["items"][0] == {
        "role": "user", "text": "Hi, I'd like to book a table for two tomorrow at seven."}


@dataclass
class RecordingRenderer:
    """A dialect's renderer that names its events its own way and records what it saw."""

    seen: list[str] = field(default_factory=list)

    def render(self, event: DomainEvent, at: datetime) -> RenderedEvent | None:
        self.seen.append(event.kind)
        if isinstance(event, ConversationAnalyzed):
            return None  # this dialect has no analysis event
        return RenderedEvent(f"custom.{event.kind}",
                             json.dumps({"id": event.conversation.id, "at": at.isoformat()}))


async def test_events_are_rendered_by_the_subscribers_dialect(
        tmp_path: Path, receiver: WebhookReceiver) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'r.db'}"
    db = Database(url)
    await db.migrate()
    try:
        await AuthService(db, ()).bootstrap()
        conv_id = await aseed(url)
        queue = DbJobQueue(db)
        renderer = RecordingRenderer()
        webhooks = WebhookService(db, queue, WebhookOptions(allow_private_urls=True),
                                  renderers={"phonic": renderer})
        conversation = await ConversationService(db).load(conv_id)
        assert conversation is not None
        who = Principal(conversation.workspace.id, conversation.workspace.name)
        endpoint, receiver.secret = await webhooks.create(
            who, CreateWebhookEndpoint(receiver.url, ("conversation.ended",
                                                      "conversation.analysis")))
        assert endpoint.dialect == "phonic"  # no dialect column yet: the default
        assert await webhooks.publish(ConversationEnded(conversation)) == 1
        assert await webhooks.publish(ConversationEnded(conversation)) == 0  # same occurrence
        assert await webhooks.publish(ConversationAnalyzed(conversation)) == 0  # not rendered
        # Not subscribed: the renderer is not even asked.
        assert await webhooks.publish(ConversationTransferred(conversation, "+15550001111")) == 0
        assert renderer.seen == ["conversation.ended", "conversation.ended",
                                 "conversation.analysis"]
        unregistered = WebhookService(db, queue, WebhookOptions(allow_private_urls=True))
        assert await unregistered.publish(ConversationAnalyzed(conversation)) == 0
        await Worker(queue, {"webhook.deliver": webhooks.deliver},
                     WorkerOptions(poll_s=0.05)).run_until_idle()
        [logged] = await webhooks.deliveries(who, endpoint.id)
        await webhooks.close()
    finally:
        await db.dispose()
    [delivery] = receiver.ok()
    assert delivery.valid and json.loads(delivery.body)["id"] == conv_id
    assert logged.event_type == "custom.conversation.ended" and logged.success
