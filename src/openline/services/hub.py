"""The set of services one Openline process runs; built once by the composition root."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from openline.services.agents import AgentService
from openline.services.auth import AuthService
from openline.services.conversations import ConversationService
from openline.services.live import LiveService
from openline.services.metrics import Operations
from openline.services.phone_numbers import DEFAULT_POOL
from openline.services.postcall import PostCallService
from openline.services.projects import ProjectService
from openline.services.recordings import RecordingLinks
from openline.services.speech import SpeechService
from openline.services.telephony.service import TwilioService
from openline.services.tools import ExtractionSchemaService, ToolService
from openline.services.voices import VoiceService, VoiceSource
from openline.services.webhooks import WebhookService
from openline.store.db import Database


@dataclass
class Services:
    db: Database
    auth: AuthService
    projects: ProjectService
    agents: AgentService
    tools: ToolService
    schemas: ExtractionSchemaService
    conversations: ConversationService
    voices: VoiceService
    live: LiveService
    links: RecordingLinks
    webhooks: WebhookService
    postcall: PostCallService
    speech: SpeechService
    #: phone calls through Twilio (None unless Twilio is configured)
    twilio: TwilioService | None = None
    #: operations: readiness checks and metrics (``api/ops.py``); set by the composition root
    ops: Operations | None = None

    @classmethod
    def build(
        cls, db: Database, voices: VoiceSource, live: LiveService, links: RecordingLinks, *,
        webhooks: WebhookService, postcall: PostCallService, speech: SpeechService,
        static_keys: tuple[str, ...] = (), phone_pool: Sequence[str] = DEFAULT_POOL,
        allow_private_urls: bool = False, default_max_active: int = 100,
    ) -> Services:
        """Wire the services of one process around its database."""
        return cls(
            db=db,
            auth=AuthService(db, static_keys, default_max_active=default_max_active),
            projects=ProjectService(db),
            agents=AgentService(db, phone_pool),
            tools=ToolService(db, allow_private_urls=allow_private_urls),
            schemas=ExtractionSchemaService(db),
            conversations=ConversationService(db),
            voices=VoiceService(voices),
            live=live,
            links=links,
            webhooks=webhooks,
            postcall=postcall,
            speech=speech,
        )
