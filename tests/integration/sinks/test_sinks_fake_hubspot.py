"""The fake HubSpot itself, through the real ``hubspot-api-client``: shapes, limits, refusals, faults, records."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
from fakes.hubspot import FakeHubSpot, Fault
from hubspot import HubSpot
from hubspot.crm.contacts import ApiException
from hubspot.crm.contacts.models import (
    BatchInputSimplePublicObjectBatchInputUpsert,
    PublicGdprDeleteInput,
    SimplePublicObjectBatchInputUpsert,
)
from hubspot.crm.properties.models import PropertyCreate
from urllib3.util.retry import Retry

pytestmark = pytest.mark.integration


@pytest.fixture
def client(fake: FakeHubSpot) -> HubSpot:
    return HubSpot(access_token=fake.token, host=fake.url, base_url=fake.url, retry=Retry(total=False))


def upsert(emails: list[str], **props: str) -> BatchInputSimplePublicObjectBatchInputUpsert:
    return BatchInputSimplePublicObjectBatchInputUpsert(
        inputs=[
            SimplePublicObjectBatchInputUpsert(
                id=e, id_property="email", properties=dict(props), object_write_trace_id=f"t-{n}"
            )
            for n, e in enumerate(emails)
        ]
    )


def test_upsert_creates_then_updates_by_email(fake: FakeHubSpot, client: HubSpot) -> None:
    api = client.crm.contacts.batch_api
    first = api.upsert(upsert(["a@example.com", "b@example.com"], firstname="A"))
    assert {r.object_write_trace_id for r in first.results} == {"t-0", "t-1"}
    assert all(r.new for r in first.results)
    second = api.upsert(upsert(["A@example.com"], lastname="Z"))
    assert second.results[0].new is False
    assert second.results[0].id == first.results[0].id
    stored = fake.contact("a@example.com")
    assert stored is not None
    assert (stored["properties"]["firstname"], stored["properties"]["lastname"]) == ("A", "Z")
    found = client.crm.contacts.basic_api.get_by_id("a@example.com", id_property="email", properties=["firstname"])
    assert found.properties["firstname"] == "A"


def test_batch_limits_and_duplicates_are_refused_whole(fake: FakeHubSpot, client: HubSpot) -> None:
    api = client.crm.contacts.batch_api
    with pytest.raises(ApiException) as too_many:
        api.upsert(upsert([f"p{i}@example.com" for i in range(101)]))
    assert too_many.value.status == 400
    with pytest.raises(ApiException) as duplicate:
        api.upsert(upsert(["x@example.com", "X@example.com"]))
    body = json.loads(duplicate.value.body)
    assert duplicate.value.status == 400
    assert body["category"] == "VALIDATION_ERROR" and "Duplicate IDs" in body["message"] and body["correlationId"]
    with pytest.raises(ApiException) as unknown:
        api.upsert(upsert(["y@example.com"], nosuchproperty="1"))
    assert "PROPERTY_DOESNT_EXIST" in json.loads(unknown.value.body)["message"]
    assert fake.contacts == {}


def test_partial_failure_is_a_207_with_trace_ids(fake: FakeHubSpot, client: HubSpot) -> None:
    fake.reject_emails["bad@example.com"] = "Email address bad@example.com is invalid"
    data, status, _ = client.crm.contacts.batch_api.upsert_with_http_info(
        upsert(["good@example.com", "bad@example.com", "not-an-address"])
    )
    assert status == 207
    assert [r.object_write_trace_id for r in data.results] == ["t-0"]
    assert sorted(e.context["objectWriteTraceId"][0] for e in data.errors) == ["t-1", "t-2"]
    assert {e.category for e in data.errors} == {"VALIDATION_ERROR"}
    assert data.num_errors == 2


def test_rate_limit_is_enforced_with_hubspot_429_body(client: HubSpot) -> None:
    with FakeHubSpot(rate_limit=(3, 3.0)) as small:  # 3 s: four calls fit in it even on a stalled machine
        api = HubSpot(access_token=small.token, host=small.url, base_url=small.url, retry=Retry(total=False))
        batch = api.crm.contacts.batch_api
        for n in range(3):
            batch.upsert(upsert([f"r{n}@example.com"]))
        with pytest.raises(ApiException) as limited:
            batch.upsert(upsert(["r9@example.com"]))
        assert limited.value.status == 429
        body = json.loads(limited.value.body)
        assert body["errorType"] == "RATE_LIMIT" and body["policyName"] == "TEN_SECONDLY_ROLLING"
        assert "retry-after" not in {k.lower() for k in limited.value.headers}
        assert small.rate_limited == 1
        assert small.max_in_window(3.0) == 4  # the refused one arrived too
        time.sleep(3.05)
        batch.upsert(upsert(["r9@example.com"]))


def test_injected_faults_in_order(fake: FakeHubSpot, client: HubSpot) -> None:
    fake.inject(Fault.rate_limited(1, retry_after=2), Fault.server_error(1, status=503), Fault.latency(0.3))
    api = client.crm.contacts.batch_api
    with pytest.raises(ApiException) as first:
        api.upsert(upsert(["f@example.com"]))
    assert first.value.status == 429 and first.value.headers["Retry-After"] == "2"
    with pytest.raises(ApiException) as second:
        api.upsert(upsert(["f@example.com"]))
    assert second.value.status == 503
    started = time.monotonic()
    api.upsert(upsert(["f@example.com"]))
    assert time.monotonic() - started >= 0.3
    fake.inject(Fault.hang(2.0))
    with pytest.raises(Exception, match=r"(?i)timeout|timed out"):
        api.upsert(upsert(["f@example.com"]), _request_timeout=0.5)
    fake.inject(Fault.disconnect())
    with pytest.raises(Exception):  # noqa: B017  urllib3 ProtocolError / RemoteDisconnected
        api.upsert(upsert(["f@example.com"]))
    statuses = [r.status for r in fake.calls("POST", "/crm/v3/objects/contacts/batch/upsert")]
    assert statuses[:3] == [429, 503, 200] and statuses[4] == -1 and len(statuses) == 5  # [3] may still be hanging


def test_properties_gdpr_delete_archive_search(fake: FakeHubSpot, client: HubSpot) -> None:
    props = client.crm.properties.core_api
    created = props.create(
        "contacts",
        PropertyCreate(name="x_prop", label="X", type="string", field_type="text", group_name="contactinformation"),
    )
    assert created.name == "x_prop"
    with pytest.raises(Exception) as exists:
        props.create(
            "contacts",
            PropertyCreate(name="x_prop", label="X", type="string", field_type="text", group_name="contactinformation"),
        )
    assert exists.value.status == 409  # type: ignore[attr-defined]
    assert "x_prop" in {p.name for p in props.get_all("contacts").results}

    client.crm.contacts.batch_api.upsert(upsert(["del@example.com", "arch@example.com"]))
    from hubspot.crm.contacts.models import Filter, FilterGroup, PublicObjectSearchRequest

    found = client.crm.contacts.search_api.do_search(
        PublicObjectSearchRequest(
            filter_groups=[FilterGroup(filters=[Filter(property_name="email", operator="EQ", value="del@example.com")])]
        )
    )
    assert found.total == 1
    client.crm.contacts.basic_api.purge(PublicGdprDeleteInput(object_id="del@example.com", id_property="email"))
    assert fake.contact("del@example.com") is None and fake.gdpr_deleted == ["del@example.com"]
    with pytest.raises(ApiException) as gone:
        client.crm.contacts.basic_api.purge(PublicGdprDeleteInput(object_id="del@example.com", id_property="email"))
    assert gone.value.status == 404
    contact_id = fake.contact("arch@example.com")["id"]  # type: ignore[index]
    client.crm.contacts.basic_api.archive(contact_id)
    assert fake.contact("arch@example.com") is None


def test_communication_preferences(fake: FakeHubSpot, client: HubSpot) -> None:
    from hubspot.communication_preferences.models import PublicUpdateSubscriptionStatusRequest

    status_api = client.communication_preferences.status_api
    status_api.unsubscribe(PublicUpdateSubscriptionStatusRequest(email_address="u@example.com", subscription_id="1001"))
    statuses = {s.id: s.status for s in status_api.get_email_status("u@example.com").subscription_statuses}
    assert statuses == {"1001": "NOT_SUBSCRIBED", "1002": "SUBSCRIBED"}
    response = client.api_request(
        {
            "method": "POST",
            "path": "/communication-preferences/v4/statuses/batch/unsubscribe-all",
            "qs": {"channel": "EMAIL"},
            "body": {"inputs": ["u@example.com"]},
        }
    )
    assert response.status_code == 200
    assert response.json()["results"][0]["subscriberIdString"] == "u@example.com"
    assert fake.unsubscribed_all == {"u@example.com": "EMAIL"}


def test_requests_without_the_token_are_refused(fake: FakeHubSpot) -> None:
    request = urllib.request.Request(f"{fake.url}/crm/v3/properties/contacts")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 401
    assert json.loads(refused.value.read())["category"] == "INVALID_AUTHENTICATION"


def test_batch_read_and_update(fake: FakeHubSpot, client: HubSpot) -> None:
    from hubspot.crm.contacts.models import (
        BatchInputSimplePublicObjectBatchInput,
        BatchReadInputSimplePublicObjectId,
        SimplePublicObjectBatchInput,
        SimplePublicObjectId,
    )

    client.crm.contacts.batch_api.upsert(upsert(["r1@example.com", "r2@example.com"], firstname="R"))
    data, status, _ = client.crm.contacts.batch_api.read_with_http_info(
        BatchReadInputSimplePublicObjectId(
            inputs=[SimplePublicObjectId(id="r1@example.com"), SimplePublicObjectId(id="missing@example.com")],
            id_property="email",
            properties=["firstname"],
            properties_with_history=[],
        )
    )
    assert status == 207
    assert [r.properties["firstname"] for r in data.results] == ["R"]
    assert data.errors[0].category == "OBJECT_NOT_FOUND"
    contact_id = fake.contact("r2@example.com")["id"]  # type: ignore[index]
    updated = client.crm.contacts.batch_api.update(
        BatchInputSimplePublicObjectBatchInput(
            inputs=[SimplePublicObjectBatchInput(id=contact_id, properties={"lastname": "Updated"})]
        )
    )
    assert updated.results[0].properties["lastname"] == "Updated"
    assert fake.contact("r2@example.com")["properties"]["lastname"] == "Updated"  # type: ignore[index]
