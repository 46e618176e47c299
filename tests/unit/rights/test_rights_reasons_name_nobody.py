"""A reason a person writes on a request (closing a step by hand, extending the deadline) is kept with the request's
evidence, shown by ``dpo status``/``dpo show``, the API and the console, and outlives an erasure of the person. A DPO
who writes "deleted ana@example.com by hand in HubSpot" put the erased person's address back into the evidence in
clear: such a reason is refused (exit 2, API 422 naming the field ``reason``), never kept and never quoted back."""

from __future__ import annotations

import json
import uuid

import pytest
from fastapi.testclient import TestClient
from identity_helpers import person
from test_rights_close_step import _hubspot, _in_attention, _tools

from pipeline.models.rights import RightKind, SinkStatus
from pipeline.rights.commands import build_command
from pipeline.rights.tracker import RequestTracker, StepClosure
from pipeline.runtime import Runtime

ADDRESS = "ana.erased@example.com"


@pytest.mark.parametrize(
    ("reason", "found"),
    [
        (f"deleted {ADDRESS} by hand in HubSpot", "an e-mail address"),
        ("deleted ana.erased%40example.com by hand", "an e-mail address"),
        ("called her on +420 601 123 456 to confirm", "a phone number"),
        ("called 0601123456 to confirm the deletion", "a phone number"),
        ("number (650) 555-0143 removed by hand", "a phone number"),
        ("Contact deleted by hand in HubSpot, ticket DPO-118", None),
        ("HubSpot contact 51234567890 deleted by hand by their support", None),  # an id, as the evidence names
        ("ticket INC-2026-000123, closed 2026-12-07 at 10:30", None),
    ],
)
def test_what_a_reason_may_not_name(reason: str, found: str | None) -> None:
    from pipeline.logging import personal_data_in

    assert personal_data_in(reason) == found


def test_closing_a_step_with_a_reason_naming_the_person_is_refused_and_changes_nothing(runtime: Runtime) -> None:
    ex, command = _in_attention(runtime)
    tools = _tools(runtime)
    for reason in (f"deleted {ADDRESS} by hand in HubSpot", "confirmed by phone with +44 7911 123456"):
        with pytest.raises(ValueError, match="must name nobody") as refused:
            tools.close_step(command.request_id, "hubspot", StepClosure.DONE_BY_HAND, reason, by=person("dora"))
        assert ADDRESS not in str(refused.value) and "7911" not in str(refused.value)
    step = _hubspot(ex, command)
    assert step.closed is None and step.status is SinkStatus.FAILED
    assert tools.publisher.records == []  # type: ignore[attr-defined]


def test_an_extension_reason_naming_the_person_is_refused(runtime: Runtime) -> None:
    tracker = RequestTracker(runtime.engine)
    command = build_command(RightKind.OBJECTION, "sk_" + "d" * 40, issued_by=person("dpo"))
    tracker.record(command, sinks=("suppression", "crm"))
    with pytest.raises(ValueError, match="must name nobody"):
        tracker.extend(command.request_id, 1, f"{ADDRESS} sent two more requests", by=person("dora"))
    view = tracker.get(command.request_id)
    assert view is not None and not view.extensions


def test_the_api_refuses_such_a_reason_naming_the_field_never_the_value(runtime: Runtime, client: TestClient) -> None:
    _ex, command = _in_attention(runtime)
    reason = f"deleted {ADDRESS} by hand in HubSpot"
    closed = client.post(
        f"/v1/dpo/requests/{command.request_id}/sinks/hubspot/close",
        json={"closed_as": "done_by_hand", "reason": reason},
    )
    assert closed.status_code == 422, closed.text
    assert "reason" in json.dumps(closed.json()) and ADDRESS not in closed.text
    extended = client.post(
        f"/v1/dpo/requests/{command.request_id}/extend", json={"months": 1, "reason": f"asked again by {ADDRESS}"}
    )
    assert extended.status_code == 422 and ADDRESS not in extended.text
    fine = client.post(
        f"/v1/dpo/requests/{command.request_id}/sinks/hubspot/close",
        json={"closed_as": "done_by_hand", "reason": "deleted by hand in HubSpot, ticket DPO-7"},
    )
    assert fine.status_code == 200, fine.text
    assert uuid.UUID(fine.json()["request_id"]) == command.request_id
