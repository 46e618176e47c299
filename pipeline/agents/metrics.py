"""The worker's Prometheus metrics, served at ``/metrics`` by faust's web server (``LEADPIPE_WORKER_WEB_ENABLED``).

What an operator alerts on without reading topics: dead letters and drops rising, a sink failing or pausing, a
rights request past its deadline. Labels are outcome codes, reasons, sink names and request states, never a subject
key or a value from an event. One registry per app (not prometheus_client's global one), so several apps in one
process (tests) do not collide. faust's own Prometheus monitor is not installed: it measures faust's per-record
stream path, which the batch agents bypass, and it would add work to every send on the hot path.

Counts are of work done, not of exactly-once outcomes: a batch redone after a crash is counted again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from faust.types import TP
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from pipeline.agents.app import LeadpipeApp
from pipeline.agents.faust_adapter import PartitionProgress
from pipeline.config import Settings
from pipeline.kafka.lag import PartitionLag, consumer_lag
from pipeline.kafka.topics import make_admin
from pipeline.logging import get_logger

log = get_logger(__name__)

METRICS_PATH = "/metrics"

#: Seconds of one processing step (a batch of up to a few hundred records).
_BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class WorkerMetrics:
    """The worker's counters and gauges. Agents record into it; ``render`` is the ``/metrics`` body."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.records = Counter(
            "leadpipe_processing_records",
            "Records handled by the processing agent (contacts.normalized: accepted, quarantined, dropped, failed: "
            "a rule raised, dead_letter: unreadable or unopenable) and the review agent (review decisions: release, "
            "confirm, dlq), by agent and outcome.",
            ["agent", "outcome"],
            registry=registry,
        )
        self.drops = Counter(
            "leadpipe_processing_drops",
            "Events dropped by the chain (also a released event can be), by reason (child, subject_erased, "
            "subject_restricted, key_destroyed, ...).",
            ["reason"],
            registry=registry,
        )
        self.channel_outcomes = Counter(
            "leadpipe_processing_channel_outcomes",
            "Events the processing chain decided, by channel and outcome (accepted, quarantined: held as spam for "
            "review, dropped): the console's spam share per channel.",
            ["channel", "outcome"],
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "leadpipe_processing_batch_seconds",
            "Time the processing or review step took per batch: rules and outputs, not Kafka.",
            ["agent"],
            buckets=_BATCH_BUCKETS,
            registry=registry,
        )
        self.sink_results = Counter(
            "leadpipe_sink_results",
            "Results a sink published on sinks.results, by sink and status (done, not_applicable, failed).",
            ["sink", "status"],
            registry=registry,
        )
        self.sink_dead_letters = Counter(
            "leadpipe_sink_dead_letters",
            "Records a sink dead-lettered on sinks.dlq, by sink and reason.",
            ["sink", "reason"],
            registry=registry,
        )
        self.sink_pauses = Counter(
            "leadpipe_sink_pauses",
            "Pauses of a sink (backpressure, retryable records, rate limit), by sink.",
            ["sink"],
            registry=registry,
        )
        self.spam_engine_results = Counter(
            "leadpipe_spam_engine_results",
            "Answers of the spam engine to the processing agent, by result: scored, or why there was no verdict "
            "(timeout, unreachable, error); each unanswered event waited or went to review.",
            ["result"],
            registry=registry,
        )
        self.spam_learned = Counter(
            "leadpipe_spam_learned",
            "Reviewer decisions taught to the spam filter, by part (engine, classifier), label and status "
            "(learned, relearned, duplicate, refused, unavailable: `leadpipe spam rebuild` teaches it again).",
            ["part", "label", "status"],
            registry=registry,
        )
        self._refreshers: list[Callable[[], None]] = []

    def observe_batch(
        self,
        agent: str,
        counts: Mapping[str, int],
        drop_reasons: Iterable[str],
        seconds: float,
        by_channel: Mapping[tuple[str, str], int] | None = None,
    ) -> None:
        """One batch of the processing or review agent: outcome counts (overall and, for the events the chain ran on,
        per channel), the reason of each drop, the step's time."""
        for outcome, count in counts.items():
            self.records.labels(agent, outcome).inc(count)
        for (channel, outcome), count in (by_channel or {}).items():
            self.channel_outcomes.labels(channel, outcome).inc(count)
        for reason in drop_reasons:
            self.drops.labels(reason).inc()
        self.batch_seconds.labels(agent).observe(seconds)

    def observe_sink(self, sink: str, statuses: Iterable[str], dead_letter_reasons: Iterable[str]) -> None:
        """One sink batch: the status of each published result and the reason of each dead letter."""
        for status in statuses:
            self.sink_results.labels(sink, status).inc()
        for reason in dead_letter_reasons:
            self.sink_dead_letters.labels(sink, reason).inc()

    def track_rights(self, pending_counts: Callable[[], tuple[Mapping[str, int], int]]) -> None:
        """Gauges of the rights requests not completed, by state, and of those overdue, read on each scrape from
        ``pending_counts``. Only the worker that runs the rights agent tracks them: elsewhere they would read 0."""
        requests = Gauge(
            "leadpipe_rights_requests",
            "Rights requests not completed, by state (open; attention: a sink failed after its retries).",
            ["state"],
            registry=self.registry,
        )
        overdue = Gauge(
            "leadpipe_rights_requests_overdue",
            "Rights requests not completed and past their deadline (one month, or the recorded extension).",
            registry=self.registry,
        )

        def refresh() -> None:
            by_state, late = pending_counts()
            for state in ("open", "attention"):
                requests.labels(state).set(by_state.get(state, 0))
            overdue.set(late)

        self.add_refresher(refresh)

    def track_partitions(self, progress: Callable[[], Mapping[TP, PartitionProgress]]) -> None:
        """Gauges of each assigned partition's records not committed yet (log end minus committed offset), read on
        each scrape from ``progress``: the worker's own stall signal, in place of faust's stall warnings, which cannot
        see the batch agents' commits (``BatchingConsumerThread.verify_event_path``). A partition whose gauge stays
        above zero while the log end does not move is stuck; one that is paused on purpose (backpressure, a
        database outage) shows the same, and the ``sink_pauses`` counter or the pause logs say why."""
        uncommitted = Gauge(
            "leadpipe_worker_uncommitted_records",
            "Records of an assigned partition between the committed offset and the log end, by topic and partition "
            "(absent until both are known).",
            ["topic", "partition"],
            registry=self.registry,
        )

        def refresh() -> None:
            uncommitted.clear()  # partitions revoked since the last scrape go away
            for tp, where in dict(progress()).items():
                if where.end is not None and where.committed is not None:
                    uncommitted.labels(tp.topic, str(tp.partition)).set(max(where.end - where.committed, 0))

        self.add_refresher(refresh)

    def track_lag(self, read_lag: Callable[[], Iterable[PartitionLag]]) -> None:
        """Gauge of the consumer lag of the worker's group per topic and partition, read on each scrape from
        ``read_lag`` (the group's, not this replica's share: dashboards take the max over replicas)."""
        gauge = Gauge(
            "leadpipe_consumer_lag",
            "Records behind the end of each partition (last stable offset), by consumer group, topic and partition.",
            ["group", "topic", "partition"],
            registry=self.registry,
        )

        def refresh() -> None:
            rows = list(read_lag())
            gauge.clear()  # partitions no longer in the group's offsets disappear instead of showing a stale lag
            for row in rows:
                gauge.labels(row.group, row.topic, str(row.partition)).set(row.lag)

        self.add_refresher(refresh)

    def add_refresher(self, refresh: Callable[[], None]) -> None:
        """``refresh`` runs (in a thread: it may query the database) before each scrape, to set gauges."""
        self._refreshers.append(refresh)

    def refresh(self) -> None:
        """Run every refresher; one that fails leaves its gauges as they were and the scrape still answers."""
        for refresh in self._refreshers:
            try:
                refresh()
            except Exception as exc:
                log.warning("metrics_refresh_failed", error=type(exc).__name__)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric (after ``refresh``)."""
        self.refresh()
        return generate_latest(self.registry)


def worker_metrics(app: LeadpipeApp) -> WorkerMetrics:
    """The app's metrics, created with their ``/metrics`` page on first use (agents of one app share them)."""
    metrics: WorkerMetrics | None = app.shared.get("metrics")
    if metrics is None:
        metrics = WorkerMetrics()
        app.shared["metrics"] = metrics
        current = metrics

        def progress() -> Mapping[TP, PartitionProgress]:
            """Read at scrape time: touching ``app.consumer`` now would bind the app to an event loop too early."""
            return app.batching_consumer.partition_progress()

        metrics.track_partitions(progress)

        @app.page(METRICS_PATH)
        async def metrics_page(self: Any, request: Any) -> Any:
            body = await asyncio.to_thread(current.render)
            # As a header: aiohttp refuses a charset inside ``content_type``, and Prometheus' type carries one.
            return self.bytes(body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return metrics


def track_consumer_lag(app: LeadpipeApp, settings: Settings) -> None:
    """Serve the lag of the app's own consumer group (its faust app id) as ``leadpipe_consumer_lag``."""
    admin = make_admin(settings)
    group: str = app.conf.id

    def read() -> list[PartitionLag]:
        try:
            return consumer_lag(settings, [group], admin=admin)
        except LookupError:  # the group exists once the first worker has joined it
            return []

    worker_metrics(app).track_lag(read)
