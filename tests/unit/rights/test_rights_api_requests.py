"""``POST /v1/dpo/requests``: whom a request is for when the named e-mail or phone is held under another key, and
refusals in the API's own words (its fields, never the CLI's flags; never a value the DPO sent)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fakes.contacts import make_tagged
from fastapi.testclient import TestClient
from identity_helpers import key_for
from ingest_helpers import RecordingPublisher

from pipeline.api.app import create_api
from pipeline.config import Settings
from pipeline.db import ensure_schema
from pipeline.models.identity import Role
from pipeline.normalize import subject_key
from pipeline.rights.tracker import RequestTracker
from pipeline.runtime import Runtime
from pipeline.sinks.crm.writer import CrmWriter


@pytest.fixture
def runtime(make_settings: Callable[..., Settings]) -> Runtime:
    built = Runtime(make_settings())
    ensure_schema(built.engine)
    pepper = built.pepper
    CrmWriter(built.engine).write_events(
        [
            make_tagged("dmitry@example.ru", phone="+79161234567", pepper=pepper),
            make_tagged("ana@example.com", phone="+4930123456", pepper=pepper),
            make_tagged("bo@example.com", phone="+4930123456", pepper=pepper),
        ]
    )
    return built


def test_a_number_held_under_the_person_s_address_is_answered_with_their_key(
    client: TestClient, runtime: Runtime
) -> None:
    answer = client.post("/v1/dpo/requests", json={"kind": "objection", "phone": "8 916 123-45-67", "region": "Russia"})
    assert answer.status_code == 202, answer.text
    out = answer.json()
    assert out["subject_key"] == subject_key(runtime.pepper, email="dmitry@example.ru")
    assert out["named_subject_key"] == subject_key(runtime.pepper, phone="+79161234567")
    assert (out["found_by"], out["in_crm"]) == ("identity", True)
    nobody = client.post("/v1/dpo/requests", json={"kind": "access", "email": "nobody@example.com"}).json()
    assert nobody["in_crm"] is False and nobody["found_by"] == "key"


def test_a_shared_number_is_refused_with_the_candidates_until_one_is_named(
    client: TestClient, runtime: Runtime
) -> None:
    keys = sorted(subject_key(runtime.pepper, email=e) for e in ("ana@example.com", "bo@example.com"))
    refused = client.post("/v1/dpo/requests", json={"kind": "erasure", "phone": "+4930123456"})
    assert refused.status_code == 422
    detail = refused.json()["detail"]
    assert detail["reason"] == "ambiguous_subject" and detail["candidate_subject_keys"] == keys
    assert "4930123456" not in refused.text
    chosen = client.post("/v1/dpo/requests", json={"kind": "erasure", "phone": "+4930123456", "subject_key": keys[1]})
    assert chosen.status_code == 202 and chosen.json()["subject_key"] == keys[1]
    assert chosen.json()["related_subject_keys"] == [keys[0]]


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({"kind": "access"}, "email", "exactly one e-mail address or one phone number"),
        ({"kind": "access", "email": "a@example.com", "phone": "+4930123456"}, "email", "exactly one"),
        ({"kind": "access", "phone": "912345678", "region": "Atlantis"}, "region", "not a country"),
        ({"kind": "access", "email": "ana@example.com, bob@example.com"}, "email", "two addresses"),
        ({"kind": "rectification", "email": "ana@example.com", "changes": {"phone": "abc"}}, "changes.phone", "not a"),
        (
            {"kind": "rectification", "email": "ana@example.com", "changes": {"email": None}},
            "changes.email",
            "cannot be cleared, only corrected",
        ),
    ],
)
def test_refusals_name_the_field_in_the_api_s_words(
    client: TestClient, body: dict[str, object], field: str, says: str
) -> None:
    answer = client.post("/v1/dpo/requests", json=body)
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert detail["field"] == field and says in detail["message"]
    assert "--" not in detail["message"] and "pydantic" not in answer.text and "bob@" not in answer.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "erasure", "email": "ana@example.com", "purposes": ["further_contact"]}, "purposes"),
        ({"kind": "objection", "email": "ana@example.com", "changes": {"last_name": "Garcia"}}, "changes"),
        ({"kind": "restriction", "email": "ana@example.com", "old_address": "alias"}, "old_address"),
        ({"kind": "erasure", "email": "ana@example.com", "password": "correct horse battery"}, "password"),
    ],
)
def test_a_detail_the_kind_does_not_take_is_refused_not_left_out(
    client: TestClient, runtime: Runtime, body: dict[str, object], field: str
) -> None:
    """A DPO who sends corrections with an objection meant something by them: they were dropped without a word and
    the objection went out."""
    answer = client.post("/v1/dpo/requests", json=body)
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert (detail["reason"], detail["field"]) == ("invalid_request", field)
    article = "an" if str(body["kind"])[0] in "aeiou" else "a"
    assert f"{article} {body['kind']} request takes none" in detail["message"]
    assert client.get("/v1/dpo/requests", params={"state": "all"}).json() == []  # nothing recorded


def test_an_unknown_field_is_refused_by_name_and_no_value_is_echoed(client: TestClient) -> None:
    """A mistyped ``old_adress`` was ignored, and the old address forgotten (the default) instead of kept; a
    refusal of the body's shape quoted the e-mail address back."""
    typo = client.post(
        "/v1/dpo/requests",
        json={
            "kind": "rectification",
            "email": "ana@example.com",
            "changes": {"email": "ana@example.org"},
            "old_adress": "alias",
        },
    )
    assert typo.status_code == 422, typo.text
    [error] = typo.json()["detail"]
    assert error["loc"] == ["body", "old_adress"] and error["type"] == "extra_forbidden"
    too_long = client.post("/v1/dpo/requests", json={"kind": "access", "email": "a" * 330 + "@example.com"})
    assert too_long.status_code == 422 and too_long.headers["cache-control"] == "no-store"
    [error] = too_long.json()["detail"]
    assert error["loc"] == ["body", "email"] and "320" in error["msg"]
    assert "aaaa" not in too_long.text and "example.com" not in too_long.text
    phone = client.post(
        "/v1/dpo/requests", json={"kind": "access", "phone": "+49 30 1234567 ext 9999999999999999999999999999"}
    )
    assert phone.status_code == 422 and "1234567" not in phone.text


def test_a_corrected_value_the_crm_cannot_keep_is_refused_before_it_is_recorded(client: TestClient) -> None:
    answer = client.post(
        "/v1/dpo/requests",
        json={"kind": "rectification", "email": "ana@example.com", "changes": {"last_name": "Kowalczyk" * 30}},
    )
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert (detail["reason"], detail["field"]) == ("invalid_change", "changes.last_name")
    assert "longer than 200 characters" in detail["message"] and "Kowalczyk" not in answer.text


def test_a_request_id_of_the_caller_s_records_a_request_once(client: TestClient, runtime: Runtime) -> None:
    """The same call repeated (its answer was lost) is the same request: answered 200 as recorded, nothing recorded
    or published twice; another request under that id is 409, naming the request that holds it."""
    request_id = "0b9b2c4e-6a55-4c2e-9d0e-3f1f6f1c2a10"
    body = {"kind": "access", "email": "ana@example.com", "request_id": request_id}
    first = client.post("/v1/dpo/requests", json=body)
    assert first.status_code == 202, first.text
    assert first.json()["request_id"] == request_id and first.json()["replayed"] is False
    again = client.post("/v1/dpo/requests", json=body)
    assert again.status_code == 200, again.text
    assert again.json()["replayed"] is True and again.json()["password"] == first.json()["password"]
    assert {k: v for k, v in again.json().items() if k != "replayed"} == {
        k: v for k, v in first.json().items() if k != "replayed"
    }
    assert [r["request_id"] for r in client.get("/v1/dpo/requests").json()] == [request_id]
    received = [a for a in RequestTracker(runtime.engine).audit_trail(request_id=request_id)]
    assert [a.action for a in received] == ["rights.request_received"]
    for other in (
        {"kind": "erasure", "email": "ana@example.com"},  # another kind
        {"kind": "access", "email": "bo@example.com"},  # another person
        {"kind": "access", "email": "ana@example.com", "password": "another long password"},  # another detail
    ):
        clash = client.post("/v1/dpo/requests", json={**other, "request_id": request_id})
        assert clash.status_code == 409, clash.text
        detail = clash.json()["detail"]
        assert (detail["reason"], detail["field"], detail["request_id"]) == (
            "duplicate_request_id",
            "request_id",
            request_id,
        )
        assert "another request (an access for" in detail["message"] and "bo@" not in clash.text
    assert len(client.get("/v1/dpo/requests").json()) == 1
    not_a_uuid = client.post("/v1/dpo/requests", json={**body, "request_id": "my-request-1"})
    assert not_a_uuid.status_code == 422 and not_a_uuid.json()["detail"][0]["loc"] == ["body", "request_id"]


def test_an_auditor_reads_a_request_s_trail_over_http(client: TestClient) -> None:
    """``leadpipe dpo show`` printed the audit trail; the API had none (who received it, each sink's runs)."""
    made = client.post("/v1/dpo/requests", json={"kind": "objection", "email": "ana@example.com"}).json()
    trail = client.get(f"/v1/dpo/requests/{made['request_id']}/audit")
    assert trail.status_code == 200 and trail.headers["cache-control"] == "no-store"
    [received] = trail.json()
    assert received["action"] == "rights.request_received" and received["principal"]["display_name"] == "Dora"
    assert received["subject_key"] == made["subject_key"] and "ana@" not in trail.text
    assert client.get("/v1/dpo/requests/00000000-0000-0000-0000-000000000000/audit").status_code == 404


def test_a_request_the_broker_did_not_confirm_is_published_when_the_caller_repeats_it(runtime: Runtime) -> None:
    """503 ``not_published``: recorded, not on the topic. Repeated with its id, it is published then, once; without
    an id the caller could only issue it again, as a second request."""
    publisher = RecordingPublisher()
    client = TestClient(create_api(runtime, publisher))  # type: ignore[arg-type]
    client.headers["authorization"] = f"Bearer {key_for(runtime.settings, Role.DPO)}"
    body = {"kind": "restriction", "email": "ana@example.com", "request_id": "5f0e3a52-1b7c-4c59-8f4a-2a8f0e9d6b11"}
    publisher.fail = True
    assert client.post("/v1/dpo/requests", json=body).status_code == 503
    publisher.fail = False
    again = client.post("/v1/dpo/requests", json=body)
    assert again.status_code == 200 and again.json()["replayed"] is True
    commands = [o for o in publisher.records if o.topic == "rights.commands"]
    assert [str(o.value.request_id) for o in commands] == [body["request_id"]]  # type: ignore[attr-defined]
    view = RequestTracker(runtime.engine).get(body["request_id"])
    assert view is not None and view.published_at is not None
    assert client.post("/v1/dpo/requests", json=body).status_code == 200
    assert len([o for o in publisher.records if o.topic == "rights.commands"]) == 1  # published: not again
