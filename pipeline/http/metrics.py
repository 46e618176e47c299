"""The HTTP app's Prometheus registry, served at ``/metrics``, and the refusals every router counts.

One registry per app (not the global one), so several apps in one process (tests) do not collide. Areas add their
own counters to ``registry`` (``pipeline.ingest.metrics``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter


@dataclass
class ApiMetrics:
    registry: CollectorRegistry = field(default_factory=lambda: CollectorRegistry(auto_describe=True))

    def __post_init__(self) -> None:
        self.refusals = Counter(
            "leadpipe_ingest_refusals",
            "Requests refused before parsing: unknown_source, bad_signature, stale_timestamp, bad_token, "
            "too_large, unsupported_content_type, token kinds of the other APIs.",
            ["reason"],
            registry=self.registry,
        )
