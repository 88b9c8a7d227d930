"""Operations routes, outside any dialect: ``/health``, ``/ready``, ``/metrics``.

``/health`` is liveness (the process answers). ``/ready`` is what a load balancer polls:
503 while the database or Redis is unreachable, the models are not loaded, or the node
drains after SIGTERM. ``/metrics`` is Prometheus' text format (``services/metrics.py``).
They need no credential; keep them off the public side of the balancer
(``docs/deployment.md``).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from openline.services.hub import Services

router = APIRouter(include_in_schema=False)


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready")
async def ready(request: Request) -> JSONResponse:
    services: Services = request.app.state.services
    if services.ops is None:
        return JSONResponse({"status": "ready", "checks": {}})
    checks = await services.ops.ready()
    ok = all(checks.values())
    return JSONResponse({"status": "ready" if ok else "not_ready", "checks": checks},
                        status_code=200 if ok else 503)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    services: Services = request.app.state.services
    body = await services.ops.render() if services.ops is not None else b""
    return Response(body, media_type=CONTENT_TYPE_LATEST)
