"""The DPO's tools refuse what the policy file says cannot be asked, before anything is recorded or published."""

from __future__ import annotations

from typing import Any

import pytest
from fakes.contacts import make_tagged
from identity_helpers import person

from pipeline.models.common import Channel, Purpose
from pipeline.models.identity import Role
from pipeline.models.rights import RightKind
from pipeline.rights.dpo import DpoTools
from pipeline.runtime import Runtime
from pipeline.sinks.crm.writer import CrmWriter

DPO = person("dana", "Dana Privacy", Role.DPO)


class Publisher:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    def publish(self, records: Any, timeout_s: float = 30.0) -> int:
        self.sent.extend(records)
        return len(self.sent)


@pytest.fixture
def tools(runtime: Runtime) -> DpoTools:
    return DpoTools(runtime, Publisher())  # type: ignore[arg-type]


@pytest.mark.parametrize("purpose", [Purpose.CONTRACT_REQUEST, Purpose.INFORMATION_OF_INTEREST])
def test_withdrawing_consent_from_a_purpose_that_does_not_rest_on_it_is_refused(
    tools: DpoTools, purpose: Purpose
) -> None:
    """Policy 9.8 applies to processing "based on your consent"; which purposes those are is the policy file's."""
    with pytest.raises(ValueError, match="this purpose does not rest on consent") as refused:
        tools.request(RightKind.CONSENT_WITHDRAWAL, by=DPO, email="a@example.com", purposes=[purpose])
    assert purpose.value in str(refused.value)
    basis = tools.policy.purposes[purpose].legal_basis.value
    assert f"legal basis {basis}" in str(refused.value)
    assert tools.tracker.requests() == [] and tools.publisher.sent == []  # type: ignore[attr-defined]


def test_withdrawing_a_consent_purpose_is_accepted(tools: DpoTools) -> None:
    submitted = tools.request(
        RightKind.CONSENT_WITHDRAWAL, by=DPO, email="a@example.com", purposes=[Purpose.FURTHER_CONTACT]
    )
    assert submitted.command.purposes == (Purpose.FURTHER_CONTACT,)
    assert [r.request_id for r in tools.tracker.requests()] == [str(submitted.command.request_id)]


def test_a_corrected_address_is_checked_and_canonicalised_before_anything_is_recorded(tools: DpoTools) -> None:
    from pipeline.rights.commands import IdentityError
    from pipeline.rights.plan import REKEY_PLAN

    with pytest.raises(IdentityError, match="email"):
        tools.request(RightKind.RECTIFICATION, by=DPO, email="a@example.com", rectify={"email": "nope"})
    submitted = tools.request(
        RightKind.RECTIFICATION, by=DPO, email="a@example.com", rectify={"email": " B@Example.com "}
    )
    assert submitted.command.new_subject_key == tools.subject(email="b@example.com")
    [view] = tools.tracker.requests()
    assert tuple(s.sink for s in view.sinks) == tuple(sorted(REKEY_PLAN))


def test_a_request_names_the_other_subjects_that_hold_the_person_s_phone(tools: DpoTools) -> None:
    """A person who wrote with an address and phoned from their number alone is two subjects (a key is an e-mail's,
    else a phone's): a request for one does not reach the other, so the DPO is shown the other's key, both ways."""
    pepper = tools.runtime.pepper
    wrote = make_tagged("ana@example.com", phone="+4930123456", pepper=pepper)
    called = make_tagged(None, phone="+4930123456", pepper=pepper, channel=Channel.MESSENGER)
    other = make_tagged("bo@example.com", phone="+4930999999", pepper=pepper)
    CrmWriter(tools.runtime.engine).write_events([wrote, called, other])
    by_address = tools.request(RightKind.ERASURE, by=DPO, email="ana@example.com")
    assert by_address.command.subject_key == wrote.event.subject_key
    assert by_address.related == (called.event.subject_key,)
    by_number = tools.request(RightKind.ACCESS, by=DPO, phone="+49 30 123456")
    assert by_number.command.subject_key == called.event.subject_key
    assert by_number.related == (wrote.event.subject_key,)
    assert tools.request(RightKind.OBJECTION, by=DPO, email="bo@example.com").related == ()


def test_a_crm_that_cannot_be_read_fails_the_request_before_anything_is_recorded(
    tools: DpoTools, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other subjects are read before the request is recorded and published: a database failure there must not
    leave a published request the DPO was told had failed."""
    from sqlalchemy.exc import OperationalError

    from pipeline.crm.read import CrmReadModel

    def down(self: CrmReadModel, subject_key: str) -> tuple[str, ...]:
        raise OperationalError("select", {}, Exception("database down"))

    monkeypatch.setattr(CrmReadModel, "sharing_a_phone", down)
    with pytest.raises(OperationalError):
        tools.request(RightKind.ERASURE, by=DPO, email="ana@example.com")
    assert tools.tracker.requests() == [] and tools.publisher.sent == []  # type: ignore[attr-defined]
