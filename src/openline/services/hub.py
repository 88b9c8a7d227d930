"""The set of services one Openline process runs; built once by the composition root."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from openline.services.agents import AgentService
from openline.services.auth import AuthService
from openline.services.conversations import ConversationService
from openline.services.dashboard import DashboardService
from openline.services.external_storage import ExternalStorageService
from openline.services.live import LiveService
from openline.services.phone_numbers import DEFAULT_POOL
from openline.services.postcall import PostCallService
from openline.services.projects import ProjectService
from openline.services.recordings import RecordingLinks
from openline.services.replay import ReplayService
from openline.services.socket_jwt import SocketJwtService
from openline.services.speech import SpeechService
from openline.services.telephony.service import TwilioService
from openline.services.tools import ExtractionSchemaService, ToolService
from openline.services.vapi.calls_create import VapiCalls
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
    #: Vapi dialect calls: ``POST /call``, their sockets, control URLs, server messages
    vapi_calls: VapiCalls | None = None
    #: the web dashboard's sessions and read models (built by ``build``)
    dashboard: DashboardService | None = None
    # the complete Phonic dialect (issue 14): set by the composition root
    replay: ReplayService | None = None
    storage: ExternalStorageService | None = None
    socket_jwt: SocketJwtService | None = None

    @classmethod
    def build(
        cls, db: Database, voices: VoiceSource, live: LiveService, links: RecordingLinks, *,
        webhooks: WebhookService, postcall: PostCallService, speech: SpeechService,
        static_keys: tuple[str, ...] = (), phone_pool: Sequence[str] = DEFAULT_POOL,
        allow_private_urls: bool = False,
    ) -> Services:
        """Wire the services of one process around its database."""
        auth = AuthService(db, static_keys)
        return cls(
            db=db,
            auth=auth,
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
            dashboard=DashboardService(db, auth, webhooks),
        )
