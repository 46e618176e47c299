"""The CRM sink: one transaction per batch through ``CrmWriter.write_events``.

A lost connection, a lock timeout or a missing table pauses the sink (backpressure): the batch is offered again and
nothing is lost. A record the database refuses (a value that violates a constraint) is found by splitting the
batch in halves, and only that record is dead-lettered; the rest of the batch is written.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

from pipeline.db import ensure_schema
from pipeline.logging import get_logger, scrub_text
from pipeline.models.tagged import TaggedEvent
from pipeline.sinks.base import BatchingSink, RecordResult, SinkBackpressureError
from pipeline.sinks.crm.writer import CrmWriter

log = get_logger(__name__)


class CrmSink(BatchingSink):
    name = "crm"

    def __init__(self, writer: CrmWriter, *, retry_after_s: float = 2.0, migrate: bool = True) -> None:
        self.writer = writer
        self.retry_after_s = retry_after_s
        self._migrate = migrate

    def setup(self) -> None:
        if self._migrate:
            ensure_schema(self.writer.engine)

    def write(self, batch: Sequence[TaggedEvent]) -> list[RecordResult]:
        if not batch:
            return []
        try:
            report = self.writer.write_events(batch)
        except (IntegrityError, DataError) as exc:
            if len(batch) == 1:
                event = batch[0].event
                log.warning("crm_record_refused", event_id=str(event.event_id), error=type(exc.orig).__name__)
                return [RecordResult.failed(event.event_id, "crm_constraint", _describe(exc))]
            # A concurrent writer (a zombie after a rebalance) makes the whole batch conflict once: try it whole
            # again before blaming one record; then split until the refused record is alone.
            try:
                report = self.writer.write_events(batch)
            except (IntegrityError, DataError):
                half = len(batch) // 2
                return self.write(batch[:half]) + self.write(batch[half:])
        except DBAPIError as exc:  # connection lost, lock timeout, database missing: pause and try again
            log.warning("crm_unavailable", error=type(exc.orig).__name__, events=len(batch))
            raise SinkBackpressureError(self.retry_after_s, f"database unavailable: {type(exc.orig).__name__}") from exc
        results = []
        for tagged in batch:
            event = tagged.event
            if event.event_id in report.superseded:
                results.append(
                    RecordResult.not_applicable(
                        event.event_id, "subject_erased", "received before the subject's erasure; not written"
                    )
                )
            elif event.event_id in report.new:
                results.append(RecordResult.written(event.event_id, external_id=event.subject_key))
            else:
                results.append(
                    RecordResult.written(event.event_id, external_id=event.subject_key, message="already stored")
                )
        return _first_per_event(results)

    def close(self) -> None:
        self.writer.engine.dispose()


def _describe(exc: DBAPIError) -> str:
    """The database's complaint without the offending value (a driver message may quote the row)."""
    text = str(exc.orig).splitlines()[0] if exc.orig is not None else type(exc).__name__
    return scrub_text(f"{type(exc.orig).__name__}: {text}")[:500]


def _first_per_event(results: list[RecordResult]) -> list[RecordResult]:
    """One result per event id (a batch may carry a redelivered event twice)."""
    seen: set[object] = set()
    unique = []
    for result in results:
        if result.event_id not in seen:
            seen.add(result.event_id)
            unique.append(result)
    return unique
