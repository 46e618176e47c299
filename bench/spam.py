"""Spam path speed: adapter (e-mail) + render + engine + classifier + chain, in batches as an agent would call it.

Usage: ``.venv/bin/python bench/spam.py [--messages N] [--batch B] [--concurrency 4,8,16]`` (or ``BENCH_SPAM_N``,
``BENCH_SPAM_CONCURRENCY``)

The engine is ``LEADPIPE_TEST_SPAM_ENGINE_URL`` (+ ``_CONTROLLER_URL``) if set, else the test suite's own
(``LocalSpamEngine.for_tests()``, started if needed). Baselines measured in the same run, on the same messages:

- the chain alone (policy rules, no engine): what the spam path adds to the processing step;
- the engine's raw ``/checkv2`` on pre-rendered bytes at the same concurrency (httpx, asyncio): the ceiling;
- the same raw calls from a thread pool of blocking urllib3 calls (what ``SpamEngineClient`` does): why the
  client is a thread pool and not asyncio.

Prints messages/s, per-batch p50/p99 latency (every message of a batch waits for the batch), the ratio
full path / raw engine, and the load average before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import urllib3

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _spam_devset import DevItem, build_devset

from pipeline.models.common import Channel
from pipeline.models.contact import ContactEvent
from pipeline.models.spam import EngineMessage
from pipeline.policy.model import load_policy
from pipeline.processors import ChainContext, compile_policy, run_chain
from pipeline.processors.text import person_text
from pipeline.sources import email as email_source
from pipeline.sources.base import SourceContext
from pipeline.spam.classifier import NaiveBayes, feature_key, features
from pipeline.spam.engine import SpamEngineClient
from pipeline.spam.launcher import LocalSpamEngine
from pipeline.spam.prior import keyed_prior
from pipeline.spam.render import render_message
from pipeline.spam.signals import SpamSignals

PEPPER = b"bench-pepper"


def engine_urls() -> tuple[str, str, LocalSpamEngine | None]:
    """(scoring URL, controller URL, the launcher to release at the end, or None for an engine given by URL)."""
    url = os.environ.get("LEADPIPE_TEST_SPAM_ENGINE_URL")
    if url:
        return url, os.environ["LEADPIPE_TEST_SPAM_ENGINE_CONTROLLER_URL"], None
    engine = LocalSpamEngine.for_tests()
    engine.up()
    return engine.url, engine.controller_url, engine


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def adapt(item: DevItem) -> tuple[ContactEvent, bytes | None]:
    """E-mail goes through the e-mail adapter from its raw bytes (as ingest does); other channels' adapters are
    measured by bench/ingest.py, so their events are used as built."""
    if item.raw is None:
        return item.event, None
    ctx = SourceContext.for_payload(
        item.raw, source_id="bench-mail", channel=Channel.EMAIL, content_type="message/rfc822",
        received_at=item.event.received_at, pepper=PEPPER,
    )  # fmt: skip
    events = email_source.parse(item.raw, ctx)
    return events[0], item.raw


def full_path(
    signals: SpamSignals, items: list[DevItem], batch: int, adapter: bool = True
) -> tuple[float, list[float], int]:
    """``adapter=False``: the events as the worker gets them (the adapters run at ingest), raw e-mail beside them.
    The policy is compiled before the clock starts, as a worker does once at its start."""
    compiled = compile_policy(load_policy())
    latencies: list[float] = []
    unavailable = 0
    started = time.perf_counter()
    for start in range(0, len(items), batch):
        t0 = time.perf_counter()
        chunk = items[start : start + batch]
        adapted = [adapt(item) for item in chunk] if adapter else [(item.event, item.raw) for item in chunk]
        engine, classifier = signals.for_batch(adapted)
        ctx = ChainContext(policy=compiled, now=datetime.now(UTC), pepper=PEPPER, engine=engine, classifier=classifier)
        for event, _ in adapted:
            run_chain(event, ctx)
        unavailable += sum(r.kind != "scored" for r in engine.values())
        latencies.append(time.perf_counter() - t0)
    return time.perf_counter() - started, latencies, unavailable


def chain_alone(items: list[DevItem]) -> float:
    compiled = compile_policy(load_policy())
    ctx = ChainContext(policy=compiled, now=datetime.now(UTC), pepper=PEPPER)
    started = time.perf_counter()
    for item in items:
        run_chain(item.event, ctx)
    return time.perf_counter() - started


async def raw_async(url: str, messages: list[EngineMessage], concurrency: int) -> float:
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:

        async def one(message: EngineMessage) -> None:
            async with gate:
                (await client.post(f"{url}/checkv2", content=message.data)).raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(one(m) for m in messages))
        return time.perf_counter() - started


def raw_threads(url: str, messages: list[EngineMessage], concurrency: int) -> float:
    """The same calls from a thread pool of blocking clients, with the library ``SpamEngineClient`` uses (urllib3)."""
    pool = urllib3.PoolManager(maxsize=concurrency, retries=False, timeout=30.0)

    def work(index: int) -> None:
        for message in messages[index::concurrency]:
            if pool.request("POST", f"{url}/checkv2", body=message.data).status != 200:
                raise SystemExit("the engine refused a message")

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool_threads:
        list(pool_threads.map(work, range(concurrency)))
    elapsed = time.perf_counter() - started
    pool.clear()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=int(os.environ.get("BENCH_SPAM_N", "1200")))
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--concurrency", default=os.environ.get("BENCH_SPAM_CONCURRENCY", "4,8,16"))
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    url, controller, launcher = engine_urls()
    try:
        run(args, url, controller)
    finally:
        if launcher is not None:
            launcher.release()  # stops it unless a test session or another bench still uses it


def run(args: argparse.Namespace, url: str, controller: str) -> None:
    every = build_devset(per_group=max(args.messages // 11 + 1, 10))
    items = every[: args.messages]
    model = NaiveBayes()
    for item in every[-600:]:  # a trained model (its size, not its quality, is what costs time here)
        model.add([feature_key(PEPPER, f) for f in features(person_text(item.event))], item.label)
    rendered = [render_message(item.event, item.raw) for item in items]
    emails = sum(item.raw is not None for item in items)
    print(f"{len(items)} messages ({emails} e-mails through the adapter), batches of {args.batch}")

    packaged = load_policy().spam.classifier  # the full path judges as the packaged policy says (prior, smoothing)
    started = time.perf_counter()
    keyed_prior(PEPPER)  # what the first verdict of a process pays once (read the file, key its features)
    print(f"shipped prior: read and keyed once per process in {(time.perf_counter() - started) * 1000:.0f} ms")
    elapsed = chain_alone(items)
    print(f"baseline chain alone (no engine): {len(items) / elapsed:,.0f} messages/s")
    for concurrency in (int(c) for c in args.concurrency.split(",")):
        raw = asyncio.run(raw_async(url, rendered, concurrency))
        threads = raw_threads(url, rendered, concurrency)
        with SpamEngineClient(url, controller, timeout_s=10, concurrency=concurrency) as client:
            signals = SpamSignals(
                client, None, PEPPER, budget_s=10.0, model=model, prior=packaged.prior, smoothing=packaged.smoothing
            )
            total, latencies, unavailable = full_path(signals, items, args.batch)
        full_rate, raw_rate = len(items) / total, len(items) / raw
        p50, p99 = statistics.median(latencies) * 1000, percentile(latencies, 0.99) * 1000
        thread_rate = len(items) / threads
        print(
            f"concurrency {concurrency}: full path {full_rate:,.0f} messages/s (batch p50 {p50:.0f} ms, "
            f"p99 {p99:.0f} ms, {unavailable} unavailable); raw /checkv2 thread pool {thread_rate:,.0f}/s, "
            f"asyncio {raw_rate:,.0f}/s; full/raw(thread pool) {full_rate / thread_rate:.2f}; "
            f"load {os.getloadavg()[0]:.2f}"
        )
    prior = packaged.prior
    rates = {}
    for name, policy in (("without the prior", None), ("with the shipped prior (packaged policy)", prior)):
        with SpamEngineClient(url, controller, timeout_s=10, concurrency=8) as client:
            signals = SpamSignals(
                client, None, PEPPER, budget_s=10.0, model=model, prior=policy, smoothing=packaged.smoothing
            )
            total, latencies, _ = full_path(signals, items, args.batch, adapter=False)
        rates[name] = len(items) / total
        print(
            f"concurrency 8, worker's part only (render + engine + classifier + chain; adapters run at ingest), "
            f"{name}: {rates[name]:,.0f} messages/s, batch p99 {percentile(latencies, 0.99) * 1000:.0f} ms; "
            f"load {os.getloadavg()[0]:.2f}"
        )
    without, with_prior = rates.values()
    print(f"worker's part with the prior / without: {with_prior / without:.2f}")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
