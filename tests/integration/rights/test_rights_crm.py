"""Each right in the CRM (``CrmRights``) against SQLite and PostgreSQL (``db_url``): what it changes, what it keeps,
what it audits, and that doing it again changes nothing."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from fakes.contacts import BASE_TIME, make_tagged
from sqlalchemy import Engine

from pipeline.models import Channel
from pipeline.models.common import Purpose
from pipeline.models.rights import SuppressionRecord
from pipeline.models.tagged import TaggedEvent
from pipeline.rights.effects.crm import CrmRights
from pipeline.sinks.crm.writer import CrmWriter

pytestmark = pytest.mark.integration


@pytest.fixture
def crm(crm_engine: Engine) -> CrmRights:
    return CrmRights(crm_engine)


def test_every_right_in_the_crm(crm_writer: CrmWriter, crm: CrmRights) -> None:
    a = make_tagged(consent=True, phone="+4930123456")
    b = make_tagged(channel=Channel.CHATBOT, occurred_at=BASE_TIME + timedelta(days=1))
    crm_writer.write_events([a, b])
    key = a.event.subject_key
    req = uuid.uuid4

    withdrawal = crm.withdraw_consent(key, req())
    assert withdrawal.purposes_withdrawn == ("further_contact",)
    assert withdrawal.purposes_stopped == 1
    view = crm.read.show(key)
    assert view is not None and view.consent_state == {"further_contact": False}

    objection_id = req()
    objection = crm.set_marketing_objection(key, objection_id)
    assert objection.changed and objection.purposes_stopped == 2  # information_of_interest of both interactions
    assert not crm.set_marketing_objection(key, objection_id).changed
    stopped = [p for i in crm.read.show(key).interactions_detail for p in i.purposes if p.stopped_at]  # type: ignore[union-attr]
    assert {p.purpose for p in stopped} == {"further_contact", "information_of_interest"}
    assert all(p.legal_basis != "contract" for p in stopped)  # the contract purpose continues

    assert crm.set_restriction(key, req(), restricted=True).changed
    assert crm.read.show(key).status == "restricted"  # type: ignore[union-attr]
    assert crm.set_restriction(key, req(), restricted=False).changed

    rect = crm.rectify(key, req(), {"company": "Fixed Ltd", "phone": "+4930999999"})
    assert rect.changed_fields == ("company", "phone")
    view = crm.read.show(key)
    assert view is not None and view.company == "Fixed Ltd"
    assert ("phone", "+4930999999") in {(i.kind, i.value) for i in view.identities}
    assert ("phone", "+4930123456") not in {(i.kind, i.value) for i in view.identities}
    with pytest.raises(ValueError):
        crm.rectify(key, req(), {"subject_key": "x"})

    export = crm.export_subject(key)
    assert export is not None
    assert set(export) == {"subject", "identities", "interactions", "consents", "website_history", "audit"}
    assert len(export["interactions"]) == 2
    assert {e["action"] for e in export["audit"]} >= {"interaction_recorded", "consent_withdrawn", "rectified"}

    erasure_id = req()
    erased = crm.erase_subject(key, erasure_id, at=BASE_TIME + timedelta(days=200))
    assert erased.found and erased.interactions_deleted == 2 and erased.identities_deleted >= 2
    view = crm.read.show(key)
    assert view is not None and view.status == "erased"
    assert view.erasure_request_id == erasure_id
    assert (view.first_name, view.email, view.phone, view.company, view.interactions) == (None, None, None, None, 0)
    assert view.marketing_objected  # flags are kept: an objection still holds if the person comes back
    assert crm.read.search(email="jane.doe@example.com") == []
    again = crm.erase_subject(key, req())
    assert again.already_erased
    assert not crm.erase_subject("sk_unknown", req()).found

    # an event received before the erasure (accepted just before it, or replayed) never brings the data back
    late = make_tagged(occurred_at=BASE_TIME + timedelta(days=100))
    report = crm_writer.write_events([late])
    assert report.superseded == frozenset({late.event.event_id}) and not report.new
    assert crm.read.show(key).status == "erased"  # type: ignore[union-attr]
    assert crm.read.search(email="jane.doe@example.com") == []

    # the person comes back (the chain let the new event through): a new collection on the same subject
    back = make_tagged(occurred_at=BASE_TIME + timedelta(days=400))
    report = crm_writer.write_events([back])
    assert report.subjects_recollected == frozenset({key})
    assert crm.read.show(key).status == "active"  # type: ignore[union-attr]


def test_retention_expiry_and_deletion(crm_writer: CrmWriter, crm: CrmRights) -> None:
    old = make_tagged(occurred_at=BASE_TIME - timedelta(days=365 * 9))  # web form: 8 years, expired
    new = make_tagged(occurred_at=BASE_TIME)
    crm_writer.write_events([old, new])
    expired = crm.expired_interactions(BASE_TIME)
    assert [e.event_id for e in expired] == [old.event.event_id]
    assert crm.read.interaction_counts([old.event.subject_key]) == {old.event.subject_key: 2}
    deletion = crm.delete_interactions(old.event.subject_key, [old.event.event_id], uuid.uuid4())
    assert (deletion.deleted, deletion.remaining) == (1, 1)
    assert crm.expired_interactions(BASE_TIME) == []


def test_held_before_finds_what_a_restore_brought_back_not_what_came_after(crm_engine: Engine, crm: CrmRights) -> None:
    """``held_before`` (the restore check): data collected up to an erasure the CRM does not show; never what a person
    gave after it, nor a subject the CRM first met afterwards."""
    clock = {"now": BASE_TIME + timedelta(hours=1)}
    writer = CrmWriter(crm_engine, clock=lambda: clock["now"])
    first = make_tagged(consent=True, phone="+4930123456")  # received BASE_TIME + 1 s, written an hour later
    key = first.event.subject_key
    writer.write_events([first])
    erased_at = BASE_TIME + timedelta(hours=2)
    assert crm.held_before({key: erased_at, "sk_never_seen": erased_at}) == {key}
    assert crm.held_before({key: BASE_TIME}) == set()  # everything was collected after that moment

    crm.erase_subject(key, uuid.uuid4(), at=erased_at)
    assert crm.held_before({key: erased_at}) == set()

    clock["now"] = BASE_TIME + timedelta(hours=3)  # the person comes back: a new, lawful collection
    again = make_tagged(consent=True, occurred_at=BASE_TIME + timedelta(hours=3))
    assert writer.write_events([again]).subjects_recollected == {key}
    view = crm.read.show(key)
    assert view is not None and view.email == "jane.doe@example.com"
    assert crm.held_before({key: erased_at}) == set()
    # a later erasure the CRM does not show (a copy restored from before it) finds the new data
    assert crm.held_before({key: BASE_TIME + timedelta(hours=4)}) == {key}


FC = Purpose.FURTHER_CONTACT


def test_flags_behind_finds_a_crm_row_that_contradicts_the_subject_state(crm_writer: CrmWriter, crm: CrmRights) -> None:
    """``flags_behind`` (the restore check): a restriction, an objection or a consent withdrawal the CRM row does
    not show; not a consent given again after the withdrawal."""
    tagged = make_tagged(consent=True)
    crm_writer.write_events([tagged])
    key = tagged.event.subject_key
    at = BASE_TIME + timedelta(days=1)

    def state(**flags: object) -> dict[str, SuppressionRecord]:
        return {key: SuppressionRecord(subject_key=key, updated_at=at, request_id=uuid.uuid4(), **flags)}  # type: ignore[arg-type]

    assert crm.flags_behind(state()) == set()
    assert crm.flags_behind({**state(restricted=True), "sk_never_seen": state()[key]}) == {key}
    assert crm.flags_behind(state(marketing_objected=True)) == {key}
    withdrawn = state(consent_withdrawn=(Purpose.FURTHER_CONTACT,))
    assert crm.flags_behind(withdrawn) == {key}  # the checkbox's grant is the newest choice
    # withdrawn before the checkbox was ticked (a later objection moved updated_at): the box is consent given again
    earlier = {FC: BASE_TIME - timedelta(days=1)}
    assert crm.flags_behind(state(consent_withdrawn=(FC,), consent_withdrawn_at=earlier)) == set()

    crm.set_restriction(key, uuid.uuid4(), restricted=True)
    crm.set_marketing_objection(key, uuid.uuid4())
    crm.withdraw_consent(key, withdrawn[key].request_id, ["further_contact"])
    everything = state(restricted=True, marketing_objected=True, consent_withdrawn=(Purpose.FURTHER_CONTACT,))
    assert crm.flags_behind(everything) == set()
    assert crm.flags_behind(state(marketing_objected=True)) == {key}  # restricted in the CRM, not in this state

    later = make_tagged(consent=True, occurred_at=at + timedelta(days=1))  # consent given again afterwards
    crm_writer.write_events([later])
    assert crm.flags_behind(everything) == set()


def _imported(tagged: TaggedEvent) -> TaggedEvent:
    """``tagged`` with its consent as an import copies it from another system (not the person's act of now)."""
    consents = tuple(c.model_copy(update={"method": "import"}) for c in tagged.event.consents)
    return tagged.model_copy(update={"event": tagged.event.model_copy(update={"consents": consents})})


def test_a_withdrawal_stands_in_the_consent_state_until_the_person_gives_consent_again(
    crm_writer: CrmWriter, crm: CrmRights
) -> None:
    """9.8: an old CRM export's "yes" imported again after the withdrawal (its consent as an import copies it) stays
    in the history of choices but does not make the state say granted; a box the person ticks on a later form is
    consent given again, which the chain counts (``consented_again``), and the state says so. The state used to say
    granted for both (before the last release) and then for neither."""
    from datetime import UTC, datetime

    first = make_tagged("lena.consent@example.de", consent=True)
    crm_writer.write_events([first])
    key = first.event.subject_key
    crm.withdraw_consent(key, uuid.uuid4())
    later = datetime.now(UTC) + timedelta(1)
    imported = make_tagged("lena.consent@example.de", consent=True, channel=Channel.CUSTOMER, occurred_at=later)
    crm_writer.write_events([_imported(imported)])
    view = crm.read.show(key)
    assert view is not None and view.consent_state == {"further_contact": False}
    assert [(c.granted, c.method) for c in view.consents][-2:] == [(False, "rights_request"), (True, "import")]
    ticked = make_tagged("lena.consent@example.de", consent=True, occurred_at=later + timedelta(hours=1))
    crm_writer.write_events([ticked])
    view = crm.read.show(key)
    assert view is not None and view.consent_state == {"further_contact": True}


def test_a_withdrawal_still_stands_in_the_consent_state_when_an_erased_person_comes_back(
    crm_writer: CrmWriter, crm: CrmRights, crm_engine: Engine
) -> None:
    """Erasure deletes the CRM's history of choices, but the withdrawal stays in the subject's suppression state (the
    chain goes on taking the purpose off what the person sends, unless they give consent again): a returning
    person's imported "yes" does not undo it, a box they tick afterwards does."""
    from datetime import UTC, datetime

    from pipeline.rights.tracker import RequestTracker

    first = make_tagged("mia.back@example.de", consent=True)
    crm_writer.write_events([first])
    key = first.event.subject_key
    now = datetime.now(UTC)
    request_id = uuid.uuid4()
    crm.withdraw_consent(key, request_id)
    RequestTracker(crm_engine).save_state(
        SuppressionRecord(
            subject_key=key,
            erased=True,
            erased_at=now,
            consent_withdrawn=(Purpose.FURTHER_CONTACT,),
            updated_at=now,
            request_id=request_id,
        )
    )
    crm.erase_subject(key, uuid.uuid4())
    back = make_tagged("mia.back@example.de", consent=True, occurred_at=now + timedelta(hours=1))
    crm_writer.write_events([_imported(back)])
    view = crm.read.show(key)
    assert view is not None and [c.granted for c in view.consents] == [True]  # only what came after the erasure
    assert view.consent_state == {"further_contact": False}
    ticked = make_tagged("mia.back@example.de", consent=True, occurred_at=now + timedelta(hours=2))
    crm_writer.write_events([ticked])
    view = crm.read.show(key)
    assert view is not None and view.consent_state == {"further_contact": True}  # given again, after the withdrawal
