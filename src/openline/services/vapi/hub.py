"""The services of the Vapi dialect, built once over the process's services."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from openline.services.hub import Services
from openline.services.vapi.assistants import AssistantService
from openline.services.vapi.calls import CallService
from openline.services.vapi.docs import VapiDocs


@dataclass
class VapiServices:
    docs: VapiDocs
    assistants: AssistantService
    calls: CallService
    #: where uploaded files are kept (``<data dir>/vapi-files``)
    files_dir: Path
    public_url: str

    @classmethod
    def build(cls, services: Services) -> VapiServices:
        docs = VapiDocs(services.db)
        files_dir = services.live.recordings_dir.parent / "vapi-files"
        return cls(
            docs=docs,
            assistants=AssistantService(services.db, services.agents, docs),
            calls=CallService(services.db, docs, services.links),
            files_dir=files_dir,
            public_url=services.links.public_url,
        )
