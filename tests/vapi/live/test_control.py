"""A Vapi call's control URL (say, say-then-end, end-call, refusals), the assistant the
org's server chooses with ``assistant-request`` (reply forms of spec section 6.3), and the
refusals of ``POST /call`` that change nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from vapi.core.api_error import ApiError

from openline.providers.testing import FakeTTS, ScriptedLLM
from tests.conftest import LiveServer, fake_providers, start_server
from tests.vapi.live.conftest import ServerUrl, sdk

WS = {"provider": "vapi.websocket",
      "audioFormat": {"format": "pcm_s16le", "container": "raw", "sampleRate": 16000}}


@pytest.fixture(scope="module")
def tts() -> FakeTTS:
    return FakeTTS(ms_per_char=20)


@pytest.fixture(scope="module")
def org_server() -> Iterator[ServerUrl]:
    hook = ServerUrl().start()
    yield hook
    hook.stop()


@pytest.fixture
def server_url(org_server: ServerUrl) -> ServerUrl:
    """The org's server URL, fresh for each test (one server for the module)."""
    org_server.answers.clear()
    org_server.received.clear()
    return org_server


@pytest.fixture(scope="module")
def llm() -> ScriptedLLM:
    return ScriptedLLM()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, org_server: ServerUrl,
           tts: FakeTTS, llm: ScriptedLLM) -> Iterator[LiveServer]:
    providers = fake_providers(llm)
    providers.tts = tts
    data = tmp_path_factory.mktemp("vapi-control")
    live = start_server(f"sqlite+aiosqlite:///{data / 'vapi.db'}", data, providers,
                        vapi_server_url=f"{org_server.url}/org", vapi_server_secret="org-secret",
                        job_poll_s=0.1)
    yield live
    live.stop()


async def _assistant(server: LiveServer, body: dict[str, Any]) -> dict[str, Any]:
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {server.api_key}"}) as h:
        r = await h.post(f"{server.url}/assistant", json=body)
        assert r.status_code == 201, r.text
        return dict(r.json())


async def _ended(server: LiveServer, call_id: str) -> Any:
    import asyncio

    async with asyncio.timeout(15):
        while True:
            call = await sdk(server).calls.get(call_id)
            if call.status == "ended":
                return call
            await asyncio.sleep(0.1)


async def test_the_control_url_says_and_ends_the_call(server: LiveServer, tts: FakeTTS,
                                                      dial: Any) -> None:
    client = sdk(server)
    # A stored assistant (raw HTTP: the SDK's first Assistant parse costs a minute of CPU
    # on a loaded machine, and the assistant routes have their own SDK tests).
    assistant = await _assistant(server, {"name": "desk", "firstMessage": "Hi there.",
                                          "voice": {"provider": "vapi", "voiceId": "joe"}})
    call = await client.calls.create(assistant_id=assistant["id"], transport=WS)
    control = call.monitor.control_url  # type: ignore[union-attr]
    async with httpx.AsyncClient() as http:
        early = await http.post(control, json={"type": "say", "content": "Too soon."})
        assert early.status_code == 400 and early.json()["statusCode"] == 400
        socket = await dial(call.transport.websocketCallUrl)  # type: ignore[union-attr]
        await socket.wait_message("transcript", where=lambda m: m["transcript"] == "Hi there.")
        assert (await client.calls.get(call.id)).status == "in-progress"
        said = await http.post(control, json={"type": "say", "content": "A word from control."})
        assert said.status_code == 200
        await socket.wait_message("transcript",
                                  where=lambda m: m["transcript"] == "A word from control.")
        bad = await http.post(control, json={"type": "transfer"})
        assert bad.status_code == 400 and "transfer" in bad.json()["message"]
        forged = await http.post(control.rsplit("/", 1)[0] + "/" + "0" * 32,
                                 json={"type": "end-call"})
        assert forged.status_code == 404 and not socket.closed.is_set()
        ended = await http.post(control, json={"type": "end-call"})
        assert ended.status_code == 200
        await socket.closed.wait()
    assert "A word from control." in [text for text, _, _ in tts.requests]
    done = await _ended(server, call.id)
    assert done.ended_reason == "manually-canceled"
    assert done.assistant_id == assistant["id"] and done.type == "vapi.websocketCall"


async def test_say_with_end_call_after_spoken_ends_once_heard(server: LiveServer,
                                                              dial: Any) -> None:
    call = await sdk(server).calls.create(
        transport=WS, assistant={"firstMessage": "", "firstMessageMode":
                                 "assistant-waits-for-user"})
    socket = await dial(call.transport.websocketCallUrl)  # type: ignore[union-attr]
    await socket.wait_message("status-update")
    await socket.send_json({"type": "say", "content": "Goodbye now.",
                            "endCallAfterSpoken": True})
    await socket.closed.wait()
    heard = [m["transcript"] for m in socket.of("transcript") if m["role"] == "assistant"]
    assert heard == ["Goodbye now."]
    ended = socket.of("status-update")[-1]
    assert ended["status"] == "ended"
    assert ended["endedReason"] == "assistant-ended-call-after-message-spoken"
    assert (await _ended(server, call.id)).ended_reason == \
        "assistant-ended-call-after-message-spoken"  # GET /call says what the socket said


async def test_the_org_server_chooses_the_assistant(server: LiveServer, server_url: ServerUrl,
                                                    dial: Any) -> None:
    server_url.answers["assistant-request"] = lambda m: {
        "assistant": {"firstMessage": "Chosen for {{customer_name}}."},
        "assistantOverrides": {"variableValues": {"customer_name": "Ben"}}}
    call = await sdk(server).calls.create(transport=WS, customer={"number": "+15550001111"})
    request = server_url.of("assistant-request")[0]
    assert request.headers["x-vapi-secret"] == "org-secret" and request.path == "/org"
    assert request.message["call"]["type"] == "vapi.websocketCall"
    assert request.message["customer"] == {"number": "+15550001111"}
    socket = await dial(call.transport.websocketCallUrl)  # type: ignore[union-attr]
    await socket.wait_message("transcript", where=lambda m: m["transcript"] == "Chosen for Ben.")
    await socket.send_json({"type": "end-call"})
    await socket.closed.wait()
    # The chosen assistant's messages go to the server that chose it.
    await server_url.wait_for("status-update", where=lambda m: m["status"] == "ended")


@pytest.mark.parametrize(("reply", "reason"), [
    ({"error": "We are closed."}, "assistant-request-returned-error"),
    ({}, "assistant-request-returned-no-assistant"),
    ({"destination": {"type": "number", "number": "+15550002222"}},
     "assistant-request-returned-forwarding-phone-number"),
    ({"assistantId": "no-such-assistant"}, "not found"),
])
async def test_assistant_request_refusals_start_nothing(
        server: LiveServer, server_url: ServerUrl, reply: dict[str, Any], reason: str) -> None:
    server_url.answers["assistant-request"] = lambda m: reply
    client = sdk(server)
    before = len(await client.calls.list())
    with pytest.raises(ApiError) as refused:  # BadRequestError for the 400s
        await client.calls.create(transport=WS)
    assert refused.value.status_code == (404 if "found" in reason else 400)
    assert reason in str(refused.value.body).lower()
    assert len(await client.calls.list()) == before


@pytest.mark.parametrize(("body", "field"), [
    ({"transport": {**WS, "audioFormat": {"format": "opus"}}}, "audioFormat.format"),
    ({"transport": {**WS, "audioFormat": {"format": "pcm_s16le", "sampleRate": 11025}}},
     "sampleRate"),
    ({"transport": WS, "phoneNumberId": "x"}, "phone number"),
    ({"transport": WS, "assistant": {"model": {"tools": [{"type": "function"}]}}},
     "function.name"),
    ({"transport": WS, "assistant": {"server": {"url": "http://x", "credentialId": "nope"}}},
     "credentialId"),
    ({"transport": WS, "squad": {"members": [{"assistantId": "a"}]}}, "squadId"),
    ({"assistant": {}}, "customer.number"),
])
async def test_invalid_creates_are_refused_and_change_nothing(
        server: LiveServer, body: dict[str, Any], field: str) -> None:
    async with httpx.AsyncClient(base_url=server.url, headers={
            "Authorization": f"Bearer {server.api_key}"}) as http:
        before = len((await http.get("/call")).json())
        r = await http.post("/call", json=body)
        assert r.status_code == 400, r.text
        error = r.json()
        assert error["statusCode"] == 400 and error["error"] == "Bad Request"
        assert field in error["message"], error
        assert len((await http.get("/call")).json()) == before


async def test_a_squad_call_starts_with_its_first_member(server: LiveServer, dial: Any) -> None:
    front = await _assistant(server, {"name": "front", "firstMessage": "Front desk here."})
    back = await _assistant(server, {"name": "back", "firstMessage": "Back office."})
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {server.api_key}"}) as h:
        squad = (await h.post(f"{server.url}/squad", json={"members": [
            {"assistantId": front["id"],
             "assistantDestinations": [{"type": "assistant", "assistantName": "back"}]},
            {"assistantId": back["id"]}]})).json()
    client = sdk(server)
    call = await client.calls.create(squad_id=squad["id"], transport=WS)
    socket = await dial(call.transport.websocketCallUrl)  # type: ignore[union-attr]
    await socket.wait_message("transcript",
                              where=lambda m: m["transcript"] == "Front desk here.")
    await socket.send_json({"type": "end-call"})
    await socket.closed.wait()
    assert (await _ended(server, call.id)).assistant_id == front["id"]
    with pytest.raises(ApiError) as missing:
        await client.calls.create(squad_id="no-such-squad", transport=WS)
    assert missing.value.status_code == 404


async def test_add_message_reaches_the_model(server: LiveServer, llm: ScriptedLLM,
                                             dial: Any) -> None:
    call = await sdk(server).calls.create(transport=WS, assistant={
        "firstMessageMode": "assistant-waits-for-user"})
    socket = await dial(call.transport.websocketCallUrl)  # type: ignore[union-attr]
    await socket.wait_message("status-update")
    asked = len(llm.requests)
    async with httpx.AsyncClient() as http:
        r = await http.post(call.monitor.control_url, json={  # type: ignore[union-attr]
            "type": "add-message", "message": {"role": "system",
                                               "content": "The caller is a VIP."}})
        assert r.status_code == 200
    await socket.wait_message("transcript", where=lambda m: m["role"] == "assistant")
    assert any(m.role == "system" and "The caller is a VIP." in m.content
               for m in llm.requests[asked].messages)
    await socket.send_json({"type": "add-message", "triggerResponseEnabled": False,
                            "message": {"role": "user", "content": "hi"}})
    refused = await socket.wait_message("error")
    assert "triggerResponseEnabled" in refused["error"]
    await socket.send_json({"type": "end-call"})
    await socket.closed.wait()
