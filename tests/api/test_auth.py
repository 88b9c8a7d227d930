"""Authentication, tokens, API keys, workspace, and error bodies for bad requests."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from phonic import AsyncPhonic, Phonic
from phonic.errors import BadRequestError, NotFoundError, UnauthorizedError

from tests.api.conftest import environment
from tests.conftest import LiveServer
from tests.seed import aseed_conversations, finish_conversation

SPEC_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")


def test_missing_or_wrong_key_is_401(live_server: LiveServer) -> None:
    base = f"{live_server.url}/v1"
    r = httpx.get(f"{base}/agents")
    assert r.status_code == 401 and r.json()["error"]["message"]
    r = httpx.get(f"{base}/agents", headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401 and r.json() == {
        "error": {"message": "Invalid API key", "code": "unauthorized"}}
    bad = Phonic(api_key="wrong", environment=environment(live_server))
    with pytest.raises(UnauthorizedError):
        bad.projects.list()


def test_unknown_route_uses_error_body(http: httpx.Client) -> None:
    r = http.get("/no-such-thing")
    assert r.status_code == 404 and "message" in r.json()["error"]


def test_session_token(client: Phonic, live_server: LiveServer, http: httpx.Client) -> None:
    before = datetime.now(UTC)
    token = client.auth.create_session_token(ttl_seconds=300)
    assert token.session_token.startswith("ph_session_")
    expires = token.expires_at  # the SDK parses the wire string into a datetime
    assert expires.utcoffset() == timedelta(0)  # an aware UTC timestamp, not a naive one
    assert before + timedelta(seconds=295) < expires < before + timedelta(seconds=310)
    # On the wire: the spec's millisecond UTC form, e.g. 2025-07-30T23:50:00.000Z.
    raw = http.post("/auth/session_token", json={"ttl_seconds": 300}).json()
    assert SPEC_TIMESTAMP.fullmatch(raw["expires_at"]), raw
    # A session token is browser authentication for the STS socket (issue 9): it is a
    # valid credential (403, not 401) but not for the REST API, nor for minting tokens.
    r = httpx.get(f"{live_server.url}/v1/projects",
                  headers={"Authorization": f"Bearer {token.session_token}"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    r = httpx.post(f"{live_server.url}/v1/auth/session_token", json={},
                   headers={"Authorization": f"Bearer {token.session_token}"})
    assert r.status_code == 403
    assert r.json() == {"error": {"message": "Only API keys can be used to create session "
                                             "tokens", "code": "forbidden"}}
    for ttl in (59, 3601, "x"):
        r = http.post("/auth/session_token", json={"ttl_seconds": ttl})
        assert r.status_code == 400 and "ttl_seconds" in r.json()["param_errors"]
    assert http.post("/auth/session_token", json={}).status_code == 200


def test_conversation_token(client: Phonic, http: httpx.Client, project: str) -> None:
    agent_id = client.agents.create(project=project, name="tokened").id
    token = client.auth.create_conversation_token(agent_id=agent_id, ttl_seconds=45)
    assert token.conversation_token.startswith("ph_conversation_")
    assert token.expires_at.utcoffset() == timedelta(0)
    raw = http.post("/auth/conversation_token", json={"agent_id": agent_id}).json()
    assert SPEC_TIMESTAMP.fullmatch(raw["expires_at"]), raw
    for ttl in (29, 61):
        with pytest.raises(BadRequestError):
            client.auth.create_conversation_token(agent_id=agent_id, ttl_seconds=ttl)
    with pytest.raises(NotFoundError):
        client.auth.create_conversation_token(agent_id="agent_missing")


def test_api_keys_lifecycle(live_server: LiveServer, http: httpx.Client) -> None:
    r = http.post("/api_keys", json={"name": "ci"})
    assert r.status_code == 201
    key = r.json()
    assert key["id"].startswith("api_key_") and key["api_key"].startswith("ol_")
    fresh = httpx.Client(base_url=f"{live_server.url}/v1",
                         headers={"Authorization": f"Bearer {key['api_key']}"})
    assert fresh.get("/projects").status_code == 200
    assert http.patch(f"/api_keys/{key['id']}", json={"name": "ci-2"}).json() == {"success": True}
    rotated = http.post(f"/api_keys/{key['id']}/rotate").json()
    assert rotated["api_key"] != key["api_key"] and rotated["name"] == "ci-2"
    assert fresh.get("/projects").status_code == 401  # old secret stops working
    assert http.delete(f"/api_keys/{key['id']}").json() == {"success": True}
    assert http.delete(f"/api_keys/{key['id']}").status_code == 404
    assert http.post("/api_keys", json={}).status_code == 400


async def test_workspace(aclient: AsyncPhonic, live_server: LiveServer, project: str) -> None:
    ws = await aclient.workspace.get()
    assert ws.max_active_conversations == 100  # the default workspace limit
    # The count is live: one more open conversation shows up, and goes once it ends.
    [live] = await aseed_conversations(live_server.database_url, project,
                                       [{"live": True, "leased": True}])
    assert (await aclient.workspace.get()).active_conversations == ws.active_conversations + 1
    await asyncio.to_thread(finish_conversation, live_server.database_url, live)
    assert (await aclient.workspace.get()).active_conversations == ws.active_conversations
    assert (await aclient.workspace.update(ip_allowlist=["127.0.0.1/32"])).success
    assert (await aclient.workspace.get()).ip_allowlist == ["127.0.0.1/32"]
    async with httpx.AsyncClient(base_url=f"{live_server.url}/v1", headers={
            "Authorization": f"Bearer {live_server.api_key}"}) as http:
        r = await http.patch("/workspace", json={"ip_allowlist": "nope"})
    assert r.status_code == 400 and "ip_allowlist" in r.json()["param_errors"]


@pytest.mark.parametrize("payload", [b"[1, 2]", b'{"name": ', b"\xff\xfe"])
def test_bad_bodies_are_400(http: httpx.Client, payload: bytes) -> None:
    r = http.post("/projects", content=payload, headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert set(r.json()) == {"error", "param_errors"}
