"""Server-URL message semantics: legacy ``function-call``, a slow tool server (``hang``,
then the timeout), a bearer credential, and the SSRF guard on server URLs."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from openline.providers.testing import FakeSTT, ScriptedLLM, ScriptedReply
from openline.services.url_safety import SafeAsyncClient
from openline.services.vapi.server_messages import ServerError, ServerMessages, ServerTarget
from tests.conftest import LiveServer, fake_providers, start_server
from tests.vapi.live.conftest import ServerUrl, sdk, tone_pcm16

WS = {"provider": "vapi.websocket", "audioFormat": {"format": "pcm_s16le"}}


def _server(tmp_path: Path, llm: ScriptedLLM, **settings: Any) -> LiveServer:
    return start_server(f"sqlite+aiosqlite:///{tmp_path / 'vapi.db'}", tmp_path,
                        fake_providers(llm, FakeSTT(["question"] * 2)), job_poll_s=0.1,
                        **settings)


@pytest.fixture
def llm() -> ScriptedLLM:
    return ScriptedLLM([ScriptedReply.call("lookup", '{"order": "A17"}'), "Done."])


@pytest.fixture
def server(tmp_path: Path, llm: ScriptedLLM) -> Iterator[LiveServer]:
    live = _server(tmp_path, llm, vapi_hang_after_s=0.3)
    yield live
    live.stop()


async def _one_turn(server: LiveServer, assistant: dict[str, Any], dial: Any) -> Any:
    call = await sdk(server).calls.create(transport=WS, assistant={
        "firstMessageMode": "assistant-waits-for-user", **assistant})
    socket = await dial(call.transport.websocketCallUrl)  # type: ignore[union-attr]
    await socket.wait_message("status-update")
    await socket.send_audio(tone_pcm16(500))
    await socket.silence(1200)
    await socket.wait_message("transcript", within=20, where=lambda m: (
        m["role"], m["transcript"]) == ("assistant", "Done."))
    await socket.send_json({"type": "end-call"})
    await socket.closed.wait()
    return socket


async def test_legacy_functions_get_function_call(server: LiveServer, server_url: ServerUrl,
                                                  llm: ScriptedLLM, dial: Any) -> None:
    server_url.answers["function-call"] = lambda m: {"result": {"status": "shipped"}}
    await _one_turn(server, {
        "model": {"provider": "openai", "model": "gpt-4o", "functions": [
            {"name": "lookup", "parameters": {"type": "object", "properties": {
                "order": {"type": "string"}}}}]},
        "server": {"url": f"{server_url.url}/fn", "credentialId": "bearer"},
        "credentials": [{"provider": "webhook", "id": "bearer", "authenticationPlan": {
            "type": "bearer", "token": "tok-1", "headerName": "X-Api-Token",
            "bearerPrefixEnabled": False}}]}, dial)
    [received] = server_url.of("function-call")
    assert received.message["functionCall"] == {"name": "lookup",
                                                "parameters": {"order": "A17"}}
    assert received.headers["x-api-token"] == "tok-1"
    tool = [m for m in llm.requests[1].messages if m.role == "tool"]
    assert tool and tool[0].content == '{"status": "shipped"}'


async def test_a_slow_tool_server_hangs_then_times_out(
        server: LiveServer, server_url: ServerUrl, llm: ScriptedLLM, dial: Any) -> None:
    server_url.delay_s["tool-calls"] = 2.5
    socket = await _one_turn(server, {
        "model": {"provider": "openai", "model": "gpt-4o", "tools": [{
            "type": "function", "function": {"name": "lookup"},
            "server": {"url": f"{server_url.url}/slow", "timeoutSeconds": 1}}]},
        "clientMessages": ["hang", "transcript", "status-update"]}, dial)
    assert socket.of("hang"), [m["type"] for m in socket.messages]
    tool = [m for m in llm.requests[1].messages if m.role == "tool"]
    assert tool and "no reply within 1 s" in tool[0].content


async def test_stored_tools_run_their_own_way(server: LiveServer, server_url: ServerUrl,
                                              llm: ScriptedLLM, dial: Any) -> None:
    """A stored assistant's tools: an ``apiRequest`` tool is a plain HTTP request (not a
    Vapi envelope); a stored ``function`` tool goes to the server as ``tool-calls``."""
    llm.replies[1:1] = [ScriptedReply.call("check", '{"sku": "B2"}')]
    server_url.answers["http"] = lambda m: {"in_stock": True}
    server_url.answers["tool-calls"] = lambda m: {"results": [{
        "toolCallId": m["toolCallList"][0]["id"], "result": "tracking 123"}]}
    async with httpx.AsyncClient(base_url=server.url, headers={
            "Authorization": f"Bearer {server.api_key}"}) as http:
        api = (await http.post("/tool", json={
            "type": "apiRequest", "name": "check", "method": "POST",
            "url": f"{server_url.url}/api", "body": {"type": "object", "properties": {
                "sku": {"type": "string"}}}})).json()
        fn = (await http.post("/tool", json={
            "type": "function", "function": {"name": "lookup", "parameters": {
                "type": "object", "properties": {"order": {"type": "string"}}}},
            "server": {"url": f"{server_url.url}/fn"}})).json()
        assistant = (await http.post("/assistant", json={
            "name": "shop", "firstMessageMode": "assistant-waits-for-user",
            "model": {"provider": "openai", "model": "gpt-4o",
                      "toolIds": [api["id"], fn["id"]]},
            "server": {"url": f"{server_url.url}/events", "secret": "stored-secret"},
            "serverMessages": ["status-update"]})).json()
    call = await sdk(server).calls.create(transport=WS, assistant_id=assistant["id"])
    socket = await dial(call.transport.websocketCallUrl)  # type: ignore[union-attr]
    await socket.wait_message("status-update")
    await socket.send_audio(tone_pcm16(500))
    await socket.silence(1200)
    await socket.wait_message("transcript", within=20, where=lambda m: (
        m["role"], m["transcript"]) == ("assistant", "Done."))
    await socket.send_json({"type": "end-call"})
    await socket.closed.wait()
    [plain] = server_url.of("http")
    assert plain.path == "/api" and plain.message["body"]["sku"] == "B2"
    [vapi_call] = server_url.of("tool-calls")
    assert vapi_call.path == "/fn"
    assert vapi_call.message["toolCallList"][0]["function"]["name"] == "lookup"
    results = [m.content for m in llm.requests[-1].messages if m.role == "tool"]
    assert results == ["tracking 123", '{"in_stock": true}']
    ended = await server_url.wait_for("status-update", where=lambda m: m["status"] == "ended")
    assert ended.path == "/events" and ended.headers["x-vapi-secret"] == "stored-secret"


async def test_server_urls_go_through_the_ssrf_guard() -> None:
    """A metadata address is refused whatever the private-URL setting, before any request
    (and a refused URL is not retried from the queue)."""
    http = SafeAsyncClient(allow_private=True)
    messages = ServerMessages(None, http, None, allow_private=True)  # type: ignore[arg-type]
    with pytest.raises(ServerError) as refused:
        await messages.request(ServerTarget("http://169.254.169.254/latest"), {"type": "x"})
    assert not refused.value.retry and "refused URL" in str(refused.value)
    strict = ServerMessages(None, http, None, allow_private=False)  # type: ignore[arg-type]
    with pytest.raises(ServerError) as private:
        await strict.request(ServerTarget("http://127.0.0.1:9/hook"), {"type": "x"})
    assert not private.value.retry
    await asyncio.wait_for(http.aclose(), 5)


def test_credentials_become_headers() -> None:
    body = b'{"message":{}}'
    legacy = ServerTarget("https://h/x", secret="s", headers={"Authorization": "Basic abc"})
    assert legacy.headers_for(body)["x-vapi-secret"] == "s"
    assert legacy.headers_for(body)["authorization"] == "Basic abc"  # server.headers win
    bearer = ServerTarget("https://h/x", auth={"type": "bearer", "token": "t"})
    assert bearer.headers_for(body)["authorization"] == "Bearer t"
    signed = ServerTarget("https://h/x", auth={
        "type": "hmac", "secretKey": "a2V5", "secretIsBase64": True, "algorithm": "sha512",
        "signatureHeader": "X-Sig", "signaturePrefix": "sha512=", "signatureEncoding": "base64",
        "includeTimestamp": False})
    import base64
    import hashlib
    import hmac

    expected = base64.b64encode(hmac.new(b"key", body, hashlib.sha512).digest()).decode()
    headers = signed.headers_for(body)
    assert headers["x-sig"] == "sha512=" + expected and "x-timestamp" not in headers
