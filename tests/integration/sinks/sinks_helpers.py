"""Helpers of the sink integration tests: a real faust worker in a thread."""

from __future__ import annotations

import asyncio
import importlib
import threading
from typing import Any

from pipeline.runtime import Runtime


class WorkerThread:
    """A faust app (real broker) on its own event loop in a thread, so the test itself stays synchronous."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="faust-worker", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._main())
        except BaseException as exc:
            self._error = exc
            self._started.set()

    async def _main(self) -> None:
        from faust.contrib.asgi import faust_app_running

        self._stop = asyncio.Event()
        async with faust_app_running(self.app, stop_timeout=20):
            self._started.set()
            await self._stop.wait()

    def start(self, timeout_s: float = 60) -> WorkerThread:
        self._thread.start()
        if not self._started.wait(timeout_s) or self._error is not None:
            raise RuntimeError(f"the faust worker did not start: {self._error!r}")
        return self

    def stop(self) -> None:
        if self._stop is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def __enter__(self) -> WorkerThread:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


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
