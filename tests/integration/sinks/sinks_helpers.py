"""Helpers of the sink integration tests: the product's faust worker in a thread, the HubSpot sink over the fake."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine
from worker_thread import WorkerThread

from pipeline.agents.worker import create_app
from pipeline.config import Settings
from pipeline.rights.history import RightsHistory
from pipeline.runtime import Runtime
from pipeline.sinks.hubspot.gateway import HubSpotGateway
from pipeline.sinks.hubspot.ratelimit import make_limiters
from pipeline.sinks.hubspot.sink import HubSpotSink

__all__ = ["WorkerThread", "sink_for", "sink_worker_app"]


def sink_worker_app(runtime: Runtime) -> Any:
    """The product's faust app (``pipeline.agents.app``) with its registrars, the sink agents among them."""
    return create_app(runtime)


def sink_for(settings: Settings, *, engine: Engine | None = None) -> tuple[HubSpotSink, HubSpotGateway]:
    """The HubSpot sink through the real client (the gateway with its shared budget); ``engine``: replay guard's DB."""
    limiters = make_limiters(
        settings.hubspot_rate_limit_requests,
        settings.hubspot_rate_limit_window_s,
        settings.hubspot_search_rate_per_s,
        settings.hubspot_rate_limit_margin_s,
    )
    gateway = HubSpotGateway(settings, limiters)
    return HubSpotSink.from_settings(
        settings, gateway, guard=RightsHistory(engine) if engine is not None else None
    ), gateway
