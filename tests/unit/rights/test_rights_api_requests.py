"""``POST /v1/dpo/requests``: whom a request is for when the named e-mail or phone is held under another key, and
refusals in the API's own words (its fields, never the CLI's flags; never a value the DPO sent)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fakes.contacts import make_tagged
from fastapi.testclient import TestClient

from pipeline.config import Settings
from pipeline.db import ensure_schema
from pipeline.normalize import subject_key
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
