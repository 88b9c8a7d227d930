"""Vapi phone numbers (``twilio``, ``vapi`` from the built-in pool, ``byo-phone-number`` over
a SIP trunk, ``vonage``, ``telnyx``), stored as sent.

A number with an ``assistantId`` is also an Openline custom number of that agent, so inbound
calls to it (Twilio or SIP) reach the assistant, and Phonic clients see it on the agent.
A ``vapi`` number is drawn from Openline's pool when none is given. ``sipUri`` and
``authentication`` become the custom number's SIP settings. Without an assistant the number
is only stored (the live half sends ``assistant-request`` for it).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select

from openline.domain.errors import NotFound, ValidationFailed
from openline.domain.phone_number import SipSettings
from openline.domain.validation import E164, first_error_message
from openline.services.agents import AgentService
from openline.services.commands import AddCustomNumber, Key, RemoveCustomNumber
from openline.services.principal import Principal
from openline.services.vapi.call_view import iso
from openline.services.vapi.docs import Doc, ListQuery, VapiDocs
from openline.store import tables as t
from openline.store.db import Database
from openline.store.tables_vapi import VapiResource

KIND = "phone-number"
PROVIDERS = ("vapi", "twilio", "vonage", "byo-phone-number", "telnyx")
_REQUIRED = {"twilio": ("number", "twilioAccountSid"), "vonage": ("number", "credentialId"),
             "telnyx": ("number", "credentialId"), "byo-phone-number": ("credentialId",),
             "vapi": ()}
#: Keys never echoed back (secrets): Vapi answers without them too.
_SECRET_KEYS = ("twilioAuthToken", "twilioApiSecret")
_LOOSE_NUMBER = r"^\+?[a-zA-Z0-9]+$"


def check_number(body: Mapping[str, Any]) -> None:
    provider = body.get("provider")
    errors: dict[str, str] = {}
    if provider not in PROVIDERS:
        errors["provider"] = "provider must be one of " + ", ".join(PROVIDERS)
    else:
        for key in _REQUIRED[provider]:
            if not isinstance(body.get(key), str) or not body[key]:
                errors[key] = f"{key} is required for {provider} numbers"
    number = body.get("number")
    if isinstance(number, str) and number:
        strict = body.get("numberE164CheckEnabled", True) is not False
        if strict and not E164.fullmatch(number):
            errors["number"] = f"{number!r} is not an E.164 phone number (e.g. +15551234567)"
        elif not strict and not re.fullmatch(_LOOSE_NUMBER, number):
            errors["number"] = "number may contain only letters and digits, after an optional +"
    elif number is not None and not isinstance(number, str):
        errors["number"] = "number must be a string"
    if provider == "twilio" and not (body.get("twilioAuthToken") or (
            body.get("twilioApiKey") and body.get("twilioApiSecret"))):
        errors["twilioAuthToken"] = "twilioAuthToken, or twilioApiKey and twilioApiSecret"
    auth = body.get("authentication")
    if auth is not None and not (isinstance(auth, dict) and isinstance(auth.get("username"), str)
                                 and isinstance(auth.get("password"), str)):
        errors["authentication"] = "authentication needs username and password"
    for key in ("assistantId", "squadId", "sipUri", "name"):
        if body.get(key) is not None and not isinstance(body[key], str):
            errors[key] = f"{key} must be a string"
    if errors:
        raise ValidationFailed(first_error_message(errors), errors)


def number_json(d: Doc, org_id: str) -> dict[str, Any]:
    out = {k: v for k, v in d.doc.items() if k not in _SECRET_KEYS}
    out.update(id=d.id, orgId=org_id, createdAt=iso(d.created_at), updatedAt=iso(d.updated_at))
    out.setdefault("status", "active")
    return out


def _sip(doc: Mapping[str, Any]) -> SipSettings | None:
    auth = doc.get("authentication") if isinstance(doc.get("authentication"), dict) else None
    uri = doc.get("sipUri")
    if not (isinstance(uri, str) and uri) or doc.get("provider") == "vapi":
        return None  # a vapi number's sipUri is where callers reach Openline, not a trunk
    return SipSettings(address=uri, username=(auth or {}).get("username"),
                       password=(auth or {}).get("password"))


class VapiNumberService:
    def __init__(self, db: Database, docs: VapiDocs, agents: AgentService,
                 pool: Sequence[str]) -> None:
        self.db, self.docs, self.agents, self.pool = db, docs, agents, tuple(pool)

    async def _free_pool_number(self, who: Principal) -> str:
        async with self.db.session() as s:
            used = set(await s.scalars(select(t.PhoneNumber.number).where(
                t.PhoneNumber.workspace_id == who.workspace_id)))
            for doc in await s.scalars(select(VapiResource.doc).where(
                    VapiResource.workspace_id == who.workspace_id, VapiResource.kind == KIND)):
                used.add(str((doc or {}).get("number")))
        for number in self.pool:
            if number not in used:
                return number
        raise ValidationFailed("The phone number pool is exhausted",
                               {"provider": "no vapi number left in the pool"})

    async def _attach(self, who: Principal, doc: Mapping[str, Any]) -> None:
        assistant, number = doc.get("assistantId"), doc.get("number")
        if not (isinstance(assistant, str) and isinstance(number, str) and number):
            return
        try:
            await self.agents.add_custom_number(
                who, AddCustomNumber(Key(assistant), number, _sip(doc)))
        except NotFound as exc:
            raise ValidationFailed(f"Assistant not found: {assistant}",
                                   {"assistantId": "no such assistant"}) from exc

    async def _detach(self, who: Principal, doc: Mapping[str, Any]) -> None:
        assistant, number = doc.get("assistantId"), doc.get("number")
        if isinstance(assistant, str) and isinstance(number, str) and number:
            with contextlib.suppress(NotFound, ValidationFailed):
                await self.agents.remove_custom_number(who, RemoveCustomNumber(Key(assistant),
                                                                               number))

    async def create(self, who: Principal, body: dict[str, Any]) -> Doc:
        check_number(body)
        doc = dict(body)
        if doc["provider"] == "vapi" and not doc.get("number"):
            doc["number"] = await self._free_pool_number(who)
        await self._attach(who, doc)
        return await self.docs.create(who, KIND, doc, link_id=doc.get("assistantId"))

    async def get(self, who: Principal, number_id: str) -> Doc:
        return await self.docs.get(who, KIND, number_id)

    async def list_all(self, who: Principal, q: ListQuery) -> list[Doc]:
        return await self.docs.list_all(who, KIND, q)

    async def update(self, who: Principal, number_id: str, body: dict[str, Any]) -> Doc:
        current = await self.docs.get(who, KIND, number_id)
        if "provider" in body and body["provider"] != current.doc.get("provider"):
            raise ValidationFailed("A phone number's provider cannot be changed",
                                   {"provider": f"must be {current.doc.get('provider')}"})
        merged = {**current.doc, **body}
        check_number(merged)
        moved = any(merged.get(k) != current.doc.get(k)
                    for k in ("assistantId", "number", "sipUri", "authentication"))
        if moved:
            await self._detach(who, current.doc)
            try:
                await self._attach(who, merged)
            except ValidationFailed:
                await self._attach(who, current.doc)  # put the old assignment back
                raise
        async with self.db.session() as s:
            row = await self.docs.row(s, who, KIND, number_id)
            if row is None:
                raise NotFound("Phone number not found")
            row.doc, row.link_id, row.updated_at = merged, merged.get("assistantId"), t.utcnow()
        return await self.docs.get(who, KIND, number_id)

    async def delete(self, who: Principal, number_id: str) -> Doc:
        current = await self.docs.get(who, KIND, number_id)
        await self._detach(who, current.doc)
        return await self.docs.delete(who, KIND, number_id)
