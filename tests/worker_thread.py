"""A real faust worker (real broker, no in-memory transport) in a thread of its own, shared by integration tests."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any


class WorkerThread:
    """Runs a faust app (real broker, no in-memory transport) on its own loop in a thread, so the test stays sync."""

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

    def assigned(self) -> set[str]:
        async def topics() -> set[str]:
            return {tp.topic for tp in self.app.consumer.assignment()}

        return asyncio.run_coroutine_threadsafe(topics(), self.loop).result(10)

    def start(self, wait_for_topics: tuple[str, ...] = (), timeout_s: float = 60) -> WorkerThread:
        self._thread.start()
        if not self._started.wait(timeout_s) or self._error is not None:
            raise RuntimeError(f"the faust worker did not start: {self._error!r}")
        deadline = time.monotonic() + timeout_s
        while not set(wait_for_topics) <= self.assigned():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the worker was not assigned {wait_for_topics} within {timeout_s}s")
            time.sleep(0.1)
        return self

    def stop(self) -> None:
        if self._stop is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def __enter__(self) -> WorkerThread:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
