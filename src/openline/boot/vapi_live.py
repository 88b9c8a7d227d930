"""Builds the Vapi dialect's live calls from settings: ``POST /call``, server messages."""

from __future__ import annotations

from openline.boot.postcall import PostCallRuntime
from openline.domain.conversation import Conversation
from openline.services.hub import Services
from openline.services.vapi.analysis_plan import AnalysisPlans
from openline.services.vapi.assistants import AssistantService
from openline.services.vapi.calls import CallService
from openline.services.vapi.calls_create import VapiCalls, VapiLiveOptions
from openline.services.vapi.docs import VapiDocs
from openline.services.vapi.live_sip import VapiSipDialer
from openline.services.vapi.phone_numbers import VapiNumberService
from openline.services.vapi.server_messages import JOB, ServerMessages, ServerTarget
from openline.services.vapi.squads import SquadService
from openline.services.vapi.tools import VapiToolService
from openline.settings import Settings


def build_vapi_calls(settings: Settings, services: Services,
                     postcall: PostCallRuntime) -> VapiCalls:
    """The calls service, its retries on the post-call worker and its end-of-call hook."""
    live, links = services.live, services.links
    messages = ServerMessages(live.db, live.http, postcall.queue,
                              allow_private=settings.allow_private_urls,
                              max_attempts=settings.webhook_max_attempts)
    org = ServerTarget(settings.vapi_server_url, secret=settings.vapi_server_secret) \
        if settings.vapi_server_url else None

    def recording_url(conversation: Conversation) -> str | None:
        return links.url(conversation.id, "wav") if conversation.has_recording else None

    docs = VapiDocs(live.db)
    assistants = AssistantService(live.db, services.agents, docs)
    squads = SquadService(docs, assistants, services.agents, services.tools,
                          VapiToolService(live.db, docs, services.tools))
    calls = VapiCalls(
        live, messages, VapiLiveOptions(settings.effective_public_url(),
                                        settings.effective_secret_key(), org,
                                        settings.vapi_socket_wait_s,
                                        settings.vapi_hang_after_s),
        assistants=assistants, squads=squads,
        numbers=VapiNumberService(live.db, docs, services.agents, services.agents.pool),
        docs=docs, calls=CallService(live.db, docs, links), twilio=services.twilio,
        sip_dialer=VapiSipDialer(services.sip) if services.sip is not None else None,
        recording_url=recording_url)
    postcall.worker.handlers[JOB] = messages.run_job
    if services.twilio is not None:
        services.twilio.unassigned = calls.inbound
    postcall.webhooks.listeners.append(calls.on_domain_event)
    postcall.postcall.steps.append(AnalysisPlans(live.db, postcall.postcall.llm).run)
    return calls
