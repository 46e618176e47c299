"""One request view: the tracker's ``RequestView``, and the DPO's ``RequestOut`` (API, ``dpo status --json``) is it
plus whether it is overdue; the tracker's own bookkeeping stays out of what the DPO is shown."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from identity_helpers import person

from pipeline.models.identity import system_principal
from pipeline.models.rights import RightKind, SinkStatus
from pipeline.rights.dpo import RequestOut, request_out
from pipeline.rights.tracker import RequestState, RequestView, SinkView

AT = datetime(2025, 6, 1, 12, tzinfo=UTC)
DPO = person("dpo:test", "Dana Protector")
AGENT = system_principal("rights-agent")


def _view(state: RequestState) -> RequestView:
    return RequestView(
        request_id="7d3c0c7e-0000-4000-8000-000000000001",
        kind=RightKind.ERASURE,
        subject_key="sk_" + "r" * 40,
        issued_by=DPO.actor,
        issuer=DPO,
        received_at=AT,
        due_at=AT + timedelta(days=30),
        effective_due_at=AT + timedelta(days=30),
        extension_reason=None,
        state=state,
        completed_at=None,
        published_at=AT,
        notice_due=False,
        sinks=(
            SinkView(sink="crm", status=SinkStatus.FAILED, attempts=2, error="db down", evidence={}, updated_at=AT),
            SinkView(
                sink="suppression",
                status=SinkStatus.DONE,
                attempts=1,
                error=None,
                evidence={},
                updated_at=AT,
                completed_by=AGENT,
            ),
        ),
    )


def test_the_dpo_is_shown_the_view_and_whether_it_is_overdue() -> None:
    out = request_out(_view(RequestState.ATTENTION), AT + timedelta(days=31))
    doc = out.model_dump(mode="json")
    assert set(doc) == {
        "request_id",
        "kind",
        "subject_key",
        "issued_by",
        "issuer",
        "received_at",
        "due_at",
        "effective_due_at",
        "extension_reason",
        "extended_by",
        "extensions",
        "state",
        "overdue",
        "notice_due",
        "notice_sent_by",
        "completed_at",
        "sinks",
        "contacts_while_restricted",
        "contacts_unreviewed",
    }
    assert (doc["state"], doc["overdue"]) == ("attention", True)
    assert doc["sinks"][0] == {
        "sink": "crm",
        "status": "failed",
        "attempts": 2,
        "error": "db down",
        "evidence": {},
        "completed_by": None,
        "closed": None,  # no person closed the step by hand
    }
    # who issued it and who completed each step, by id and by name
    assert doc["issuer"]["display_name"] == "Dana Protector" and doc["issued_by"] == DPO.actor
    assert doc["sinks"][1]["completed_by"]["display_name"] == "rights-agent"
    schema = RequestOut.model_json_schema(mode="serialization")  # what the API's OpenAPI document shows
    assert set(schema["properties"]) == set(doc)
    assert set(schema["$defs"]["SinkView"]["properties"]) == set(doc["sinks"][0])


def test_overdue_is_judged_at_the_time_asked_and_never_for_a_completed_request() -> None:
    assert not request_out(_view(RequestState.OPEN), AT + timedelta(days=29)).overdue
    assert request_out(_view(RequestState.OPEN), AT + timedelta(days=31)).overdue
    assert not request_out(_view(RequestState.COMPLETED), AT + timedelta(days=31)).overdue
