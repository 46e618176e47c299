"""An objection the DPO receives before the CRM knows the person (someone answers a cold e-mail: "never contact
me") used to leave no trace in the CRM: the row the person's first contact created said ``marketing_objected``
false (marketing itself stayed off: the chain applies the suppression state), so sales saw no objection, and
``restore verify`` found the row contradicting the suppression state, which makes the worker and the API refuse to
start. The objection is now kept on a bare row (key, timestamps, the flag; no personal data) that the first contact
fills in, and the CRM still tells the DPO it did not know the person."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fakes.contacts import make_tagged
from identity_helpers import person

from pipeline.db import ensure_schema, make_engine
from pipeline.models.rights import RightKind, SuppressionRecord
from pipeline.rights.commands import build_command
from pipeline.rights.effects.crm import CrmRights
from pipeline.sinks.crm.writer import CrmWriter

OBJECTED_AT = datetime(2025, 6, 1, 12, tzinfo=UTC)


@pytest.fixture
def crm(tmp_path: Path) -> Iterator[CrmRights]:
    engine = make_engine(f"sqlite:///{tmp_path / 'crm.sqlite3'}")
    ensure_schema(engine)
    yield CrmRights(engine, clock=lambda: OBJECTED_AT)
    engine.dispose()


def test_an_objection_before_the_first_contact_is_on_the_contact_it_creates(crm: CrmRights) -> None:
    first = make_tagged(consent=True, occurred_at=datetime(2025, 7, 1, tzinfo=UTC), marketing_allowed=False)
    key = first.event.subject_key
    objection = build_command(RightKind.OBJECTION, key, issued_by=person("dpo:test"), now=OBJECTED_AT)
    change = crm.set_marketing_objection(key, objection.request_id)
    assert not change.found and change.changed  # the CRM did not know the person, and says so
    assert not crm.read.holds(key)  # nobody is held: the bare row has no data (the DPO's in_crm stays false)

    CrmWriter(crm.engine).write_events([first])
    shown = crm.read.show(key)
    assert shown is not None and shown.marketing_objected and shown.marketing_allowed is False
    assert shown.first_name == "Jane" and crm.read.holds(key)
    assert [i.marketing_allowed for i in shown.interactions_detail] == [False]
    # what restore verify compares: the CRM row agrees with the suppression state
    state = SuppressionRecord(
        subject_key=key, updated_at=OBJECTED_AT, request_id=objection.request_id, marketing_objected=True
    )
    assert crm.flags_behind({key: state}) == set()


def test_lifting_an_objection_of_a_person_never_seen_leaves_no_row(crm: CrmRights) -> None:
    key = make_tagged().event.subject_key
    lifted = build_command(RightKind.OBJECTION_LIFTED, key, issued_by=person("dpo:test"), now=OBJECTED_AT)
    change = crm.set_marketing_objection(key, lifted.request_id, objected=False)
    assert not change.found and not change.changed and crm.read.show(key) is None
