"""Prometheus counters of the ingest edge: what came in, what was dead-lettered, how long the broker took.

They live on the app's registry (``pipeline.http.metrics.ApiMetrics``, served at ``/metrics``), beside the refusals
every router counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram

from pipeline.models.common import Channel


@dataclass
class IngestMetrics:
    """The counters, and the per-request calls of the webhook path with their labelled children kept: ``labels()``
    validates and looks its arguments up under a lock, ~10 us a call, three calls a request (issue 20)."""

    registry: CollectorRegistry
    _requests: dict[tuple[Channel, str], Counter] = field(default_factory=dict, init=False, repr=False)
    _events: dict[Channel, Counter] = field(default_factory=dict, init=False, repr=False)
    _latency: dict[Channel, Histogram] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.requests = Counter(
            "leadpipe_ingest_requests",
            "Ingest requests by channel and outcome (accepted, replayed, ignored, rejected, refused, error, "
            "aborted: the client hung up before its body was in).",
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

    def request(self, channel: Channel, outcome: str) -> None:
        """Count one request of ``channel`` by ``outcome`` (accepted, replayed, ignored, rejected, refused, error,
        aborted)."""
        if (child := self._requests.get((channel, outcome))) is None:
            child = self._requests[channel, outcome] = self.requests.labels(channel=channel.value, outcome=outcome)
        child.inc()

    def published(self, channel: Channel, events: int) -> None:
        """Count the events an accepted request published."""
        if (child := self._events.get(channel)) is None:
            child = self._events[channel] = self.events.labels(channel=channel.value)
        child.inc(events)

    def took(self, channel: Channel, seconds: float) -> None:
        """Observe how long a request took from its parse to its answer (the broker's confirmation, when accepted)."""
        if (child := self._latency.get(channel)) is None:
            child = self._latency[channel] = self.latency.labels(channel=channel.value)
        child.observe(seconds)
