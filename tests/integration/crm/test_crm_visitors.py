"""Anonymous website visitors in the CRM, on SQLite and PostgreSQL (``db_url``): the sink stores a visitor's page
views under its key and links it to the person who identified on the device; the contact shows the history
attributed to them; erasing the person erases the device's history and their links; erasing the visitor (by cookie
id) erases its history and every link to it."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from fakes.contacts import BASE_TIME, make_tagged, make_visit
from sqlalchemy import Engine, func, select

from pipeline.crm.read import CrmReadModel
from pipeline.crm.schema import audit, interactions, visitor_links
from pipeline.models.tagged import TaggedEvent
from pipeline.normalize import visitor_key
from pipeline.rights.effects.crm import CrmRights
from pipeline.sinks.crm.writer import CrmWriter

pytestmark = pytest.mark.integration

PEPPER = b"test-pepper"
DEVICE = visitor_key(PEPPER, "device-1")


def at(minutes: int) -> timedelta:
    return timedelta(minutes=minutes)


def visit(minutes: int, device: str = "device-1") -> TaggedEvent:
    return make_visit(device, occurred_at=BASE_TIME + at(minutes))


def form(email: str, minutes: int, device: str = DEVICE) -> TaggedEvent:
    return make_tagged(email, visitor=device, occurred_at=BASE_TIME + at(minutes))


def count(engine: Engine, table: object, *where: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())  # type: ignore[arg-type]


def history(read: CrmReadModel, subject_key: str) -> list[tuple[str, bool, list[uuid.UUID]]]:
    view = read.show(subject_key)
    assert view is not None
    return [(h.visitor_key, h.attributed, [i.event_id for i in h.interactions]) for h in view.website_history]


def test_a_visitor_s_history_joins_the_person_who_identified_whatever_the_order(
    crm_engine: Engine, crm_writer: CrmWriter, crm_read: CrmReadModel
) -> None:
    before, after = visit(0), visit(120)
    ann = form("ann@example.com", 60)
    crm_writer.write_events([before])
    crm_writer.write_events([ann])  # identifies: the page view before is hers
    crm_writer.write_events([after])  # and the one after
    key = ann.event.subject_key
    assert crm_read.show(DEVICE) is not None  # the visitor's own (profile-less) record
    assert history(crm_read, key) == [(DEVICE, True, [before.event.event_id, after.event.event_id])]

    earlier = form("ann@example.com", 30)  # an earlier form of hers, delivered late: the link moves to it
    crm_writer.write_events([earlier])
    crm_writer.write_events([ann, earlier, before])  # redelivery: nothing changes
    [link] = crm_read.visitor_links(DEVICE)
    assert (link.subject_key, link.event_id, link.linked_at) == (key, earlier.event.event_id, BASE_TIME + at(30))
    actions = [
        (row.action, row.detail["earlier_event"])
        for row in crm_engine.connect().execute(select(audit).where(audit.c.action == "visitor_linked"))
    ]
    assert actions == [("visitor_linked", False), ("visitor_linked", True)]
    assert crm_read.visitor_keys(key) == [DEVICE]
    dumped = crm_read.show(key).model_dump_json()  # type: ignore[union-attr]
    assert "device-1" not in dumped  # the cookie id is nowhere, only its key


def test_a_shared_device_is_its_first_person_s_until_the_second_identified(
    crm_writer: CrmWriter, crm_read: CrmReadModel
) -> None:
    early, between, late = visit(0), visit(60), visit(120)
    bob, ann = form("bob@example.org", 90), form("ann@example.com", 30)
    crm_writer.write_events([late, bob])
    crm_writer.write_events([early, between, ann])
    assert history(crm_read, ann.event.subject_key) == [(DEVICE, True, [early.event.event_id, between.event.event_id])]
    assert history(crm_read, bob.event.subject_key) == [(DEVICE, False, [])]
    [bobs] = crm_read.show(bob.event.subject_key).website_history  # type: ignore[union-attr]
    assert bobs.shared_at == BASE_TIME + at(90)


def test_erasing_the_person_erases_the_device_s_history_and_their_links(
    crm_engine: Engine, crm_writer: CrmWriter, crm_read: CrmReadModel
) -> None:
    other_device = visitor_key(PEPPER, "device-2")
    ann, bob = form("ann@example.com", 30), form("bob@example.org", 90)
    stranger = visit(10, "device-2")  # nobody identified on this one
    crm_writer.write_events([visit(0), visit(60), visit(120), ann, bob, stranger])
    crm = CrmRights(crm_engine)
    request = uuid.uuid4()
    erased = crm.erase_subject(ann.event.subject_key, request)
    assert (erased.visitors_erased, erased.visitor_interactions_deleted, erased.visitor_links_deleted) == (1, 3, 1)
    assert count(crm_engine, interactions, interactions.c.subject_key == DEVICE) == 0
    device = crm_read.show(DEVICE)
    assert device is not None and device.status == "erased" and device.erasure_request_id == request
    assert [link.subject_key for link in crm_read.visitor_links(DEVICE)] == [bob.event.subject_key]  # Bob's own
    assert history(crm_read, bob.event.subject_key) == [(DEVICE, True, [])]  # nothing of the device is left
    assert count(crm_engine, interactions, interactions.c.subject_key == other_device) == 1
    assert crm.erase_subject(ann.event.subject_key, uuid.uuid4()).already_erased

    # a page view received before the erasure and delivered after it is not written: the device is erased too
    in_flight = visit(130)
    assert erased.erased_at is not None and in_flight.event.received_at < erased.erased_at
    report = crm_writer.write_events([in_flight])
    assert report.superseded == frozenset({in_flight.event.event_id})


def test_erasing_a_visitor_by_its_key_erases_its_history_and_every_link_to_it(
    crm_engine: Engine, crm_writer: CrmWriter, crm_read: CrmReadModel
) -> None:
    ann, bob = form("ann@example.com", 30), form("bob@example.org", 90)
    crm_writer.write_events([visit(0), ann, bob])
    erased = CrmRights(crm_engine).erase_subject(DEVICE, uuid.uuid4())
    assert (erased.found, erased.interactions_deleted, erased.visitor_links_deleted) == (True, 1, 2)
    assert crm_read.visitor_links(DEVICE) == []
    assert history(crm_read, ann.event.subject_key) == []
    ann_view = crm_read.show(ann.event.subject_key)
    assert ann_view is not None and ann_view.email == "ann@example.com" and ann_view.erased_at is None


def test_a_visitor_known_only_from_a_person_s_form_can_be_erased(
    crm_engine: Engine, crm_writer: CrmWriter, crm_read: CrmReadModel
) -> None:
    crm_writer.write_events([form("ann@example.com", 30)])  # no page view of the device was stored
    crm = CrmRights(crm_engine)
    erased = crm.erase_subject(DEVICE, uuid.uuid4())
    assert (erased.found, erased.visitor_links_deleted) == (True, 1)
    assert crm_read.visitor_links(DEVICE) == []
    assert not crm.erase_subject(visitor_key(PEPPER, "never-seen"), uuid.uuid4()).found
    assert count(crm_engine, visitor_links) == 0


def test_the_access_export_holds_the_browsing_attributed_to_the_person(
    crm_engine: Engine, crm_writer: CrmWriter
) -> None:
    page, ann = visit(0), form("ann@example.com", 30)
    crm_writer.write_events([page, ann])
    export = CrmRights(crm_engine).export_subject(ann.event.subject_key)
    assert export is not None
    [device] = export["website_history"]
    assert device["visitor_key"] == DEVICE and device["attributed"] is True
    assert [i["event_id"] for i in device["interactions"]] == [str(page.event.event_id)]
    assert "website_history" not in export["subject"][0]


def test_a_corrected_address_takes_the_person_s_devices_along(
    crm_engine: Engine, crm_writer: CrmWriter, crm_read: CrmReadModel
) -> None:
    """Policy 9.2 (``move_subject``): the devices follow the person to the new key; a device both keys had keeps the
    earlier link."""
    other_device = visitor_key(PEPPER, "device-2")
    page, typo, typo_other = visit(0), form("ann@exmaple.com", 30), form("ann@exmaple.com", 10, other_device)
    right = form("ann@example.com", 60)  # the same person under the right address, on the same device, later
    crm_writer.write_events([page, typo, typo_other, right])
    old_key, new_key = typo.event.subject_key, right.event.subject_key
    CrmRights(crm_engine).move_subject(old_key, new_key, uuid.uuid4(), {"email": "ann@example.com"}, alias=False)
    assert crm_read.visitor_keys(old_key) == []
    assert crm_read.visitor_keys(new_key) == sorted([DEVICE, other_device])
    [link] = crm_read.visitor_links(DEVICE)
    assert (link.subject_key, link.event_id) == (new_key, typo.event.event_id)  # the earlier of the two
    assert (DEVICE, True, [page.event.event_id]) in history(crm_read, new_key)
