"""OpenAI-compatible client against a real local scripted HTTP server (uvicorn)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from openline.domain.errors import ProviderError, ProviderTimeout, ProviderUnavailable
from openline.providers.llm.base import ChatMessage, LLMDone, TextDelta, ToolCall, ToolSpec
from openline.providers.llm.openai_compat import OpenAICompatLLM, OpenAICompatOptions


def sse(*chunks: dict[str, Any]) -> list[str]:
    return [f"data: {json.dumps(c)}\n\n" for c in chunks] + ["data: [DONE]\n\n"]


def delta(choice_delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": choice_delta, "finish_reason": finish}]}


SCRIPTS: dict[str, list[str]] = {
    "text": sse(delta({"role": "assistant", "content": ""}), delta({"content": "Hello"}),
                delta({"content": " there!"}), delta({}, "stop"),
                {"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 3,
                                          "prompt_tokens_details": {"cached_tokens": 8}}}),
    "tools": sse(
        delta({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                               "function": {"name": "get_weather", "arguments": ""}}]}),
        delta({"tool_calls": [{"index": 0, "function": {"arguments": '{"ci'}}]}),
        delta({"tool_calls": [{"index": 1, "id": "call_b", "type": "function",
                               "function": {"name": "get_time", "arguments": "{}"}}]}),
        delta({"tool_calls": [{"index": 0, "function": {"arguments": 'ty": "Oslo"}'}}]}),
        delta({}, "tool_calls"),
    ),
}  # fmt: skip


class Scripted:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.flaky_left = 1

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append({"body": body, "auth": request.headers.get("authorization")})
        model = body["model"]
        if model == "error500":
            return JSONResponse({"error": {"message": "boom"}}, status_code=500)
        if model == "bad-request":
            return JSONResponse({"error": {"message": "bad"}}, status_code=400)
        if model == "flaky" and self.flaky_left:
            self.flaky_left -= 1
            return JSONResponse({"error": "overloaded"}, status_code=503)
        if model == "slow":
            await asyncio.sleep(2.0)
        if model == "stall":

            async def stalling() -> AsyncIterator[str]:
                yield SCRIPTS["text"][1]
                await asyncio.sleep(2.0)
                yield SCRIPTS["text"][2]

            return StreamingResponse(stalling(), media_type="text/event-stream")
        script = SCRIPTS["tools" if model == "tools" else "text"]
        return StreamingResponse(iter(script), media_type="text/event-stream")


@pytest.fixture(scope="module")
async def server() -> AsyncIterator[tuple[str, Scripted]]:
    scripted = Scripted()
    app = Starlette(routes=[Route("/v1/chat/completions", scripted.chat, methods=["POST"])])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(srv.serve(sockets=[sock]))
    for _ in range(500):  # bounded wait for the server to listen
        if srv.started:
            break
        await asyncio.sleep(0.01)
    else:
        raise RuntimeError("scripted server did not start")
    yield f"http://127.0.0.1:{port}/v1", scripted
    srv.should_exit = True
    await task
    sock.close()


def client(base_url: str, model: str, **kw: Any) -> OpenAICompatLLM:
    return OpenAICompatLLM(OpenAICompatOptions(base_url=base_url, model=model, **kw))


async def test_streams_text_and_usage(server: tuple[str, Scripted]) -> None:
    url, scripted = server
    async with client(url, "text", api_key="sk-test") as llm:
        events = [e async for e in llm.stream([ChatMessage.system("Be brief."),
                                               ChatMessage.user("Hi")])]  # fmt: skip
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hello", " there!"]
    done = events[-1]
    assert isinstance(done, LLMDone)
    assert (done.text, done.finish_reason, done.prompt_tokens, done.completion_tokens,
            done.cached_prompt_tokens) == ("Hello there!", "stop", 12, 3, 8)
    assert done.ttft_s is not None
    sent = scripted.requests[-1]
    assert sent["auth"] == "Bearer sk-test" and sent["body"]["stream"] is True
    assert sent["body"]["messages"] == [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
    ]  # fmt: skip


async def test_accumulates_tool_call_deltas(server: tuple[str, Scripted]) -> None:
    url, scripted = server
    tool = ToolSpec("get_weather", "Weather", {"type": "object", "properties": {}})
    history = [
        ChatMessage.user("Weather?"),
        ChatMessage.assistant("", [ToolCall("call_0", "get_weather", "{}")]),
        ChatMessage.tool("call_0", '{"ok": true}', name="get_weather"),
    ]
    async with client(url, "tools") as llm:
        done = await llm.complete(history, tools=[tool])
    assert done.finish_reason == "tool_calls"
    assert done.tool_calls == (
        ToolCall("call_a", "get_weather", '{"city": "Oslo"}'),
        ToolCall("call_b", "get_time", "{}"),
    )
    body = scripted.requests[-1]["body"]
    assert body["tools"][0]["function"]["name"] == "get_weather"
    assert body["messages"][1]["tool_calls"][0]["id"] == "call_0"
    assert body["messages"][2] == {
        "role": "tool", "content": '{"ok": true}', "tool_call_id": "call_0", "name": "get_weather"
    }  # fmt: skip


async def test_http_errors_are_typed(server: tuple[str, Scripted]) -> None:
    url, _ = server
    async with client(url, "error500", max_retries=0) as llm:
        with pytest.raises(ProviderError) as info:
            await llm.complete([ChatMessage.user("Hi")])
    assert "500" in info.value.message and info.value.retryable
    async with client(url, "bad-request") as llm:
        with pytest.raises(ProviderError) as info:
            await llm.complete([ChatMessage.user("Hi")])
    assert not info.value.retryable


async def test_retryable_failure_before_output_is_retried(server: tuple[str, Scripted]) -> None:
    url, _ = server
    async with client(url, "flaky", max_retries=1) as llm:
        done = await llm.complete([ChatMessage.user("Hi")])
    assert done.text == "Hello there!"


async def test_timeouts(server: tuple[str, Scripted]) -> None:
    url, _ = server
    for model in ("slow", "stall"):
        async with client(url, model, timeout_s=0.3, max_retries=0) as llm:
            with pytest.raises(ProviderTimeout):
                await llm.complete([ChatMessage.user("Hi")])


async def test_unreachable_server_is_unavailable() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    async with client(f"http://127.0.0.1:{port}/v1", "x", max_retries=0) as llm:
        with pytest.raises(ProviderUnavailable):
            await llm.complete([ChatMessage.user("Hi")])
