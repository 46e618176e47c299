"""The processing step alone (no Kafka): what one worker's rules cost per event, next to a bare parse of the same bytes.

``bench/processing.py`` measures the whole worker against the broker; this one isolates the pure part of it,
``ProcessingStep.process`` (parse the record, open the sealed body, run the chain, build the outputs), so a change to
the rules can be measured in seconds on a shared machine. Baseline, in the same run: ``orjson.loads`` of the same
record bytes plus the same AES-GCM open of each sealed body (what any processor of these records must at least do).

Events: ``bench/processing.py``'s synthetic mix (web forms, chat, e-mail, customers; ~5% spam, ~2% children),
sealed with per-subject keys in a SQLite key store; batches of 500 as the worker hands them over. Each figure is the
best of ``BENCH_REPS`` rounds (the machine is shared; the least disturbed round is the closest to the code's cost).

    .venv/bin/python bench/processing_step.py          # BENCH_STEP_N=10000 BENCH_REPS=5
"""

from __future__ import annotations

import base64
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from processing import synthetic

from pipeline.agents.app import policy_for
from pipeline.agents.processing import Consumed, ProcessingStep
from pipeline.agents.views import ProcessingState
from pipeline.config import explicit_settings
from pipeline.crypto.sealing import subject_scope
from pipeline.db import ensure_schema
from pipeline.models.records import ContactRecord
from pipeline.runtime import Runtime, tune_gc

N = int(os.environ.get("BENCH_STEP_N", "10000"))
REPS = int(os.environ.get("BENCH_REPS", "5"))
BATCH = 500


def best_of(rounds: int, run: Callable[[], None]) -> float:
    """Seconds of the fastest of ``rounds`` runs."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="leadpipe-bench-step-"))
    settings = explicit_settings(
        environment="test",
        home=home,
        kafka_bootstrap_servers="127.0.0.1:1",  # never contacted
        subject_key_pepper="bench-pepper",
        key_encryption_key=base64.urlsafe_b64encode(os.urandom(32)).decode(),
        log_level="WARNING",
    )
    runtime = Runtime(settings)
    ensure_schema(runtime.engine)
    rng = random.Random(42)
    events = [synthetic(i, rng) for i in range(N)]
    runtime.keystore.warm(subject_scope(e.subject_key) for e in events)
    sealed = [runtime.codec.seal_contact(e) for e in events]
    batch = [Consumed(0, i, r.subject_key.encode(), r.model_dump_json().encode()) for i, r in enumerate(sealed)]
    step = ProcessingStep.from_runtime(runtime, policy_for(settings))
    sealer = runtime.codec.sealer
    print(f"events: {N}, ~{sum(len(c.value or b'') for c in batch) // N} bytes each, batches of {BATCH}")

    def baseline() -> None:
        runtime.keystore.preload(r.sealed.key_id for r in sealed)  # as the step does per batch
        for item, record in zip(batch, sealed, strict=True):
            orjson.loads(item.value or b"")
            sealer.open(record.sealed)

    def chain() -> None:
        state = ProcessingState.in_memory()
        for start in range(0, N, BATCH):
            step.process(batch[start : start + BATCH], state)

    chain()  # warm every cache once
    untuned = best_of(REPS, chain)  # Python's own collector settings
    tune_gc(settings.gc_gen0_threshold)  # as the worker runs (``run_worker``), from here on
    bare = best_of(REPS, baseline)
    full = best_of(REPS, chain)
    assert ContactRecord.model_validate_json(batch[0].value or b"").event_id == events[0].event_id  # real records
    print(f"baseline orjson parse + AES-GCM open: {N / bare:,.0f} events/s ({bare / N * 1e6:.1f} us/event)")
    print(f"processing step                     : {N / full:,.0f} events/s ({full / N * 1e6:.1f} us/event)")
    print(f"ratio step/baseline: {bare / full:.3f}  (best of {REPS})")
    print(
        f"the step with Python's default collector (gen0 700, nothing frozen): {untuned / N * 1e6:.1f} us/event; "
        f"with the worker's (gen0 {settings.gc_gen0_threshold:,}, start-up frozen): {untuned / full:.2f}x as fast"
    )
    print("context: the worker needs ~100 us/event in all (step + Kafka) for 10,000 events/s")


if __name__ == "__main__":
    main()
