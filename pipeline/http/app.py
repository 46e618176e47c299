"""The app factory: one FastAPI app with the shared state every router's dependencies read, plus the probes.

``create_app(runtime, publisher, routers)`` puts the runtime, the publisher and the app's metrics on ``app.state``
(read through ``pipeline.http.deps``), includes the routers in the order given, then ``/healthz`` and ``/readyz``.
``/metrics``, ``/openapi.json`` and ``/docs`` are the admin app's (``app.state.admin``, served on the admin port:
``pipeline.http.server``), on the API port only with ``api_public_docs``. Which routers make up leadpipe's API is
decided where the API is composed (``pipeline.api.app``), not here.
"""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import APIRouter, FastAPI

from pipeline.http import health
from pipeline.http.metrics import ApiMetrics
from pipeline.kafka.producer import ConfirmingPublisher
from pipeline.runtime import Runtime


def create_app(
    runtime: Runtime,
    publisher: ConfirmingPublisher,
    routers: Iterable[APIRouter],
    *,
    title: str = "leadpipe",
    version: str = "1",
    summary: str | None = None,
) -> FastAPI:
    """A FastAPI app serving ``routers`` (and the probes) over ``runtime`` and ``publisher``; its admin app (metrics,
    OpenAPI, docs) is ``app.state.admin``."""
    public = runtime.settings.api_public_docs
    app = FastAPI(
        title=title,
        version=version,
        summary=summary,
        openapi_url="/openapi.json" if public else None,
        docs_url="/docs" if public else None,
        redoc_url=None,
    )
    app.state.runtime = runtime
    app.state.publisher = publisher
    app.state.metrics = ApiMetrics()
    for router in routers:
        app.include_router(router)
    app.include_router(health.router)
    app.state.admin = health.admin_app(app)
    return app
