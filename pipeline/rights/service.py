"""Wiring: the executor with one effect per sink, built from a Runtime and a confirming publisher."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from pipeline.kafka.producer import ConfirmingPublisher
from pipeline.models.common import Purpose
from pipeline.policy.model import load_policy
from pipeline.rights.effects.base import Effect
from pipeline.rights.effects.crm import CrmEffect, CrmRights
from pipeline.rights.effects.export import ContactReader, ExportEffect
from pipeline.rights.effects.keys import KeyShredding
from pipeline.rights.effects.suppression import SuppressionPublisher
from pipeline.rights.executor import RightsExecutor
from pipeline.rights.tracker import RequestTracker
from pipeline.runtime import Runtime


def build_executor(
    runtime: Runtime,
    publisher: ConfirmingPublisher,
    *,
    hubspot: Effect | None = None,
    hubspot_reader: Callable[[], ContactReader | None] = lambda: None,
    consent_purposes: Callable[[], Sequence[Purpose]] | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    sleep: Callable[[float], None] | None = None,
) -> RightsExecutor:
    """Every sink's effect over the runtime's database, key store and settings."""
    settings = runtime.settings
    tracker = RequestTracker(runtime.engine)
    crm = CrmRights(runtime.engine, clock=clock)
    policy = load_policy(settings.policy_file)
    if consent_purposes is None:
        policy_purposes = policy.consent_purposes()

        def consent_purposes() -> Sequence[Purpose]:  # what a withdrawal of all consent stops (the policy says)
            return policy_purposes

    effects: list[Effect] = [
        SuppressionPublisher(tracker, publisher, consent_purposes, crm.event_ids),
        KeyShredding(runtime.keystore),
        CrmEffect(crm),
        ExportEffect(crm, settings.resolved_exports_dir, hubspot_reader, settings.rights_export_font, policy.storage),
    ]
    if hubspot is not None:
        effects.append(hubspot)
    return RightsExecutor(
        tracker=tracker,
        effects=effects,
        publisher=publisher,
        sealer=runtime.codec.sealer,
        keystore=runtime.keystore,
        max_attempts=settings.rights_max_attempts,
        retry_base_s=settings.rights_retry_base_s,
        clock=clock,
        sleep=sleep or time.sleep,
    )
