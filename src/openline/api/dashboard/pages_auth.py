"""Signing in and out: an API key in a form, or a one-time login link; static files."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import RedirectResponse

from openline.api.dashboard.web import (
    BASE,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    Checked,
    DashboardRoute,
    render,
    set_session_cookie,
    static_files,
)
from openline.domain.errors import NotFound, Unauthorized
from openline.services.hub import Services

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)
_STATIC = static_files()


def _next(value: str | None) -> str:
    """Only a path inside the dashboard (no open redirect to another site)."""
    if value and value.startswith(BASE + "/") and not value.startswith("//"):
        return value
    return f"{BASE}/agents"


def _login_page(request: Request, error: str | None, next_url: str,
                status_code: int = 200) -> Response:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)
    response = render("login.html", status_code, page=None, error=error, csrf_token=token,
                      next_url=next_url, url=lambda path, **_: f"{BASE}{path}")
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", path=f"{BASE}/login")
    return response


@router.get("/")
async def root() -> Response:
    return RedirectResponse(f"{BASE}/agents", status_code=303)


@router.get(BASE)
async def home() -> Response:
    return RedirectResponse(f"{BASE}/agents", status_code=303)


@router.get(f"{BASE}/login")
async def login_form(request: Request, next: str | None = None) -> Response:
    return _login_page(request, None, _next(next))


@router.post(f"{BASE}/login")
async def login(request: Request, api_key: Annotated[str, Form()] = "",
                csrf_token: Annotated[str, Form()] = "",
                next: Annotated[str, Form()] = "") -> Response:
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE) or ""
    if not (cookie and csrf_token and secrets.compare_digest(cookie, csrf_token)):
        # A stale or forged form (login CSRF): nothing happens, the form comes back.
        return _login_page(request, "The sign-in form expired; please try again.",
                           _next(next), 400)
    services: Services = request.app.state.services
    assert services.dashboard is not None
    try:
        signed = await services.dashboard.sign_in(api_key)
    except Unauthorized as exc:
        return _login_page(request, exc.message, _next(next), 401)
    response = RedirectResponse(_next(next), status_code=303)
    set_session_cookie(response, request, signed.token)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=f"{BASE}/login")
    return response


@router.get(f"{BASE}/login/link")
async def login_link(request: Request, token: str = "") -> Response:
    """A link printed by ``openline keys create --dashboard``: signs in once."""
    services: Services = request.app.state.services
    assert services.dashboard is not None
    try:
        signed = await services.dashboard.redeem_link(token)
    except Unauthorized as exc:  # a bad link is a bad request: the sign-in form comes back
        return _login_page(request, exc.message, f"{BASE}/agents", 400)
    response = RedirectResponse(f"{BASE}/agents", status_code=303)
    set_session_cookie(response, request, signed.token)
    return response


@router.post(f"{BASE}/logout")
async def logout(page: Checked) -> Response:
    await page.dashboard.sign_out(page.request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse(f"{BASE}/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get(f"{BASE}/static/{{name}}")
async def static(name: str) -> Response:
    hit = _STATIC.get(name)
    if hit is None:
        raise NotFound("No such file")
    body, media_type = hit
    return Response(body, media_type=media_type, headers={"Cache-Control": "no-cache"})
