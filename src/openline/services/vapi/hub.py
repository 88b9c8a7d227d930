"""The services of the Vapi dialect, built once over the process's services."""

from __future__ import annotations

from dataclasses import dataclass

from openline.services.hub import Services
from openline.services.vapi.analytics import AnalyticsService
from openline.services.vapi.assistants import AssistantService
from openline.services.vapi.calls import CallService
from openline.services.vapi.docs import VapiDocs
from openline.services.vapi.files import FileService
from openline.services.vapi.logs import LogService
from openline.services.vapi.phone_numbers import VapiNumberService
from openline.services.vapi.squads import SquadService
from openline.services.vapi.tools import VapiToolService


@dataclass
class VapiServices:
    docs: VapiDocs
    assistants: AssistantService
    calls: CallService
    tools: VapiToolService
    squads: SquadService
    phone_numbers: VapiNumberService
    files: FileService
    analytics: AnalyticsService
    logs: LogService

    @classmethod
    def build(cls, services: Services) -> VapiServices:
        db, docs = services.db, VapiDocs(services.db)
        assistants = AssistantService(db, services.agents, docs)
        tools = VapiToolService(db, docs, services.tools)
        # uploaded files sit beside the recordings, in the data directory
        files_dir = services.live.recordings_dir.parent / "vapi-files"
        return cls(
            docs=docs, assistants=assistants,
            calls=CallService(db, docs, services.links), tools=tools,
            squads=SquadService(docs, assistants, services.agents, services.tools, tools),
            phone_numbers=VapiNumberService(db, docs, services.agents, services.agents.pool),
            files=FileService(docs, files_dir, services.links.public_url),
            analytics=AnalyticsService(db), logs=LogService(db, docs),
        )
