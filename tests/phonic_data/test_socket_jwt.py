"""``/v1/sts/ws?jwt=`` through the official SDK: a customer-signed token with the §6.1
claims is accepted once, and refused when replayed, forged, expired or mis-addressed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest
import websockets
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from phonic import AsyncPhonic, PhonicEnvironment
from phonic.core.api_error import ApiError

from tests.conftest import LiveServer
from tests.phonic_data.conftest import ServerFactory, one_turn, sdk
from tests.ws.conftest import collect, config

SECRET = "customer-signing-secret-" + "x" * 24
ISSUER = "https://backend.example.com"


def _register(server: LiveServer, **body: Any) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/socket_jwt_keys", json=body,
                      headers={"Authorization": f"Bearer {server.api_key}"})


def _claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": ISSUER, "aud": "openline", "sub": "host", "iat": now, "exp": now + 60,
            "jti": uuid.uuid4().hex, **over}


def _browser(server: LiveServer) -> AsyncPhonic:
    """What a browser holds: no API key at all (the SDK sends a placeholder header)."""
    return AsyncPhonic(api_key="no-api-key", environment=PhonicEnvironment(
        base=f"{server.url}/v1", production=server.ws_url))


async def _opens(server: LiveServer, token: str) -> bool:
    try:
        async with _browser(server).conversations.connect(
                request_options={"additional_query_parameters": {"jwt": token}}) as socket:
            await socket.send_config(config(agent="host"))
            seen: list[Any] = []
            await collect(socket, "ready_to_start_conversation", seen)
            return True
    except ApiError as exc:
        assert exc.status_code == 401
        return False


async def test_jwt_accepted_once_then_refused(backend: str,
                                             make_server: ServerFactory) -> None:
    server = make_server(backend)
    client = sdk(server)
    await client.agents.create(name="host", system_prompt="You are Ann.")
    await client.agents.create(name="other", system_prompt="You are Zed.")
    key = _register(server, issuer=ISSUER, key=SECRET, algorithm="HS256")
    assert key.status_code == 201 and SECRET not in key.text
    key_id = key.json()["id"]

    token = jwt.encode(_claims(), SECRET, algorithm="HS256", headers={"kid": key_id})
    options = {"additional_query_parameters": {"jwt": token}}
    conv_id = await one_turn(_browser(server), "host", connect_options=options, rest=client)
    stored = (await client.conversations.get(conv_id)).conversation
    assert stored.agent.name == "host" and len(stored.items) == 2
    assert not await _opens(server, token)  # the same jti again: replay refused

    refused = {
        "wrong secret": jwt.encode(_claims(), SECRET + "!", algorithm="HS256"),
        "expired": jwt.encode(_claims(iat=int(time.time()) - 600,
                                      exp=int(time.time()) - 300), SECRET),
        "other audience": jwt.encode(_claims(aud="someone-else"), SECRET),
        "other issuer": jwt.encode(_claims(iss="https://evil.example"), SECRET),
        "no jti": jwt.encode({k: v for k, v in _claims().items() if k != "jti"}, SECRET),
        "too long-lived": jwt.encode(_claims(exp=int(time.time()) + 7200), SECRET),
        "unknown agent": jwt.encode(_claims(sub="nobody"), SECRET),
        "alg none": jwt.encode(_claims(), None, algorithm="none"),
        "not a jwt": "abc.def.ghi",
    }
    for why, bad in refused.items():
        assert not await _opens(server, bad), why

    # Scoped to its agent like a conversation token: another agent is refused.
    scoped = jwt.encode(_claims(), SECRET, headers={"kid": key_id})
    async with _browser(server).conversations.connect(
            request_options={"additional_query_parameters": {"jwt": scoped}}) as socket:
        await socket.send_config(config(agent="other"))
        seen: list[Any] = []
        await collect(socket, "error", seen)
    assert seen[-1].error.code == "forbidden"

    # A token naming its conversation can only resume it, not start another.
    resume_only = jwt.encode(_claims(conversation_id=conv_id), SECRET)
    async with websockets.connect(f"{server.ws_url}/v1/sts/ws?jwt={resume_only}") as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def test_asymmetric_keys(make_server: ServerFactory) -> None:
    server = make_server()
    await sdk(server).agents.create(name="host")
    private = ec.generate_private_key(ec.SECP256R1())
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()
    assert _register(server, issuer=ISSUER, key=private_pem, algorithm="ES256"
                     ).status_code == 400  # never the private key
    assert _register(server, issuer=ISSUER, key="short", algorithm="HS256").status_code == 400
    assert _register(server, issuer=ISSUER, key=public_pem, algorithm="ES256"
                     ).status_code == 201
    assert await _opens(server, jwt.encode(_claims(), private, algorithm="ES256"))
    # The public key as an HMAC secret (algorithm confusion) is refused.
    assert not await _opens(server, _hs256(_claims(), public_pem.encode()))


def _hs256(claims: dict[str, Any], secret: bytes) -> str:
    """An HS256 token made by hand (PyJWT refuses to use a PEM key as an HMAC secret)."""
    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = (part(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "."
                     + part(json.dumps(claims).encode()))
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{part(mac)}"
