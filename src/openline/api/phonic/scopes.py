"""What each credential may do: one scope per route of the Phonic dialect, checked in one place.

- **API key**: everything.
- **Conversation token** (one agent, 30-60 s): opens ``/v1/sts/ws`` for its agent (the call
  set-up refuses any other agent) and nothing else; every REST route answers 403.
- **Session token** (browser authentication, 60-3600 s): opens ``/v1/sts/ws``. One restricted
  by ``conversation_ids`` may only read those conversations (``GET /v1/conversations/{id}``)
  and cannot open the socket. Every other route answers 403.
- **Signed links** (recordings, voice previews): the link's signature is the credential.

``ROUTE_SCOPES`` names the scope of every (method, path template) the app serves;
:func:`authorize` (run by ``deps.get_principal``, so by every route that takes ``Who``)
enforces it, and a route missing from the table is refused to everyone, API keys included.
``tests/api/test_scopes.py`` tries every credential against every route of the built app.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterator, Mapping
from typing import Any
from weakref import WeakKeyDictionary

from fastapi import FastAPI, Request
from fastapi import routing as fastapi_routing

from openline.api.vapi import paths as vapi_paths
from openline.domain.errors import Forbidden, NotFound
from openline.services.hub import Services
from openline.services.principal import Principal

log = logging.getLogger(__name__)
WEBSOCKET = "WEBSOCKET"


class Scope(enum.Enum):
    """Who may call a route."""

    #: anyone, no credential (health, the API's own documentation)
    PUBLIC = "public"
    #: anyone holding a valid signed link (the signature is checked by the route)
    SIGNED_LINK = "signed_link"
    #: API keys only
    API_KEY = "api_key"
    #: API keys, and session tokens that name the conversation in ``conversation_ids``
    CONVERSATION_READ = "conversation_read"
    #: the STS socket: API keys, session tokens without ``conversation_ids``, and
    #: conversation tokens (for their agent); see :func:`socket_refusal`
    STS_SOCKET = "sts_socket"
    #: the web dashboard (``api/dashboard``): its own session cookie and CSRF token are
    #: the credential, checked by its pages; without a session they redirect to sign-in
    DASHBOARD = "dashboard"


_P, _S, _K = Scope.PUBLIC, Scope.SIGNED_LINK, Scope.API_KEY
_READ, _WS, _D = Scope.CONVERSATION_READ, Scope.STS_SOCKET, Scope.DASHBOARD
_AGENT, _TOOL, _SCHEMA = "/v1/agents/{name_or_id}", "/v1/tools/{name_or_id}", \
    "/v1/extraction_schemas/{name_or_id}"
_PROJECT, _CONV = "/v1/projects/{name_or_id}", "/v1/conversations/{conversation_id}"
_HOOK, _KEY = "/v1/webhook_endpoints/{endpoint_id}", "/v1/api_keys/{key_id}"

#: (method, path template) -> scope, for every route of ``api.app.build_api``.
ROUTE_SCOPES: dict[tuple[str, str], Scope] = {
    ("GET", "/health"): _P,
    ("GET", "/openapi.json"): _P,
    ("GET", "/docs"): _P,
    ("GET", "/docs/oauth2-redirect"): _P,
    ("GET", "/redoc"): _P,
    # projects and eval prompts
    ("GET", "/v1/projects"): _K,
    ("POST", "/v1/projects"): _K,
    ("GET", _PROJECT): _K,
    ("PATCH", _PROJECT): _K,
    ("DELETE", _PROJECT): _K,
    ("GET", f"{_PROJECT}/conversation_eval_prompts"): _K,
    ("POST", f"{_PROJECT}/conversation_eval_prompts"): _K,
    ("GET", f"{_PROJECT}/conversation_evals"): _K,
    # agents and their phone numbers
    ("GET", "/v1/agents"): _K,
    ("POST", "/v1/agents"): _K,
    ("PUT", "/v1/agents/upsert"): _K,
    ("GET", _AGENT): _K,
    ("PATCH", _AGENT): _K,
    ("DELETE", _AGENT): _K,
    ("POST", f"{_AGENT}/disable"): _K,
    ("POST", f"{_AGENT}/enable"): _K,
    ("POST", f"{_AGENT}/custom-phone-numbers"): _K,
    ("DELETE", f"{_AGENT}/custom-phone-numbers"): _K,
    ("PATCH", f"{_AGENT}/phone-numbers"): _K,
    # tools and extraction schemas
    ("GET", "/v1/tools"): _K,
    ("POST", "/v1/tools"): _K,
    ("GET", _TOOL): _K,
    ("PATCH", _TOOL): _K,
    ("DELETE", _TOOL): _K,
    ("GET", "/v1/extraction_schemas"): _K,
    ("POST", "/v1/extraction_schemas"): _K,
    ("GET", _SCHEMA): _K,
    ("PATCH", _SCHEMA): _K,
    ("DELETE", _SCHEMA): _K,
    # conversations and their post-call results
    ("GET", "/v1/conversations"): _K,
    ("GET", _CONV): _READ,
    ("DELETE", _CONV): _K,
    ("GET", f"{_CONV}/analysis"): _K,
    ("POST", f"{_CONV}/cancel"): _K,
    ("GET", f"{_CONV}/extractions"): _K,
    ("POST", f"{_CONV}/extractions"): _K,
    ("GET", f"{_CONV}/evals"): _K,
    ("POST", f"{_CONV}/evals"): _K,
    ("GET", "/v1/recordings/{conversation_id}"): _S,
    # credentials and the workspace
    ("POST", "/v1/auth/session_token"): _K,
    ("POST", "/v1/auth/conversation_token"): _K,
    ("POST", "/v1/api_keys"): _K,
    ("PATCH", _KEY): _K,
    ("DELETE", _KEY): _K,
    ("POST", f"{_KEY}/rotate"): _K,
    ("GET", "/v1/workspace"): _K,
    ("PATCH", "/v1/workspace"): _K,
    # voices and speech
    ("GET", "/v1/voices"): _K,
    ("GET", "/v1/voices/{voice_id}"): _K,
    ("GET", "/v1/voices/{voice_id}/preview"): _S,
    ("POST", "/v1/tts"): _K,
    ("POST", "/v1/tts/stream"): _K,
    # event webhooks
    ("POST", "/v1/webhook_endpoints"): _K,
    ("GET", "/v1/webhook_endpoints"): _K,
    ("GET", _HOOK): _K,
    ("DELETE", _HOOK): _K,
    ("GET", f"{_HOOK}/deliveries"): _K,
    # Vapi live calls: POST /call takes an API key; the socket and control URLs carry
    # the call's token (an HMAC the route checks), the credential Vapi hands out
    ("POST", "/call"): _K,
    ("POST", "/call/{call_id}/control/{token}"): _S,
    (WEBSOCKET, "/call/{call_id}/transport/{token}"): _S,
    # the real-time socket (authenticated by ws.py, which applies socket_refusal)
    (WEBSOCKET, "/v1/sts/ws"): _WS,
    ("POST", "/v1/conversations/outbound_call"): _K,
    # replay, external storage policies, socket JWT keys (issue 14)
    ("POST", f"{_CONV}/replay"): _K,
    ("POST", "/v1/conversation_items/{item_id}/replay"): _K,
    ("GET", "/v1/external_storage_policies"): _K,
    ("POST", "/v1/external_storage_policies"): _K,
    ("GET", "/v1/external_storage_policies/{name_or_id}"): _K,
    ("PATCH", "/v1/external_storage_policies/{name_or_id}"): _K,
    ("DELETE", "/v1/external_storage_policies/{name_or_id}"): _K,
    ("GET", "/v1/socket_jwt_keys"): _K,
    ("POST", "/v1/socket_jwt_keys"): _K,
    ("DELETE", "/v1/socket_jwt_keys/{key_id}"): _K,
    # Twilio's webhooks and media stream: X-Twilio-Signature is the credential
    ("POST", "/twilio/voice"): _S,
    ("POST", "/twilio/calls/{conversation_id}/status"): _S,
    ("POST", "/twilio/calls/{conversation_id}/amd"): _S,
    ("POST", "/twilio/calls/{conversation_id}/dial"): _S,
    ("POST", "/twilio/calls/{conversation_id}/transfer"): _S,
    (WEBSOCKET, "/twilio/stream"): _S,
    **{route: _K for route in vapi_paths.API_KEY_ROUTES},  # the Vapi dialect (api/vapi)
    # the web dashboard (api/dashboard): its session cookie, checked by its pages
    ("GET", "/"): _D,
    **{(method, f"/dashboard{path}"): _D for method, path in (
        ("GET", ""), ("GET", "/login"), ("POST", "/login"), ("GET", "/login/link"),
        ("POST", "/logout"), ("GET", "/static/{name}"),
        ("GET", "/agents"), ("GET", "/agents/new"), ("POST", "/agents/new"),
        ("GET", "/agents/{name}"), ("POST", "/agents/{name}"),
        ("POST", "/agents/{name}/enable"), ("POST", "/agents/{name}/disable"),
        ("POST", "/agents/{name}/delete"), ("POST", "/agents/{name}/numbers"),
        ("GET", "/agents/{name}/versions"), ("GET", "/agents/{name}/talk"),
        ("POST", "/agents/{name}/talk/token"),
        ("GET", "/conversations"), ("GET", "/conversations/{conversation_id}"),
        ("POST", "/conversations/{conversation_id}/cancel"), ("GET", "/live"),
        ("GET", "/tools"), ("GET", "/tools/new"), ("GET", "/tools/{name}"),
        ("POST", "/tools/{name}"), ("POST", "/tools/{name}/delete"),
        ("GET", "/schemas"), ("GET", "/schemas/new"), ("GET", "/schemas/{name}"),
        ("POST", "/schemas/{name}"),
        ("GET", "/webhooks"), ("POST", "/webhooks"), ("GET", "/webhooks/{endpoint_id}"),
        ("POST", "/webhooks/{endpoint_id}/resend"), ("POST", "/webhooks/{endpoint_id}/delete"),
        ("GET", "/keys"), ("POST", "/keys"), ("POST", "/keys/{key_id}/revoke"),
        ("GET", "/voices"))},
}

_REFUSED = {
    "conversation_token": "A conversation token can only open a conversation with its agent "
                          "(/v1/sts/ws); use an API key for the REST API",
    "session_token": "A session token can only open the STS WebSocket (/v1/sts/ws); "
                     "use an API key for the REST API",
}
_NOT_NAMED = "This session token may only read the conversations it was created for"
#: Phonic's own wording where it documents one (section 4.8 of the spec).
_ROUTE_MESSAGES = {
    ("POST", "/v1/auth/session_token"): "Only API keys can be used to create session tokens",
    ("POST", "/v1/auth/conversation_token"):
        "Only API keys can be used to create conversation tokens",
    **{route: "Only API keys can manage API keys" for route in (
        ("POST", "/v1/api_keys"), ("PATCH", _KEY), ("DELETE", _KEY), ("POST", f"{_KEY}/rotate"))},
}


def allows(scope: Scope, who: Principal, path_params: Mapping[str, Any]) -> bool:
    """Whether ``who`` may call a REST route of ``scope`` with these path parameters."""
    if scope in (Scope.PUBLIC, Scope.SIGNED_LINK, Scope.DASHBOARD):
        return True
    if who.is_api_key:
        return scope is not Scope.STS_SOCKET
    if scope is Scope.CONVERSATION_READ:
        return who.kind == "session_token" and bool(who.conversation_ids) and \
            path_params.get("conversation_id") in who.conversation_ids
    return False


def _refusal(route: tuple[str, str], who: Principal) -> str:
    if route in _ROUTE_MESSAGES:
        return _ROUTE_MESSAGES[route]
    if who.kind == "session_token" and who.conversation_ids:
        return _NOT_NAMED
    return _REFUSED.get(who.kind, "This credential may not use this route")


# The route object a request matched -> its full path template, per app. FastAPI may keep
# an included router's prefix outside the route (``scope["route"].path`` is then relative).
_TEMPLATES: WeakKeyDictionary[FastAPI, dict[int, str]] = WeakKeyDictionary()


def route_templates(app: FastAPI) -> Iterator[tuple[str, str, Any]]:
    """Every (method, full path template, route object) that ``app`` serves (``HEAD`` is
    left out: Starlette answers it with the ``GET`` route)."""
    contexts = getattr(fastapi_routing, "iter_route_contexts", None)
    entries = ([(c.original_route, c.path, c.methods) for c in contexts(app.routes)]
               if contexts is not None
               else [(r, getattr(r, "path", None), getattr(r, "methods", None))
                     for r in app.routes])
    for route, path, methods in entries:
        if path is None:
            continue
        for method in sorted(methods or {WEBSOCKET}):
            if method != "HEAD":
                yield method, path, route


def _template(request: Request) -> str | None:
    route = request.scope.get("route")
    app = request.app
    templates = _TEMPLATES.get(app)
    if templates is None or id(route) not in templates:
        templates = {id(r): path for _, path, r in route_templates(app)}
        _TEMPLATES[app] = templates
    return templates.get(id(route))


def authorize(request: Request, who: Principal) -> None:
    """Raise ``Forbidden`` (403, code ``forbidden``) unless ``who`` may call this route."""
    method = "GET" if request.method == "HEAD" else request.method
    path = _template(request)
    route = (method, path or request.url.path)
    scope = ROUTE_SCOPES.get(route)
    if scope is None:  # fail closed: a route nobody gave a scope serves nobody
        log.error("route %s %s has no scope in api/phonic/scopes.py", *route)
        raise Forbidden("This route has no access scope")
    if not allows(scope, who, request.path_params):
        raise Forbidden(_refusal(route, who))


def socket_refusal(who: Principal, in_query: bool) -> str | None:
    """Why ``who`` may not open the STS socket (``None``: it may). The credential came in
    the query string when ``in_query`` (proxies log query strings: never an API key)."""
    if in_query and who.is_api_key:
        return ("API keys are not accepted in the query string; send them in the "
                "Authorization header, or use a session or conversation token.")
    if who.kind == "session_token" and who.conversation_ids:
        return "This session token cannot open conversations."
    return None


async def may_resume(services: Services, who: Principal, conversation_id: str) -> bool:
    """Whether ``who`` may take over a dropped conversation (``reconnect_conv_id``): a
    conversation token only one of its own agent."""
    if who.kind != "conversation_token":
        return True
    try:
        conversation = await services.conversations.get(who, conversation_id)
    except NotFound:
        return False
    return conversation.agent is not None and conversation.agent.id == who.agent_id
