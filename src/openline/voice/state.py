"""The conversation lifecycle as an explicit state machine."""

from __future__ import annotations

import enum
from datetime import datetime


class ConversationState(enum.Enum):
    CREATED = "created"
    RUNNING = "running"
    ENDING = "ending"
    ENDED = "ended"


_ALLOWED = {
    ConversationState.CREATED: {ConversationState.RUNNING, ConversationState.ENDING},
    ConversationState.RUNNING: {ConversationState.ENDING},
    ConversationState.ENDING: {ConversationState.ENDED},
    ConversationState.ENDED: set(),
}


class IllegalTransition(RuntimeError):
    pass


class Lifecycle:
    """Holds the state and the reason the conversation ended (set exactly once)."""

    def __init__(self) -> None:
        self.state = ConversationState.CREATED
        self.ended_by: str | None = None
        #: when the end happened, if earlier than the moment it was processed
        self.ended_at: datetime | None = None

    def move(self, to: ConversationState) -> None:
        if to not in _ALLOWED[self.state]:
            raise IllegalTransition(f"{self.state.value} -> {to.value}")
        self.state = to

    def request_end(self, ended_by: str, at: datetime | None = None) -> bool:
        """First caller wins: returns True when this call decided how it ends."""
        if self.ended_by is not None or self.state in (ConversationState.ENDING,
                                                       ConversationState.ENDED):
            return False
        self.ended_by, self.ended_at = ended_by, at
        self.move(ConversationState.ENDING)
        return True

    @property
    def live(self) -> bool:
        return self.state in (ConversationState.CREATED, ConversationState.RUNNING)
