"""CRM sink throughput into PostgreSQL, next to a bare COPY of the same rows, measured in the same run.

Sink: ``CrmSink.write`` in batches of ``settings.batch_size`` (500) events: one transaction per batch, the
redelivery check, the subjects read (locked against a concurrent erasure) and their identities, then one binary
COPY per table of what is new (subjects, interactions, identities, consents, one audit row per event) and one
``INSERT ... ON CONFLICT DO UPDATE`` merging the profiles of subjects that already existed; the rows are built from
the events inside the timing.
Bare: the same rows, built as dicts before the clock starts, COPYed straight into a second, identical, empty database
in the same batches, one transaction per batch, over a connection opened before the clock starts, in the same
format as the sink (``COPY ... (FORMAT BINARY)``, the same column types, JSON encoded by orjson): no reads, no
conflict handling, no row building. It still pays what any writer of these rows pays: encoding them in psycopg's C
dumpers, and, in the server, ~30-column rows with JSONB (parsed by the server even in binary format), three to
four indexes per table and a foreign-key check per child row (about 30 % of the server's CPU). The figures are per
interaction (4.05 rows each). On a shared 2-core machine client and server CPU hardly overlap, so wall time is
about client CPU + server CPU; where the time goes is in docs/sinks.md.

    .venv/bin/python bench/crm_sink.py            # BENCH_N=20000 events; LEADPIPE_TEST_POSTGRES_URL as in tests
"""

from __future__ import annotations

import gc
import os
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path
from typing import Any

import orjson
import psycopg
from _proc import cpu_s
from psycopg.types.json import set_json_dumps

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fakes.contacts import many_tagged

from pipeline.crm.read import CrmReadModel
from pipeline.db import Base, ensure_schema, make_engine
from pipeline.sinks.crm import rows
from pipeline.sinks.crm.pgcopy import copy_types
from pipeline.sinks.crm.sink import CrmSink
from pipeline.sinks.crm.writer import SINK_ACTOR, CrmWriter

N = int(os.environ.get("BENCH_N", "20000"))
BATCH = int(os.environ.get("BENCH_BATCH", "500"))
ADMIN_URL = os.environ.get("LEADPIPE_TEST_POSTGRES_URL", "postgresql://leadpipe:leadpipe@127.0.0.1:5432/leadpipe")


@contextmanager
def fresh_database() -> Iterator[str]:
    name = f"lp_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"{ADMIN_URL.rpartition('/')[0]}/{name}"
    try:
        yield url
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def sink_rows(batch: list[Any], now: datetime) -> dict[str, list[dict[str, Any]]]:
    """The rows the sink writes for a batch of new events (every subject new), built with its own row builders."""
    subjects = rows.subject_batches(batch)
    identities = {rows.identity_key(r): r for t in batch for r in rows.identity_rows(t, now)}
    added: dict[uuid.UUID, list[str]] = {}
    for row in identities.values():
        added.setdefault(row["first_event_id"], []).append(row["kind"])
    audit = rows.recorded_audit_rows(
        batch, now=now, actor=SINK_ACTOR, created=set(subjects), recollected={}, identities_added=added
    )
    return {
        "crm_subjects": [rows.subject_row(b, now) for b in subjects.values()],
        "crm_interactions": [rows.interaction_row(t, now) for t in batch],
        "crm_identities": list(identities.values()),
        "crm_consents": list(rows.consent_rows(batch, now)),
        "crm_audit": list(audit),
    }


class Clock:
    """Wall time, this process's CPU and one server backend's CPU over a stretch of work."""

    def __init__(self, backend_pid: int) -> None:
        self.pid = backend_pid
        self.wall, self.cpu, self.server = time.perf_counter(), time.process_time(), cpu_s(backend_pid)

    def stop(self) -> tuple[float, float, float | None]:
        server = cpu_s(self.pid)
        used = None if server is None or self.server is None else server - self.server
        return time.perf_counter() - self.wall, time.process_time() - self.cpu, used


def bare_copy(url: str, batches: list[dict[str, list[dict[str, Any]]]]) -> tuple[float, float, float | None]:
    """Binary COPY of pre-built rows, the way the sink COPYs them (same column types, same JSON encoder)."""
    with psycopg.connect(url) as conn:
        pid = conn.info.backend_pid
        clock = Clock(pid)
        for tables in batches:
            with conn.cursor() as cur:
                set_json_dumps(orjson.dumps, context=cur)
                for table, rows in tables.items():
                    if not rows:
                        continue
                    columns = tuple(rows[0])
                    with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
                        copy.set_types(copy_types(Base.metadata.tables[table], columns))
                        values = itemgetter(*columns)
                        for row in rows:
                            copy.write_row(values(row))
            conn.commit()
        return clock.stop()


def main() -> None:
    events = many_tagged(N, subjects=int(N * 0.8))
    batches = [events[i : i + BATCH] for i in range(0, N, BATCH)]
    gc.collect()
    gc.freeze()  # the bench holds every event; production holds one batch

    with fresh_database() as url:
        engine = make_engine(url)
        ensure_schema(engine)
        sink = CrmSink(CrmWriter(engine), migrate=False)
        with engine.connect() as conn:  # the pool hands the same connection to every batch
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        clock = Clock(pid)
        for batch in batches:
            sink.write(batch)
        sink_s, sink_cpu, sink_server = clock.stop()
        started = time.perf_counter()
        for batch in batches:
            sink.write(batch)
        redelivery_s = time.perf_counter() - started
        written = CrmReadModel(engine).interaction_count()
        engine.dispose()

    now = datetime.now(UTC)
    # unique subjects/identities across the whole run (as the sink ends up with), split in the same batches
    seen: set[tuple[str, ...]] = set()
    row_batches = []
    for batch in batches:
        tables = sink_rows(batch, now)
        tables["crm_subjects"] = [
            r for r in tables["crm_subjects"] if (k := (r["subject_key"],)) not in seen and not seen.add(k)
        ]  # type: ignore[func-returns-value]
        tables["crm_identities"] = [
            r
            for r in tables["crm_identities"]
            if (k := (r["subject_key"], r["kind"], r["value"])) not in seen and not seen.add(k)  # type: ignore[func-returns-value]
        ]
        row_batches.append(tables)
    rows_per_event = sum(len(rows) for t in row_batches for rows in t.values()) / N
    with fresh_database() as url:
        engine = make_engine(url)
        ensure_schema(engine)
        engine.dispose()
        bare_s, bare_cpu, bare_server = bare_copy(url, row_batches)

    sink_rate, bare_rate = N / sink_s, N / bare_s
    print(f"events: {N} in batches of {BATCH}; {rows_per_event:.2f} rows per event across 5 tables; {written} stored")
    print(f"CRM sink        : {sink_rate:10,.0f} interactions/s  ({sink_s:.2f} s; {cpu(sink_cpu, sink_server)})")
    print(
        f"bare COPY       : {bare_rate:10,.0f} interactions/s  ({bare_s:.2f} s; {cpu(bare_cpu, bare_server)}; "
        f"rows pre-built; {bare_rate * rows_per_event:,.0f} rows/s)"
    )
    print(f"redelivery      : {N / redelivery_s:10,.0f} events/s (all duplicates, nothing written)")
    print(f"sink / bare     : {sink_rate / bare_rate:.2f}   (target >= 0.30)")
    print(f"absolute target : 20,000 interactions/s -> {'met' if sink_rate >= 20_000 else 'NOT met'}")


def cpu(client: float, server: float | None) -> str:
    return f"CPU: client {client:.2f} s, server {'n/a' if server is None else f'{server:.2f} s'}"


if __name__ == "__main__":
    main()
