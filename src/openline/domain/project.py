"""Projects: the container of agents, tools and conversations inside a workspace."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Ref:
    """A named resource by identity (project, agent, workspace...), as other objects cite it."""

    id: str
    name: str


@dataclass(frozen=True)
class Project:
    """A project with its default agent and how many of its conversations are live."""

    id: str
    name: str
    default_agent: Ref | None
    active_conversations: int
    max_active_conversations: int | None

    @property
    def ref(self) -> Ref:
        return Ref(self.id, self.name)


def check_max_active(value: int | None) -> int | None:
    """A concurrency limit is a positive integer, or ``None`` (the workspace's applies)."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError("must be a positive integer")
    return value
