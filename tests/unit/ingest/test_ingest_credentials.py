"""Who may submit to a source: a producer client's API key bound to that source (instead of the source's own
secret), never an operator's key; and a source's HMAC secret rotated with two active at once, over HTTP."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from identity_helpers import key_for
from ingest_helpers import HMAC_SECRET, RecordingPublisher
from source_payloads import payload

from pipeline.api.app import create_api
from pipeline.config import Settings
from pipeline.db import ensure_schema
from pipeline.ingest.api import sign
from pipeline.models.identity import Role
from pipeline.runtime import Runtime


def submit(client: TestClient, source: str, headers: dict[str, str]) -> Any:
    body, content_type = payload("web_form", "cf7_contact_us.txt")
    return client.post(f"/v1/sources/{source}", content=body, headers={"content-type": content_type, **headers})


def test_a_producer_key_submits_to_its_bound_sources_only(
    client: TestClient, publisher: RecordingPublisher, ingest_settings: Settings
) -> None:
    form = key_for(ingest_settings, Role.PRODUCER, "site-form", sources=("wp-contact",))
    accepted = submit(client, "wp-contact", {"Authorization": f"Bearer {form}"})  # no signature needed
    assert accepted.status_code == 202, accepted.text
    assert len(publisher.records) == 2

    mail = key_for(ingest_settings, Role.PRODUCER, "mail-relay", sources=("mailbox",))
    unbound = submit(client, "wp-contact", {"Authorization": f"Bearer {mail}"})
    assert unbound.status_code == 403 and unbound.json()["reason"] == "source_not_bound"
    dpo = key_for(ingest_settings, Role.DPO)
    not_a_producer = submit(client, "wp-contact", {"Authorization": f"Bearer {dpo}"})
    assert not_a_producer.status_code == 403 and not_a_producer.json()["reason"] == "forbidden"
    unknown = submit(client, "wp-contact", {"Authorization": "Bearer lpk_aaaaaaaaaaaa_" + "A" * 43})
    assert unknown.status_code == 401 and unknown.json()["reason"] == "invalid_credentials"
    assert len(publisher.records) == 2  # nothing refused was published


@pytest.fixture
def rotating(make_settings: Callable[..., Settings]) -> TestClient:
    old_until = (datetime.now(UTC) + timedelta(days=7)).isoformat()
    gone_at = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    settings = make_settings(
        sources={
            "wp-contact": {
                "channel": "web_form",
                "hmac_secrets": [
                    {"id": "2026-06", "secret": "new-form-secret"},
                    {"id": "2026-01", "secret": HMAC_SECRET, "not_after": old_until},
                ],
            },
            "retired": {
                "channel": "web_form",
                "hmac_secrets": [
                    {"id": "new", "secret": "new-form-secret"},
                    {"id": "old", "secret": HMAC_SECRET, "not_after": gone_at},
                ],
            },
        }
    )
    runtime = Runtime(settings)
    ensure_schema(runtime.engine)
    return TestClient(create_api(runtime, RecordingPublisher()))  # type: ignore[arg-type]


def test_both_secrets_work_while_a_source_rotates_and_the_old_one_ends(rotating: TestClient) -> None:
    body, content_type = payload("web_form", "cf7_contact_us.txt")

    def signed(source: str, secret: str) -> int:
        headers = {"content-type": content_type, **sign(secret, body)}
        return rotating.post(f"/v1/sources/{source}", content=body, headers=headers).status_code

    assert signed("wp-contact", "new-form-secret") == 202
    assert signed("wp-contact", HMAC_SECRET) == 202
    assert signed("wp-contact", "a-guess") == 401
    assert signed("retired", "new-form-secret") == 202
    assert signed("retired", HMAC_SECRET) == 401  # past its not_after
