"""Tools, extraction schemas, webhooks (delivery log, resend), API keys, voices."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from openline.api.dashboard import forms
from openline.api.dashboard.web import BASE, Checked, DashboardRoute, Page, SignedIn, form_of
from openline.api.phonic import schemas
from openline.api.phonic.views import schema_json, tool_view
from openline.domain.errors import ValidationFailed
from openline.domain.extraction import ExtractionSchemaSpec
from openline.domain.tool import ToolSpec
from openline.services.commands import Key
from openline.services.webhooks import EVENTS

router = APIRouter(prefix=BASE, route_class=DashboardRoute, include_in_schema=False)
TOOL_FIELDS = forms.fields_of(ToolSpec)
SCHEMA_FIELDS = forms.fields_of(ExtractionSchemaSpec)


def _resource_form(page: Page, kind: str, fields: list[forms.Field], values: dict[str, Any],
                   existing: str | None, errors: dict[str, str] | None = None,
                   status_code: int = 200) -> Response:
    by_field, other = forms.field_errors(errors or {}, fields)
    return page.render("resource_form.html", status_code, kind=kind, fields=fields,
                       values=values, existing=existing, errors=by_field, other_errors=other)


# --- tools ---------------------------------------------------------------------------------

@router.get("/tools")
async def tools(page: SignedIn) -> Response:
    listed = await page.svc.tools.list_all(page.who, page.project)
    return page.render("tools.html", tools=listed)


@router.get("/tools/new")
async def new_tool(page: SignedIn) -> Response:
    return _resource_form(page, "tools", TOOL_FIELDS,
                          forms.values_from(forms.defaults_of(ToolSpec), TOOL_FIELDS), None)


@router.get("/tools/{name}")
async def tool(name: str, page: SignedIn) -> Response:
    found = await page.svc.tools.get(page.who, page.project, name)
    values = forms.values_from({**tool_view(found), "name": found.name}, TOOL_FIELDS)
    return _resource_form(page, "tools", TOOL_FIELDS, values, found.name)


@router.post("/tools/{name}")
async def save_tool(name: str, page: Checked) -> Response:
    """``name`` is ``-`` for a new tool."""
    form = await form_of(page.request)
    body, json_errors = forms.body_from(form, TOOL_FIELDS)
    existing = None if name == "-" else name
    try:
        if json_errors:
            raise ValidationFailed("Invalid JSON", json_errors)
        if existing is None:
            saved = await page.svc.tools.create(page.who,
                                                schemas.tool_create(body, page.project))
        else:
            saved = await page.svc.tools.update(
                page.who, schemas.tool_update(body, Key(existing, page.project)))
    except ValidationFailed as exc:
        return _resource_form(page, "tools", TOOL_FIELDS, forms.posted_values(form, TOOL_FIELDS),
                              existing, exc.param_errors or {"": exc.message}, 400)
    return page.redirect(f"/tools/{saved.name}")


@router.post("/tools/{name}/delete")
async def delete_tool(name: str, page: Checked) -> Response:
    await page.svc.tools.delete(page.who, page.project, name)
    return page.redirect("/tools")


# --- extraction schemas ----------------------------------------------------------------------

@router.get("/schemas")
async def extraction_schemas(page: SignedIn) -> Response:
    listed = await page.svc.schemas.list_all(page.who, page.project)
    return page.render("schemas.html", schemas=listed)


@router.get("/schemas/new")
async def new_schema(page: SignedIn) -> Response:
    return _resource_form(page, "schemas", SCHEMA_FIELDS,
                          forms.values_from(forms.defaults_of(ExtractionSchemaSpec),
                                            SCHEMA_FIELDS), None)


@router.get("/schemas/{name}")
async def extraction_schema(name: str, page: SignedIn) -> Response:
    found = await page.svc.schemas.get(page.who, page.project, name)
    values = forms.values_from(schema_json(found), SCHEMA_FIELDS)
    return _resource_form(page, "schemas", SCHEMA_FIELDS, values, found.name)


@router.post("/schemas/{name}")
async def save_schema(name: str, page: Checked) -> Response:
    form = await form_of(page.request)
    body, json_errors = forms.body_from(form, SCHEMA_FIELDS)
    existing = None if name == "-" else name
    try:
        if json_errors:
            raise ValidationFailed("Invalid JSON", json_errors)
        if existing is None:
            saved = await page.svc.schemas.create(page.who,
                                                  schemas.schema_create(body, page.project))
        else:
            saved = await page.svc.schemas.update(
                page.who, schemas.schema_update(body, Key(existing, page.project)))
    except ValidationFailed as exc:
        return _resource_form(page, "schemas", SCHEMA_FIELDS,
                              forms.posted_values(form, SCHEMA_FIELDS), existing,
                              exc.param_errors or {"": exc.message}, 400)
    return page.redirect(f"/schemas/{saved.name}")


# --- webhooks ------------------------------------------------------------------------------

@router.get("/webhooks")
async def webhooks(page: SignedIn) -> Response:
    endpoints = await page.svc.webhooks.list_all(page.who)
    return page.render("webhooks.html", endpoints=endpoints, events=EVENTS, errors={},
                       secret=None, form={})


@router.post("/webhooks")
async def create_webhook(page: Checked) -> Response:
    form = await form_of(page.request)
    events = [e for e in EVENTS if f"event_{e}" in form]
    body: dict[str, Any] = {"url": form.get("url", ""),
                            "description": form.get("description") or None}
    if events:
        body["events"] = events
    try:
        endpoint, secret = await page.svc.webhooks.create(
            page.who, schemas.webhook_endpoint_create(body))
    except ValidationFailed as exc:
        endpoints = await page.svc.webhooks.list_all(page.who)
        return page.render("webhooks.html", 400, endpoints=endpoints, events=EVENTS,
                           errors=exc.param_errors or {"url": exc.message}, secret=None,
                           form=form)
    endpoints = await page.svc.webhooks.list_all(page.who)
    return page.render("webhooks.html", endpoints=endpoints, events=EVENTS, errors={},
                       secret=(endpoint, secret), form={})


@router.get("/webhooks/{endpoint_id}")
async def webhook(endpoint_id: str, page: SignedIn) -> Response:
    endpoint = await page.svc.webhooks.get(page.who, endpoint_id)
    deliveries = await page.svc.webhooks.deliveries(page.who, endpoint_id)
    delivered = {d.message_id for d in deliveries if d.success}
    return page.render("webhook.html", endpoint=endpoint, deliveries=deliveries,
                       delivered=delivered)


@router.post("/webhooks/{endpoint_id}/resend")
async def resend(endpoint_id: str, page: Checked) -> Response:
    form = await form_of(page.request)
    await page.dashboard.resend(page.who, endpoint_id, form.get("message_id", ""))
    return page.redirect(f"/webhooks/{endpoint_id}", resent=1)


@router.post("/webhooks/{endpoint_id}/delete")
async def delete_webhook(endpoint_id: str, page: Checked) -> Response:
    await page.svc.webhooks.delete(page.who, endpoint_id)
    return page.redirect("/webhooks")


# --- API keys ------------------------------------------------------------------------------

@router.get("/keys")
async def keys(page: SignedIn) -> Response:
    return page.render("keys.html", keys=await page.svc.auth.list_keys(page.who.workspace_id),
                       created=None, errors={})


@router.post("/keys")
async def create_key(page: Checked) -> Response:
    form = await form_of(page.request)
    try:
        created = await page.svc.auth.create_key(page.who.workspace_id,
                                                 schemas.key_name({"name": form.get("name")}))
    except ValidationFailed as exc:
        return page.render("keys.html", 400,
                           keys=await page.svc.auth.list_keys(page.who.workspace_id),
                           created=None, errors=exc.param_errors or {"name": exc.message})
    # The secret is in this one response only; it is never stored in the clear.
    return page.render("keys.html", keys=await page.svc.auth.list_keys(page.who.workspace_id),
                       created=created, errors={})


@router.post("/keys/{key_id}/revoke")
async def revoke_key(key_id: str, page: Checked) -> Response:
    await page.svc.auth.revoke_key(page.who.workspace_id, key_id)
    return page.redirect("/keys")


# --- voices --------------------------------------------------------------------------------

@router.get("/voices")
async def voices(page: SignedIn) -> Response:
    listed = [(v, page.svc.links.voice_url(v.id)) for v in page.svc.voices.list()]
    return page.render("voices.html", voices=listed)
