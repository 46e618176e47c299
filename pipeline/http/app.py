"""The app factory: one FastAPI app with the shared state every router's dependencies read, plus health and metrics.

``create_app(runtime, publisher, routers)`` puts the runtime, the publisher and the app's metrics on ``app.state``
(read through ``pipeline.http.deps``), includes the routers in the order given, then ``/healthz`` and ``/metrics``.
Which routers make up leadpipe's API is decided where the API is composed (``pipeline.api.app``), not here.
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
    """A FastAPI app serving ``routers`` (and health and metrics) over ``runtime`` and ``publisher``."""
    app = FastAPI(title=title, version=version, summary=summary)
    app.state.runtime = runtime
    app.state.publisher = publisher
    app.state.metrics = ApiMetrics()
    for router in routers:
        app.include_router(router)
    app.include_router(health.router)
    return app
