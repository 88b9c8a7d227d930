"""Agents: list, create, edit every field, versions with a diff, enable/disable, numbers,
and "Talk" (a browser conversation over ``/v1/sts/ws`` with a conversation token)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from openline.api.dashboard import forms
from openline.api.dashboard.web import BASE, Checked, DashboardRoute, Page, SignedIn, form_of
from openline.api.phonic import schemas
from openline.api.phonic.views import agent_json
from openline.domain.agent import Agent, AgentSpec
from openline.domain.errors import ValidationFailed
from openline.services.commands import Key
from openline.services.masking import mask_headers

router = APIRouter(prefix=f"{BASE}/agents", route_class=DashboardRoute,
                   include_in_schema=False)
FIELDS = forms.fields_of(AgentSpec)
PHONE_MODES = ("", "none", "assign-automatically", "custom")
_DEFAULTS = forms.values_from(forms.defaults_of(AgentSpec), FIELDS)


def _phone_body(form: dict[str, str]) -> dict[str, Any]:
    """The phone-number part of the body, as the API takes it (nothing: keep)."""
    mode = form.get("phone_mode", "")
    if mode == "none":
        return {"phone_number": None}
    if mode == "assign-automatically":
        return {"phone_number": mode}
    if mode == "custom":
        numbers = [n.strip() for n in form.get("custom_phone_numbers", "").splitlines()
                   if n.strip()]
        return {"phone_number": "custom", "custom_phone_numbers": numbers}
    return {}


def _form_page(page: Page, agent: Agent | None, values: dict[str, Any],
               errors: dict[str, str] | None = None, status_code: int = 200,
               phone: dict[str, str] | None = None) -> Response:
    by_field, other = forms.field_errors(errors or {}, FIELDS)
    for key in ("phone_number", "custom_phone_numbers", "custom_phone_number"):
        if key in (errors or {}):
            by_field["phone"] = (errors or {})[key]
            other = [o for o in other if not o.startswith(key)]
    return page.render("agent_form.html", status_code, agent=agent, fields=FIELDS,
                       values=values, errors=by_field, other_errors=other,
                       phone=phone or {"phone_mode": "", "custom_phone_numbers": ""},
                       phone_modes=PHONE_MODES)


@router.get("")
async def agents(page: SignedIn) -> Response:
    listed = await page.svc.agents.list_all(page.who, page.project)
    projects = await page.svc.projects.list_all(page.who)
    return page.render("agents.html", agents=listed, projects=projects)


@router.get("/new")
async def new_agent(page: SignedIn) -> Response:
    return _form_page(page, None, dict(_DEFAULTS))


@router.post("/new")
async def create_agent(page: Checked) -> Response:
    form = await form_of(page.request)
    body, json_errors = forms.body_from(form, FIELDS)
    phone = _phone_body(form)
    try:
        if json_errors:
            raise ValidationFailed("Invalid JSON", {})
        agent = await page.svc.agents.create(page.who,
                                             schemas.agent_create({**body, **phone},
                                                                  page.project))
    except ValidationFailed as exc:
        errors = {**_errors_without(body, json_errors, phone, page), **json_errors} \
            if json_errors else exc.param_errors
        return _form_page(page, None, forms.posted_values(form, FIELDS),
                          errors or {"": exc.message}, 400, form)
    return page.redirect(f"/agents/{agent.name}", saved=1)


def _errors_without(body: dict[str, Any], json_errors: dict[str, str],
                    phone: dict[str, Any], page: Page) -> dict[str, str]:
    """The API's errors for the fields whose JSON was readable (all shown at once)."""
    rest = {k: v for k, v in body.items() if k not in json_errors}
    try:
        schemas.agent_create({**rest, **phone}, page.project)
    except ValidationFailed as exc:
        return exc.param_errors
    return {}


@router.get("/{name}")
async def agent_page(name: str, page: SignedIn, saved: int = 0) -> Response:
    agent = await page.svc.agents.get(page.who, page.project, name)
    values = forms.values_from({**agent_json(agent), "name": agent.name}, FIELDS)
    return _form_page(page, agent, values)


@router.post("/{name}")
async def update_agent(name: str, page: Checked) -> Response:
    agent = await page.svc.agents.get(page.who, page.project, name)
    form = await form_of(page.request)
    body, json_errors = forms.body_from(form, FIELDS)
    phone = _phone_body(form)
    try:
        if json_errors:
            raise ValidationFailed("Invalid JSON", json_errors)
        updated = await page.svc.agents.update(
            page.who, schemas.agent_update({**body, **phone}, Key(agent.id, page.project)))
    except ValidationFailed as exc:
        return _form_page(page, agent, forms.posted_values(form, FIELDS),
                          exc.param_errors or {"": exc.message}, 400, form)
    return page.redirect(f"/agents/{updated.name}", saved=1)


@router.post("/{name}/enable")
async def enable(name: str, page: Checked) -> Response:
    await page.svc.agents.set_disabled(page.who, page.project, name, False)
    return page.redirect(f"/agents/{name}")


@router.post("/{name}/disable")
async def disable(name: str, page: Checked) -> Response:
    await page.svc.agents.set_disabled(page.who, page.project, name, True)
    return page.redirect(f"/agents/{name}")


@router.post("/{name}/delete")
async def delete(name: str, page: Checked) -> Response:
    await page.svc.agents.delete(page.who, page.project, name)
    return page.redirect("/agents")


@router.post("/{name}/numbers")
async def add_number(name: str, page: Checked) -> Response:
    """Add (or, with ``remove``, remove) a custom phone number, as the API's routes do."""
    form = await form_of(page.request)
    key = Key(name, page.project)
    body = {"phone_number": form.get("phone_number", "").strip()}
    try:
        if form.get("remove"):
            await page.svc.agents.remove_custom_number(page.who,
                                                       schemas.number_removal(body, key))
        else:
            await page.svc.agents.add_custom_number(
                page.who, schemas.custom_number(body, key, None, None, None))
    except ValidationFailed as exc:
        agent = await page.svc.agents.get(page.who, page.project, name)
        values = forms.values_from({**agent_json(agent), "name": agent.name}, FIELDS)
        return _form_page(page, agent, values, {"number": exc.message}, 400)
    return page.redirect(f"/agents/{name}")


def _masked(spec: dict[str, Any]) -> dict[str, Any]:
    endpoint = spec.get("configuration_endpoint")
    if isinstance(endpoint, dict):
        spec = {**spec, "configuration_endpoint": {
            **endpoint, "headers": mask_headers(endpoint.get("headers")) or {}}}
    return spec


@router.get("/{name}/versions")
async def versions(name: str, page: SignedIn) -> Response:
    agent = await page.svc.agents.get(page.who, page.project, name)
    stored = await page.dashboard.agent_versions(page.who, page.project, agent.id)
    rows = []
    for i, version in enumerate(stored):
        older = stored[i + 1] if i + 1 < len(stored) else None
        diff = forms.json_diff(_masked(older.spec) if older else {}, _masked(version.spec),
                               f"v{older.version_number}" if older else "(none)",
                               f"v{version.version_number}")
        rows.append((version, diff))
    return page.render("agent_versions.html", agent=agent, rows=rows)


@router.get("/{name}/talk")
async def talk(name: str, page: SignedIn) -> Response:
    agent = await page.svc.agents.get(page.who, page.project, name)
    return page.render("talk.html", agent=agent)


@router.post("/{name}/talk/token")
async def talk_token(name: str, page: Checked) -> Response:
    """A short-lived conversation token for this agent: the browser never holds a key."""
    agent = await page.svc.agents.get(page.who, page.project, name)
    token = await page.svc.auth.create_conversation_token(page.who, agent.id, 60)
    return JSONResponse({"conversation_token": token.token, "agent": agent.name,
                         "project": agent.project.name, "socket": "/v1/sts/ws"})
