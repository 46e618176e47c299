"""The CRM's part of each request (``CrmEffect`` over ``CrmRights``, SQLite): which right a command runs, the
evidence it leaves, and what a repeated request changes (nothing)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from fakes.contacts import PEPPER, make_tagged
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
    # an objection is kept for the person's first contact (test_rights_objection_before_first_contact.py)
    kept = {"kept_for_first_contact": True} if kind is RightKind.OBJECTION else {}
    answer = (SinkStatus.NOT_APPLICABLE, {"reason": NOT_IN_CRM, **kept})
    assert run(crm, command(kind, "sk_unknown", **extra)) == answer


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


def test_flags_change_once_are_audited_once_and_restate_marketing_everywhere(crm: CrmRights) -> None:
    """Policy 9.6 / 9.4: an objection or a restriction clears ``marketing_allowed`` of the subject AND of every stored
    interaction at once (the one rule); lifting the restriction restates it, and the objection still holds."""
    tagged = make_tagged()
    CrmWriter(crm.engine).write_events([tagged])
    key = tagged.event.subject_key
    before = crm.read.show(key)
    assert before is not None and before.marketing_allowed is True
    assert before.interactions_detail[0].marketing_allowed is True
    objection = command(RightKind.OBJECTION, key)
    stopped = {"changed": True, "purposes_stopped": 1, "marketing_allowed": False}  # information_of_interest
    assert run(crm, objection)[1] == stopped
    assert run(crm, objection)[1] == {"changed": False, "purposes_stopped": 0, "marketing_allowed": False}
    view = crm.read.show(key)
    assert view is not None and view.marketing_allowed is False
    assert [i.marketing_allowed for i in view.interactions_detail] == [False]
    restricted = run(crm, command(RightKind.RESTRICTION, key))[1]
    assert restricted == {"changed": True, "purposes_stopped": 0, "marketing_allowed": False}
    assert run(crm, command(RightKind.UNRESTRICTION, key))[1]["changed"] is True
    entries = crm.audit_entries(key)
    audited = [(e["action"], e["detail"]) for e in entries if e["action"] != "interaction_recorded"]
    assert audited == [
        ("marketing_objected", {"purposes_stopped": 1, "marketing_allowed": False}),
        ("restricted", {"marketing_allowed": False}),
        ("restriction_lifted", {"marketing_allowed": False}),  # the objection still stands
    ]
    view = crm.read.show(key)
    assert view is not None and view.marketing_objected and not view.restricted and view.restricted_at is None
    assert view.marketing_allowed is False


def test_lifting_an_objection_keeps_what_it_stopped_stopped(crm: CrmRights) -> None:
    tagged = make_tagged()
    CrmWriter(crm.engine).write_events([tagged])
    key = tagged.event.subject_key
    run(crm, command(RightKind.OBJECTION, key))
    assert run(crm, command(RightKind.OBJECTION_LIFTED, key))[1] == {
        "changed": True,
        "purposes_stopped": 0,
        "marketing_allowed": False,  # the stored interaction's direct-marketing purpose stays stopped
    }
    CrmWriter(crm.engine).write_events([make_tagged()])  # what comes next may be marketed to
    view = crm.read.show(key)
    assert view is not None and not view.marketing_objected and view.marketing_allowed is True


def test_a_restriction_clears_marketing_and_its_lifting_restores_it(crm: CrmRights) -> None:
    tagged = make_tagged()
    CrmWriter(crm.engine).write_events([tagged])
    key = tagged.event.subject_key
    assert run(crm, command(RightKind.RESTRICTION, key))[1]["marketing_allowed"] is False
    assert crm.read.show(key).interactions_detail[0].marketing_allowed is False  # type: ignore[union-attr]
    assert run(crm, command(RightKind.UNRESTRICTION, key))[1]["marketing_allowed"] is True
    view = crm.read.show(key)
    assert view is not None and view.marketing_allowed and view.interactions_detail[0].marketing_allowed


def test_a_later_event_of_an_objected_subject_is_stored_without_marketing(crm: CrmRights) -> None:
    """The write path applies the CRM's own flags too: tags made before the objection reached the chain (or a new
    form's consent) never turn marketing back on."""
    first = make_tagged()
    CrmWriter(crm.engine).write_events([first])
    key = first.event.subject_key
    run(crm, command(RightKind.OBJECTION, key))
    later = make_tagged()  # tagged as if nobody had objected: marketing_allowed=True in its tags
    assert later.event.subject_key == key and later.tags.marketing_allowed
    CrmWriter(crm.engine).write_events([later])
    view = crm.read.show(key)
    assert view is not None and view.marketing_allowed is False
    assert {i.event_id: i.marketing_allowed for i in view.interactions_detail}[later.event.event_id] is False


def test_the_handover_names_every_email_and_phone_the_crm_holds(crm: CrmRights) -> None:
    tagged = make_tagged("Jane.Doe@Example.com", phone="+4930123456")
    CrmWriter(crm.engine).write_events([tagged])
    handover = CrmEffect(crm).handover(tagged.event.subject_key)
    assert handover.emails == ("jane.doe@example.com",) and handover.phones == ("+4930123456",)
    assert CrmEffect(crm).handover("sk_unknown").emails == ()


def test_a_corrected_address_moves_the_whole_history_to_the_new_key(crm: CrmRights) -> None:
    """Policy 9.2: the person keeps their history; the old address is gone; the old key keeps only an erasure's
    minimal record (so an event of the old address received before the correction is never written under it)."""
    from pipeline.crm.aliases import SubjectAliases
    from pipeline.normalize import subject_key

    first = make_tagged("old.address@example.com", consent=True, phone="+4930123456")
    CrmWriter(crm.engine).write_events([first, make_tagged("old.address@example.com")])
    old_key = first.event.subject_key
    run(crm, command(RightKind.OBJECTION, old_key))
    new_key = subject_key(PEPPER, email="new.address@example.net")
    moved = crm.move_subject(
        old_key, new_key, uuid4(), {"email": "new.address@example.net", "last_name": "Doe-Smith"}, alias=False
    )
    assert moved.found and not moved.merged and moved.changed_fields == ("email", "last_name")
    view = crm.read.show(new_key)
    assert view is not None and view.email == "new.address@example.net" and view.last_name == "Doe-Smith"
    assert len(view.interactions_detail) == 2 and view.consents and view.marketing_objected
    assert view.marketing_allowed is False  # the objection followed the person
    assert {(i.kind, i.value) for i in view.identities} == {
        ("email", "new.address@example.net"),
        ("phone", "+4930123456"),
    }
    actions = [e["action"] for e in crm.audit_entries(new_key)]
    assert actions.count("interaction_recorded") == 2 and "email_rectified" in actions
    old = crm.read.show(old_key)
    assert old is not None and old.status == "erased" and old.email is None and not old.marketing_objected
    assert old.identities == [] and old.interactions_detail == []
    [moved_away] = crm.audit_entries(old_key)
    assert moved_away["detail"]["to_subject_key"] == new_key and moved_away["detail"]["old_address"] == "forget"
    assert "old.address" not in str(crm.audit_entries(new_key))
    assert crm.read.search(email="old.address@example.com") == []
    assert SubjectAliases(crm.engine).resolve([old_key]) == {}  # forgotten: no alias


def test_an_alias_leads_to_the_person_follows_them_and_dies_with_them(crm: CrmRights) -> None:
    from pipeline.crm.aliases import Redirect, SubjectAliases
    from pipeline.normalize import subject_key

    tagged = make_tagged("a@example.com")
    CrmWriter(crm.engine).write_events([tagged])
    a, b, c = (subject_key(PEPPER, email=e) for e in ("a@example.com", "b@example.com", "c@example.com"))
    crm.move_subject(a, b, uuid4(), {"email": "b@example.com"}, alias=True)
    assert SubjectAliases(crm.engine).resolve([a, c]) == {a: Redirect(b, "b@example.com")}
    crm.move_subject(b, c, uuid4(), {"email": "c@example.com"}, alias=True)  # corrected again: both lead to c
    assert SubjectAliases(crm.engine).resolve([a, b]) == {
        a: Redirect(c, "c@example.com"),
        b: Redirect(c, "c@example.com"),
    }
    erased = crm.erase_subject(c, uuid4())
    assert erased.aliases_deleted == 2 and SubjectAliases(crm.engine).resolve([a, b]) == {}


def test_a_corrected_address_someone_already_has_merges_the_two(crm: CrmRights) -> None:
    from pipeline.normalize import subject_key

    old = make_tagged("typo@exmaple.com", first_name="Jane", last_name=None, company="Old Co")
    new = make_tagged("jane@example.com", first_name=None, last_name="Doe", company="New Co")
    CrmWriter(crm.engine).write_events([old, new])
    run(crm, command(RightKind.RESTRICTION, new.event.subject_key))
    moved = crm.move_subject(
        old.event.subject_key, new.event.subject_key, uuid4(), {"email": "jane@example.com"}, alias=False
    )
    assert moved.merged
    view = crm.read.show(subject_key(PEPPER, email="jane@example.com"))
    assert view is not None and len(view.interactions_detail) == 2 and view.restricted
    assert (view.first_name, view.last_name, view.company) == ("Jane", "Doe", "New Co")  # gaps filled, new first
    assert [i.value for i in view.identities if i.kind == "email"] == ["jane@example.com"]
