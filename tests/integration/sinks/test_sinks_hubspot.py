"""The HubSpot sink through the real client against the fake: exactly one upsert per contact, nothing lost.

Faults are injected at the fake (429 with and without Retry-After, 5xx, hangs past the timeout, dropped
connections, per-input refusals) and the budget is measured where HubSpot would measure it: at the server.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

import pytest
from fakes.contacts import make_tagged, many_tagged
from fakes.hubspot import FakeHubSpot, Fault
from sinks_helpers import sink_for

from pipeline.config import Settings
from pipeline.sinks.base import SinkBackpressureError, WriteOutcome
from pipeline.sinks.hubspot.properties import CUSTOM_PROPERTIES

pytestmark = pytest.mark.integration

UPSERT = "/crm/v3/objects/contacts/batch/upsert"


def test_an_accepted_event_becomes_one_upsert_with_the_properties(
    fake: FakeHubSpot, hubspot_settings: Callable[..., Settings]
) -> None:
    sink, _ = sink_for(hubspot_settings())
    tagged = make_tagged("Jane.Doe@Example.com", consent=True, position="CTO")
    [result] = sink.write([tagged])
    assert result.outcome is WriteOutcome.WRITTEN
    [call] = fake.calls("POST", UPSERT)
    [sent] = call.body["inputs"]
    assert (sent["id"], sent["idProperty"], sent["objectWriteTraceId"]) == (
        "jane.doe@example.com",
        "email",
        str(tagged.event.event_id),
    )
    contact = fake.contact("jane.doe@example.com")
    assert contact is not None and result.external_id == contact["id"]
    props = contact["properties"]
    assert props["leadpipe_channel"] == "web_form"
    assert props["leadpipe_source_event_id"] == str(tagged.event.event_id)
    assert props["leadpipe_lead_source"] == "web_form/demo_request/web_form-source"
    assert "further_contact=consent" in props["leadpipe_legal_basis"]
    assert props["leadpipe_retention_expires_at"].startswith(str(tagged.tags.retention_expires_at.year))
    assert props["jobtitle"] == "CTO"
    assert {p.name for p in CUSTOM_PROPERTIES} <= set(fake.properties)  # created at start-up
    creates = len(fake.calls("POST", "/crm/v3/properties/contacts"))
    sink2, _ = sink_for(hubspot_settings())
    sink2.write([tagged])  # a second worker: properties exist, nothing created twice; same contact updated
    assert len(fake.calls("POST", "/crm/v3/properties/contacts")) == creates
    assert len(fake.contacts) == 1


def test_batches_of_100_deduplicated_by_email_and_no_email_is_not_applicable(
    fake: FakeHubSpot, hubspot_settings: Callable[..., Settings]
) -> None:
    sink, _ = sink_for(hubspot_settings())
    batch = many_tagged(230)
    batch += [make_tagged("person1@example1.com", first_name="Again")]  # same person twice in one batch
    batch += [make_tagged(None, phone="+4930123456")]
    results = sink.write(batch)
    outcome = {r.event_id: r.outcome for r in results}
    assert len(outcome) == 232
    assert list(outcome.values()).count(WriteOutcome.WRITTEN) == 231
    assert list(outcome.values()).count(WriteOutcome.NOT_APPLICABLE) == 1
    sizes = [len(c.body["inputs"]) for c in fake.calls("POST", UPSERT)]
    assert sizes == [100, 100, 30]
    assert len(fake.contacts) == 230
    # redelivery: the same contacts updated, none added
    sink.write(batch)
    assert len(fake.contacts) == 230


@pytest.mark.parametrize("retry_after", [None, 0.2])
def test_a_429_storm_loses_nothing(
    fake: FakeHubSpot, hubspot_settings: Callable[..., Settings], retry_after: float | None
) -> None:
    sink, _ = sink_for(hubspot_settings())
    sink.setup()
    fake.inject(Fault.rate_limited(times=6, retry_after=retry_after, method="POST", path_prefix=UPSERT))
    batch = many_tagged(150)
    results = sink.write(batch)
    assert {r.outcome for r in results} == {WriteOutcome.WRITTEN}
    assert len(fake.contacts) == 150
    statuses = [c.status for c in fake.calls("POST", UPSERT)]
    assert statuses.count(429) == 6 and statuses.count(200) == 2
    if retry_after is not None:  # the wait after each 429 honoured Retry-After
        upserts = fake.calls("POST", UPSERT)
        gaps = [b.at - a.at for a, b in itertools.pairwise(upserts) if a.status == 429]
        assert min(gaps) >= retry_after - 0.02


def test_a_5xx_burst_timeouts_and_dropped_connections_lose_nothing(
    fake: FakeHubSpot, hubspot_settings: Callable[..., Settings]
) -> None:
    sink, _ = sink_for(hubspot_settings(hubspot_timeout_s=0.5))
    sink.setup()
    fake.inject(
        Fault.server_error(times=3, status=500, path_prefix=UPSERT),
        Fault.server_error(times=1, status=503, path_prefix=UPSERT),
        Fault.hang(1.5, path_prefix=UPSERT),
        Fault.disconnect(path_prefix=UPSERT),
    )
    batch = many_tagged(40)
    results = sink.write(batch)
    assert {r.outcome for r in results} == {WriteOutcome.WRITTEN}
    assert len(fake.contacts) == 40


def test_exhausted_retries_are_backpressure_not_a_drop(
    fake: FakeHubSpot, hubspot_settings: Callable[..., Settings]
) -> None:
    sink, _ = sink_for(hubspot_settings(hubspot_max_retries=2))
    sink.setup()
    fake.inject(Fault.server_error(times=10, status=502, path_prefix=UPSERT))
    batch = many_tagged(5)
    with pytest.raises(SinkBackpressureError) as paused:
        sink.write(batch)
    assert paused.value.retry_after > 0
    assert len(fake.contacts) == 0
    fake.faults.clear()
    assert {r.outcome for r in sink.write(batch)} == {WriteOutcome.WRITTEN}  # the same batch offered again
    assert len(fake.contacts) == 5


def test_partial_failure_dead_letters_only_the_refused_with_a_scrubbed_message(
    fake: FakeHubSpot, hubspot_settings: Callable[..., Settings]
) -> None:
    sink, _ = sink_for(hubspot_settings())
    batch = many_tagged(30)
    refused = batch[3]
    flaky = batch[7]
    refused_email = refused.event.person.email
    assert refused_email is not None
    fake.reject_emails[refused_email] = (
        f"Property values were not valid: email {refused_email} is blocked (+4930123456)"
    )
    fake.transient_emails[str(flaky.event.person.email)] = 2  # INTERNAL_ERROR twice, then fine
    results = {r.event_id: r for r in sink.write(batch)}
    bad = results[refused.event.event_id]
    assert bad.outcome is WriteOutcome.FAILED and bad.reason == "hubspot_validation"
    assert "Property values were not valid" in (bad.message or "")
    assert refused_email not in (bad.message or "") and "+4930123456" not in (bad.message or "")
    assert results[flaky.event.event_id].outcome is WriteOutcome.WRITTEN
    assert sum(r.outcome is WriteOutcome.WRITTEN for r in results.values()) == 29
    assert len(fake.contacts) == 29
    retried = [c for c in fake.calls("POST", UPSERT)][1:]
    assert [len(c.body["inputs"]) for c in retried] == [1, 1]  # only the transiently failed input, twice


def test_a_whole_batch_400_is_split_until_the_bad_input_is_alone(
    hubspot_settings: Callable[..., Settings], make_settings: Callable[..., Settings]
) -> None:
    with FakeHubSpot(batch_validation="400") as strict:
        settings = make_settings(
            hubspot_access_token=strict.token, hubspot_base_url=strict.url, hubspot_backoff_base_s=0.02
        )
        sink, _ = sink_for(settings)
        batch = many_tagged(16)
        strict.reject_emails[str(batch[9].event.person.email)] = "contact is blocked"
        results = {r.event_id: r for r in sink.write(batch)}
        assert results[batch[9].event.event_id].outcome is WriteOutcome.FAILED
        assert sum(r.outcome is WriteOutcome.WRITTEN for r in results.values()) == 15
        assert len(strict.contacts) == 15


def test_the_sink_never_exceeds_the_configured_budget(make_settings: Callable[..., Settings]) -> None:
    """A scaled budget (12 requests per 1 s) so the test takes seconds; the fake enforces the same limit."""
    with FakeHubSpot(rate_limit=(12, 1.0)) as fake:
        settings = make_settings(
            hubspot_access_token=fake.token,
            hubspot_base_url=fake.url,
            hubspot_rate_limit_requests=12,
            hubspot_rate_limit_window_s=1.0,
            hubspot_rate_limit_margin_s=0.2,  # 0.05 s let one request arrive early on a loaded 2-core machine
            hubspot_batch_size=10,
        )
        sink, _ = sink_for(settings)
        batch = many_tagged(400)  # 40 upserts + property calls
        results = sink.write(batch)
        assert {r.outcome for r in results} == {WriteOutcome.WRITTEN}
        assert fake.rate_limited == 0
        assert fake.max_in_window(1.0) <= 12
        assert len(fake.contacts) == 400


def test_gateway_rights_calls(fake: FakeHubSpot, hubspot_settings: Callable[..., Settings]) -> None:
    sink, gateway = sink_for(hubspot_settings())
    sink.write([make_tagged("rights@example.com")])
    assert gateway.read_contact("Rights@example.com", ["email", "firstname"]) == {
        "id": fake.contact("rights@example.com")["id"],  # type: ignore[index]
        "properties": {
            "email": "rights@example.com",
            "firstname": "Jane",
            "hs_object_id": fake.contact("rights@example.com")["id"],
        },  # type: ignore[index]
    }
    assert [c["properties"]["email"] for c in gateway.search_contacts(emails=["rights@example.com"])] == [
        "rights@example.com"
    ]
    assert (
        gateway.update_contact("rights@example.com", {"company": "Rectified"})["properties"]["company"] == "Rectified"
    )  # type: ignore[index]
    assert gateway.update_contact("nobody@example.com", {"company": "x"}) is None
    [definition, *_] = gateway.subscription_definitions()
    assert gateway.unsubscribe("rights@example.com", definition["id"])["status"] == "NOT_SUBSCRIBED"
    assert gateway.email_status("rights@example.com")[definition["id"]] == "NOT_SUBSCRIBED"
    answer = gateway.unsubscribe_all(["rights@example.com"])
    assert answer["status"] == "COMPLETE" and fake.unsubscribed_all == {"rights@example.com": "EMAIL"}
    assert gateway.purge_contact("rights@example.com") is True
    assert fake.gdpr_deleted == ["rights@example.com"]
    assert fake.calls("DELETE") == []  # erasure is the GDPR delete, never the restorable archive
    assert gateway.purge_contact("rights@example.com") is False
    assert gateway.read_contact("rights@example.com") is None


def test_rights_calls_retry_429_too(fake: FakeHubSpot, hubspot_settings: Callable[..., Settings]) -> None:
    _, gateway = sink_for(hubspot_settings())
    fake.inject(
        Fault.rate_limited(2, path_prefix="/communication-preferences/v4"),
        Fault.server_error(1, path_prefix="/crm/v3/objects/contacts/gdpr-delete"),
    )
    assert gateway.unsubscribe_all(["x@example.com"])["status"] == "COMPLETE"
    assert gateway.purge_contact("x@example.com") is False  # 502 retried, then 404: nothing to delete


SEARCH = "/crm/v3/objects/contacts/search"


def test_the_rights_search_finds_hubspot_only_contacts_by_email_additional_email_and_phone(
    fake: FakeHubSpot, hubspot_settings: Callable[..., Settings]
) -> None:
    """Through the real client: contacts leadpipe never wrote (a sales rep's, an import's) are found, by every
    e-mail (primary or additional) and phone, in requests of at most five filter groups, every page followed."""
    from hubspot.crm.contacts.models import SimplePublicObjectInputForCreate

    _, gateway = sink_for(hubspot_settings())
    basic = gateway.client.crm.contacts.basic_api

    def create(**properties: str) -> str:
        return str(basic.create(SimplePublicObjectInputForCreate(properties=properties)).id)

    by_email = create(email="ana@example.com", firstname="Ana")
    by_extra = create(email="ana.work@example.org", hs_additional_emails="ana@example.net;x@example.com")
    by_phone = create(phone="+442079460958", firstname="Rep-made")  # no e-mail at all
    by_mobile = create(mobilephone="+442079460958", email="someone@example.com")
    create(email="other@example.com", phone="+4930123456")
    for n in range(130):  # a switchboard number many contacts share: more than one page
        create(email=f"staff{n}@example.com", phone="+4930999999")
    found = gateway.search_contacts(
        emails=["ANA@example.com", "ana@example.net", "nobody@example.com"], phones=["+442079460958"]
    )
    assert {c["id"] for c in found} == {by_email, by_extra, by_phone, by_mobile}
    searches = fake.calls("POST", SEARCH)
    assert [len(c.body["filterGroups"]) for c in searches] == [5, 3]  # 8 groups: 2 per e-mail, 2 per phone
    shared = gateway.search_contacts(phones=["+4930999999"])
    assert len(shared) == 130 and [c.body.get("after") for c in fake.calls("POST", SEARCH)[2:]] == [None, "100"]
    assert gateway.search_contacts(emails=["gone@example.com"]) == []


def test_the_rights_search_keeps_to_hubspot_s_search_budget(
    fake: FakeHubSpot, hubspot_settings: Callable[..., Settings]
) -> None:
    """HubSpot allows about 4 search requests a second: the gateway's search budget keeps under it, unasked."""
    _, gateway = sink_for(hubspot_settings())
    for n in range(12):
        gateway.search_contacts(emails=[f"p{n}@example.com"])
    assert fake.rate_limited == 0
    assert fake.max_in_window(1.0, SEARCH) <= 4


def test_the_fake_refuses_searches_beyond_hubspot_s_limits(fake: FakeHubSpot) -> None:
    from hubspot import HubSpot
    from hubspot.crm.contacts.exceptions import ApiException
    from hubspot.crm.contacts.models import Filter, FilterGroup, PublicObjectSearchRequest

    search = HubSpot(access_token=fake.token, host=fake.url, base_url=fake.url).crm.contacts.search_api
    group = FilterGroup(filters=[Filter(property_name="email", operator="EQ", value="a@example.com")])
    for request in (
        PublicObjectSearchRequest(filter_groups=[group] * 6),
        PublicObjectSearchRequest(filter_groups=[FilterGroup(filters=group.filters * 11)]),
        PublicObjectSearchRequest(filter_groups=[FilterGroup(filters=group.filters * 6)] * 5),  # 30 in all
        PublicObjectSearchRequest(filter_groups=[group], limit=201),
        PublicObjectSearchRequest(filter_groups=[group], after="9950", limit=100),
    ):
        time.sleep(0.3)  # within the fake's own search budget (4 a second): each refusal is about the request
        with pytest.raises(ApiException) as refused:
            search.do_search(request)
        assert refused.value.status == 400
    time.sleep(0.3)
    assert search.do_search(PublicObjectSearchRequest(filter_groups=[group])).total == 0


def test_a_contact_s_email_is_changed_by_id_unless_another_contact_holds_the_address(
    fake: FakeHubSpot, hubspot_settings: Callable[..., Settings]
) -> None:
    from pipeline.sinks.hubspot.gateway import HubSpotRequestError

    sink, gateway = sink_for(hubspot_settings())
    sink.write([make_tagged("old@example.com"), make_tagged("taken@example.com")])
    contact_id = fake.contact("old@example.com")["id"]  # type: ignore[index]
    changed = gateway.update_contact(contact_id, {"email": "new@example.com"}, by_id=True)
    assert changed is not None and changed["id"] == contact_id
    assert fake.contact("old@example.com") is None and fake.contact("new@example.com")["id"] == contact_id  # type: ignore[index]
    with pytest.raises(HubSpotRequestError) as conflict:
        gateway.update_contact(contact_id, {"email": "taken@example.com"}, by_id=True)
    assert conflict.value.status == 409 and "taken@" not in conflict.value.message  # scrubbed
    assert gateway.read_contact(contact_id, ["email"], by_id=True)["properties"]["email"] == "new@example.com"  # type: ignore[index]
    assert gateway.purge_contact(contact_id, by_id=True) is True and fake.contact("new@example.com") is None
