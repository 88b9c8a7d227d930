"""The pieces under the phone calls: TwiML documents, signature checks against a
hand-computed HMAC, and the phone-transfer tool routed to the transport."""

from __future__ import annotations

import base64
import hashlib
import hmac
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from openline.providers.llm.base import ToolCall
from openline.services.live import LiveService
from openline.services.telephony import twiml
from openline.services.telephony.service import TwilioOptions, TwilioService
from openline.store.db import Database
from openline.voice.tools import PhoneTransfer, RuntimeTool, ToolRuntime
from tests.conftest import fake_providers

TOKEN = "12345"


def _service(tmp_path: Path, public_url: str = "https://agent.example.com") -> TwilioService:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'unit.db'}")
    live = LiveService(db, fake_providers(), tmp_path, lambda: ({"joe"}, "joe"))
    return TwilioService(TwilioOptions("AC" + "0" * 32, TOKEN, public_url), live)


def _hand_signature(url: str, params: dict[str, str]) -> str:
    """Twilio's algorithm written out: URL + sorted name/value pairs, HMAC-SHA1, base64."""
    data = url + "".join(k + params[k] for k in sorted(params))
    return base64.b64encode(hmac.new(TOKEN.encode(), data.encode(), hashlib.sha1).digest()
                            ).decode()


def test_signatures_follow_twilios_algorithm(tmp_path: Path) -> None:
    svc = _service(tmp_path)
    params = {"CallSid": "CA1", "From": "+15557770101", "To": "+15550001000"}
    url = "https://agent.example.com/twilio/voice"
    good = _hand_signature(url, params)
    assert svc.webhook_valid("/twilio/voice", params, good)
    assert not svc.webhook_valid("/twilio/voice", {**params, "To": "+1999"}, good)
    assert not svc.webhook_valid("/twilio/other", params, good)
    assert not svc.webhook_valid("/twilio/voice", params, None)
    # The query string is part of what is signed.
    assert not svc.webhook_valid("/twilio/voice?x=1", params, good)
    # The stream upgrade: the wss:// URL exactly as in the TwiML, no parameters.
    assert svc.stream_valid(_hand_signature("wss://agent.example.com/twilio/stream", {}))
    assert not svc.stream_valid(_hand_signature("https://agent.example.com/twilio/stream", {}))
    assert svc.options.stream_url == "wss://agent.example.com/twilio/stream"
    plain = _service(tmp_path, "http://127.0.0.1:8000/")
    assert plain.options.stream_url == "ws://127.0.0.1:8000/twilio/stream"


def test_twiml_documents() -> None:
    doc = ET.fromstring(twiml.stream("wss://a.example/twilio/stream", {"token": "t"},
                                     digits="ww1"))
    assert [el.tag for el in doc] == ["Play", "Connect"]
    assert doc.find("Play").get("digits") == "ww1"  # type: ignore[union-attr]
    param = doc.find("Connect/Stream/Parameter")
    assert param is not None and (param.get("name"), param.get("value")) == ("token", "t")
    with pytest.raises(ValueError):
        twiml.stream("wss://a.example/twilio/stream?token=t", {})
    request = PhoneTransfer("+15554440000", "ww123#", detect_voicemail=True)
    dial = ET.fromstring(twiml.transfer(request, "+15550001000", action="https://a/dial",
                                        answered_callback="https://a/transfer")).find("Dial")
    assert dial is not None
    assert (dial.get("callerId"), dial.get("answerOnBridge"), dial.get("action")) == (
        "+15550001000", "true", "https://a/dial")
    number = dial.find("Number")
    assert number is not None and number.text == "+15554440000"
    assert (number.get("sendDigits"), number.get("machineDetection"),
            number.get("statusCallbackEvent")) == ("ww123#", "DetectMessageEnd", "answered")


async def test_the_phone_transfer_tool_reaches_the_transport() -> None:
    asked: list[PhoneTransfer] = []

    async def transfer(request: PhoneTransfer) -> bool:
        asked.append(request)
        return True

    tool = RuntimeTool("to_sales", "d", "transfer_phone", config={
        "phone_number": "+15554440000", "dtmf": "ww9", "use_agent_phone_number": False,
        "on_transfer_no_answer": "keep_retrying"})
    runtime = ToolRuntime([tool], webhooks=None, client=None, on_transfer=transfer)
    outcome = await runtime.execute(ToolCall("c1", "to_sales", "{}"))
    assert (outcome.record.status, outcome.speak_after) == ("success", False)
    assert asked == [PhoneTransfer("+15554440000", "ww9", False, False, "keep_retrying",
                                   "to_sales")]

    async def refuse(request: Any) -> bool:
        return False

    runtime = ToolRuntime([tool], webhooks=None, client=None, on_transfer=refuse)
    refused = await runtime.execute(ToolCall("c2", "to_sales", "{}"))
    assert refused.record.status == "error" and "no telephony" in (
        refused.record.error_message or "")
