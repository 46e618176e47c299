"""Property: any signed request gets a documented answer, and the publisher saw exactly what the answer says.

202 → two records (raw + normalised) per event id returned; 400/422 → exactly one dead letter with the id returned
(none for a replay of a rejected request: the same answer again); 413/415 → nothing. Never a 500, never an accepted
answer without records, never a rejection without a dead letter.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ingest_helpers import HMAC_SECRET, RecordingPublisher
from source_payloads import all_payloads, content_type_of

from pipeline.ingest.api import sign
from pipeline.models.records import ContactRecord, DeadLetter, RawRecord

SOURCES = {"wp-contact": "web_form", "mailbox": "email", "cards": "event"}
CONTENT_TYPES = [
    "application/json",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz",
    "multipart/form-data",
    "message/rfc822",
    "application/mbox",
    "text/csv",
    "text/csv; charset=utf-16",
    "text/csv; charset=bogus",
    "text/plain",
    "image/png",
    "",
]
#: The rejected answers by source and signature: a replay of one is answered the same, without a dead letter.
REJECTED: dict[tuple[str, str], tuple[int, Any]] = {}
FIXTURE_BODIES = [p.read_bytes() for _c, p in all_payloads()]
FIXTURE_TYPES = [content_type_of(p) for _c, p in all_payloads()]

bodies = st.one_of(
    st.binary(max_size=2000),
    st.sampled_from(FIXTURE_BODIES),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=30),
        lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=5),
        max_leaves=20,
    ).map(lambda v: json.dumps(v).encode()),
)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    source=st.sampled_from(sorted(SOURCES)),
    content_type=st.sampled_from(CONTENT_TYPES) | st.sampled_from(FIXTURE_TYPES),
    body=bodies,
    flip=st.one_of(st.none(), st.integers(0, 10_000)),
)
def test_every_answer_matches_what_was_published(
    client: TestClient, publisher: RecordingPublisher, source: str, content_type: str, body: bytes, flip: Any
) -> None:
    if flip is not None and body:
        position = flip % len(body)
        body = body[:position] + bytes([body[position] ^ 0x55]) + body[position + 1 :]
    publisher.records.clear()
    headers = {"content-type": content_type, **sign(HMAC_SECRET, body)} if content_type else sign(HMAC_SECRET, body)
    response = client.post(f"/v1/sources/{source}", content=body, headers=headers)
    answer = response.json()
    assert response.status_code in {202, 400, 415, 422}, (response.status_code, answer)
    if response.status_code == 202:
        ids = answer["event_ids"]
        if answer.get("ignored"):  # a receipt (``NothingToTake``): no events, nothing published, and it says why
            assert ids == [] and publisher.records == []
            return
        if answer.get("replayed"):  # the same body signed in the same second as an earlier example: a replay
            # answered with the original's ids (none when the original was a receipt), nothing published again
            assert publisher.records == []
            return
        assert ids
        raw = [r.value for r in publisher.records if isinstance(r.value, RawRecord)]
        normalized = [r.value for r in publisher.records if isinstance(r.value, ContactRecord)]
        assert len(publisher.records) == 2 * len(ids)
        assert [str(r.event_id) for r in raw] == [str(r.event_id) for r in normalized] == ids
    elif response.status_code in (400, 422):
        assert answer["errors"] and all(e["reason"] and e["message"] for e in answer["errors"])
        signed = (source, headers["X-Leadpipe-Signature"])
        if not publisher.records:  # the same body signed in the same second as an earlier rejected example: a replay
            assert REJECTED[signed] == (response.status_code, answer)  # its answer again, no second dead letter
            return
        [dead] = publisher.records
        assert isinstance(dead.value, DeadLetter) and str(dead.value.dead_letter_id) == answer["dead_letter_id"]
        REJECTED[signed] = (response.status_code, answer)
    else:
        assert publisher.records == []
