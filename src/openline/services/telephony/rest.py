"""Twilio's REST API through the official ``twilio`` client, over httpx.

The client builds every request (Calls create/update, repeated ``StatusCallbackEvent``
fields, Basic auth) as it does against Twilio; the HTTP client underneath sends it to
``api_base`` instead of ``https://api.twilio.com`` when a Twilio-compatible API (or the
test suite's fake Twilio) stands in.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import httpx
from twilio.base.exceptions import TwilioRestException
from twilio.http import AsyncHttpClient
from twilio.http.response import Response
from twilio.rest import Client

log = logging.getLogger(__name__)
TWILIO_API = "https://api.twilio.com"
REST_TIMEOUT_S = 10.0

__all__ = ["TwilioRest", "TwilioRestException"]


class _HttpxTwilioClient(AsyncHttpClient):
    """The ``twilio`` library's async HTTP client contract, on httpx."""

    def __init__(self, http: httpx.AsyncClient, api_base: str) -> None:
        super().__init__(log, True, REST_TIMEOUT_S)
        self.http, self.api_base = http, api_base.rstrip("/")

    async def request(self, method: str, uri: str, params: dict[str, object] | None = None,
                      data: dict[str, object] | None = None,
                      headers: dict[str, str] | None = None,
                      auth: tuple[str, str] | None = None,
                      timeout: float | None = None,  # noqa: ASYNC109 - the library's contract
                      allow_redirects: bool = False) -> Response:
        if uri.startswith(TWILIO_API):
            uri = self.api_base + uri[len(TWILIO_API):]
        reply = await self.http.request(
            method.upper(), uri, params=params, data=data,  # type: ignore[arg-type]
            headers=headers, auth=auth, timeout=timeout or self.timeout,
            follow_redirects=allow_redirects)
        return Response(reply.status_code, reply.text, reply.headers)


class TwilioRest:
    """The calls Openline places and controls."""

    def __init__(self, account_sid: str, username: str, password: str, *,
                 api_base: str = TWILIO_API, http: httpx.AsyncClient | None = None) -> None:
        self.http = http or httpx.AsyncClient()
        self.client = Client(username, password, account_sid,
                             http_client=_HttpxTwilioClient(self.http, api_base),
                             environment={"TWILIO_UNUSED": "1"})

    async def create_call(self, to: str, from_: str, twiml: str, *, status_callback: str,
                          events: Sequence[str], timeout_s: int,
                          amd_callback: str | None = None) -> str:
        """Place a call running ``twiml`` once answered; returns its CallSid."""
        options: dict[str, Any] = {"status_callback": status_callback,
                                   "status_callback_method": "POST",
                                   "status_callback_event": list(events),
                                   "timeout": timeout_s}
        if amd_callback:
            options.update(machine_detection="DetectMessageEnd", async_amd="true",
                           async_amd_status_callback=amd_callback,
                           async_amd_status_callback_method="POST")
        call = await self.client.calls.create_async(to=to, from_=from_, twiml=twiml,
                                                    **options)
        return str(call.sid)

    async def update_call(self, call_sid: str, *, twiml: str | None = None,
                          status: str | None = None) -> None:
        """Replace a live call's TwiML, or end it (``completed`` / ``canceled``)."""
        options: dict[str, Any] = {}
        if twiml is not None:
            options["twiml"] = twiml
        if status is not None:
            options["status"] = status
        await self.client.calls(call_sid).update_async(**options)

    async def close(self) -> None:
        await self.http.aclose()
