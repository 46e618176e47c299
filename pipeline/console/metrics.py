"""The numbers behind the console's operational charts, read from the Prometheus metrics the product serves: each
worker's ``/metrics`` (``LEADPIPE_CONSOLE_METRICS_URLS``) and this API's own (``pipeline.http.health.metrics_text``).

Reading the served metrics, not a second count kept for the console, means a chart and an alert can never disagree.
Counters are summed over the addresses (replicas); an address that does not answer is named on the page instead.
An address ``dns+http://host:port/path`` is every address ``host`` resolves to (a headless Service's pods: the Helm
chart configures the console so), since a Service's one address would answer with one pod's counters at a time.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families

#: What the processing chain decides per channel, in the order the spam-share chart stacks them.
CHANNEL_OUTCOMES = ("accepted", "quarantined", "dropped")
#: The sink-health chart's series.
SINK_SERIES = ("dead letters", "pauses")
#: The ingest edge's dead letters count as this sink's column (malformed or oversized payloads, unknown sources).
INGEST = "ingest"

Labels = tuple[tuple[str, str], ...]


@dataclass
class Scrape:
    """Counter samples by name (``..._total``) and sorted labels, summed over every answer; who did not answer."""

    samples: dict[str, dict[Labels, float]] = field(default_factory=dict)
    unreachable: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        """One ``/metrics`` answer's counters added in."""
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    by_labels = self.samples.setdefault(sample.name, {})
                    labels = tuple(sorted(sample.labels.items()))
                    by_labels[labels] = by_labels.get(labels, 0.0) + sample.value

    def counts(self, name: str, keys: Sequence[str]) -> dict[tuple[str, ...], int]:
        """``name``'s samples summed by the values of the labels ``keys``."""
        out: dict[tuple[str, ...], int] = {}
        for labels, value in self.samples.get(name, {}).items():
            found = dict(labels)
            key = tuple(found.get(k, "") for k in keys)
            out[key] = out.get(key, 0) + int(value)
        return out


#: An address whose host name stands for every replica (Kubernetes: a headless Service's name resolves to each
#: pod's address), the convention of Thanos and Cortex: ``dns+http://rel-leadpipe-worker:6066/metrics``.
DNS_PREFIX = "dns+"

Resolve = Callable[[str, int], Awaitable[list[str]]]


async def addresses(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (TCP), each once, in the resolver's order."""
    found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in found))


async def expand(url: str, resolve: Resolve = addresses) -> list[str]:
    """The addresses to scrape for one configured ``url``: itself, or for ``dns+http(s)://host:port/path`` one per
    address the host resolves to (``OSError`` when it resolves to none)."""
    if not url.startswith(DNS_PREFIX):
        return [url]
    target = httpx.URL(url.removeprefix(DNS_PREFIX))
    port = target.port or (443 if target.scheme == "https" else 80)
    found = await resolve(target.host, port)
    if not found:
        raise OSError(f"{target.host} resolves to no address")
    return [str(target.copy_with(host=address)) for address in found]


async def scrape(urls: Iterable[str], own: bytes, timeout_s: float = 2.0, resolve: Resolve = addresses) -> Scrape:
    """The API's own metrics (``own``) and every worker address's (each replica's, ``expand``), added up."""
    result = Scrape()
    result.add(own.decode())
    async with httpx.AsyncClient(timeout=timeout_s) as client:
        for configured in urls:
            try:
                targets = await expand(configured, resolve)
            except (OSError, httpx.InvalidURL, ValueError):
                result.unreachable.append(configured)
                continue
            for url in targets:
                try:
                    answer = await client.get(url)
                    answer.raise_for_status()
                    result.add(answer.text)
                except (httpx.HTTPError, ValueError):
                    result.unreachable.append(url)
    return result


def spam_share(found: Scrape) -> dict[tuple[str, str], int]:
    """(channel, outcome) -> events the chain decided (``leadpipe_processing_channel_outcomes``)."""
    counts = found.counts("leadpipe_processing_channel_outcomes_total", ("channel", "outcome"))
    return {(channel, outcome): n for (channel, outcome), n in counts.items() if outcome in CHANNEL_OUTCOMES}


def shares(counts: Mapping[tuple[str, str], int]) -> dict[str, float]:
    """channel -> the share of its decided events held as spam (quarantined), in per cent."""
    totals: dict[str, int] = {}
    for (channel, _), n in counts.items():
        totals[channel] = totals.get(channel, 0) + n
    return {c: 100.0 * counts.get((c, "quarantined"), 0) / t for c, t in sorted(totals.items()) if t}


def sink_health(found: Scrape) -> dict[tuple[str, str], int]:
    """(sink, "dead letters" | "pauses") -> count, per sink; the ingest edge's dead letters as ``INGEST``."""
    out: dict[tuple[str, str], int] = {}
    for (sink,) in found.counts("leadpipe_sink_results_total", ("sink",)):  # a healthy sink shows as 0 and 0
        out[(sink, "dead letters")] = out[(sink, "pauses")] = 0
    for (sink,), n in found.counts("leadpipe_sink_dead_letters_total", ("sink",)).items():
        out[(sink, "dead letters")] = out.get((sink, "dead letters"), 0) + n
    for (sink,), n in found.counts("leadpipe_sink_pauses_total", ("sink",)).items():
        out[(sink, "pauses")] = n
    ingest = sum(found.counts("leadpipe_ingest_dead_letters_total", ()).values())
    if ingest:
        out[(INGEST, "dead letters")] = ingest
    return out
