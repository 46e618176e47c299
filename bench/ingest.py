"""Ingest throughput (events/s) of the HTTP API and of the import path, next to raw confluent-kafka produce.

All run in the same process against the same broker, in one run:

- baseline: a raw confluent-kafka producer (acks=all, idempotent, like ours) sending pre-built byte strings of the
  same size as one event's two records (raw + normalised), then one flush;
- import: ``IngestService.submit_many`` in batches of 500, as ``leadpipe import`` does: parse, normalise, warm the
  data keys of the batch (one SQLite commit), seal, publish and wait for the broker;
- API: the FastAPI app in-process over ASGI (httpx), 16 concurrent signed web-form posts; each answer waits for
  the broker's confirmation of its own records (group commit: concurrent requests share key warm-up and publish).

Two scenarios: "new people" (every event a distinct person, so every event needs a new data key: the worst case)
and "repeat visitors" (events from a pool of 50 people whose keys already exist).

Each phase is bounded by a count and by time, so the whole run stays around a minute. Usage:
``KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 .venv/bin/python bench/ingest.py`` (BENCH_N scales the counts).
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import orjson

from pipeline.api.app import create_api
from pipeline.config import Settings, explicit_settings
from pipeline.db import ensure_schema
from pipeline.ingest.api import sign
from pipeline.ingest.service import IngestService, Submission
from pipeline.kafka.producer import ConfirmingPublisher, make_producer
from pipeline.kafka.topics import apply_topics, delete_prefixed_topics
from pipeline.logging import configure_logging
from pipeline.models.common import Channel
from pipeline.runtime import Runtime

N = int(os.environ.get("BENCH_N", "3000"))
PHASE_LIMIT_S = 15.0
SECRET = "bench-secret"
REPEAT_POOL = 50


def form(i: int, person: int | None = None) -> bytes:
    """A HubSpot-style demo request number ``i`` from person ``person`` (default: a distinct person per request)."""
    person = i if person is None else person
    return orjson.dumps(
        {
            "submittedAt": "1717600000000",
            "fields": [
                {"name": "firstname", "value": "Priya"},
                {"name": "lastname", "value": f"Raman {person}"},
                {"name": "email", "value": f"priya.raman.{person}@bigcorp.example.co.uk"},
                {"name": "mobilephone", "value": "07700 900123"},
                {"name": "company", "value": "BigCorp Ltd"},
                {"name": "country", "value": "United Kingdom"},
                {"name": "message", "value": f"Would like a demo of the analytics platform for {i} users."},
            ],
            "context": {"pageUri": "https://www.example.com/demo-request", "pageName": "Request a demo"},
        }
    )


def bench_raw(settings: Settings, count: int, record_size: int) -> tuple[int, float]:
    producer = make_producer(settings)
    topic = settings.topic("contacts.normalized")
    value = b"x" * record_size
    started = time.perf_counter()
    sent = 0
    for i in range(count):
        while True:
            try:
                producer.produce(topic, value, f"sk_{i}")
                break
            except BufferError:
                producer.poll(0.05)
        sent += 1
        producer.poll(0)
        if time.perf_counter() - started > PHASE_LIMIT_S:
            break
    producer.flush(30)
    return sent, time.perf_counter() - started


Measured = tuple[int, float, float]  # events, wall seconds, process CPU seconds (all threads)


def bench_import(service: IngestService, numbers: range, pool: int | None) -> Measured:
    started, cpu = time.perf_counter(), time.process_time()
    done = 0
    for start in range(numbers.start, numbers.stop, 500):
        batch = [
            Submission("bench-import", Channel.WEB_FORM, form(i, i % pool if pool else None), "application/json")
            for i in range(start, min(numbers.stop, start + 500))
        ]
        results = service.submit_many(batch)
        done += sum(len(r.event_ids) for r in results)
        if time.perf_counter() - started > PHASE_LIMIT_S:
            break
    return done, time.perf_counter() - started, time.process_time() - cpu


async def bench_api(runtime: Runtime, publisher: ConfirmingPublisher, numbers: range, pool: int | None) -> Measured:
    if importlib.util.find_spec("sniffio") is None:
        # httpx's in-process ASGITransport tries ``import sniffio`` on every request and, without it, searches
        # sys.path each time (~1 ms of the CLIENT's CPU, in this process); real clients do not run in our process
        sys.modules["sniffio"] = None  # type: ignore[assignment]
    app = create_api(runtime, publisher)
    transport = httpx.ASGITransport(app=app)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in numbers:
        queue.put_nowait(i)
    accepted = 0
    started, cpu = time.perf_counter(), time.process_time()

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal accepted
        while not queue.empty() and time.perf_counter() - started < PHASE_LIMIT_S:
            i = queue.get_nowait()
            body = form(i, i % pool if pool else None)
            headers = {"content-type": "application/json", **sign(SECRET, body)}
            response = await client.post("/v1/sources/bench-form", content=body, headers=headers)
            if response.status_code != 202:
                raise RuntimeError(f"unexpected {response.status_code}: {response.text}")
            accepted += len(response.json()["event_ids"])

    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        await asyncio.gather(*(worker(client) for _ in range(16)))
    return accepted, time.perf_counter() - started, time.process_time() - cpu


def main() -> None:
    configure_logging("WARNING", "console")
    servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not servers:
        raise SystemExit("set KAFKA_BOOTSTRAP_SERVERS (make bench starts a broker and sets it)")
    with tempfile.TemporaryDirectory() as home:
        settings = explicit_settings(
            environment="test",
            home=Path(home),
            kafka_bootstrap_servers=servers,
            topic_prefix=f"bench{uuid.uuid4().hex[:8]}.",
            topic_partitions=3,
            subject_key_pepper="bench-pepper",
            key_encryption_key=base64.urlsafe_b64encode(b"b" * 32).decode(),
            sources={"bench-form": {"channel": "web_form", "hmac_secret": SECRET}},
        )
        apply_topics(settings)
        try:
            runtime = Runtime(settings)
            ensure_schema(runtime.engine)
            publisher = ConfirmingPublisher(settings)
            service = IngestService(runtime, publisher)
            # one event = its raw record + its normalised record; measure the baseline with the same bytes
            sample = service.parse(Submission("size", Channel.WEB_FORM, form(-1), "application/json"))
            event_bytes = sum(len(o.payload) for ready in service.seal([sample]) for o in ready.records)
            raw_records, raw_s = bench_raw(settings, 20 * N, event_bytes // 2)  # more: it is fast
            runs = {
                "new people": (
                    bench_import(service, range(0, N), None),
                    asyncio.run(bench_api(runtime, publisher, range(N, 2 * N), None)),
                ),
                f"repeat visitors ({REPEAT_POOL} people)": (
                    bench_import(service, range(2 * N, 3 * N), REPEAT_POOL),
                    asyncio.run(bench_api(runtime, publisher, range(3 * N, 4 * N), REPEAT_POOL)),
                ),
            }
            publisher.close()
        finally:
            delete_prefixed_topics(settings)

    raw_eps = raw_records / 2 / raw_s  # two records per event
    status = "accepted" if sample.accepted else "rejected"
    print(f"ingest benchmark (one event = 2 records of ~{event_bytes // 2} B each; {status} sample)")
    print(f"  raw confluent-kafka produce   : {raw_records:>6} records in {raw_s:6.2f}s = {raw_eps:>8.0f} events/s")
    for scenario, ((imported, import_s, import_cpu), (api_events, api_s, api_cpu)) in runs.items():
        import_eps = imported / import_s
        api_eps = api_events / api_s
        print(f"  {scenario}:")
        print(
            f"    import (submit_many x500)   : {imported:>6} events  in {import_s:6.2f}s = {import_eps:>8.0f} events/s"
            f"  ({1000 * import_cpu / max(imported, 1):.2f} ms CPU/event)"
        )
        print(
            f"    HTTP API (ASGI, 16 clients) : {api_events:>6} events  in {api_s:6.2f}s = {api_eps:>8.0f} events/s"
            f"  ({1000 * api_cpu / max(api_events, 1):.2f} ms CPU/event, client included)"
        )
        print(
            f"    import / raw = {import_eps / raw_eps:.3f}   API / raw = {api_eps / raw_eps:.3f}"
            f"   API / import = {api_eps / import_eps:.3f}"
        )


if __name__ == "__main__":
    main()
