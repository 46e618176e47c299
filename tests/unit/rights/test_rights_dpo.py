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
    from pipeline.rights.commands import ChangeError
    from pipeline.rights.plan import REKEY_PLAN

    with pytest.raises(ChangeError, match="email"):
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


# ---- whom a request naming a phone or an address is for ------------------------------------------------------------


def _nothing_recorded(tools: DpoTools) -> bool:
    return tools.tracker.requests() == [] and tools.publisher.sent == []  # type: ignore[attr-defined]


def test_a_phone_held_under_the_person_s_address_leads_to_them(tools: DpoTools) -> None:
    """Dmitry wrote with his address and number: he is held under the address's key, and the number's own key holds
    nobody. A request by the number (as he says it, national) is his, not the empty key's."""
    pepper = tools.runtime.pepper
    wrote = make_tagged("dmitry@example.ru", phone="+79161234567", pepper=pepper)
    CrmWriter(tools.runtime.engine).write_events([wrote])
    submitted = tools.request(RightKind.OBJECTION, by=DPO, phone="8 916 123-45-67", region="RU")
    assert submitted.command.subject_key == wrote.event.subject_key
    assert submitted.named_key == tools.subject(phone="+79161234567") != wrote.event.subject_key
    assert (submitted.found_by, submitted.in_crm, submitted.related) == ("identity", True, ())
    [view] = tools.tracker.requests()
    assert view.subject_key == wrote.event.subject_key


def test_a_shared_number_is_never_chosen_from_unless_the_dpo_names_the_subject(tools: DpoTools) -> None:
    from pipeline.rights.commands import AmbiguousSubject, IdentityError

    pepper = tools.runtime.pepper
    ana = make_tagged("ana@example.com", phone="+4930123456", pepper=pepper)
    bo = make_tagged("bo@example.com", phone="+4930123456", pepper=pepper)  # the same switchboard
    CrmWriter(tools.runtime.engine).write_events([ana, bo])
    keys = tuple(sorted([ana.event.subject_key, bo.event.subject_key]))
    with pytest.raises(AmbiguousSubject) as refused:
        tools.request(RightKind.ERASURE, by=DPO, phone="+49 30 123456")
    assert refused.value.candidates == keys and all(k in str(refused.value) for k in keys)
    assert "+4930123456" not in str(refused.value) and _nothing_recorded(tools)
    with pytest.raises(IdentityError, match="subject_key") as wrong:
        tools.request(RightKind.ERASURE, by=DPO, phone="+49 30 123456", subject_key="sk_" + "0" * 40)
    assert wrong.value.field == "subject_key" and _nothing_recorded(tools)
    chosen = tools.request(RightKind.ERASURE, by=DPO, phone="+49 30 123456", subject_key=bo.event.subject_key)
    assert chosen.command.subject_key == bo.event.subject_key and chosen.found_by == "subject_key"
    assert chosen.related == (ana.event.subject_key,)


def test_the_related_subjects_include_those_holding_the_number_named(tools: DpoTools) -> None:
    """A phone-keyed subject whose number was corrected keeps the old number's key; whoever holds the number named
    is shown, though the subject under its key no longer holds it."""
    pepper = tools.runtime.pepper
    old_key = tools.subject(phone="+4930123456")
    called = make_tagged(None, phone="+4930555555", pepper=pepper, channel=Channel.MESSENGER)
    called = called.model_copy(update={"event": called.event.model_copy(update={"subject_key": old_key})})
    wrote = make_tagged("ana@example.com", phone="+4930123456", pepper=pepper)
    CrmWriter(tools.runtime.engine).write_events([called, wrote])
    submitted = tools.request(RightKind.ACCESS, by=DPO, phone="+4930123456")
    assert submitted.command.subject_key == old_key and submitted.found_by == "key"
    assert submitted.related == (wrote.event.subject_key,)


def test_a_person_the_crm_does_not_hold_is_still_asked_for(tools: DpoTools) -> None:
    submitted = tools.request(RightKind.ACCESS, by=DPO, email="nobody@example.com")
    assert submitted.in_crm is False and submitted.found_by == "key" and submitted.related == ()
    assert submitted.command.subject_key == tools.subject(email="nobody@example.com")
    assert len(tools.tracker.requests()) == 1  # HubSpot may hold them: the request runs


@pytest.mark.parametrize(
    ("identity", "field"),
    [
        ({"email": "ana@example.com, bob@example.com"}, "email"),
        ({"email": "ana@example.com bob@example.com"}, "email"),
        ({"phone": "+4930123456, +4930999999"}, "phone"),
        ({"phone": "+49 30 123456 / +49 30 999999"}, "phone"),
    ],
)
def test_two_addresses_or_numbers_are_refused_never_read_as_the_first(
    tools: DpoTools, identity: dict[str, str], field: str
) -> None:
    from pipeline.rights.commands import IdentityError

    with pytest.raises(IdentityError, match="two") as refused:
        tools.request(RightKind.ACCESS, by=DPO, **identity)
    assert refused.value.field == field and "example.com" not in str(refused.value) and "30" not in str(refused.value)
    assert _nothing_recorded(tools)


def test_the_region_is_a_country_code_or_name_and_a_bad_one_is_its_own_error(tools: DpoTools) -> None:
    from pipeline.rights.commands import IdentityError

    spain = tools.request(RightKind.ACCESS, by=DPO, phone="912 345 678", region="Spain")
    assert spain.command.subject_key == tools.subject(phone="+34912345678")
    for bad in ("XX", "Atlantis"):
        with pytest.raises(IdentityError, match="not a country") as refused:
            tools.request(RightKind.ACCESS, by=DPO, phone="912 345 678", region=bad)
        assert refused.value.field == "region"
    with pytest.raises(IdentityError, match="exactly one e-mail address or one phone number") as neither:
        tools.request(RightKind.ACCESS, by=DPO)
    assert "--" not in str(neither.value)  # the API says it too: no CLI flags


# ---- rectification: what is stored, and what becomes of a phone key ---------------------------------------------


def _body(tools: DpoTools, submitted: Any) -> Any:
    from pipeline.rights.bodies import RectificationBody

    return tools.runtime.codec.sealer.open_model(submitted.command.sealed, RectificationBody)


def test_corrected_phones_countries_and_addresses_are_stored_normalised(tools: DpoTools) -> None:
    pepper = tools.runtime.pepper
    hans = make_tagged("hans@example.de", phone="+4930123456", pepper=pepper, country_code="DE")
    CrmWriter(tools.runtime.engine).write_events([hans])
    spaced = tools.request(
        RightKind.RECTIFICATION, by=DPO, email="hans@example.de", rectify={"phone": "+49 30 7654321"}
    )
    assert _body(tools, spaced).changes == {"phone": "+49307654321"}
    national = tools.request(RightKind.RECTIFICATION, by=DPO, email="hans@example.de", rectify={"phone": "030 7654321"})
    assert _body(tools, national).changes == {"phone": "+49307654321"}  # read in the subject's country
    irish = tools.request(
        RightKind.RECTIFICATION,
        by=DPO,
        email="hans@example.de",
        rectify={"country_code": "Ireland", "phone": "01 234 5678"},
    )
    assert _body(tools, irish).changes == {"country_code": "IE", "phone": "+35312345678"}  # in the corrected one
    moved = tools.request(
        RightKind.RECTIFICATION, by=DPO, email="hans@example.de", rectify={"email": " Hans@Example.NET "}
    )
    assert _body(tools, moved).changes == {"email": "hans@example.net"}


@pytest.mark.parametrize(
    ("changes", "field", "says"),
    [
        ({"phone": "12345"}, "phone", "not a"),
        ({"phone": "abc"}, "phone", "not a"),
        ({"phone": "+4930123456, +4930999999"}, "phone", "two"),
        ({"country_code": "Ireland-ish"}, "country_code", "not a country"),
        ({"email": None}, "email", "cannot be cleared, only corrected"),
        ({"email": "ana@example.com, bob@example.com"}, "email", "two"),
    ],
)
def test_a_value_that_cannot_be_stored_is_refused_naming_the_field(
    tools: DpoTools, changes: dict[str, str | None], field: str, says: str
) -> None:
    from pipeline.rights.commands import ChangeError

    with pytest.raises(ChangeError, match=says) as refused:
        tools.request(RightKind.RECTIFICATION, by=DPO, email="hans@example.de", rectify=changes)
    message = str(refused.value)
    assert refused.value.field == field and message.startswith(f"{field}: ")
    assert "pydantic" not in message and "input_value" not in message
    assert not any(value and value in message for value in changes.values())
    assert _nothing_recorded(tools)


def test_giving_a_phone_only_person_an_address_keeps_their_number_as_an_alias(tools: DpoTools) -> None:
    """The number is still valid and still theirs: by default a later call from it must join them and their flags.
    ``forget`` stays available; a person keyed by an address keeps ``forget`` as the default."""
    pepper = tools.runtime.pepper
    paul = make_tagged(None, phone="+447911123456", pepper=pepper, channel=Channel.MESSENGER)
    ana = make_tagged("ana@example.com", phone="+4930123456", pepper=pepper)
    CrmWriter(tools.runtime.engine).write_events([paul, ana])
    new = {"email": "paul@example.co.uk"}
    by_default = tools.request(RightKind.RECTIFICATION, by=DPO, phone="07911 123456", region="GB", rectify=new)
    assert by_default.command.subject_key == paul.event.subject_key
    assert by_default.command.new_subject_key == tools.subject(email="paul@example.co.uk")
    assert _body(tools, by_default).old_address == "alias"
    forget = tools.request(RightKind.RECTIFICATION, by=DPO, phone="+447911123456", rectify=new, old_address="forget")
    assert _body(tools, forget).old_address == "forget"
    address = tools.request(
        RightKind.RECTIFICATION, by=DPO, email="ana@example.com", rectify={"email": "a@example.net"}
    )
    assert _body(tools, address).old_address == "forget"
