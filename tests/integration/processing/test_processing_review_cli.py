"""``leadpipe spam review``: list, show, release and confirm against the real broker (no worker needed: the
queue is read from the topics, and a decision is an event the worker carries out later), each decision naming the
reviewer whose API key ran the command."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from identity_helpers import key_for, person
from processing_harness import contact, publish
from typer.testing import CliRunner

from pipeline.cli import app as cli
from pipeline.kafka.consumer import read_to_end
from pipeline.models.identity import Role
from pipeline.models.records import QuarantineRecord
from pipeline.models.review import ReviewDecision
from pipeline.policy.model import load_policy
from pipeline.processors import ChainContext, Quarantined, compile_policy, run_chain
from pipeline.review.service import ReviewService
from pipeline.runtime import Runtime

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture
def runtime(cli_runtime: Runtime) -> Runtime:
    return cli_runtime


def _quarantined(runtime: Runtime, i: int) -> QuarantineRecord:
    event = contact(i, honeypot="bot", message="Guaranteed returns")
    ctx = ChainContext(policy=compile_policy(load_policy()), now=datetime.now(UTC), pepper=runtime.pepper)
    outcome = run_chain(event, ctx).outcome
    assert isinstance(outcome, Quarantined)
    return runtime.codec.seal_quarantine(outcome.tagged, datetime.now(UTC))


def _run(*args: str, key: str | None = None) -> Any:
    return CliRunner().invoke(cli, ["spam", "review", *args], env={"LEADPIPE_API_KEY": key} if key else None)


def test_list_show_and_decide(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    alice = key_for(runtime.settings, Role.REVIEWER, "alice", display_name="Alice Review")
    bob = key_for(runtime.settings, Role.REVIEWER, "bob", display_name="Bob Review")
    monkeypatch.setenv("LEADPIPE_API_KEY", alice)
    first, second = _quarantined(runtime, 1), _quarantined(runtime, 2)
    publish(runtime, "contacts.quarantine", [(r.subject_key, r) for r in (first, second)])

    listed = _run("list", "--json")
    assert listed.exit_code == 0, listed.output
    items = [json.loads(line) for line in listed.stdout.splitlines() if line.startswith("{")]
    assert {i["event_id"] for i in items} == {str(first.event_id), str(second.event_id)}
    assert "ann." not in listed.output and "Tester" not in listed.output

    shown = _run("show", str(first.event_id))
    assert shown.exit_code == 0 and "Guaranteed returns" in shown.output and "honeypot" in shown.output

    sales = key_for(runtime.settings, Role.SALES, "sam", display_name="Sam Sales")
    refused = _run("release", str(first.event_id), key=sales)
    assert refused.exit_code == 2 and "lacks the permission review:decide" in refused.output
    released = _run("release", str(first.event_id))
    assert released.exit_code == 0, released.output
    confirmed = _run("confirm", str(second.event_id), "--block", "--block-ip", key=bob)
    assert confirmed.exit_code == 0, confirmed.output
    again = _run("confirm", str(second.event_id))
    assert again.exit_code == 1 and "already decided" in again.output
    unknown = _run("show", str(uuid.uuid4()))
    assert unknown.exit_code == 1 and "not in the quarantine" in unknown.output

    decisions = [
        ReviewDecision.model_validate_json(r.value or b"")
        for r in read_to_end(runtime.settings, ["contacts.review.decisions"])
    ]
    assert [
        (d.event_id, d.decision, d.principal.display_name if d.principal else None, d.block) for d in decisions
    ] == [
        (first.event_id, "release", "Alice Review", ()),
        (second.event_id, "confirm", "Bob Review", ("sender", "ip")),
    ]
    assert all(d.principal is not None and d.reviewer == d.principal.actor for d in decisions)
    assert _run("list").output.strip().endswith("0 event(s) waiting")


def test_deciding_what_was_seen_re_reads_each_item_first(runtime: Runtime) -> None:
    """The console's bulk decision: an item decided meanwhile by someone else, one gone from the quarantine, and one
    quarantined again since the page showed it are left alone; only the ones still as seen are decided, at once."""
    kept, taken, requeued = (_quarantined(runtime, i) for i in (11, 12, 13))
    publish(runtime, "contacts.quarantine", [(r.subject_key, r) for r in (kept, taken, requeued)])
    shown_requeued = requeued.quarantined_at
    again = requeued.model_copy(update={"quarantined_at": datetime.now(UTC)})  # a replay quarantined it again
    publish(runtime, "contacts.quarantine", [(again.subject_key, again)])
    service = ReviewService(runtime)
    service.decide(taken.event_id, "release", person("bob", "Bob Review", Role.REVIEWER))
    rita = person("rita", "Rita Review", Role.REVIEWER)
    seen = {
        kept.event_id: kept.quarantined_at,
        taken.event_id: taken.quarantined_at,
        requeued.event_id: shown_requeued,
        uuid.uuid4(): None,
    }
    outcomes = service.decide_seen(seen, "confirm", rita)
    assert list(outcomes.values()) == ["decided", "already_decided", "changed", "not_found"]
    decisions = [
        ReviewDecision.model_validate_json(r.value or b"")
        for r in read_to_end(runtime.settings, ["contacts.review.decisions"])
    ]
    assert [(d.event_id, d.decision, d.principal.display_name if d.principal else None) for d in decisions] == [
        (taken.event_id, "release", "Bob Review"),
        (kept.event_id, "confirm", "Rita Review"),
    ]
    assert [i.event_id for i in service.pending()] == [requeued.event_id]  # still waiting, for a second look
    assert service.decide_seen({requeued.event_id: again.quarantined_at}, "confirm", rita) == {
        requeued.event_id: "decided"
    }
    service.publisher.close()
