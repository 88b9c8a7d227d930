"""Who is calling: the workspace and what the credential may do."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

CredentialKind = Literal["api_key", "session_token", "conversation_token"]


@dataclass(frozen=True)
class Principal:
    """An authenticated caller inside one workspace."""

    workspace_id: str
    workspace_name: str
    kind: CredentialKind = "api_key"
    #: conversation tokens are scoped to one agent
    agent_id: str | None = None
    #: session tokens may be restricted to some conversations
    conversation_ids: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_api_key(self) -> bool:
        return self.kind == "api_key"
