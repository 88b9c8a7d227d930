"""Vapi server-URL messages: where they go, the credential they carry, how they are sent.

Every message is a POST of ``{"message": {...}}`` (Vapi API spec, section 6) to one URL:
the tool's server (``tool-calls`` only), else the assistant's, the phone number's, the
org's (``ServerTarget`` is the one that applies, resolved by the live call). Each request

* carries the server's credential: the legacy ``secret`` as ``X-Vapi-Secret``, a webhook
  credential's bearer token (``headerName``, ``bearerPrefixEnabled``) or HMAC signature
  (``secretKey``, ``algorithm``, ``signatureHeader``, ``timestampHeader``,
  ``payloadFormat``, ``signatureEncoding``, ...), plus ``server.headers`` (an
  ``Authorization`` header there overrides the credential's, as the spec says);
* goes through the SSRF guard (``url_safety``: vetted, pinned address; no redirects);
* has a timeout: ``server.timeoutSeconds`` (default 20 s), and at most 7.5 s for
  ``assistant-request`` (the spec's fixed budget).

Messages that expect a reply (``assistant-request``, ``tool-calls``, ``function-call``,
``transfer-destination-request``) are sent once, in the call's path (``request``).
The others are events: ``deliver_event`` tries once at once and, if that fails, queues
a ``vapi.server_message`` job on the durable post-call queue, which retries with backoff
(``run_job``); the end-of-call report is queued directly. A job carries the exact body,
so every attempt sends identical bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from openline.postcall.queue import ClaimedJob, JobQueue
from openline.postcall.worker import PermanentJobError
from openline.services.outbound import MAX_RESPONSE_BYTES
from openline.services.url_safety import UnsafeUrl, pinned_client, policy_for, validate_url
from openline.store.db import Database
from openline.store.tables_vapi_live import VapiCall

log = logging.getLogger(__name__)

JOB = "vapi.server_message"
DEFAULT_TIMEOUT_S = 20.0
ASSISTANT_REQUEST_TIMEOUT_S = 7.5
HASHES = {"sha256": hashlib.sha256, "sha512": hashlib.sha512, "sha1": hashlib.sha1}


class ServerError(Exception):
    """A server-URL request failed (network, timeout, refused URL, non-2xx, not JSON)."""

    def __init__(self, message: str, *, timed_out: bool = False, retry: bool = True) -> None:
        super().__init__(message)
        self.timed_out, self.retry = timed_out, retry


@dataclass(frozen=True)
class ServerTarget:
    """One server URL with its credential (stored sealed: it holds secrets)."""

    url: str
    timeout_s: float = DEFAULT_TIMEOUT_S
    headers: dict[str, str] = field(default_factory=dict)
    #: the legacy inline secret, sent as ``X-Vapi-Secret``
    secret: str | None = None
    #: a webhook credential's ``authenticationPlan`` (``bearer`` or ``hmac``)
    auth: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "timeout_s": self.timeout_s, "headers": self.headers,
                "secret": self.secret, "auth": self.auth}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ServerTarget:
        return cls(str(data["url"]), float(data.get("timeout_s") or DEFAULT_TIMEOUT_S),
                   dict(data.get("headers") or {}), data.get("secret"), data.get("auth"))

    def headers_for(self, body: bytes, now: float | None = None) -> dict[str, str]:
        """Every header of one request with ``body`` (the credential's, then the server's
        own, which win)."""
        out = {"content-type": "application/json"}
        if self.secret:
            out["x-vapi-secret"] = self.secret
        plan = self.auth or {}
        if plan.get("type") == "bearer" and plan.get("token"):
            name = str(plan.get("headerName") or "Authorization")
            prefix = "Bearer " if plan.get("bearerPrefixEnabled", True) is not False else ""
            out[name.lower()] = prefix + str(plan["token"])
        elif plan.get("type") == "hmac" and plan.get("secretKey"):
            out.update(hmac_headers(plan, body, self.url, now))
        out.update({k.lower(): str(v) for k, v in self.headers.items()})
        return out


def hmac_headers(plan: dict[str, Any], body: bytes, url: str,
                 now: float | None = None) -> dict[str, str]:
    """The HMAC credential's signature (and timestamp / message id) headers."""
    algorithm = str(plan.get("algorithm") or "sha256")
    digest = HASHES.get(algorithm, hashlib.sha256)
    secret = str(plan["secretKey"])
    key = base64.b64decode(secret) if plan.get("secretIsBase64") else secret.encode()
    timestamp = str(int(now if now is not None else time.time()))
    message_id = f"msg_{uuid.uuid4().hex}"
    include_ts = plan.get("includeTimestamp", True) is not False
    template = str(plan.get("payloadFormat") or
                   ("{timestamp}.{body}" if include_ts else "{body}"))
    payload = (template.replace("{timestamp}", timestamp).replace("{method}", "POST")
               .replace("{url}", url).replace("{svix-id}", message_id)
               .replace("{body}", body.decode()))
    mac = hmac.new(key, payload.encode(), digest).digest()
    encoded = base64.b64encode(mac).decode() if plan.get("signatureEncoding") == "base64" \
        else mac.hex()
    out = {str(plan.get("signatureHeader") or "x-signature").lower():
           str(plan.get("signaturePrefix") or "") + encoded}
    if include_ts:
        out[str(plan.get("timestampHeader") or "x-timestamp").lower()] = timestamp
    if plan.get("messageIdHeader"):
        out[str(plan["messageIdHeader"]).lower()] = message_id
    return out


def encode(message: dict[str, Any]) -> bytes:
    """The wire body of one message (``timestamp`` in epoch ms, as SDK 0.8.1+ expect)."""
    message.setdefault("timestamp", int(time.time() * 1000))
    return json.dumps({"message": message}, separators=(",", ":"), default=str).encode()


class ServerMessages:
    """Sends server-URL messages for this process (one HTTP client, one SSRF policy)."""

    def __init__(self, db: Database, http: httpx.AsyncClient, queue: JobQueue | None, *,
                 allow_private: bool, max_attempts: int = 8) -> None:
        self.db, self.http, self.queue, self.max_attempts = db, http, queue, max_attempts
        self.policy = policy_for(allow_private)

    async def post(self, target: ServerTarget, body: bytes, timeout_s: float | None = None
                   ) -> httpx.Response:
        """One POST (raises ``ServerError``); the answer's body is capped."""
        timeout = min(timeout_s or target.timeout_s, target.timeout_s)
        try:
            validate_url(target.url, policy=self.policy)
            request = self.http.build_request("POST", target.url, content=body,
                                              headers=target.headers_for(body),
                                              timeout=timeout)
            async with pinned_client(self.http, self.policy) as client:
                response = await client.send(request, stream=True)
                try:
                    data = bytearray()
                    async for chunk in response.aiter_bytes():
                        data.extend(chunk)
                        if len(data) > MAX_RESPONSE_BYTES:
                            raise ServerError("the server's reply is too large", retry=False)
                finally:
                    await response.aclose()
        except httpx.TimeoutException as exc:
            raise ServerError(f"no reply within {timeout:g} s", timed_out=True) from exc
        except UnsafeUrl as exc:
            raise ServerError(f"refused URL: {exc}", retry=False) from exc
        except httpx.HTTPError as exc:
            raise ServerError(f"{type(exc).__name__}: {exc}") from exc
        response._content = bytes(data)  # the capped body, read once
        if not 200 <= response.status_code < 300:
            raise ServerError(f"the server replied HTTP {response.status_code}")
        return response

    async def request(self, target: ServerTarget, message: dict[str, Any],
                      timeout_s: float | None = None) -> dict[str, Any]:
        """A message that expects a reply: the reply's JSON object (``ServerError``)."""
        response = await self.post(target, encode(message), timeout_s)
        try:
            reply = response.json() if response.content.strip() else {}
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ServerError("the server's reply is not JSON") from exc
        if not isinstance(reply, dict):
            raise ServerError("the server's reply must be a JSON object")
        return reply

    async def deliver_event(self, call_id: str, target: ServerTarget,
                            message: dict[str, Any], dedupe_key: str | None = None) -> None:
        """An event of call ``call_id``: one attempt now; a failed one is retried from the
        durable queue (the job names the call, whose stored target it uses)."""
        body = encode(message)
        try:
            await self.post(target, body)
            return
        except ServerError as exc:
            if not exc.retry:
                log.warning("server message %s not sent: %s", message.get("type"), exc)
                return
            log.info("server message %s failed (%s); queued for retry",
                     message.get("type"), exc)
        await self.enqueue(call_id, body, dedupe_key, delay_s=1.0)

    async def enqueue(self, call_id: str, body: bytes, dedupe_key: str | None,
                      delay_s: float = 0.0) -> None:
        """Queue one delivery. The job holds the exact body and the call's id, never the
        credential: that stays sealed in ``vapi_calls.server``."""
        if self.queue is None:
            return
        await self.queue.enqueue(JOB, {"call_id": call_id, "body": body.decode()},
                                 dedupe_key=dedupe_key, max_attempts=self.max_attempts,
                                 delay_s=delay_s)

    async def target_of(self, call_id: str) -> ServerTarget | None:
        """The stored server of a Vapi call (None: no call, or no server)."""
        async with self.db.session() as s:
            row = await s.get(VapiCall, call_id)
        return ServerTarget.from_json(json.loads(row.server)) if row and row.server else None

    async def run_job(self, job: ClaimedJob) -> None:
        """Handler of ``vapi.server_message`` jobs: raises (to retry) unless it got a 2xx."""
        target = await self.target_of(str(job.payload["call_id"]))
        if target is None:
            return  # the call was deleted since: nothing to deliver to
        try:
            await self.post(target, str(job.payload["body"]).encode())
        except ServerError as exc:
            if not exc.retry:
                raise PermanentJobError(str(exc)) from exc
            raise
