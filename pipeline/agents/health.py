"""The worker's own health: readiness (``/readyz``) on commit progress and dependencies, liveness (``/livez``) on
what a restart fixes. Served by faust's web server beside ``/metrics``; each condition is a gauge too.

Not ready (503, the reasons by name; no offsets of a person, no values) when the worker cannot make progress:

- ``uncommitted``: an assigned partition's committed offset has not moved for ``worker_ready_uncommitted_max_s``
  while records wait beyond it (handed to an agent, or arrived since it last moved). This is the truth faust's stall
  warnings could not see (they are off: ``BatchingConsumerThread.verify_event_path``). A log end one past the
  committed offset that never grows (the commit marker of a transaction) is not waiting work;
- ``fenced``: a transactional producer was fenced and the worker has not been given its partitions again and
  recovered its tables yet;
- ``database``: the database (key store, tracker, CRM) does not answer a ``SELECT 1``, or a batch is being retried
  because it did not (``RetryBatch``, a sink's key-store pause);
- ``sink_paused``: a sink has been pausing (backpressure, HubSpot's rate limit or outage, retryable records) for
  ``worker_ready_sink_pause_max_s`` without finishing its batch.

Not live (503) only for what a restart fixes: ``event_loop`` (the loop's 1-second heartbeat is
``worker_live_loop_stall_s`` late, or stopped) and ``agent_crashed`` (the app, its consumer or an agent's
supervisor crashed, or an agent has no running actor). A dependency outage never fails liveness: restarting a worker
does not bring the database back, and every restart costs a rebalance of the whole group.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from faust.types import TP
from prometheus_client import CollectorRegistry, Gauge
from sqlalchemy import Engine, text

from pipeline.agents.app import LeadpipeApp
from pipeline.agents.faust_adapter import PartitionProgress
from pipeline.agents.metrics import worker_metrics
from pipeline.config import Settings
from pipeline.logging import get_logger

log = get_logger(__name__)

READY_PATH = "/readyz"
LIVE_PATH = "/livez"
#: The paths this module serves on the worker's web port (the chart's probes must name one of these or ``/``).
PROBE_PATHS = (READY_PATH, LIVE_PATH)

NOT_READY_REASONS = ("uncommitted", "fenced", "database", "sink_paused")
NOT_LIVE_REASONS = ("event_loop", "agent_crashed")

#: How often the heartbeat ticks and commit progress is observed; how long a database answer may take.
TICK_S = 1.0
DATABASE_TIMEOUT_S = 2.0
DATABASE_EVERY_TICKS = 5


@dataclass
class _Watch:
    """One partition's committed offset, since when it has stood there, and the log end seen then."""

    committed: int | None
    since: float
    end_then: int | None
    consumed_then: int | None


@dataclass
class Pauses:
    """Pauses in progress, by part (``sink:crm``): why (``database`` or ``sink``) and since when. A part records a
    pause each time it waits and ``resumed`` once its work went through, so one episode spans many waits."""

    clock: Callable[[], float] = time.monotonic
    active: dict[str, tuple[str, float]] = field(default_factory=dict)

    def paused(self, part: str, kind: str) -> None:
        since = self.active.get(part, (kind, self.clock()))[1]
        self.active[part] = (kind, since)

    def resumed(self, part: str) -> None:
        self.active.pop(part, None)


class WorkerHealth:
    """Readiness and liveness of one worker; ``observe`` and ``tick`` are fed by a timer, the probes read."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self.uncommitted_max_s = settings.worker_ready_uncommitted_max_s
        self.sink_pause_max_s = settings.worker_ready_sink_pause_max_s
        self.loop_stall_s = settings.worker_live_loop_stall_s
        self.clock = clock
        self.pauses = Pauses(clock)
        self.last_tick = clock()
        self.ticking = False
        """The heartbeat ticks once the app has started (faust starts timers and its web server after the first
        table recovery): before that, the loop's lateness is not judged."""
        self.database_ok = True
        self._watches: dict[TP, _Watch] = {}

    # ---- fed by the worker ---------------------------------------------------------------------------------------

    def tick(self) -> None:
        self.last_tick = self.clock()
        self.ticking = True

    def observe(self, progress: Mapping[TP, PartitionProgress]) -> None:
        """Note where each assigned partition's committed offset stands (revoked ones are forgotten)."""
        now = self.clock()
        for tp in set(self._watches) - set(progress):
            del self._watches[tp]
        for tp, where in progress.items():
            watch = self._watches.get(tp)
            if watch is None or watch.committed != where.committed:
                self._watches[tp] = _Watch(where.committed, now, where.end, where.consumed)

    def stale(self, progress: Mapping[TP, PartitionProgress]) -> dict[TP, float]:
        """Partitions whose committed offset has stood still while records wait beyond it: seconds it has stood."""
        now = self.clock()
        out = {}
        for tp, where in progress.items():
            watch = self._watches.get(tp)
            if watch is None or watch.committed != where.committed:
                continue
            committed = where.committed if where.committed is not None else 0
            # faust's read offset is the committed one right after a seek (so ``consumed`` is one too far then):
            # one record beyond the commit counts only once the agent was handed something since the watch began
            held = 0 if where.consumed is None else where.consumed - committed
            handed_over = held > 1 or (held == 1 and where.consumed != watch.consumed_then)
            arrived = where.end is not None and watch.end_then is not None and where.end > watch.end_then
            if handed_over or arrived:
                out[tp] = now - watch.since
        return out

    # ---- the verdicts --------------------------------------------------------------------------------------------

    def not_ready(
        self,
        progress: Mapping[TP, PartitionProgress],
        retrying: Mapping[TP, tuple[str, float]],
        fenced_at: float | None,
    ) -> dict[str, str]:
        """Reason -> detail (partition numbers, part names, seconds; nothing from a record) of each failing check."""
        now = self.clock()
        reasons: dict[str, str] = {}
        stale = {tp: age for tp, age in self.stale(progress).items() if age >= self.uncommitted_max_s}
        if stale:
            worst = max(stale, key=lambda tp: stale[tp])
            reasons["uncommitted"] = (
                f"{len(stale)} partition(s) not committed for >= {self.uncommitted_max_s:g}s "
                f"(longest {worst.topic}[{worst.partition}]: {stale[worst]:.0f}s)"
            )
        if fenced_at is not None:
            reasons["fenced"] = f"a producer was fenced {now - fenced_at:.0f}s ago; rejoining (assignment, recovery)"
        database = []
        if not self.database_ok:
            database.append("no answer to SELECT 1")
        if retrying:
            database.append(f"{len(retrying)} partition(s) retrying: {sorted({r for r, _ in retrying.values()})}")
        for part, (kind, since) in self.pauses.active.items():
            if kind == "database":
                database.append(f"{part} paused {now - since:.0f}s")
        if database:
            reasons["database"] = "; ".join(database)
        sinks = [
            f"{part} paused {now - since:.0f}s"
            for part, (kind, since) in self.pauses.active.items()  # one part's pause has one kind at a time
            if kind == "sink" and now - since >= self.sink_pause_max_s
        ]
        if sinks:
            reasons["sink_paused"] = "; ".join(sinks)
        return reasons

    def not_live(self, services: Iterable[Any], agents: Iterable[Any]) -> dict[str, str]:
        """Reason -> detail of what a restart fixes: a stalled event loop, a crashed service or agent."""
        reasons: dict[str, str] = {}
        late = self.clock() - self.last_tick
        if self.ticking and late >= self.loop_stall_s:
            reasons["event_loop"] = f"heartbeat {late:.0f}s late"
        crashed = [type(s).__name__ for s in services if getattr(s, "crashed", False)]
        for agent in agents:
            supervisor = getattr(agent, "supervisor", None)
            actors = list(getattr(agent, "_actors", ()))
            if (supervisor is not None and supervisor.crashed) or (
                getattr(agent, "started", False) and actors and all(a.crashed for a in actors)
            ):
                crashed.append(str(agent.name))
        if crashed:
            reasons["agent_crashed"] = ", ".join(sorted(crashed))
        return reasons


def health_gauges(registry: CollectorRegistry) -> tuple[Gauge, Gauge, Gauge]:
    """The gauges of the worker's health in ``registry``: not ready by reason, not live by reason, and how long each
    partition's commit has stood still with records waiting."""
    not_ready = Gauge(
        "leadpipe_worker_not_ready",
        "1 while the worker is not ready for this reason (uncommitted: a partition's commits stand still with "
        "records waiting; fenced: a producer was fenced, no new assignment yet; database: no answer or batches "
        "retried; sink_paused: a sink paused longer than the bound), else 0.",
        ["reason"],
        registry=registry,
    )
    not_live = Gauge(
        "leadpipe_worker_not_live",
        "1 while the worker is not live for this reason (event_loop: heartbeat late; agent_crashed), else 0: "
        "a restart fixes these.",
        ["reason"],
        registry=registry,
    )
    standing = Gauge(
        "leadpipe_worker_uncommitted_seconds",
        "Seconds an assigned partition's committed offset has stood still while records wait beyond it, by "
        "topic and partition (absent while it moves or nothing waits).",
        ["topic", "partition"],
        registry=registry,
    )
    return not_ready, not_live, standing


def _database_answers(engine: Engine) -> bool:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    return True


def worker_health(app: LeadpipeApp, settings: Settings, engine: Engine) -> WorkerHealth:
    """The app's health, created with its probes, its timer and its gauges on first use (one per app)."""
    health: WorkerHealth | None = app.shared.get("health")
    if health is not None:
        return health
    health = AppHealth(app, settings, engine)
    app.shared["health"] = health
    health.install()
    return health


class AppHealth(WorkerHealth):
    """``WorkerHealth`` of a running app: reads its consumer, checks its database, serves ``/readyz`` and ``/livez``
    and sets the ``leadpipe_worker_not_ready`` / ``_not_live`` gauges before each scrape."""

    def __init__(self, app: LeadpipeApp, settings: Settings, engine: Engine) -> None:
        super().__init__(settings)
        self.app = app
        self.engine = engine

    def fenced_since(self) -> float | None:
        """When a producer was fenced, until the worker has been assigned partitions since and has recovered its
        tables (recovery after the new assignment can take seconds: aborted transactions up to the log end)."""
        consumer = self.app.batching_consumer
        fenced_at, assigned_at = consumer.fenced_at, consumer.assigned_at
        if fenced_at is None:
            return None
        rejoined = assigned_at is not None and assigned_at >= fenced_at
        if rejoined and not (self.app.rebalancing or getattr(self.app, "in_recovery", False)):
            return None
        return fenced_at

    def ready_reasons(self) -> dict[str, str]:
        """Why the worker is not ready now (empty: ready), from the last database check."""
        consumer = self.app.batching_consumer
        return self.not_ready(consumer.partition_progress(), dict(consumer.retrying), self.fenced_since())

    def live_reasons(self) -> dict[str, str]:
        return self.not_live([self.app, self.app.batching_consumer], self.app.agents.values())

    async def check_database(self) -> None:
        """``SELECT 1`` within ``DATABASE_TIMEOUT_S`` (in a thread); the verdict stays until the next check."""
        try:
            await asyncio.wait_for(asyncio.to_thread(_database_answers, self.engine), DATABASE_TIMEOUT_S)
            self.database_ok = True
        except Exception as exc:  # the check's own failure is the verdict
            if self.database_ok:
                log.warning("worker_database_unavailable", error=type(exc).__name__)
            self.database_ok = False

    async def readiness(self) -> dict[str, str]:
        await self.check_database()
        return self.ready_reasons()

    def install(self) -> None:
        app = self.app
        not_ready_gauge, not_live_gauge, standing = health_gauges(worker_metrics(app).registry)

        def refresh() -> None:
            """Before each scrape (in a thread: reads plain state only)."""
            ready, live = self.ready_reasons(), self.live_reasons()
            for reason in NOT_READY_REASONS:
                not_ready_gauge.labels(reason).set(1 if reason in ready else 0)
            for reason in NOT_LIVE_REASONS:
                not_live_gauge.labels(reason).set(1 if reason in live else 0)
            standing.clear()
            for tp, age in self.stale(app.batching_consumer.partition_progress()).items():
                standing.labels(tp.topic, str(tp.partition)).set(round(age, 1))

        worker_metrics(app).add_refresher(refresh)
        ticks = 0

        @app.timer(interval=TICK_S)  # type: ignore[untyped-decorator]
        async def health_tick() -> None:
            nonlocal ticks
            self.tick()
            self.observe(app.batching_consumer.partition_progress())
            ticks += 1
            if ticks % DATABASE_EVERY_TICKS == 0:  # the gauge's database verdict without waiting for a probe
                await self.check_database()

        def answer(view: Any, probe: str, reasons: Mapping[str, str]) -> Any:
            body = {"status": probe if not reasons else f"not_{probe}", "reasons": dict(reasons)}
            return view.json(body, status=503 if reasons else 200)

        @app.page(READY_PATH)
        async def readyz(view: Any, request: Any) -> Any:
            return answer(view, "ready", await self.readiness())

        @app.page(LIVE_PATH)
        async def livez(view: Any, request: Any) -> Any:
            return answer(view, "live", self.live_reasons())
