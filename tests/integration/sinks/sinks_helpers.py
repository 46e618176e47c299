"""Helpers of the sink integration tests: a real faust worker in a thread."""

from __future__ import annotations

import importlib
from typing import Any

from worker_thread import WorkerThread

from pipeline.runtime import Runtime

__all__ = ["WorkerThread", "product_app_exists", "sink_worker_app"]


def product_app_exists() -> bool:
    try:
        importlib.import_module("pipeline.agents.app")
    except ImportError:
        return False
    return True


def sink_worker_app(runtime: Runtime, guarantee: str = "at_least_once") -> Any:
    """The product's faust app when ``pipeline.agents.app`` exists (with its registrars), else a bare app + sinks
    with the given processing guarantee."""
    import faust

    settings = runtime.settings
    try:
        create_app = importlib.import_module("pipeline.agents.app").create_app
    except ImportError:
        app = faust.App(
            settings.app_id,
            broker=f"kafka://{settings.kafka_bootstrap_servers}",
            store="memory://",
            topic_partitions=settings.topic_partitions or 1,
            topic_replication_factor=1,
            processing_guarantee=guarantee,
            web_enabled=False,
            broker_session_timeout=6,
            broker_heartbeat_interval=0.5,
            broker_rebalance_timeout=10,
            broker_request_timeout=20,
            broker_commit_interval=0.5,
            stream_wait_empty=False,
            table_standby_replicas=0,
            consumer_auto_offset_reset="earliest",
        )
        from pipeline.agents.sinks import register

        register(app, runtime)
        return app
    return create_app(runtime)
