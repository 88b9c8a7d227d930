"""The dashboard's web plumbing: templates, the session cookie, CSRF, security headers.

- **Session**: an HttpOnly, SameSite=Lax cookie holding a random secret (stored hashed by
  ``services.dashboard``), Secure when the page is served over https.
- **CSRF**: every state-changing request carries the session's token, in the form field
  ``csrf_token`` or the ``X-CSRF-Token`` header (the audio module's fetches); the sign-in
  form, which has no session yet, uses a double-submit cookie.
- **Headers**: every response of the dashboard (pages, redirects, errors, static files)
  gets a strict Content-Security-Policy (no inline script or style, nothing from other
  origins) and the usual anti-framing and no-sniff headers.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

from fastapi import Depends, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, select_autoescape

from openline.api.phonic.errors import status_of
from openline.api.phonic.views import iso
from openline.domain.errors import OpenlineError
from openline.services.dashboard import DashboardService
from openline.services.hub import Services
from openline.services.principal import Principal

BASE = "/dashboard"
SESSION_COOKIE = "ol_session"
LOGIN_CSRF_COOKIE = "ol_login_csrf"
CSRF_HEADER = "x-csrf-token"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "media-src 'self' blob:; connect-src 'self'; worker-src 'self'; font-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


class SignInRequired(Exception):
    """No valid session: the browser is sent to the sign-in page."""


class CsrfRejected(Exception):
    """A state-changing request without the session's CSRF token."""


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _local(url: str) -> str:
    """A link of this server as a same-origin path (the CSP allows only 'self')."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _environment() -> Environment:
    env = Environment(loader=PackageLoader("openline.api.dashboard", "templates"),
                      autoescape=select_autoescape(["html"]), trim_blocks=True,
                      lstrip_blocks=True, auto_reload=False)
    env.filters["when"] = _when
    env.filters["iso"] = iso
    env.filters["local"] = _local
    return env


TEMPLATES = _environment()


@dataclass
class Page:
    """One signed-in request: who, the selected project, and the services."""

    request: Request
    svc: Services
    who: Principal
    csrf_token: str
    project: str

    @property
    def dashboard(self) -> DashboardService:
        assert self.svc.dashboard is not None  # built with the services
        return self.svc.dashboard

    def url(self, path: str, **params: Any) -> str:
        """A dashboard URL in the selected project (``None`` parameters are left out)."""
        query = {"project": self.project, **{k: v for k, v in params.items() if v is not None}}
        if query["project"] == "main":
            del query["project"]
        return f"{BASE}{path}" + (f"?{urlencode(query)}" if query else "")

    def render(self, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        return render(template, status_code, page=self, url=self.url, **context)

    def redirect(self, path: str, **params: Any) -> RedirectResponse:
        return RedirectResponse(self.url(path, **params), status_code=303)


def render(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = TEMPLATES.get_template(template).render(base=BASE, **context)
    return HTMLResponse(html, status_code=status_code)


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def signed_in(request: Request) -> Page:
    """The signed-in page context (redirects to sign-in otherwise)."""
    svc = _services(request)
    assert svc.dashboard is not None
    session = await svc.dashboard.resolve(request.cookies.get(SESSION_COOKIE))
    if session is None:
        raise SignInRequired()
    project = request.query_params.get("project") or "main"
    return Page(request, svc, session.who, session.csrf_token, project)


async def checked(page: Annotated[Page, Depends(signed_in)]) -> Page:
    """``signed_in``, for state-changing requests: the CSRF token must match."""
    sent = page.request.headers.get(CSRF_HEADER)
    if sent is None:
        form = await page.request.form()
        value = form.get("csrf_token")
        sent = value if isinstance(value, str) else None
    if not sent or not secrets.compare_digest(sent, page.csrf_token):
        raise CsrfRejected()
    return page


SignedIn = Annotated[Page, Depends(signed_in)]
Checked = Annotated[Page, Depends(checked)]


async def form_of(request: Request) -> dict[str, str]:
    """The submitted form as strings (the last value of a repeated field)."""
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


def set_session_cookie(response: Response, request: Request, token: str) -> None:
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="lax",
                        secure=request.url.scheme == "https", path="/",
                        max_age=12 * 3600)


def secure(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def _error_page(request: Request, status: int, title: str, message: str) -> Response:
    return render("error.html", status, title=title, message=message, page=None,
                  url=lambda path, **_: f"{BASE}{path}")


class DashboardRoute(APIRoute):
    """Every dashboard response gets the security headers; a missing session redirects to
    sign-in, a CSRF failure is a 403 page, and domain errors become HTML error pages."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                response = await original(request)
            except SignInRequired:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                response = RedirectResponse(f"{BASE}/login?{urlencode({'next': target})}", 303)
            except CsrfRejected:
                response = _error_page(request, 403, "Request refused",
                                       "The form's CSRF token is missing or wrong. "
                                       "Reload the page and try again.")
            except OpenlineError as exc:
                status = status_of(exc)
                response = _error_page(request, status if status != 500 else 400,
                                       "Something went wrong", exc.message)
            return secure(response)

        return handler


def static_files() -> Mapping[str, tuple[bytes, str]]:
    """The dashboard's static files, read once from the installed package."""
    types = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}
    out: dict[str, tuple[bytes, str]] = {}
    for entry in resources.files("openline.api.dashboard").joinpath("static").iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if entry.is_file() and suffix in types:
            out[entry.name] = (entry.read_bytes(), types[suffix])
    return out
