"""Standard Webhooks signatures (the scheme Svix uses, and so Phonic's event webhooks).

A secret is ``whsec_<base64 key>``. A message is signed as
``v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`` and sent with the
``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` headers; the same values
go out as ``svix-*`` too, so receivers written for Phonic's Svix headers verify unchanged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """A fresh signing secret (24 random bytes, as ``whsec_<base64>``)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def _key(secret: str) -> bytes:
    raw = secret[len(SECRET_PREFIX):] if secret.startswith(SECRET_PREFIX) else secret
    return base64.b64decode(raw)


def sign(secret: str, message_id: str, timestamp: int, body: str) -> str:
    """The ``webhook-signature`` value for one message."""
    content = f"{message_id}.{timestamp}.{body}".encode()
    digest = hmac.new(_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secret: str, message_id: str, timestamp: int, body: str) -> dict[str, str]:
    """Every header of a signed delivery (Standard Webhooks and Svix spellings)."""
    signature = sign(secret, message_id, timestamp, body)
    out = {"content-type": "application/json"}
    for prefix in ("webhook", "svix"):
        out[f"{prefix}-id"] = message_id
        out[f"{prefix}-timestamp"] = str(timestamp)
        out[f"{prefix}-signature"] = signature
    return out


def verify(secret: str, message_id: str, timestamp: int, body: str, signature_header: str) -> bool:
    """Whether any ``v1,`` signature in the (space-separated) header matches."""
    expected = sign(secret, message_id, timestamp, body)
    return any(hmac.compare_digest(expected, candidate)
               for candidate in signature_header.split())
