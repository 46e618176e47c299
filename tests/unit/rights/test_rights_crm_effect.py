"""The CRM's part of each request (``CrmEffect`` over ``CrmRights``, SQLite): which right a command runs, the
evidence it leaves, and what a repeated request changes (nothing)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fakes.contacts import make_tagged
from identity_helpers import person

from pipeline.db import ensure_schema, make_engine
from pipeline.models.records import Sealed
from pipeline.models.rights import RightKind, RightsCommand, SinkStatus
from pipeline.rights.bodies import RectificationBody
from pipeline.rights.commands import build_command
from pipeline.rights.effects.base import Context, EffectError
from pipeline.rights.effects.crm import NOT_IN_CRM, CrmEffect, CrmRights
from pipeline.sinks.crm.writer import CrmWriter

NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)
CHANGES = RectificationBody(changes={"company": "Fixed Ltd"})


@pytest.fixture
def crm(tmp_path: Path) -> Iterator[CrmRights]:
    engine = make_engine(f"sqlite:///{tmp_path / 'crm.sqlite3'}")
    ensure_schema(engine)
    yield CrmRights(engine, clock=lambda: NOW)
    engine.dispose()


def command(kind: RightKind, subject_key: str, **extra: Any) -> RightsCommand:
    built = build_command(RightKind.OBJECTION, subject_key, issued_by=person("dpo:test"), now=NOW)
    return built.model_copy(update={"kind": kind, **extra})


def run(crm: CrmRights, cmd: RightsCommand) -> tuple[SinkStatus, dict[str, Any]]:
    result = CrmEffect(crm).apply(Context(command=cmd, now=NOW, open_sealed=lambda *_: CHANGES))
    return result.status, dict(result.evidence)


SEALED = Sealed(key_id="subject:x", nonce="AAAA", ciphertext="AAAA")
KINDS_OF_A_KNOWN_SUBJECT = [
    (RightKind.ERASURE, {}),
    (RightKind.OBJECTION, {}),
    (RightKind.RESTRICTION, {}),
    (RightKind.UNRESTRICTION, {}),
    (RightKind.RECTIFICATION, {"sealed": SEALED}),
    (RightKind.CONSENT_WITHDRAWAL, {}),
]


@pytest.mark.parametrize(("kind", "extra"), KINDS_OF_A_KNOWN_SUBJECT)
def test_a_subject_the_crm_never_knew_is_not_applicable(crm: CrmRights, kind: RightKind, extra: Any) -> None:
    assert run(crm, command(kind, "sk_unknown", **extra)) == (SinkStatus.NOT_APPLICABLE, {"reason": NOT_IN_CRM})


def test_a_right_the_crm_has_no_part_in_is_not_applicable(crm: CrmRights) -> None:
    status, evidence = run(crm, command(RightKind.ACCESS, "sk_unknown"))
    assert (status, evidence["reason"]) == (SinkStatus.NOT_APPLICABLE, "no_crm_effect_for_access")


def test_a_retention_expiry_that_leaves_nothing_erases_the_subject(crm: CrmRights) -> None:
    first, second = make_tagged(phone="+4930123456"), make_tagged()
    CrmWriter(crm.engine).write_events([first, second])
    key = first.event.subject_key
    status, partial = run(crm, command(RightKind.RETENTION_EXPIRY, key, event_ids=(first.event.event_id,)))
    assert (status, partial) == (SinkStatus.DONE, {"interactions_deleted": 1, "remaining_interactions": 1})
    _, rest = run(crm, command(RightKind.RETENTION_EXPIRY, key, event_ids=(second.event.event_id,)))
    assert rest["remaining_interactions"] == 0 and rest["subject_erased"] is True
    assert rest["erasure_identities_deleted"] == 2 and rest["erasure_erased_at"] == NOW.isoformat()
    view = crm.read.show(key)
    assert view is not None and view.status == "erased" and view.email is None


def test_a_rectification_without_its_values_is_refused_for_good(crm: CrmRights) -> None:
    with pytest.raises(EffectError) as refused:
        run(crm, command(RightKind.RECTIFICATION, "sk_any"))
    assert (refused.value.code, refused.value.retryable) == ("missing_values", False)


def test_flags_change_once_and_are_audited_once(crm: CrmRights) -> None:
    tagged = make_tagged()
    CrmWriter(crm.engine).write_events([tagged])
    key = tagged.event.subject_key
    objection = command(RightKind.OBJECTION, key)
    assert run(crm, objection)[1] == {"changed": True, "purposes_stopped": 1}  # information_of_interest
    assert run(crm, objection)[1] == {"changed": False, "purposes_stopped": 0}
    assert run(crm, command(RightKind.RESTRICTION, key))[1] == {"changed": True, "purposes_stopped": 0}
    assert run(crm, command(RightKind.UNRESTRICTION, key))[1]["changed"] is True
    entries = crm.audit_entries(key)
    audited = [(e["action"], e["detail"]) for e in entries if e["action"] != "interaction_recorded"]
    assert audited == [
        ("marketing_objected", {"purposes_stopped": 1}),
        ("restricted", {}),
        ("restriction_lifted", {}),
    ]
    view = crm.read.show(key)
    assert view is not None and view.marketing_objected and not view.restricted and view.restricted_at is None


def test_the_handover_names_every_email_the_crm_holds(crm: CrmRights) -> None:
    tagged = make_tagged("Jane.Doe@Example.com")
    CrmWriter(crm.engine).write_events([tagged])
    assert CrmEffect(crm).handover(tagged.event.subject_key).emails == ("jane.doe@example.com",)
    assert CrmEffect(crm).handover("sk_unknown").emails == ()
