"""The state of the phone calls one node handles, keyed by conversation, CallSid and
stream token.

A call is *pending* from the moment Twilio asks what to do (inbound webhook) or Openline
places it (outbound) until its first stream starts: it is registered in the live registry
as a ``PendingCall`` so its lease is renewed while it rings and ``conversations.cancel``
reaches it. Then the call session takes its place in the registry.

Stream tokens bind a Media Streams connection to one call: each is issued for one stream
(a new stream after keypad tones or a returned transfer gets a new one), is a
``<Parameter>`` of the TwiML (never in the URL), and expires quickly.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar

from openline.services.call_setup import PreparedCall
from openline.transports.twilio import TwilioTransport
from openline.voice.tools import PhoneTransfer

Direction = Literal["inbound", "outbound"]
#: Twilio's final call statuses, and how they end a conversation that never ran
UNANSWERED = {"busy": "call_busy", "no-answer": "call_no_answer", "failed": "call_failed",
              "canceled": "call_canceled"}


@dataclass
class PhoneCall:
    """One Twilio call of an Openline conversation."""

    prepared: PreparedCall
    direction: Direction
    #: the agent's number (``To`` inbound, ``From`` outbound) and the other party's
    agent_number: str
    other_number: str
    call_sid: str | None = None
    transport: TwilioTransport | None = None
    #: ``CallSid:CallStatus`` pairs already handled (Twilio retries its callbacks)
    statuses: set[str] = field(default_factory=set)
    detect_voicemail: bool = False
    voicemail_message: str | None = None
    #: the greeting held back until answering-machine detection answers: (text, generate)
    held_welcome: tuple[str, bool] | None = None
    answered_by: str | None = None
    transfer: PhoneTransfer | None = None
    transfer_attempts: int = 0
    #: told to the agent once the next stream starts (a transfer that came back)
    note_on_return: str | None = None
    ended_by: str | None = None
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def conversation_id(self) -> str:
        return self.prepared.id

    @property
    def workspace_id(self) -> str:
        return self.prepared.workspace_id


class RingingCall(Protocol):
    """What ``PendingCall`` needs of a phone call (Twilio's ``PhoneCall``, a ``SipCall``)."""

    @property
    def conversation_id(self) -> str: ...

    @property
    def workspace_id(self) -> str: ...

    @property
    def finished(self) -> asyncio.Event: ...


C = TypeVar("C", bound=RingingCall)


class PendingCall(Generic[C]):
    """A ``LiveCall`` for a call that has no stream yet (ringing, or between webhook and
    stream): ``end`` ends it where it is (cancels the ringing call). Twilio and SIP both."""

    def __init__(self, call: C, on_end: Callable[[C, str], Coroutine[Any, Any, None]]) -> None:
        self.call, self._on_end = call, on_end
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def id(self) -> str:
        return self.call.conversation_id

    @property
    def workspace_id(self) -> str:
        return self.call.workspace_id

    def end(self, ended_by: str) -> None:
        task = asyncio.get_running_loop().create_task(self._on_end(self.call, ended_by))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait_finished(self) -> None:
        await self.call.finished.wait()


class StreamTokens:
    """One-stream, short-lived secrets that bind a Media Streams connection to a call."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._tokens: dict[str, tuple[PhoneCall, float]] = {}

    def issue(self, call: PhoneCall, ttl_s: float) -> str:
        self._expire()
        token = secrets.token_urlsafe(24)
        self._tokens[token] = (call, self.clock() + ttl_s)
        return token

    def take(self, token: str | None, call_sid: str) -> PhoneCall | None:
        """The call a stream belongs to; the token is used up. None when the token is
        unknown, expired, or issued for another call."""
        self._expire()
        entry = self._tokens.pop(token or "", None)
        if entry is None:
            return None
        call = entry[0]
        if call.call_sid is not None and call.call_sid != call_sid:
            return None
        return call

    def drop(self, call: PhoneCall) -> None:
        for token in [k for k, (c, _) in self._tokens.items() if c is call]:
            del self._tokens[token]

    def _expire(self) -> None:
        now = self.clock()
        for token in [k for k, (_, until) in self._tokens.items() if until <= now]:
            del self._tokens[token]
