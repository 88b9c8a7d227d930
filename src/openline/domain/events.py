"""Domain events that subscribers can receive, and the webhook endpoints that subscribe.

An event says what happened in Openline's own terms; each subscriber receives it rendered
in its API dialect (``services.webhooks`` looks the renderer up by the endpoint's dialect).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Literal

from openline.domain.conversation import Conversation

#: The wire dialects Openline speaks; a webhook endpoint receives events in one of them.
Dialect = Literal["phonic", "vapi"]
DEFAULT_DIALECT: Dialect = "phonic"


@dataclass(frozen=True)
class ConversationEnded:
    """A conversation ended and its post-call work (transcripts, tasks, summary) is stored."""

    kind: ClassVar[str] = "conversation.ended"
    conversation: Conversation

    @property
    def occurrence(self) -> str:
        """Names this occurrence: publishing it again (a retried job) sends nothing new."""
        return self.conversation.id


@dataclass(frozen=True)
class ConversationAnalyzed:
    """The latency and interruption analysis of an ended conversation is available."""

    kind: ClassVar[str] = "conversation.analysis"
    conversation: Conversation

    @property
    def occurrence(self) -> str:
        return self.conversation.id


@dataclass(frozen=True)
class ConversationTransferred:
    """A live conversation was transferred to a phone number."""

    kind: ClassVar[str] = "conversation.transferred"
    conversation: Conversation
    transferred_to: str

    @property
    def occurrence(self) -> str:
        # The same conversation may transfer more than once; the item count tells them apart.
        return f"{self.conversation.id}:{self.transferred_to}:{len(self.conversation.items)}"


DomainEvent = ConversationEnded | ConversationAnalyzed | ConversationTransferred
#: Every event kind an endpoint can subscribe to (the default subscription is all of them).
EVENT_KINDS: tuple[str, ...] = (ConversationEnded.kind, ConversationAnalyzed.kind,
                                ConversationTransferred.kind)


@dataclass(frozen=True)
class WebhookEndpoint:
    """A workspace's subscription: where events go, which kinds, in which dialect."""

    id: str
    workspace_id: str
    url: str
    description: str | None
    events: tuple[str, ...]
    created_at: datetime
    dialect: Dialect = DEFAULT_DIALECT

    def wants(self, event: DomainEvent) -> bool:
        return event.kind in self.events


@dataclass(frozen=True)
class WebhookDelivery:
    """One delivery attempt of one message to one endpoint."""

    id: str
    message_id: str
    event_type: str
    attempt: int
    status_code: int | None
    success: bool
    error: str | None
    duration_ms: float
    created_at: datetime
