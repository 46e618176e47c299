"""Prometheus counters of the ingest edge: what came in, what was dead-lettered, how long the broker took.

They live on the app's registry (``pipeline.http.metrics.ApiMetrics``, served at ``/metrics``), beside the refusals
every router counts.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram


@dataclass
class IngestMetrics:
    registry: CollectorRegistry

    def __post_init__(self) -> None:
        self.requests = Counter(
            "leadpipe_ingest_requests",
            "Ingest requests by channel and outcome (accepted, rejected, refused, error).",
            ["channel", "outcome"],
            registry=self.registry,
        )
        self.events = Counter(
            "leadpipe_ingest_events", "Contact events published, by channel.", ["channel"], registry=self.registry
        )
        self.dead_letters = Counter(
            "leadpipe_ingest_dead_letters",
            "Payloads dead-lettered, by channel and reason code.",
            ["channel", "reason"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "leadpipe_ingest_seconds",
            "Time from request to broker confirmation.",
            ["channel"],
            registry=self.registry,
        )
