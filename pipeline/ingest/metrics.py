"""Prometheus counters of the ingest edge: what came in, what was refused and why, what was dead-lettered.

One registry per app (not the global one), so several apps in one process (tests) do not collide.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram


@dataclass
class IngestMetrics:
    registry: CollectorRegistry = field(default_factory=lambda: CollectorRegistry(auto_describe=True))

    def __post_init__(self) -> None:
        self.requests = Counter(
            "leadpipe_ingest_requests",
            "Ingest requests by channel and outcome (accepted, rejected, refused, error).",
            ["channel", "outcome"],
            registry=self.registry,
        )
        self.refusals = Counter(
            "leadpipe_ingest_refusals",
            "Requests refused before parsing: unknown_source, bad_signature, stale_timestamp, bad_token, "
            "too_large, unsupported_content_type, token kinds of the other APIs.",
            ["reason"],
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
