"""The dashboard in a real browser (Debian's Chromium, headless, through Playwright):
signing in and CSRF, an agent form with a validation error, a stored conversation's
recording, and a spoken conversation from the fake microphone to an agent."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import BrowserContext, Page, expect
from websockets.sync.client import connect

from openline.api.dashboard.web import CSP
from openline.providers.testing import ScriptedLLM, ScriptedReply
from tests.conftest import LiveServer
from tests.dashboard.conftest import (
    REPLY,
    SENTENCE,
    attach_recording,
    seed,
    shot,
    sign_in,
    stereo_wav,
    unique,
    wait_until,
)
from tests.postcall.conftest import WebhookReceiver
from tests.providers.speech_helpers import wer


def test_sign_in_session_cookie_and_csrf_rejection(page: Page, server: LiveServer,
                                                   api: httpx.Client) -> None:
    response = page.goto("/dashboard/agents")
    assert response is not None
    assert page.url.endswith("/dashboard/login?next=%2Fdashboard%2Fagents")
    assert response.headers["content-security-policy"] == CSP
    shot(page, "login")
    page.fill("#api_key", "ol_wrong_key")
    page.click("#sign-in")
    expect(page.locator("#login-error")).to_have_text("Invalid API key")
    sign_in(page, server.api_key)
    cookie = next(c for c in page.context.cookies() if c["name"] == "ol_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and not cookie["secure"]
    assert server.api_key not in cookie["value"]
    # A forged form (no CSRF token) with the session cookie: refused, nothing created.
    name = unique("forged")
    forged = page.request.post("/dashboard/agents/new", form={"name": name},
                               max_redirects=0)
    assert forged.status == 403
    assert "CSRF" in forged.text()
    assert forged.headers["content-security-policy"] == CSP
    wrong = page.request.post("/dashboard/agents/new", max_redirects=0,
                              form={"name": name, "csrf_token": "not-the-token"})
    assert wrong.status == 403
    names = [a["name"] for a in api.get("/agents").json()["agents"]]
    assert name not in names
    # Signing out ends the session on the server, not only in this browser.
    value = cookie["value"]
    page.click("text=Sign out")
    page.wait_for_url("**/dashboard/login")
    replay = httpx.get(f"{server.url}/dashboard/agents", cookies={"ol_session": value})
    assert replay.status_code == 303 and "/dashboard/login" in replay.headers["location"]


def test_create_an_agent_with_a_validation_error_then_fix_it(page: Page, server: LiveServer,
                                                             api: httpx.Client) -> None:
    sign_in(page, server.api_key)
    page.click("#new-agent")
    name = unique("helper")
    page.fill("#in-name", name)
    page.fill("#in-audio_speed", "2.5")  # the API allows 0.5 to 1.5
    page.fill("#in-system_prompt", "You help people find books.")
    page.fill("#in-boosted_keywords", "library\nSaturday")
    page.click("#save-agent")
    error = page.locator("#error-audio_speed")
    expect(error).to_contain_text("less than or equal to 1.5")
    assert page.locator("#field-audio_speed.invalid").count() == 1
    # What was typed is still there, and nothing was stored.
    expect(page.locator("#in-system_prompt")).to_have_value("You help people find books.")
    assert name not in [a["name"] for a in api.get("/agents").json()["agents"]]
    shot(page, "agent-validation-error")
    page.fill("#in-audio_speed", "1.2")
    page.select_option("#in-phone_mode", "assign-automatically")
    page.click("#save-agent")
    page.wait_for_url(f"**/dashboard/agents/{name}?saved=1")
    stored = api.get(f"/agents/{name}").json()["agent"]
    assert stored["audio_speed"] == 1.2
    assert stored["system_prompt"] == "You help people find books."
    assert stored["boosted_keywords"] == ["library", "Saturday"]
    assert stored["phone_number"].startswith("+")  # a number from the pool
    expect(page.locator(f"text={stored['phone_number']}")).to_be_visible()
    # An edit makes version 2; the versions page shows what changed.
    page.fill("#in-welcome_message", "Hello from the library.")
    page.click("#save-agent")
    page.wait_for_url(f"**/dashboard/agents/{name}?saved=1")
    assert api.get(f"/agents/{name}").json()["agent"]["version_number"] == 2
    shot(page, "agent")
    page.goto(f"/dashboard/agents/{name}/versions")
    added = page.locator("#v2 .add")
    expect(added).to_contain_text(['"welcome_message": "Hello from the library."'])
    shot(page, "agent-versions")
    page.goto(f"/dashboard/agents/{name}")
    page.click("text=Disable")
    assert api.get(f"/agents/{name}").json()["agent"]["is_disabled"] is True
    page.goto("/dashboard/agents")
    shot(page, "agents")


def test_open_a_stored_conversation_and_play_its_recording(
        page: Page, server: LiveServer, tmp_path: Path) -> None:
    (conv_id,) = seed(server.database_url, [{"duration_ms": 4000.0}])
    wav = tmp_path / "rec.wav"
    stereo_wav(wav, 4.0)
    attach_recording(server.database_url, conv_id, wav)
    sign_in(page, server.api_key)
    page.goto("/dashboard/conversations")
    page.click(f"a[href='/dashboard/conversations/{conv_id}']")
    expect(page.locator("#transcript tr.item")).to_have_count(1)
    expect(page.locator("#interruptions")).to_have_text("1")
    assert page.locator("#latency-chart rect.total").count() == 2  # two measured turns
    page.evaluate("document.getElementById('recording').play()")
    wait_until(page, "document.getElementById('recording').currentTime > 0.3", 15)
    # The item being heard (the user's "hi", from 0 to 800 ms) is highlighted.
    page.evaluate("document.getElementById('recording').currentTime = 0.2")
    expect(page.locator("#transcript tr.item.current")).to_have_count(1)
    audio = page.request.get(page.get_attribute("#recording", "src") or "")
    assert audio.status == 200 and audio.body()[:4] == b"RIFF"
    shot(page, "conversation")
    page.goto("/dashboard/conversations")
    shot(page, "conversations")


def test_a_spoken_conversation_from_the_browser(page: Page, server: LiveServer,
                                                api: httpx.Client) -> None:
    name = unique("librarian")
    api.post("/agents", json={"name": name, "welcome_message": "",
                              "system_prompt": "Answer questions about the library."})
    sign_in(page, server.api_key)
    page.goto(f"/dashboard/agents/{name}/talk")
    socket_urls: list[str] = []
    page.on("websocket", lambda ws: socket_urls.append(ws.url))
    page.click("#talk-start")
    user_line = page.locator("#talk-transcript li.user span").first
    expect(user_line).not_to_have_text("", timeout=45_000)
    heard = user_line.inner_text()
    assert wer(SENTENCE, heard) <= 0.3, heard
    expect(page.locator("#talk-transcript li.assistant span").first).to_contain_text(
        "library opens", timeout=30_000)
    # Reply audio came out of the player (samples counted by the worklet as played).
    wait_until(page, "window.openlineTalk.playedSamples > 16000", 30)
    expect(page.locator("#talk-latency tbody tr").first).to_be_visible()
    shot(page, "talk")
    conv_id = page.evaluate("window.openlineTalk.conversationId")
    page.click("#talk-stop")
    expect(page.locator("#talk-status")).to_contain_text("ended", timeout=15_000)
    # The socket was opened with a conversation token, never the API key.
    assert socket_urls and "conversation_token=ph_conversation_" in socket_urls[0]
    assert server.api_key not in socket_urls[0]
    deadline = time.monotonic() + 30
    while True:
        stored = api.get(f"/conversations/{conv_id}").json()["conversation"]
        if stored["ended_at"] is not None or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert stored["ended_at"] is not None and stored["agent"]["name"] == name
    user_items = [i for i in stored["items"] if i["role"] == "user"]
    assert user_items and wer(SENTENCE, user_items[0]["live_transcript"]) <= 0.3
    # The reply is stored as far as it was heard before hanging up (at least its start).
    assistant = [i["live_transcript"] or "" for i in stored["items"] if i["role"] == "assistant"]
    assert assistant and assistant[0].startswith("The library opens") \
        and REPLY.startswith(assistant[0])
    page.goto(f"/dashboard/conversations/{conv_id}")
    expect(page.locator("#recording")).to_have_count(1)
    expect(page.locator("#latency-chart")).to_have_count(1)
    assert page.locator("#latency-chart rect.stage1").count() >= 1  # STT from stored stages
    shot(page, "conversation-spoken")


LONG_REPLY = ("The library opens at nine in the morning on Saturday, and it stays open until "
              "five in the afternoon, with the reading room on the second floor and the "
              "children's corner next to the entrance, where there are stories at eleven.")


def test_barge_in_stops_playback_and_keeps_what_was_heard(
        page: Page, context: BrowserContext, server: LiveServer, api: httpx.Client,
        llm: ScriptedLLM) -> None:
    """The fake microphone repeats its sentence (the file loops) while a long reply plays:
    the server hears the user, the page stops its playback at once, marks the reply as
    interrupted, and the stored reply keeps only what was played. The conversation is
    on the Live page meanwhile, and Cancel there ends it."""
    name = unique("talkative")
    api.post("/agents", json={"name": name, "welcome_message": ""})
    llm.fallback = ScriptedReply(LONG_REPLY)
    try:
        sign_in(page, server.api_key)
        page.goto(f"/dashboard/agents/{name}/talk")
        page.click("#talk-start")
        expect(page.locator("#talk-interruptions")).to_have_text("1", timeout=60_000)
        played_at_cut = page.evaluate("window.openlineTalk.playedSamples")
        page.wait_for_timeout(500)
        # Playback stopped at the barge-in: within 500 ms of the user speaking, at most
        # one progress report (100 ms of samples) more, not 500 ms of the reply.
        assert page.evaluate("window.openlineTalk.playedSamples") - played_at_cut <= 1600
        expect(page.locator("#talk-transcript li.assistant.interrupted")).to_have_count(
            1, timeout=30_000)
        cut_text = page.locator("#talk-transcript li.assistant.interrupted span").inner_text()
        assert cut_text.endswith(" …") and LONG_REPLY.startswith(cut_text[:-2])
        assert len(cut_text[:-2]) < len(LONG_REPLY)
        conv_id = page.evaluate("window.openlineTalk.conversationId")
        # The Live page lists it; Cancel ends it (the socket closes with 4200).
        live = context.new_page()
        live.goto("/dashboard/live")
        row = live.locator("#live-list tr", has=live.locator(
            f"a[href='/dashboard/conversations/{conv_id}']"))
        expect(row).to_have_count(1)
        shot(live, "live")
        row.locator("button", has_text="Cancel").click()
        expect(page.locator("#talk-status")).to_contain_text("ended (4200)", timeout=15_000)
        live.close()
    finally:
        llm.fallback = ScriptedReply(REPLY)
    stored = _stored(api, conv_id)
    assert stored["ended_by"] == "user_canceled"
    assert stored["analysis"]["interruptions_count"] >= 1
    first = next(i for i in stored["items"] if i["role"] == "assistant")
    assert LONG_REPLY.startswith(first["live_transcript"])
    assert len(first["live_transcript"]) < len(LONG_REPLY)


def _stored(api: httpx.Client, conv_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        stored: dict[str, Any] = api.get(f"/conversations/{conv_id}").json()["conversation"]
        if stored["ended_at"] is not None or time.monotonic() > deadline:
            return stored
        time.sleep(0.2)


def test_the_other_pages(page: Page, server: LiveServer, api: httpx.Client) -> None:
    """Tools, extraction schemas, webhooks, API keys and voices: each page renders under
    the CSP (the fixture fails on violations), keeps the API's errors next to their
    fields, and the new key's secret is shown once."""
    sign_in(page, server.api_key)
    page.goto("/dashboard/tools/new")
    page.fill("#in-name", "bad name with spaces")
    page.click("button.primary")
    expect(page.locator("#error-name")).not_to_be_empty()
    shot(page, "tool-form")
    tool = f"hours_{unique('t').split('-')[1]}"
    page.fill("#in-name", tool)
    page.fill("#in-description", "Opening hours of the library")
    page.select_option("#in-type", "custom_context")
    page.select_option("#in-execution_mode", "sync")
    page.select_option("#in-uninterruptible", "true")
    page.fill("#in-context", "Open 9 to 5, Monday to Saturday.")
    page.click("button.primary")
    page.wait_for_url(f"**/dashboard/tools/{tool}")
    stored = api.get(f"/tools/{tool}").json()["tool"]
    assert stored["context"] == "Open 9 to 5, Monday to Saturday."
    assert stored["uninterruptible"] is True and stored["can_run_during_user_speech"] is None
    expect(page.locator("#in-uninterruptible")).to_have_value("true")
    page.goto("/dashboard/schemas/new")
    shot(page, "schema-form")
    page.goto("/dashboard/keys")
    page.fill("#k-name", "ci")
    page.click("text=Create key")
    secret = page.locator("#new-key-secret").inner_text()
    assert secret.startswith("ol_")
    assert httpx.get(f"{server.url}/v1/projects",
                     headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    page.goto("/dashboard/keys")
    assert secret not in page.content()
    shot(page, "keys")
    page.goto("/dashboard/webhooks")
    page.fill("#w-url", "not a url")
    page.click("text=Add endpoint")
    expect(page.locator(".field.invalid .field-error")).not_to_be_empty()
    shot(page, "webhooks")
    page.goto("/dashboard/voices")
    expect(page.locator("#voice-list audio").first).to_be_visible()
    src = page.get_attribute("#voice-list audio", "src") or ""
    assert src.startswith("/v1/voices/") and page.request.get(src).status == 200
    shot(page, "voices")


def test_a_failed_webhook_delivery_is_resent_from_the_dashboard(
        page: Page, server: LiveServer, api: httpx.Client) -> None:
    receiver = WebhookReceiver(fail_next=1_000).start()  # a real receiver, failing for now
    try:
        sign_in(page, server.api_key)
        page.goto("/dashboard/webhooks")
        page.fill("#w-url", receiver.url)
        page.check("input[name='event_conversation.ended']")
        page.click("text=Add endpoint")
        receiver.secret = page.locator("#webhook-secret code").inner_text()
        endpoint = next(e for e in api.get("/webhook_endpoints").json()["webhook_endpoints"]
                        if e["url"] == receiver.url)
        # A real (silent) conversation over the socket: its end sends conversation.ended.
        with connect(f"{server.ws_url}/v1/sts/ws",
                     additional_headers={"Authorization": f"Bearer {server.api_key}"}) as ws:
            ws.send('{"type": "config", "input_format": "pcm_16000", '
                    '"output_format": "pcm_16000", "welcome_message": ""}')
            conv_id = json.loads(ws.recv(timeout=30))["conversation_id"]
        log_url = f"/webhook_endpoints/{endpoint['id']}/deliveries"

        def log() -> list[dict[str, Any]]:
            return list(api.get(log_url).json()["deliveries"])

        deadline = time.monotonic() + 30
        while not log():
            assert time.monotonic() < deadline, "no delivery attempt"
            time.sleep(0.1)
        (failed,) = log()
        assert not failed["success"] and failed["status_code"] == 500
        page.goto(f"/dashboard/webhooks/{endpoint['id']}")
        receiver.fail_next = 0
        page.click("#delivery-log button:has-text('Resend')")
        expect(page.locator("#resent")).to_be_visible()
        while not any(d["success"] for d in log()):
            assert time.monotonic() < deadline + 30, "the resent message never arrived"
            time.sleep(0.1)
        ok = next(d for d in log() if d["success"])
        assert ok["message_id"] == failed["message_id"]  # the same message, sent again
        delivered = receiver.ok()
        assert len(delivered) == 1 and delivered[0].valid
        assert json.loads(delivered[0].body)["data"]["conversation"]["id"] == conv_id
        page.reload()
        assert page.locator("#delivery-log button:has-text('Resend')").count() == 0
        shot(page, "webhook-deliveries")
        page.goto(f"/dashboard/conversations/{conv_id}")
        expect(page.locator("#deliveries tbody tr")).to_have_count(2)  # failed, then resent
    finally:
        receiver.stop()
