"""The rights agent: carries out every command on ``rights.commands`` in every sink, plus three timers (retrying
unfinished requests, the retention sweep, and publishing the identity changes people made, users and keys, from
their outbox table onto the audit topic: the one process that always runs beside the database, once per cluster).

It also reads the audit topic for one kind of line: the chain's drop of a new contact from a restricted subject
(policy 9.4: their data is not processed further). Each is filed in the rights audit under the restriction that
stood, so the DPO sees that the person wrote (``RequestTracker.file_contact_while_restricted``) instead of the
contact vanishing without a word.

Thin on purpose: parsing, retries and evidence live in ``pipeline.rights.executor``. The executor's work is
blocking (SQL, HTTP, confirmed produce), so it runs in a thread, one command at a time per partition: commands are
keyed by subject key, so one subject's requests are carried out in the order the DPO issued them.

Its outputs (suppression, rights.status, audit) are published with a confirming producer rather than through
faust's transaction: they are idempotent, full-state records, and the suppression record must be visible to the
chain at once, not at the next transaction commit. A command whose execution raised (the database is down) is
retried with backoff until it goes through: the agent never acknowledges a command it did not carry out.
A command that cannot even be parsed is dead-lettered, never dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError

from pipeline import tracing
from pipeline.agents.app import LeadpipeApp
from pipeline.agents.health import Pauses, worker_health
from pipeline.agents.metrics import worker_metrics
from pipeline.identity.store import IdentityStore
from pipeline.ingest.service import identity_hints
from pipeline.kafka.producer import ConfirmingPublisher, Outgoing
from pipeline.logging import get_logger
from pipeline.models.records import DeadLetter
from pipeline.models.rights import AuditRecord, RightsCommand
from pipeline.rights.commands import RightsDesk
from pipeline.rights.effects.crm import CrmRights
from pipeline.rights.effects.export import expire_exports
from pipeline.rights.executor import RightsExecutor
from pipeline.rights.hubspot_wiring import hubspot_parts
from pipeline.rights.service import build_executor
from pipeline.rights.sweep import RetentionSweep
from pipeline.rights.tracker import RequestTracker
from pipeline.runtime import Runtime
from pipeline.sinks.base import backoff_delay
from pipeline.topics import AUDIT_TOPIC, PROCESSING_DLQ_TOPIC, RIGHTS_COMMANDS_TOPIC

log = get_logger(__name__)

#: How long a request may stay unfinished before the retry timer runs it again.
RETRY_AFTER = timedelta(minutes=2)


class RightsWorker:
    """What the agent and the timers share: one publisher, one executor, one sweep."""

    def __init__(
        self,
        runtime: Runtime,
        publisher: ConfirmingPublisher,
        executor: RightsExecutor,
        pauses: Pauses | None = None,
    ) -> None:
        self.runtime = runtime
        self.pauses = pauses
        self.publisher = publisher
        self.executor = executor
        self.sweeper = RetentionSweep(CrmRights(runtime.engine), RightsDesk(RequestTracker(runtime.engine), publisher))
        self.identity = IdentityStore(runtime.engine, runtime.settings.api_key_pepper_bytes())
        self.tracker = RequestTracker(runtime.engine)

    @classmethod
    def build(cls, runtime: Runtime, pauses: Pauses | None = None) -> RightsWorker:
        publisher = ConfirmingPublisher(runtime.settings)
        effect, reader = hubspot_parts(runtime)
        executor = build_executor(runtime, publisher, hubspot=effect, hubspot_reader=reader)
        return cls(runtime, publisher, executor, pauses)

    def parse(self, value: bytes, where: dict[str, Any]) -> RightsCommand | None:
        try:
            return RightsCommand.model_validate_json(value)
        except ValidationError as exc:
            dead = DeadLetter.build(
                stage="rights",
                reason="invalid_rights_command",
                error=f"{exc.error_count()} validation error(s): "
                + "; ".join(".".join(str(p) for p in e["loc"]) or "payload" for e in exc.errors()[:10]),
                failed_at=datetime.now(UTC),
                seal=lambda letter_id: self.runtime.codec.seal_payload(  # erasing anyone it names destroys it too
                    value,
                    subject_key=None,
                    record_id=letter_id,
                    shared_with=identity_hints(value, self.runtime.pepper),
                ),
                source_topic=RIGHTS_COMMANDS_TOPIC,
                source_partition=where.get("partition"),
                source_offset=where.get("offset"),
            )
            self.publisher.publish([Outgoing(PROCESSING_DLQ_TOPIC, None, dead)])
            log.warning("rights.invalid_command", **where)
            return None

    async def handle(self, value: bytes, where: dict[str, Any]) -> None:
        command = await asyncio.to_thread(self.parse, value, where)
        if command is None:
            return
        attempt = 0
        while True:
            try:
                statuses = await asyncio.to_thread(self.executor.execute, command)
                log.info(
                    "rights.command_handled",
                    request_id=str(command.request_id),
                    kind=command.kind.value,
                    sinks_run=len(statuses),
                    **where,
                )
                if self.pauses is not None:
                    self.pauses.resumed("rights")
                return
            except Exception as exc:  # the tracker or the broker is unreachable: wait and try the same command again
                if self.pauses is not None and isinstance(exc, DBAPIError):
                    self.pauses.paused("rights", "database")
                log.exception("rights.execute_failed", request_id=str(command.request_id), attempt=attempt + 1)
                await asyncio.sleep(backoff_delay(attempt, 1.0, 60.0))
                attempt += 1

    async def restricted_contact(self, value: bytes) -> None:
        """File an audit line that is a restricted subject's dropped contact (every other line is left alone); a
        database outage is waited out, never skipped: the DPO must learn of every such contact."""
        if b"subject_restricted" not in value:  # most lines are something else: not even parsed
            return
        try:
            line = AuditRecord.model_validate_json(value)
        except ValidationError:
            log.warning("rights.unreadable_audit_line")
            return
        if line.action != "dropped" or line.subject_key is None:
            return
        attempt = 0
        while True:
            try:
                filed = await asyncio.to_thread(self.tracker.file_contact_while_restricted, line)
            except Exception:
                log.exception("rights.contact_filing_failed", attempt=attempt + 1)
                await asyncio.sleep(backoff_delay(attempt, 1.0, 60.0))
                attempt += 1
                continue
            if filed is not None:
                log.info(
                    "rights.contact_while_restricted",
                    subject_key=filed.subject_key,
                    request_id=None if filed.request_id is None else str(filed.request_id),
                )
            return

    async def retry(self) -> int:
        return await asyncio.to_thread(self.executor.retry_unfinished, RETRY_AFTER)

    async def sweep(self) -> int:
        now = datetime.now(UTC)
        report = await asyncio.to_thread(self.sweeper.run, now)
        settings = self.runtime.settings
        max_age = timedelta(hours=settings.rights_export_max_age_h)
        expired = await asyncio.to_thread(expire_exports, settings.resolved_exports_dir, now, max_age)
        if expired:
            log.info("rights.exports_expired", files=expired)
        return len(report.commands)

    def forward_identity_audit(self) -> int:
        """Publish the identity outbox (who added, disabled, granted, keyed whom) on the audit topic; how many."""

        def publish(records: Sequence[AuditRecord]) -> None:
            self.publisher.publish([Outgoing(AUDIT_TOPIC, None, record) for record in records])

        return self.identity.forward_audit(publish)


def register(app: LeadpipeApp, runtime: Runtime) -> RightsWorker:
    """Attach the rights agent and its timers to the faust app (``REGISTRARS`` entry)."""
    settings = runtime.settings
    worker = RightsWorker.build(runtime, worker_health(app, settings, runtime.engine).pauses)
    app.closers.append(worker.publisher.close)
    topic = app.topic(settings.topic(RIGHTS_COMMANDS_TOPIC), key_serializer="raw", value_serializer="raw")
    tracker = RequestTracker(runtime.engine)
    worker_metrics(app).track_rights(lambda: tracker.pending_counts(datetime.now(UTC)))

    group = settings.topic(settings.app_id)

    @app.agent(topic, name=f"{settings.app_id}.rights", concurrency=1)
    async def rights_commands(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            where = {"topic": message.topic, "partition": message.partition, "offset": message.offset}
            if not tracing.enabled():
                await worker.handle(event.value, where)
                continue
            span = tracing.start_process(
                message.topic,
                tracing.header_value(message.headers),
                partition=message.partition,
                offset=message.offset,
                group=group,
                stage="rights",
            )
            with tracing.current(span):  # each sink's effect is a child span (``RightsExecutor.execute``)
                await worker.handle(event.value, where)
            tracing.end(span)

    audit = app.topic(settings.topic(AUDIT_TOPIC), key_serializer="raw", value_serializer="raw")

    @app.agent(audit, name=f"{settings.app_id}.rights-restricted-contacts", concurrency=1)
    async def restricted_contacts(stream: Any) -> None:
        async for value in stream:
            await worker.restricted_contact(value)

    # A timer that raises would crash the whole worker (faust runs timers as service tasks): a database outage is
    # logged and the next tick tries again.
    @app.timer(interval=settings.rights_retry_interval_s, on_leader=True)  # type: ignore[untyped-decorator]
    async def rights_retry() -> None:
        try:
            count = await worker.retry()
        except Exception as exc:
            log.warning("rights.retry_timer_failed", error=type(exc).__name__)
            return
        if count:
            log.info("rights.retried", requests=count)

    @app.timer(interval=settings.retention_sweep_interval_s, on_leader=True)  # type: ignore[untyped-decorator]
    async def retention_sweep() -> None:
        try:
            await worker.sweep()
        except Exception as exc:
            log.warning("rights.sweep_timer_failed", error=type(exc).__name__)

    @app.timer(interval=settings.identity_audit_interval_s, on_leader=True)  # type: ignore[untyped-decorator]
    async def identity_audit() -> None:
        try:
            if count := await asyncio.to_thread(worker.forward_identity_audit):
                log.info("identity.audit_forwarded", records=count)
        except Exception:  # the broker or the database is down: the outbox keeps the records for the next tick
            log.exception("identity.audit_forward_failed")

    return worker
