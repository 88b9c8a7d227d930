"""A real conversation over the SDK socket, then the post-call job: refined transcripts from
the recording, task results and summary from the scripted LLM, signed webhooks."""

from __future__ import annotations

import json
from typing import Any

from openline.providers.testing import FakeSTT
from tests.postcall.conftest import ServerFactory, WebhookReceiver, scripted_providers, wait_until
from tests.postcall.test_webhooks import _endpoint, api
from tests.support.llm_server import ScriptedLLMServer
from tests.ws.conftest import collect, config, sdk, send_pcm, silence, tone

TASKS = [{"name": "Book table", "description": "Book a table for the caller"},
         {"name": "Take payment", "description": "Take a card deposit"}]


async def test_post_call_job_after_a_real_conversation(
        make_server: ServerFactory, llm_server: ScriptedLLMServer,
        receiver: WebhookReceiver) -> None:
    # Live recognition hears part of it; the post-call pass hears it all.
    stt = FakeSTT(["book a table"], default="book a table for two at seven")
    server = make_server(scripted_providers(llm_server, stt))
    _endpoint(server, receiver)
    receiver.fail_next = 1  # the first delivery fails and is retried
    llm_server.script(
        "You are booked.",  # the live turn
        json.dumps({"Book table": {"reasoning": "Booking confirmed.", "completed": True},
                    "Take payment": {"reasoning": "No card was taken.", "completed": "no"}}),
        "The caller booked a table for two.",  # summary
    )
    client = sdk(server)
    await client.agents.create(name="booker", welcome_message="Hello!", tasks=TASKS)
    seen: list[Any] = []
    async with client.conversations.connect() as socket:
        await socket.send_config(config(agent="booker", stream_ahead_of_real_time=True))
        await collect(socket, "assistant_finished_speaking", seen)
        await send_pcm(socket, tone(700))
        await send_pcm(socket, silence(1000))
        await collect(socket, "assistant_finished_speaking", seen)
    conv_id = seen[0].conversation_id

    wait_until(lambda: len(receiver.ok()) >= 2, what="ended + analysis webhooks")
    bodies = {json.loads(d.body)["event_type"]: json.loads(d.body) for d in receiver.ok()}
    ended = bodies["conversation.ended"]["data"]["conversation"]
    assert ended["id"] == conv_id and ended["ended_by"] == "user"
    assert ended["post_call_transcript"] == (
        "Assistant: Hello!\nUser: book a table for two at seven\nAssistant: You are booked.")
    assert [i["post_call_transcript"] for i in ended["items"]] == [
        "Hello!", "book a table for two at seven", "You are booked."]
    assert ended["items"][1]["live_transcript"] == "book a table"
    assert ended["task_results"] == {
        "Book table": {"completed": True, "reasoning": "Booking confirmed."},
        "Take payment": {"completed": False, "reasoning": "No card was taken."}}
    assert ended["summary"] == "The caller booked a table for two."
    analysis = bodies["conversation.analysis"]["data"]["conversation"]
    assert analysis["id"] == conv_id and len(analysis["latencies_ms"]) == 1
    assert bodies["conversation.ended"]["data"]["call_info"] is None
    assert all(d.valid for d in receiver.deliveries) and len(receiver.deliveries) == 3

    # The post-call recogniser got the caller's audio cut from the recording (~0.7 s + pad).
    post_call_audio = stt.calls[-1][0] / 16_000
    assert 0.8 < post_call_audio < 2.0
    tasks_request = llm_server.requests[1]
    prompt = "\n".join(m["content"] for m in tasks_request["messages"])
    assert "- Take payment: Take a card deposit" in prompt
    assert "User: book a table for two at seven" in prompt  # judged on the refined text
    schema = tasks_request["response_format"]["json_schema"]["schema"]
    assert schema["required"] == ["Book table", "Take payment"]

    stored = (await client.conversations.get(conv_id)).conversation
    assert stored.summary == "The caller booked a table for two."
    assert stored.task_results["Book table"]["completed"] is True
    with api(server) as http:
        endpoint = http.get("/webhook_endpoints").json()["webhook_endpoints"][0]["id"]
        log = http.get(f"/webhook_endpoints/{endpoint}/deliveries").json()["deliveries"]
    assert sorted((d["attempt"], d["success"]) for d in log) == [
        (1, False), (1, True), (2, True)]
