"""Stitching anonymous website visitors to people (``pipeline.crm.stitching``, with the sink's fold of links,
``sinks.crm.rows.visitor_links_of``): the result depends on which events exist, never on the order or the batches
they arrive in; two devices of one person are two histories; a shared device belongs to its first person until the
second identified on it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fakes.contacts import make_tagged, make_visit
from hypothesis import given
from hypothesis import strategies as st

from pipeline.crm.stitching import Attribution, Link, attribute, earliest
from pipeline.models.tagged import TaggedEvent
from pipeline.normalize import visitor_key
from pipeline.sinks.crm.rows import visitor_links_of

PEPPER = b"test-pepper"
T0 = datetime(2025, 3, 1, 12, tzinfo=UTC)
DEVICE_A, DEVICE_B = visitor_key(PEPPER, "device-a"), visitor_key(PEPPER, "device-b")
PEOPLE = ("ann@example.com", "bob@example.org", "cem@example.net")


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def identified(email: str, device: str, minutes: int, n: int) -> TaggedEvent:
    """A form submitted by ``email`` on ``device`` (its cookie id came with it)."""
    return make_tagged(email, visitor=device, occurred_at=at(minutes), event_id=uuid.UUID(int=n + 1))


def stored_after(batches: list[list[TaggedEvent]]) -> dict[tuple[str, str], Link]:
    """What ``crm_visitor_links`` holds after the sink wrote these batches in this order (``CrmWriter`` keeps,
    per visitor and person, the earliest link it has seen)."""
    stored: dict[tuple[str, str], Link] = {}
    for batch in batches:
        for pair, link in visitor_links_of(batch).items():
            stored[pair] = earliest(stored.get(pair), link)
    return stored


def attributions(stored: dict[tuple[str, str], Link]) -> dict[str, Attribution | None]:
    by_visitor: dict[str, list[Link]] = {}
    for (visitor, _), link in stored.items():
        by_visitor.setdefault(visitor, []).append(link)
    return {visitor: attribute(links) for visitor, links in by_visitor.items()}


#: (person, device, minute) of the identifying events of a scenario.
identifications = st.lists(
    st.tuples(st.sampled_from(PEOPLE), st.sampled_from((DEVICE_A, DEVICE_B)), st.integers(0, 600)),
    min_size=1,
    max_size=12,
)


@given(identifications, st.randoms(use_true_random=False), st.integers(1, 5), st.integers(0, 3))
def test_arrival_order_batches_and_redelivery_change_nothing(
    scenario: list[tuple[str, str, int]], rng: object, batch_size: int, redelivered: int
) -> None:
    events = [identified(email, device, minute, n) for n, (email, device, minute) in enumerate(scenario)]
    in_order = stored_after([events])
    shuffled = list(events) + events[:redelivered]  # a redelivered event is the same event again
    rng.shuffle(shuffled)  # type: ignore[attr-defined]
    batches = [shuffled[i : i + batch_size] for i in range(0, len(shuffled), batch_size)]
    assert stored_after(batches) == in_order
    assert attributions(stored_after(batches)) == attributions(in_order)


@given(identifications)
def test_the_owner_is_the_first_to_identify_and_the_history_is_shared_from_the_second(
    scenario: list[tuple[str, str, int]],
) -> None:
    events = [identified(email, device, minute, n) for n, (email, device, minute) in enumerate(scenario)]
    for device, attribution in attributions(stored_after([events])).items():
        assert attribution is not None
        mine = sorted(
            (e.event.occurred_at, e.event.event_id, e.event.subject_key)
            for e in events
            if e.event.provenance.visitor_key == device
        )
        first_at, first_id, first_key = mine[0]
        owner = attribution.owner
        assert (owner.linked_at, owner.event_id, owner.subject_key) == (first_at, first_id, first_key)
        others = [when for when, _, key in mine if key != first_key]
        assert attribution.until == (min(others) if others else None)


def test_one_person_owns_the_whole_history_of_their_device_before_and_after_identifying() -> None:
    [link] = visitor_links_of([identified(PEOPLE[0], DEVICE_A, 30, 0)]).values()
    attribution = attribute([link])
    assert attribution is not None and attribution.owner == link and attribution.until is None
    assert attribution.covers(at(0)) and attribution.covers(at(10_000))


def test_two_devices_of_one_person_are_two_histories_owned_by_them() -> None:
    stored = stored_after([[identified(PEOPLE[0], DEVICE_A, 30, 0), identified(PEOPLE[0], DEVICE_B, 90, 1)]])
    found = attributions(stored)
    assert set(found) == {DEVICE_A, DEVICE_B}
    for device, attribution in found.items():
        assert attribution is not None and attribution.owner.visitor_key == device
        assert attribution.owner.subject_key == make_tagged(PEOPLE[0]).event.subject_key
        assert attribution.until is None


def test_a_shared_device_later_identified_as_two_people() -> None:
    """Ann fills a form at 10:30 on a library computer, Bob at 11:30: the browsing before 11:30 is Ann's, what the
    device did from 11:30 on is nobody's; the same if Bob's form is delivered first."""
    ann, bob = identified(PEOPLE[0], DEVICE_A, 30, 0), identified(PEOPLE[1], DEVICE_A, 90, 1)
    for batches in ([[ann, bob]], [[bob], [ann]]):
        attribution = attributions(stored_after(batches))[DEVICE_A]
        assert attribution is not None
        assert attribution.owner.subject_key == ann.event.subject_key
        assert attribution.shared_by is not None and attribution.shared_by.subject_key == bob.event.subject_key
        assert attribution.covers(at(0)) and attribution.covers(at(89))
        assert not attribution.covers(at(90)) and not attribution.covers(at(200))


def test_a_person_identifying_again_keeps_their_earliest_link() -> None:
    first, again = identified(PEOPLE[0], DEVICE_A, 30, 0), identified(PEOPLE[0], DEVICE_A, 300, 1)
    assert stored_after([[again], [first]]) == stored_after([[first, again]])
    [link] = stored_after([[again], [first]]).values()
    assert link.event_id == first.event.event_id and link.linked_at == at(30)


def test_an_anonymous_event_links_nobody() -> None:
    assert visitor_links_of([make_visit("device-a")]) == {}
    assert visitor_links_of([make_tagged(PEOPLE[0])]) == {}  # no cookie id came with the form


def test_links_of_different_pairs_or_visitors_are_refused() -> None:
    a = Link(DEVICE_A, "sk_ann", at(0), uuid.UUID(int=1))
    with pytest.raises(ValueError, match="pairs"):
        earliest(a, Link(DEVICE_A, "sk_bob", at(1), uuid.UUID(int=2)))
    with pytest.raises(ValueError, match="visitors"):
        attribute([a, Link(DEVICE_B, "sk_ann", at(1), uuid.UUID(int=2))])
    assert attribute([]) is None
