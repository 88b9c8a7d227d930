"""Typed commands: what a dialect asks the services to do, already parsed and validated.

Each API dialect (and the CLI) turns its wire request into one of these; services never
see request bodies or HTTP headers. Fields that a partial update may leave alone default
to ``UNSET``; ``None`` means "clear it".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from openline.domain.agent import AgentSpec, ConfigurationEndpoint
from openline.domain.agent_changes import AgentChanges
from openline.domain.extraction import EvalPromptSpec, ExtractionSchemaChanges, ExtractionSchemaSpec
from openline.domain.phone_number import PhoneAssignment, SipSettings
from openline.domain.tool import ToolSpec
from openline.domain.tool_changes import ToolChanges
from openline.domain.unset import UNSET, Unset


@dataclass(frozen=True)
class Key:
    """A project-scoped resource by ID (anywhere in the workspace) or by name (in
    ``project``, default ``main``)."""

    name_or_id: str
    project: str | None = None


# --- agents ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class CreateAgent:
    """Create an agent (or, through ``upsert``, make the one of that name match).

    ``phone=None`` leaves the agent without numbers on create, and an existing agent's
    numbers as they are on upsert.
    """

    spec: AgentSpec
    project: str | None = None
    phone: PhoneAssignment | None = None


@dataclass(frozen=True)
class UpdateAgent:
    """Change some of an agent's fields (a new version when the configuration changes)."""

    key: Key
    changes: AgentChanges = field(default_factory=AgentChanges)
    phone: PhoneAssignment | Unset = UNSET


@dataclass(frozen=True)
class AddCustomNumber:
    """Attach a customer's own number (again for the same agent: its settings are replaced)."""

    key: Key
    number: str
    sip: SipSettings | None = None
    configuration_endpoint: ConfigurationEndpoint | None = None


@dataclass(frozen=True)
class RemoveCustomNumber:
    key: Key
    number: str


@dataclass(frozen=True)
class UpdatePhoneNumber:
    """Change the settings of one of the agent's numbers."""

    key: Key
    number: str
    configuration_endpoint: ConfigurationEndpoint | Unset | None = UNSET


# --- tools and extraction schemas ------------------------------------------------------------

@dataclass(frozen=True)
class CreateTool:
    """Create a tool; the flag rules treat the fields given to ``spec`` as set on purpose."""

    spec: ToolSpec
    project: str | None = None


@dataclass(frozen=True)
class UpdateTool:
    key: Key
    changes: ToolChanges = field(default_factory=ToolChanges)


@dataclass(frozen=True)
class CreateExtractionSchema:
    spec: ExtractionSchemaSpec
    project: str | None = None


@dataclass(frozen=True)
class UpdateExtractionSchema:
    key: Key
    changes: ExtractionSchemaChanges = field(default_factory=ExtractionSchemaChanges)


# --- projects --------------------------------------------------------------------------------

@dataclass(frozen=True)
class CreateProject:
    name: str


@dataclass(frozen=True)
class UpdateProject:
    """``default_agent`` names an agent of the project (``None`` clears it)."""

    name_or_id: str
    name: str | Unset = UNSET
    default_agent: str | Unset | None = UNSET
    max_active_conversations: int | Unset | None = UNSET


@dataclass(frozen=True)
class CreateEvalPrompt:
    project: str
    spec: EvalPromptSpec


# --- conversations and post-call -------------------------------------------------------------

@dataclass(frozen=True)
class ListConversations:
    """Filters and a cursor (``before``/``after`` a conversation ID) over one project."""

    project: str | None = None
    external_id: str | None = None
    duration_min_s: int | None = None
    duration_max_s: int | None = None
    started_at_min: datetime | None = None
    started_at_max: datetime | None = None
    before: str | None = None
    after: str | None = None
    limit: int = 20


@dataclass(frozen=True)
class RunExtraction:
    """Run an extraction schema over an ended conversation (``None``: not given)."""

    conversation_id: str
    schema_id: str | None


@dataclass(frozen=True)
class RunEvaluation:
    """Ask an eval prompt about an ended conversation (``None``: not given)."""

    conversation_id: str
    prompt_id: str | None


# --- webhooks and speech ---------------------------------------------------------------------

@dataclass(frozen=True)
class CreateWebhookEndpoint:
    """``events=None`` subscribes to every event kind.

    Every endpoint receives the Phonic dialect for now (there is no dialect column yet);
    the Vapi dialect adds a ``dialect`` field here together with its column."""

    url: str
    events: tuple[str, ...] | None = None
    description: str | None = None


@dataclass(frozen=True)
class Synthesize:
    """Text to speech; an unknown ``voice_id`` falls back to the default voice."""

    text: str
    voice_id: str | None = None
    speed: float = 1.2
    output_format: str = "pcm_44100"
