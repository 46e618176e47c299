"""Carries out one rights command in every sink, in a safe order, with retries and evidence.

The same machinery serves the DPO's requests and the retention sweep. Each sink's effect runs until it confirms
or its attempts are used up; the outcome is recorded in the tracker and published on ``rights.status`` and
``audit``. A sink that failed leaves the request in ATTENTION, and ``retry_unfinished`` (a timer in the worker)
runs it again later: a request is never acknowledged and forgotten. A sink that already confirmed a request is
not run again, so a replayed erasure can never erase data the person gave after it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import StatementError

from pipeline import tracing
from pipeline.crypto.keystore import KeyStore
from pipeline.crypto.sealing import KeyDestroyedError, Sealer, record_scope
from pipeline.kafka.producer import ConfirmingPublisher, Outgoing
from pipeline.logging import get_logger, scrub_text
from pipeline.models.identity import system_principal
from pipeline.models.rights import AuditRecord, RightKind, RightsCommand, RightsStatus, SinkStatus
from pipeline.rights.bodies import RequestIdentity
from pipeline.rights.commands import audit_of
from pipeline.rights.effects.base import Context, Effect, EffectError, EffectResult, Handover
from pipeline.rights.plan import plan_for, rekeys
from pipeline.rights.tracker import RequestState, RequestTracker
from pipeline.sinks.base import backoff_delay
from pipeline.topics import AUDIT_TOPIC, RIGHTS_COMMANDS_TOPIC, RIGHTS_STATUS_TOPIC

log = get_logger(__name__)


#: Requests that erase identities the remote sinks still need afterwards (and a corrected e-mail address: ``rekeys``).
_ERASING = frozenset({RightKind.ERASURE, RightKind.RETENTION_EXPIRY})


def _keeps_handover(command: RightsCommand) -> bool:
    """Whether the identities must be captured once, before the CRM forgets them, and kept sealed until done."""
    return command.kind in _ERASING or rekeys(command)


_TERMINAL = frozenset({SinkStatus.DONE, SinkStatus.NOT_APPLICABLE})

#: Who carries out every step: the product itself (the request's issuer is on the command and in the tracker).
ACTOR = system_principal("rights-agent")


#: Where the handover keys live: ``handover_scope(request_id)`` for each request.
HANDOVER_SCOPE_PREFIX = record_scope("rights-handover:")


def handover_scope(request_id: object) -> str:
    """The key scope of a request's handover (erasing or re-keying; destroyed when every sink has confirmed it)."""
    return f"{HANDOVER_SCOPE_PREFIX}{request_id}"


class RightsExecutor:
    """Runs commands against the configured effects (one per sink the command's plan names, ``plan_for``)."""

    def __init__(
        self,
        *,
        tracker: RequestTracker,
        effects: Sequence[Effect],
        publisher: ConfirmingPublisher,
        sealer: Sealer,
        keystore: KeyStore,
        max_attempts: int = 5,
        retry_base_s: float = 0.5,
        retry_max_s: float = 8.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.tracker = tracker
        self.effects = {effect.sink: effect for effect in effects}
        self.publisher = publisher
        self.sealer = sealer
        self.keystore = keystore
        self.max_attempts = max_attempts
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.clock = clock
        self.sleep = sleep

    def sinks_for(self, command: RightsCommand) -> tuple[str, ...]:
        return plan_for(command)

    def execute(self, command: RightsCommand) -> list[RightsStatus]:
        """Carry out ``command`` in every sink that has not confirmed it yet; returns this run's statuses."""
        sinks = self.sinks_for(command)
        if self.tracker.record(command, sinks, tracing.traceparent()):  # first seen here: the record's process span
            self._audit([audit_of(command, "rights.request_received")])  # by its issuer (e.g. the children rule)
        else:
            self.tracker.expect_sinks(command.request_id, sinks)
        view = self.tracker.get(command.request_id)
        done = {s.sink: s for s in view.sinks} if view else {}
        if view is not None and view.state is RequestState.COMPLETED:
            return []
        if view is not None and view.published_at is None:  # it reached us, so it was published (or runs here)
            self.tracker.mark_published(command.request_id, self.clock())
        ctx = Context(
            command=command,
            now=self.clock(),
            open_sealed=self.sealer.open_model,
            handover=self._handover(command),
            by=ACTOR,
        )
        statuses: list[RightsStatus] = []
        for sink in sinks:
            previous = done.get(sink)
            if previous is not None and previous.status in _TERMINAL:
                ctx = ctx.after(sink, EffectResult(previous.status, previous.evidence))
                continue
            span = tracing.start_step(f"rights {sink}", sink=sink, right=command.kind.value)
            with tracing.current(span):
                result, error, attempts = self._run(sink, ctx)
            ctx = ctx.after(sink, result)
            status = RightsStatus(
                request_id=command.request_id,
                subject_key=command.subject_key,
                sink=sink,
                status=result.status,
                at=self.clock(),
                evidence=dict(result.evidence) | ({"error": error} if error else {}),
            )
            attempted = (previous.attempts if previous else 0) + attempts
            self.tracker.set_sink(status, error=error, attempts=attempted, by=ACTOR)
            record = audit_of(
                command,
                f"rights.{sink}.{result.status.value}",
                actor=ACTOR,
                sink=sink,
                attempts=attempts,
                evidence=dict(result.evidence),
                **({"error": error} if error else {}),
            )
            evidence = Outgoing(RIGHTS_STATUS_TOPIC, command.subject_key, status, tracing.traceparent(span))
            self._audit([record], also=[evidence])
            span.set_attribute("leadpipe.attempts", attempts)
            tracing.end(span, failed="effect_failed" if error else None, outcome=result.status.value)
            statuses.append(status)
        self._finish(command)
        return statuses

    # ---- internals ----------------------------------------------------------------------------------------

    def _run(self, sink: str, ctx: Context) -> tuple[EffectResult, str | None, int]:
        effect = self.effects.get(sink)
        if effect is None:
            return EffectResult(SinkStatus.FAILED, {"reason": "not_configured"}), f"no effect for sink {sink}", 0
        error = "not tried"
        evidence: dict[str, Any] = {}
        for attempt in range(self.max_attempts):
            try:
                return effect.apply(ctx), None, attempt + 1
            except EffectError as exc:
                error, evidence = scrub_text(str(exc))[:2000], dict(exc.evidence)
                if not exc.retryable:
                    log.warning(
                        "rights.effect_failed", sink=sink, request_id=str(ctx.command.request_id), code=exc.code
                    )
                    return EffectResult(SinkStatus.FAILED, evidence), error, attempt + 1
            except Exception as exc:  # an unknown failure may be transient: try again, then record it
                error = _described(exc)
            log.warning("rights.effect_retry", sink=sink, request_id=str(ctx.command.request_id), attempt=attempt + 1)
            if attempt + 1 < self.max_attempts:
                self.sleep(backoff_delay(attempt, self.retry_base_s, self.retry_max_s))
        return EffectResult(SinkStatus.FAILED, evidence), error, self.max_attempts

    def _handover(self, command: RightsCommand) -> Handover:
        """The identities remote sinks look the person up by: the CRM's, and the e-mail or phone the DPO gave. For a
        request that removes identities, captured before the CRM erases them and sealed per request."""
        if not _keeps_handover(command):
            return self._identities(command)
        stored = self.tracker.handover(command.request_id)
        if stored is not None:
            try:
                return self.sealer.open_model(stored, Handover)
            except KeyDestroyedError:
                return Handover()  # the request completed earlier and its handover key is gone
        handover = self._identities(command)
        self.tracker.save_handover(
            command.request_id, self.sealer.seal_model(handover_scope(command.request_id), handover)
        )
        return handover

    def _identities(self, command: RightsCommand) -> Handover:
        crm = self.effects.get("crm")
        held = crm.handover(command.subject_key) if crm else Handover()
        if command.identity is None:
            return held
        try:
            given = self.sealer.open_model(command.identity, RequestIdentity)
        except KeyDestroyedError:  # the subject was erased since: the DPO's words went with them
            return held
        return held | Handover(
            emails=(given.email,) if given.email else (), phones=(given.phone,) if given.phone else ()
        )

    def _finish(self, command: RightsCommand) -> None:
        view = self.tracker.get(command.request_id)
        if view is None or view.state is not RequestState.COMPLETED:
            return
        if _keeps_handover(command):
            self.keystore.destroy(handover_scope(command.request_id), f"handover_done:{command.request_id}")
        self._audit([audit_of(command, "rights.request_completed", actor=ACTOR, issued_by=command.issued_by)])
        log.info("rights.request_completed", request_id=str(command.request_id), kind=command.kind.value)

    def _audit(self, records: list[AuditRecord], also: Sequence[Outgoing] = ()) -> None:
        """Audit to the tracker and the audit topic; ``also`` rides in the same confirmed batch."""
        for record in records:
            self.tracker.audit(record)
        self.publisher.publish([*also, *(Outgoing(AUDIT_TOPIC, r.subject_key, r) for r in records)])

    # ---- the retry timer ----------------------------------------------------------------------------------

    def retry_unfinished(self, older_than: timedelta, republish: bool = True) -> int:
        """Run again every open request that has not finished within ``older_than``; returns how many.

        Requests that were recorded but never published (the DPO's tool crashed in between) are published now.
        """
        cutoff = self.clock() - older_than
        count = 0
        for view in self.tracker.open_requests():
            if view.received_at > cutoff:
                continue
            last = max((s.updated_at for s in view.sinks), default=view.received_at)
            if last > cutoff and view.state is not RequestState.ATTENTION:
                continue
            command = self.tracker.command(view.request_id)
            # A run of the timer has no trace of its own: each retry continues the trace its request arrived in.
            span = tracing.start_step("rights retry", parent=self.tracker.trace(view.request_id), right=view.kind.value)
            republishing = view.published_at is None and republish
            try:
                with tracing.current(span):
                    if republishing:
                        outgoing = Outgoing(
                            RIGHTS_COMMANDS_TOPIC, command.subject_key, command, tracing.traceparent(span)
                        )
                        self.publisher.publish([outgoing])
                        self.tracker.mark_published(command.request_id)
                    else:
                        self.execute(command)
            except Exception as exc:  # the span ends either way (the sweep's does the same)
                tracing.end(span, failed=type(exc).__name__)
                raise
            tracing.end(span, outcome="republished" if republishing else "executed")
            count += 1
        return count


def _described(exc: Exception) -> str:
    """What failed, for the request's error, evidence, audit and status record: never a value. SQLAlchemy's message
    carries the statement and its parameters (a corrected name, an address) and a driver's may quote the row on its
    later lines, so a database error is its class and the driver's first line only."""
    if isinstance(exc, StatementError):
        orig = exc.orig
        if orig is None:
            return type(exc).__name__
        first = (str(orig).splitlines() or [""])[0]
        return scrub_text(f"{type(exc).__name__}: {type(orig).__name__}: {first}")[:2000]
    return scrub_text(f"{type(exc).__name__}: {exc}")[:2000]
