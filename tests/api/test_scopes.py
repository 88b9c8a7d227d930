"""Token scopes (issue 9): every credential kind against every route of the built app.

The table in ``api/phonic/scopes.py`` must name every route the app serves, so a route
added without a scope fails here; each credential then gets 403 (Phonic's error body)
exactly where its scope does not allow it, and never where it does.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from openline.api.phonic.deps import Who
from openline.api.phonic.scopes import ROUTE_SCOPES, WEBSOCKET, Scope, route_templates
from openline.boot.server import create_app
from openline.settings import Settings
from tests.conftest import LiveServer, fake_providers
from tests.seed import seed_conversations

#: the credential kinds tried on every route ("none": no Authorization header at all)
KINDS = ("none", "api_key", "conversation_token", "session_token", "session_for_one")
MISSING = "missing_0"


@dataclass
class Kit:
    server: LiveServer
    app: FastAPI
    credentials: dict[str, str | None]
    named: str  # the conversation ``session_for_one`` may read
    other: str  # a conversation of the same workspace it may not read

    def headers(self, kind: str) -> dict[str, str]:
        secret = self.credentials[kind]
        return {"Authorization": f"Bearer {secret}"} if secret else {}


@pytest.fixture
def kit(live_server: LiveServer, http: httpx.Client, project: str) -> Iterator[Kit]:
    agent = http.post("/agents", params={"project": project}, json={"name": "scoped"}).json()
    named, other = seed_conversations(live_server.database_url, project, [{}, {}])
    session = http.post("/auth/session_token", json={}).json()["session_token"]
    for_one = http.post("/auth/session_token",
                        json={"conversation_ids": [named]}).json()["session_token"]
    conversation = http.post("/auth/conversation_token",
                             json={"agent_id": agent["id"]}).json()["conversation_token"]
    app = live_server.server.config.app
    assert isinstance(app, FastAPI)
    yield Kit(live_server, app, {"none": None, "api_key": live_server.api_key,
                                 "conversation_token": conversation, "session_token": session,
                                 "session_for_one": for_one}, named, other)
    http.delete(f"/conversations/{named}")
    http.delete(f"/conversations/{other}")


def test_every_route_of_the_app_has_exactly_one_scope(kit: Kit) -> None:
    served = [(method, path) for method, path, _ in route_templates(kit.app)]
    assert len(served) == len(set(served))
    missing = sorted(set(served) - set(ROUTE_SCOPES))
    assert missing == [], f"routes without a scope in api/phonic/scopes.py: {missing}"
    assert sorted(set(ROUTE_SCOPES) - set(served)) == []  # no stale entries either


def _url(kit: Kit, method: str, path: str, kind: str, conversation: str) -> str:
    """A concrete URL: real conversations for the tokens; the API key changes nothing."""
    if ROUTE_SCOPES[(method, path)] is Scope.SIGNED_LINK:
        links = kit.app.state.services.links
        return (links.url(kit.named, "wav") if "recordings" in path
                else links.voice_url("joe"))
    keep = kind != "api_key" or method == "GET"
    filled = re.sub(r"\{conversation_id\}", conversation if keep else MISSING, path)
    return kit.server.url + re.sub(r"\{[a-z_]+\}", MISSING, filled)


def _call(client: httpx.Client, kit: Kit, method: str, url: str, kind: str) -> httpx.Response:
    body = None if method == "GET" else {}
    return client.request(method, url, json=body, headers=kit.headers(kind))


def _expected(scope: Scope, kind: str, conversation: str, kit: Kit) -> bool:
    """Whether ``kind`` may call a route of ``scope`` (on ``conversation``)."""
    if scope in (Scope.PUBLIC, Scope.SIGNED_LINK, Scope.DASHBOARD):
        return True  # the dashboard's pages redirect to sign-in (its tests: tests/dashboard)
    if kind == "api_key":
        return True
    return scope is Scope.CONVERSATION_READ and kind == "session_for_one" \
        and conversation == kit.named


def test_each_credential_gets_403_exactly_where_its_scope_says(kit: Kit) -> None:
    checked, client = 0, httpx.Client(timeout=30)
    for method, path, _ in route_templates(kit.app):
        scope = ROUTE_SCOPES[(method, path)]
        if method == WEBSOCKET:
            continue
        conversations = [kit.named, kit.other] if "{conversation_id}" in path else [kit.named]
        for conversation in conversations:
            for kind in KINDS:
                r = _call(client, kit, method, _url(kit, method, path, kind, conversation),
                          kind)
                where = f"{kind} {method} {path} ({conversation == kit.named and 'named'})"
                if _expected(scope, kind, conversation, kit):
                    assert r.status_code not in (401, 403), (where, r.status_code, r.text)
                elif kind == "none":
                    assert r.status_code == 401, (where, r.status_code)
                else:
                    assert r.status_code == 403, (where, r.status_code, r.text)
                    body = r.json()
                    if path.startswith("/v1/") or path.startswith("/twilio/"):
                        assert set(body) == {"error"} and body["error"]["code"] == "forbidden"
                        assert body["error"]["message"], where
                    else:  # the Vapi dialect answers in Vapi's error shape
                        assert body["statusCode"] == 403 and body["error"] == "Forbidden"
                        assert body["message"], where
                checked += 1
    client.close()
    assert checked > 5 * 55  # every route was tried with every credential


def test_a_session_token_for_one_conversation_reads_only_that_one(kit: Kit) -> None:
    headers = kit.headers("session_for_one")
    r = httpx.get(f"{kit.server.url}/v1/conversations/{kit.named}", headers=headers)
    assert r.status_code == 200 and r.json()["conversation"]["id"] == kit.named
    assert r.json()["conversation"]["live_transcript"] == "User: hi\nAssistant: hello"
    r = httpx.get(f"{kit.server.url}/v1/conversations/{kit.other}", headers=headers)
    assert r.status_code == 403 and r.json() == {"error": {
        "message": "This session token may only read the conversations it was created for",
        "code": "forbidden"}}
    for path in ("/v1/conversations", f"/v1/conversations/{kit.named}/analysis"):
        assert httpx.get(kit.server.url + path, headers=headers).status_code == 403
    r = httpx.delete(f"{kit.server.url}/v1/conversations/{kit.named}", headers=headers)
    assert r.status_code == 403
    assert httpx.get(f"{kit.server.url}/v1/conversations/{kit.named}",
                     headers=kit.headers("api_key")).status_code == 200  # not deleted


def test_short_lived_tokens_cannot_touch_the_workspace(kit: Kit, http: httpx.Client,
                                                       project: str) -> None:
    """The attacks of issue 9, each refused to both kinds of token."""
    for kind in ("conversation_token", "session_token", "session_for_one"):
        headers = kit.headers(kind)
        base = f"{kit.server.url}/v1"
        assert httpx.get(f"{base}/conversations", headers=headers).status_code == 403
        assert httpx.get(f"{base}/tools", params={"project": project},
                         headers=headers).status_code == 403
        r = httpx.post(f"{base}/agents", params={"project": project},
                       json={"name": f"evil-{kind}"}, headers=headers)
        assert r.status_code == 403
        r = httpx.delete(f"{base}/agents/scoped", params={"project": project}, headers=headers)
        assert r.status_code == 403
        r = httpx.patch(f"{base}/workspace", json={"ip_allowlist": ["0.0.0.0/0"]},
                        headers=headers)
        assert r.status_code == 403
    names = [a["name"] for a in http.get("/agents", params={"project": project}).json()["agents"]]
    assert names == ["scoped"]
    assert http.get("/workspace").json()["ip_allowlist"] != ["0.0.0.0/0"]


async def _opens(kit: Kit, kind: str, *, in_query: bool) -> int:
    """The handshake status of ``/v1/sts/ws`` (101 when the socket opened)."""
    secret = kit.credentials[kind]
    url, headers = f"{kit.server.ws_url}/v1/sts/ws", {}
    if secret and in_query:
        name = "conversation_token" if kind == "conversation_token" else "session_token"
        url += f"?{name}={secret}"
    elif secret:
        headers = {"Authorization": f"Bearer {secret}"}
    try:
        async with websockets.connect(url, additional_headers=headers):
            return 101
    except websockets.InvalidStatus as exc:
        return int(exc.response.status_code)


async def test_the_sts_socket_scope(kit: Kit) -> None:
    assert ROUTE_SCOPES[(WEBSOCKET, "/v1/sts/ws")] is Scope.STS_SOCKET
    assert await _opens(kit, "none", in_query=False) == 401
    assert await _opens(kit, "api_key", in_query=False) == 101
    assert await _opens(kit, "api_key", in_query=True) == 403  # proxies log query strings
    for kind in ("conversation_token", "session_token"):
        assert await _opens(kit, kind, in_query=True) == 101, kind
        assert await _opens(kit, kind, in_query=False) == 101, kind
    assert await _opens(kit, "session_for_one", in_query=True) == 403
    assert await _opens(kit, "session_for_one", in_query=False) == 403


def test_a_route_without_a_scope_is_refused_even_to_api_keys(tmp_path: Path) -> None:
    """Fail closed: a route someone forgot to put in the table serves nobody."""
    settings = Settings(data_dir=tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path}/s.db",
                        api_key="ol_scope_test", secret_key="s")
    app = create_app(settings, fake_providers(), announce_key=False, verbose=False)
    extra = APIRouter()

    @extra.get("/unscoped")
    async def unscoped(who: Who) -> dict[str, Any]:
        return {"workspace": who.workspace_id}

    app.include_router(extra, prefix="/v1")
    auth = {"Authorization": "Bearer ol_scope_test"}
    with TestClient(app) as client:
        assert client.get("/v1/projects", headers=auth).status_code == 200
        r = client.get("/v1/unscoped", headers=auth)
        assert r.status_code == 403 and r.json() == {"error": {
            "message": "This route has no access scope", "code": "forbidden"}}
        assert client.get("/v1/unscoped").status_code == 401


async def test_a_conversation_token_cannot_take_over_another_agents_call(kit: Kit) -> None:
    """``reconnect_conv_id`` hands a dropped call to a new socket: only to a credential that
    could have opened it (a conversation token: its own agent's calls only)."""
    url = f"{kit.server.ws_url}/v1/sts/ws"
    auth = kit.headers("api_key")
    async with websockets.connect(url, additional_headers=auth) as ws:
        await ws.send('{"type": "config", "input_format": "pcm_16000", '
                      '"output_format": "pcm_16000", "stream_ahead_of_real_time": true}')
        conv_id = json.loads(await ws.recv())["conversation_id"]
        await ws.recv()  # ready_to_start_conversation
        ws.transport.abort()  # the network drops: the call waits for its peer
    token = kit.credentials["conversation_token"]  # for agent "scoped", not this call's
    async with websockets.connect(
            f"{url}?conversation_token={token}&reconnect_conv_id={conv_id}") as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4800
    # The call was not handed over: its own client still gets it back.
    async with websockets.connect(f"{url}?reconnect_conv_id={conv_id}",
                                  additional_headers=auth) as ws:
        assert json.loads(await ws.recv()) == {"type": "conversation_reconnected"}
    async with httpx.AsyncClient(headers=auth) as http:
        for _ in range(100):
            conv = (await http.get(f"{kit.server.url}/v1/conversations/{conv_id}")).json()
            if conv["conversation"]["ended_at"] is not None:
                break
            await asyncio.sleep(0.05)
    assert conv["conversation"]["ended_by"] == "user"
