"""``listen_only_inbound_enabled``: an incoming phone call (over the fake Twilio) hears the
listen-only message, uninterruptibly, then is transcribed without a reply; the same
agent over the STS socket (not an incoming call) converses as usual."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from phonic.errors import BadRequestError

from tests.phonic_fields.conftest import StackFactory
from tests.telephony.conftest import AGENT_NUMBER, CALLER, conversation, tone_mulaw
from tests.telephony.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from tests.ws.conftest import collect, config, sdk, send_pcm, silence, tone

GREETING = "This line records messages for {{team}}."


@pytest.fixture
async def fake_twilio() -> Any:
    fake = FakeTwilio()
    await fake.start()
    yield fake
    await fake.close()


async def test_an_incoming_call_is_greeted_then_only_transcribed(
        make_stack: StackFactory, fake_twilio: FakeTwilio) -> None:
    stack = make_stack(["This reply must never be spoken."], twilio_account_sid=ACCOUNT_SID,
                       twilio_auth_token=AUTH_TOKEN, twilio_api_base=fake_twilio.url)
    client = sdk(stack.server)
    await client.agents.create(
        name="recorder", phone_number="custom", custom_phone_numbers=[AGENT_NUMBER],
        voice_id="joe", welcome_message="Hello, how can I help?", generate_welcome_message=True,
        listen_only_inbound_enabled=True, listen_only_inbound_message=GREETING,
        template_variables={"team": {"default_value": "support"}}, no_input_poke_sec=1)
    call, _ = await fake_twilio.inbound(f"{stack.server.url}/twilio/voice", CALLER, AGENT_NUMBER)
    stream = await call.stream()
    await stream.wait_played(0.5)
    await stream.say(tone_mulaw(600))  # the caller talks over the greeting: not cleared
    await stream.wait_quiet()
    greeting_frames = len(stream.played)
    await stream.say(tone_mulaw(700))
    await asyncio.sleep(1.2)
    await stream.say(tone_mulaw(500))
    await asyncio.sleep(2.5)  # long enough for a reply, or a poke, to have started
    assert len(stream.played) == greeting_frames and not stream.clears
    await fake_twilio.hang_up(call)
    conv = await conversation(client, stream.parameters["conversation_id"])
    spoken = "This line records messages for support."
    assert conv.listen_only is True and conv.welcome_message == spoken
    roles = [(i.role, i.live_transcript) for i in conv.items]
    assert roles[0] == ("assistant", spoken)
    assert len(roles) >= 3 and set(roles[1:]) == {("user", "hello")}  # transcribed, unanswered
    assert [text for text, _, _ in stack.tts.requests] == [spoken]
    # The model was never asked for a reply (only, after the call, for its summary).
    assert all("Summarise this phone call" in str(r.messages[0].content)
               for r in stack.llm.requests)


async def test_the_socket_is_not_an_incoming_call(make_stack: StackFactory) -> None:
    stack = make_stack(["Sure, I can help."])
    client = sdk(stack.server)
    await client.agents.create(name="recorder", voice_id="joe", welcome_message="Hi.",
                               listen_only_inbound_enabled=True,
                               listen_only_inbound_message="Leave a message.")
    seen: list[Any] = []
    async with client.conversations.connect() as socket:
        await socket.send_config(config(agent="recorder", stream_ahead_of_real_time=True))
        await collect(socket, "assistant_finished_speaking", seen)
        await send_pcm(socket, tone(500))
        await send_pcm(socket, silence(1000))
        await collect(socket, "assistant_finished_speaking", seen)
    spoken = " ".join(m.text for m in seen if getattr(m, "type", "") == "audio_chunk"
                      and m.text)
    assert spoken == "Hi. Sure, I can help."


async def test_listen_only_needs_its_message(make_stack: StackFactory) -> None:
    client = sdk(make_stack().server)
    with pytest.raises(BadRequestError) as refused:
        await client.agents.create(name="recorder", listen_only_inbound_enabled=True,
                                   request_options={"max_retries": 0})
    assert "listen_only_inbound_message" in refused.value.body["param_errors"]
