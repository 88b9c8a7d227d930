"""``/v1/sts/ws?jwt=``: sockets opened with a JWT the customer's own backend signed.

A workspace registers a verification key (``POST /v1/socket_jwt_keys``): an HMAC secret
(HS256/384/512) or a PEM public key (RS256, ES256, EdDSA...), with the issuer its tokens
carry and the audience they are for. A token is accepted when PyJWT verifies, against
the key named by the token's ``kid`` header (or every key of the token's issuer):

* the signature, with the key's algorithm only (no ``none``, no algorithm switching);
* ``iss`` = the key's issuer, ``aud`` = the key's audience, ``exp`` in the future (30 s
  leeway), ``iat`` not in the future, and a lifetime ``exp - iat`` of at most an hour;
* ``sub``: the agent (name or ID) the socket may talk to; the socket is scoped to it as
  with a conversation token;
* ``conversation_id`` (optional): the token can then only resume that conversation
  (``reconnect_conv_id``);
* ``jti``: once only. A used ``jti`` is kept until the token expires, so the same token
  cannot open a second socket.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from openline.domain.errors import NotFound, Unauthorized, ValidationFailed
from openline.services.principal import Principal
from openline.store import tables as t
from openline.store import tables_phonic as tph
from openline.store.db import Database

KEY_PREFIX = "jwt_key"
HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")
ALGORITHMS = (*HMAC_ALGORITHMS, "RS256", "RS384", "RS512", "PS256", "ES256", "ES384",
              "EdDSA")
REQUIRED_CLAIMS = ("iss", "aud", "sub", "exp", "iat", "jti")
MAX_LIFETIME_S = 3600
LEEWAY_S = 30
MIN_HMAC_SECRET = 32
INVALID = "Websocket initialized with invalid credentials."


@dataclass(frozen=True)
class JwtKey:
    """A registered verification key as answered (the key material is not)."""

    id: str
    issuer: str
    audience: str
    algorithm: str
    created_at: datetime


def _check_key(algorithm: str, key: str) -> None:
    if algorithm not in ALGORITHMS:
        raise ValidationFailed("Invalid parameters: algorithm",
                               {"algorithm": f"must be one of {', '.join(ALGORITHMS)}"})
    if algorithm in HMAC_ALGORITHMS:
        if len(key) < MIN_HMAC_SECRET:
            raise ValidationFailed("Invalid parameters: key", {
                "key": f"an HMAC secret needs at least {MIN_HMAC_SECRET} characters"})
        return
    if "PRIVATE KEY" in key:
        raise ValidationFailed("Invalid parameters: key", {
            "key": "register the public key; the private key stays with its owner"})
    try:
        jwt.get_algorithm_by_name(algorithm).prepare_key(key)
    except Exception as exc:
        raise ValidationFailed("Invalid parameters: key", {
            "key": f"not a PEM public key for {algorithm}: {exc}"}) from exc


class SocketJwtService:
    """Key registration and token verification for ``?jwt=``."""

    def __init__(self, db: Database, *, default_audience: str = "openline",
                 clock: Callable[[], float] = time.time) -> None:
        self.db, self.default_audience, self.clock = db, default_audience, clock

    async def register(self, who: Principal, body: dict[str, Any]) -> JwtKey:
        issuer, key = body.get("issuer"), body.get("key")
        algorithm = body.get("algorithm") or "HS256"
        audience = body.get("audience") or self.default_audience
        errors = {name: "must be a non-empty string" for name, value in
                  (("issuer", issuer), ("key", key), ("audience", audience),
                   ("algorithm", algorithm))
                  if not isinstance(value, str) or not value.strip() or len(value) > 8192}
        if errors:
            raise ValidationFailed(f"Invalid parameters: {next(iter(errors))}", errors)
        assert isinstance(key, str) and isinstance(issuer, str)
        _check_key(str(algorithm), key)
        row = tph.SocketJwtKey(id=f"{KEY_PREFIX}_{secrets.token_hex(12)}",
                               workspace_id=who.workspace_id, issuer=issuer.strip(),
                               audience=str(audience).strip(), algorithm=str(algorithm),
                               key=key)
        async with self.db.session() as s:
            s.add(row)
        return _view(row)

    async def list_all(self, who: Principal) -> list[JwtKey]:
        async with self.db.session() as s:
            rows = await s.scalars(select(tph.SocketJwtKey).where(
                tph.SocketJwtKey.workspace_id == who.workspace_id)
                .order_by(tph.SocketJwtKey.created_at))
            return [_view(r) for r in rows]

    async def delete(self, who: Principal, key_id: str) -> None:
        async with self.db.session() as s:
            row = await s.get(tph.SocketJwtKey, key_id)
            if row is None or row.workspace_id != who.workspace_id:
                raise NotFound("Socket JWT key not found")
            await s.delete(row)

    async def authenticate(self, token: str) -> Principal:
        """The principal of a valid, unused token; ``Unauthorized`` otherwise."""
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise Unauthorized(INVALID) from exc
        async with self.db.session() as s:
            table = tph.SocketJwtKey
            kid = header.get("kid")
            stmt = select(table).where(table.id == kid) if isinstance(kid, str) else \
                select(table).where(table.issuer == str(unverified.get("iss")))
            keys = list(await s.scalars(stmt))
        claims, key = self._verified(token, keys)
        agent_id = await self._agent(key.workspace_id, str(claims["sub"]))
        await self._spend(key.id, str(claims["jti"]), int(claims["exp"]))
        async with self.db.session() as s:
            workspace = await s.get(t.Workspace, key.workspace_id)
        conversation = claims.get("conversation_id")
        return Principal(key.workspace_id, workspace.name if workspace else "",
                         kind="conversation_token", agent_id=agent_id,
                         conversation_ids=frozenset({conversation})
                         if isinstance(conversation, str) and conversation else frozenset())

    def _verified(self, token: str, keys: list[tph.SocketJwtKey]
                  ) -> tuple[dict[str, Any], tph.SocketJwtKey]:
        for key in keys:
            try:
                claims = jwt.decode(
                    token, key.key, algorithms=[key.algorithm], audience=key.audience,
                    issuer=key.issuer, leeway=LEEWAY_S,
                    options={"require": list(REQUIRED_CLAIMS), "verify_iat": True})
            except jwt.PyJWTError:
                continue
            now = self.clock()
            if int(claims["exp"]) - int(claims["iat"]) > MAX_LIFETIME_S or \
                    int(claims["exp"]) + LEEWAY_S < now:
                raise Unauthorized(INVALID)
            return claims, key
        raise Unauthorized(INVALID)

    async def _agent(self, workspace_id: str, sub: str) -> str:
        async with self.db.session() as s:
            rows = list(await s.scalars(select(t.Agent.id).join(
                t.Project, t.Project.id == t.Agent.project_id).where(
                t.Project.workspace_id == workspace_id,
                (t.Agent.id == sub) | (t.Agent.name == sub))))
        if len(rows) != 1:  # unknown, or a name several projects use: refuse either way
            raise Unauthorized(INVALID)
        return str(rows[0])

    async def _spend(self, key_id: str, jti: str, exp: int) -> None:
        """Record the ``jti``; a second use of it is refused."""
        expires = datetime.fromtimestamp(exp + LEEWAY_S, UTC)  # valid until then
        now = datetime.fromtimestamp(self.clock(), UTC)
        try:
            async with self.db.session() as s:
                await s.execute(delete(tph.SocketJwtUse).where(
                    tph.SocketJwtUse.expires_at < now))
                s.add(tph.SocketJwtUse(key_id=key_id, jti=jti[:255], expires_at=expires))
        except IntegrityError as exc:
            raise Unauthorized(INVALID) from exc


def _view(row: tph.SocketJwtKey) -> JwtKey:
    return JwtKey(row.id, row.issuer, row.audience, row.algorithm, row.created_at)
