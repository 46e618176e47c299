"""Website usage: Segment-style analytics events of identified and of anonymous visitors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from source_payloads import PEPPER, ctx_for, payload

from pipeline import normalize
from pipeline.ingest.service import check_content_type
from pipeline.models.common import Channel, InteractionKind
from pipeline.sources import NothingToTake, SourceError, website


def parse(name: str):  # type: ignore[no-untyped-def]
    raw, content_type = payload("website", name)
    return website.parse(raw, ctx_for("website", raw, content_type))


def test_identified_page_view() -> None:
    [event] = parse("segment_page.json")
    assert event.interaction.kind is InteractionKind.PAGE_VIEW
    assert event.interaction.page_url == "https://www.example.com/pricing"
    assert event.person.email == "peter.lindqvist@example.fi"
    assert event.provenance.ip == "198.51.100.23"
    # the person's event, carrying the visitor key that links the device's anonymous history to them; the cookie
    # id itself is kept nowhere (only inside the sealed raw payload)
    assert event.subject_key == normalize.subject_key(PEPPER, email="peter.lindqvist@example.fi")
    assert event.provenance.visitor_key == normalize.visitor_key(PEPPER, "507f191e810c19729de860ea")
    assert event.provenance.device_id is None and "507f191e810c19729de860ea" not in event.model_dump_json()
    assert event.interaction.subject == "page: Pricing"


def test_batch_with_email_user_id_and_traits() -> None:
    track, identify = parse("segment_batch.json")
    assert track.person.email == "sara.lee@example.kr"
    assert identify.person.phone == "+12025550175"


def parse_json(document: dict[str, Any]):  # type: ignore[no-untyped-def]
    raw = json.dumps(document).encode()
    return website.parse(raw, ctx_for("website", raw, "application/json"))


def test_an_anonymous_page_view_is_the_visitor_s_keyed_by_the_hmac_of_the_cookie_id() -> None:
    [event] = parse("anonymous_page.json")
    key = normalize.visitor_key(PEPPER, "anon-42")
    assert event.subject_key == key and normalize.is_visitor_key(key)
    assert event.provenance.visitor_key == key
    assert event.person.email is None and event.person.phone is None
    assert event.provenance.cookie_consent == {}  # no consent sent: the chain drops it (no_consent)
    assert "anon-42" not in event.model_dump_json()


def test_consent_manager_choices_are_read_from_segment_and_rudderstack_shapes() -> None:
    segment = {"categoryPreferences": {"Analytics": True, "Advertising": False}}
    [event] = parse_json({"type": "page", "anonymousId": "a-1", "context": {"consent": segment}})
    assert event.provenance.cookie_consent == {"analytics": True, "advertising": False}
    consent_mode = {"analytics_storage": "granted", "ad_storage": "denied", "junk": {"x": 1}}
    [event] = parse_json({"type": "page", "anonymousId": "a-1", "context": {"consent": consent_mode}})
    assert event.provenance.cookie_consent == {"analytics_storage": True, "ad_storage": False}
    rudder = {"allowedConsentIds": ["C0001", "C0002"], "deniedConsentIds": ["C0002", "C0004"]}
    [event] = parse_json({"type": "track", "anonymousId": "a-1", "context": {"consentManagement": rudder}})
    assert event.provenance.cookie_consent == {"c0001": True, "c0002": False, "c0004": False}  # a denial wins


def test_no_e_mail_phone_or_visitor_id_is_refused_no_identity() -> None:
    with pytest.raises(SourceError) as err:
        parse_json({"type": "page", "properties": {"url": "https://www.example.com/"}})
    assert err.value.reason == "no_identity"


@pytest.mark.parametrize("bad", ["has space", "x" * 201, "tab\there", "ünïcode"])
def test_an_anonymous_event_whose_visitor_id_is_not_one_is_refused(bad: str) -> None:
    with pytest.raises(SourceError) as err:
        parse_json({"type": "page", "anonymousId": bad})
    assert err.value.reason == "invalid_visitor_id"
    assert [p.field for p in err.value.problems] == ["anonymousId"]


def test_an_identified_event_with_a_bad_visitor_id_is_kept_unlinked_with_a_note() -> None:
    [event] = parse_json({"type": "identify", "anonymousId": "has space", "traits": {"email": "ann@example.com"}})
    assert event.subject_key == normalize.subject_key(PEPPER, email="ann@example.com")
    assert event.provenance.visitor_key is None and event.provenance.notes == ("visitor_id_invalid",)


def test_a_batch_mixes_anonymous_and_identified_events_of_one_device() -> None:
    page = {"type": "page", "anonymousId": "dev-7", "properties": {"url": "https://www.example.com/a"}}
    identify = {"type": "identify", "anonymousId": "dev-7", "traits": {"email": "bo@example.com"}}
    anonymous, person = parse_json({"batch": [page, identify]})
    key = normalize.visitor_key(PEPPER, "dev-7")
    assert anonymous.subject_key == key and anonymous.interaction.page_url == "https://www.example.com/a"
    assert person.subject_key != key and person.provenance.visitor_key == key


def test_segments_reserved_traits_title_company_and_address() -> None:
    """Segment's spec nests ``company`` and ``address`` and calls the job title ``title``; a page's own
    ``properties.title`` is the page's, never the person's position."""
    identify = {
        "type": "identify",
        "userId": "u1",
        "traits": {
            "email": "ana@example.es",
            "title": "CTO",
            "company": {"name": "Empresa SL", "industry": "Tech"},
            "address": {"city": "Madrid", "country": "Spain", "street": "Gran Vía 1"},
        },
        "timestamp": "2024-06-05T10:00:00Z",
    }
    raw = json.dumps(identify).encode()
    [event] = website.parse(raw, ctx_for("website", raw, "application/json"))
    person = event.person
    assert (person.position, person.company, person.location, person.country_code) == (
        "CTO",
        "Empresa SL",
        "Madrid",
        "ES",
    )
    assert person.company_address == "Gran Vía 1"
    page = {
        "type": "page",
        "userId": "ana@example.es",
        "properties": {"title": "Pricing | Example", "url": "https://example.com/pricing"},
        "timestamp": "2024-06-05T10:00:00Z",
    }
    raw = json.dumps(page).encode()
    [event] = website.parse(raw, ctx_for("website", raw, "application/json"))
    assert event.person.position is None


def test_a_browsers_beacon_sends_the_json_as_plain_text() -> None:
    """``navigator.sendBeacon(url, JSON.stringify(event))`` posts ``text/plain;charset=UTF-8``: taken, and read as
    the JSON it is (it was refused 415)."""
    content_type = "text/plain;charset=UTF-8"
    assert check_content_type(Channel.WEBSITE, content_type) == "text/plain"
    raw = json.dumps({"type": "page", "anonymousId": "6f1c2d3e-0001", "timestamp": "2024-06-05T10:00:00Z"}).encode()
    [event] = website.parse(raw, ctx_for("website", raw, content_type))
    assert event.subject_key.startswith("vk_")


def _events(body: dict[str, Any]):  # type: ignore[no-untyped-def]
    raw = json.dumps(body).encode()
    return website.parse(raw, ctx_for("website", raw, "application/json"))


@pytest.mark.parametrize(
    "item",
    [
        {"type": "page", "name": "Pricing", "properties": {"name": "Pricing", "title": "Preise"}},
        {"type": "track", "event": "Product Viewed", "properties": {"name": "Monopoly: 3rd Edition", "price": 18.99}},
        {"type": "track", "event": "Signed Up", "properties": {"first_name": "Promo", "company": "Shop"}},
    ],
)
def test_a_page_s_or_product_s_properties_never_name_the_person(item: dict[str, Any]) -> None:
    """``page('Pricing')``'s and a product's ``properties.name`` became the person's first or last name."""
    context = {"traits": {"email": "anna@example.de", "firstName": "Anna"}}
    [event] = _events({**item, "anonymousId": "a1", "context": context})
    person = event.person
    assert (person.first_name, person.last_name, person.company) == ("Anna", None, None)
    [signed] = _events({"type": "track", "event": "Signed Up", "properties": {"email": "ola@example.no"}})
    assert signed.person.email == "ola@example.no"  # an e-mail or phone in properties still names the person


def test_a_group_call_names_an_account_not_a_person() -> None:
    """A ``group`` call's traits (the company's name and info@ address) became a person."""
    group = {"type": "group", "groupId": "g1", "anonymousId": "a1", "traits": {
        "name": "Schmidt AG", "email": "info@schmidt.example", "phone": "+49 30 1234567"}}  # fmt: skip
    with pytest.raises(NothingToTake) as taken:
        _events(group)
    assert taken.value.reason == "group_call"
    page = {"type": "page", "anonymousId": "a1", "context": {"traits": {"email": "anna@example.de"}}}
    [event] = _events({"batch": [group, page]})  # left out of a batch, the batch's other events kept
    assert event.person.email == "anna@example.de"
