"""Probes and the admin port's views.

- ``/healthz``: liveness. The process answers; it says nothing about what it depends on, so an outage of the
  broker or the database never gets a healthy pod restarted.
- ``/readyz``: readiness. The brokers answer a metadata request and the database (key store, replay store, CRM)
  a ``SELECT 1``, each within ``READY_TIMEOUT_S``; 503 naming what is unavailable otherwise, so the load balancer
  sends webhooks to a pod that can take them. Checked at most once per ``READY_CACHE_S`` (probes of every pod
  must not load the broker).
- ``/metrics`` (Prometheus, summed over ``leadpipe serve --workers`` processes), ``/openapi.json`` and ``/docs``:
  the admin app (``admin_app``), served on the admin port only, unless ``api_public_docs`` puts the reference on
  the API port too.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from pydantic import BaseModel
from sqlalchemy import text

from pipeline.http.auth import public
from pipeline.http.deps import get_metrics, get_publisher, get_runtime

#: How long one readiness check may take, and how long its verdict is reused.
READY_TIMEOUT_S = 2.0
READY_CACHE_S = 1.0

router = APIRouter()


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    checks: dict[str, str]


@router.get(
    "/healthz", response_model=Health, summary="Liveness", dependencies=[Depends(public("liveness probe: says ok"))]
)
async def healthz() -> Health:
    return Health()


@dataclass
class _ReadyCache:
    at: float = -1e9
    answer: Readiness | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


async def _check(name: str, probe: Any) -> tuple[str, str]:
    try:
        ok = await asyncio.wait_for(asyncio.to_thread(probe), READY_TIMEOUT_S)
    except TimeoutError:
        return name, f"unavailable: no answer within {READY_TIMEOUT_S:g}s"
    except Exception as exc:  # the check's own failure is the verdict
        return name, f"unavailable: {type(exc).__name__}"
    return name, "ok" if ok else "unavailable"


def _database_answers(request: Request) -> bool:
    with get_runtime(request).engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    return True


async def readiness(request: Request) -> Readiness:
    """The brokers and the database, checked (or the verdict of the last second)."""
    cache: _ReadyCache = request.app.state.__dict__.setdefault("_leadpipe_ready", _ReadyCache())
    async with cache.lock:
        if cache.answer is not None and time.monotonic() - cache.at < READY_CACHE_S:
            return cache.answer
        publisher = get_publisher(request)
        checks = dict(
            await asyncio.gather(
                _check("kafka", lambda: publisher.probe(READY_TIMEOUT_S / 2)),
                _check("database", lambda: _database_answers(request)),
            )
        )
        status: Literal["ready", "not_ready"] = "ready" if set(checks.values()) == {"ok"} else "not_ready"
        cache.answer, cache.at = Readiness(status=status, checks=checks), time.monotonic()
        return cache.answer


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Readiness: the brokers and the database answer",
    dependencies=[Depends(public("readiness probe: which dependency is unavailable, by name only"))],
    responses={503: {"model": Readiness, "description": "Not ready: a dependency is unavailable"}},
)
async def readyz(request: Request) -> JSONResponse:
    answer = await readiness(request)
    return JSONResponse(answer.model_dump(), status_code=200 if answer.status == "ready" else 503)


def metrics_text(request: Request) -> bytes:
    """The app's counters; with several ``leadpipe serve`` workers, every worker's, summed."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return bytes(generate_latest(registry))
    return bytes(generate_latest(get_metrics(request).registry))


def admin_app(api: FastAPI) -> FastAPI:
    """The admin port's app: ``/metrics``, ``/openapi.json``, ``/docs`` of ``api``, and the probes."""
    admin = FastAPI(title=f"{api.title} admin", openapi_url=None, docs_url=None, redoc_url=None)
    admin.state.__dict__.update(api.state.__dict__)  # the same runtime, publisher and metrics

    @admin.get(
        "/metrics",
        summary="Prometheus metrics",
        response_class=Response,
        dependencies=[Depends(public("Prometheus scrape on the admin port: counts by outcome and reason, no ids"))],
    )
    async def metrics_endpoint(request: Request) -> Response:
        return Response(metrics_text(request), media_type=CONTENT_TYPE_LATEST)

    @admin.get(
        "/openapi.json", include_in_schema=False, dependencies=[Depends(public("the API's description, admin port"))]
    )
    async def openapi() -> JSONResponse:
        return JSONResponse(api.openapi())

    @admin.get(
        "/docs", include_in_schema=False, dependencies=[Depends(public("the API's documentation page, admin port"))]
    )
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{api.title} API")

    admin.include_router(router)
    return admin
