"""The retention sweep (policy section 8): expired interactions become RETENTION_EXPIRY commands.

Run by a faust timer in the worker and by ``leadpipe retention sweep`` (with ``--dry-run`` to list what it would
do). Each command's request id is derived from the subject and the expired event ids, so a sweep that runs again
before the previous one was carried out issues nothing new.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid5

from pipeline import tracing
from pipeline.logging import get_logger
from pipeline.models.identity import system_principal
from pipeline.models.rights import RightKind, RightsCommand
from pipeline.rights.commands import RightsDesk, build_command
from pipeline.rights.effects.crm import CrmRights
from pipeline.rights.retention import ExpiryPlan, plan_expiry

log = get_logger(__name__)

SWEEP_ACTOR = system_principal("retention-sweep")
_NAMESPACE = uuid5(NAMESPACE_URL, "urn:leadpipe:retention-expiry")


def expiry_request_id(subject_key: str, event_ids: tuple[UUID, ...]) -> UUID:
    """The same expired interactions always give the same request: the tracker records it once."""
    return uuid5(_NAMESPACE, subject_key + ":" + ",".join(sorted(str(e) for e in event_ids)))


@dataclass(frozen=True)
class SweepReport:
    plan: ExpiryPlan
    commands: tuple[RightsCommand, ...]
    dry_run: bool


class RetentionSweep:
    def __init__(self, crm: CrmRights, desk: RightsDesk | None, limit: int = 10_000) -> None:
        self.crm = crm
        self.desk = desk
        self.limit = limit

    def plan(self, now: datetime) -> ExpiryPlan:
        expired = self.crm.expired_interactions(now, limit=self.limit)
        totals = self.crm.read.interaction_counts(sorted({e.subject_key for e in expired}))
        return plan_expiry(expired, now, totals)

    def commands(self, plan: ExpiryPlan) -> list[RightsCommand]:
        return [
            build_command(
                RightKind.RETENTION_EXPIRY,
                subject.subject_key,
                issued_by=SWEEP_ACTOR,
                now=plan.now,
                event_ids=batch,
                request_id=expiry_request_id(subject.subject_key, batch),
            )
            for subject in plan.subjects
            for batch in subject.batches()
        ]

    def run(self, now: datetime, *, dry_run: bool = False) -> SweepReport:
        """Find what expired at ``now`` (an injectable clock) and, unless ``dry_run``, issue the commands."""
        plan = self.plan(now)
        commands = self.commands(plan)
        if not dry_run and commands:
            if self.desk is None:
                raise RuntimeError("a sweep that issues commands needs a RightsDesk")
            fresh = [c for c in commands if self.desk.tracker.get(c.request_id) is None]
            # The sweep is where these requests start: its span is the trace their runs (and retries) continue.
            span = tracing.start_step("retention sweep", commands=len(fresh))
            try:
                with tracing.current(span):
                    self.desk.submit(fresh)
            except Exception as exc:
                tracing.end(span, failed=type(exc).__name__)
                raise
            tracing.end(span)
            commands = fresh
        log.info(
            "retention.sweep",
            now=now.isoformat(),
            dry_run=dry_run,
            subjects=len(plan.subjects),
            interactions=plan.interaction_count,
            commands=len(commands),
        )
        return SweepReport(plan=plan, commands=tuple(commands), dry_run=dry_run)
