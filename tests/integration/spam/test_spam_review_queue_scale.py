"""``leadpipe spam review`` on a queue of more than a page: counts of the whole queue, paging, sorting, filtering,
and decisions in bulk (a corpus's import quarantines thousands; one command per event does not scale)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from identity_helpers import key_for
from source_payloads import ctx_for
from typer.testing import CliRunner

from pipeline.cli import app as cli
from pipeline.config import get_settings
from pipeline.kafka.consumer import read_to_end
from pipeline.kafka.producer import ConfirmingPublisher, Outgoing
from pipeline.models.identity import Role
from pipeline.models.records import QuarantineRecord
from pipeline.models.review import ReviewDecision
from pipeline.policy.model import load_policy
from pipeline.processors import ChainContext, Quarantined, compile_policy, run_chain
from pipeline.runtime import Runtime
from pipeline.sources import email as email_source
from pipeline.topics import QUARANTINE_TOPIC, REVIEW_DECISIONS_TOPIC

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

SPAM = "You have won! Claim your prize: cheap viagra and casino bonus, click here."


def _quarantine(runtime: Runtime, count: int) -> list[QuarantineRecord]:
    policy = compile_policy(load_policy())
    start = datetime.now(UTC) - timedelta(hours=1)
    records = []
    for i in range(count):
        raw = (
            f"From: Sender {i} <sender{i}@example.org>\r\nSubject: Prize {i}\r\nMessage-ID: <{i}@example.org>\r\n\r\n"
            + SPAM * (1 + i % 3)
            + "\r\n"
        ).encode()
        [event] = email_source.parse(raw, ctx_for("email", raw, "message/rfc822"))
        outcome = run_chain(event, ChainContext(policy=policy, now=datetime.now(UTC), pepper=runtime.pepper)).outcome
        assert isinstance(outcome, Quarantined), outcome
        records.append(runtime.codec.seal_quarantine(outcome.tagged, start + timedelta(seconds=i)))
    publisher = ConfirmingPublisher(runtime.settings)
    try:
        publisher.publish([Outgoing(QUARANTINE_TOPIC, r.subject_key, r) for r in records])
    finally:
        publisher.close()
    return records


def _run(*args: str, key: str, stdin: str | None = None) -> Any:
    return CliRunner().invoke(cli, ["spam", "review", *args], env={"LEADPIPE_API_KEY": key}, input=stdin)


def test_a_queue_of_many_is_counted_paged_sorted_and_decided_in_bulk(cli_runtime: Runtime) -> None:
    records = _quarantine(cli_runtime, 120)
    key = key_for(get_settings(), Role.REVIEWER, "rita")
    ids = [str(r.event_id) for r in records]

    first = _run("list", "--limit", "10", key=key)
    assert first.exit_code == 0, first.output
    listed = [line.split()[0] for line in first.stdout.splitlines() if re.match(r"^[0-9a-f-]{36} ", line)]
    assert listed == ids[:10]  # oldest first
    assert first.stdout.splitlines()[-1] == "1-10 shown (oldest first); next: --offset 10; 120 event(s) waiting"

    last = _run("list", "--offset", "110", "--limit", "50", "--sort", "newest", key=key)
    assert last.exit_code == 0, last.output
    assert [line.split()[0] for line in last.stdout.splitlines()[:-1]] == ids[9::-1]
    assert last.stdout.splitlines()[-1] == "111-120 shown (newest first); 120 event(s) waiting"

    by_score = _run("list", "--sort", "score", "--limit", "40", "--json", key=key)
    scores = [QuarantineRecord.model_validate(r).tags.spam.score for r in records]
    top = sorted(range(120), key=lambda i: (-scores[i], i))[:40]
    assert [line.split('"event_id":"')[1][:36] for line in by_score.stdout.splitlines()] == [ids[i] for i in top]

    counts = _run("list", "--counts", key=key)
    assert "channel email" in counts.stdout and counts.stdout.splitlines()[-1] == "120 event(s) waiting"
    assert re.search(r"^reason spam_word\s+120$", counts.stdout, re.M), counts.stdout

    released = _run("release", "--ids-from", "-", key=key, stdin="\n".join(ids[:100]) + "\n")
    assert released.exit_code == 0, released.output
    assert released.stdout.strip() == "release: 100 of 100 decided and published"
    again = _run("confirm", ids[99], ids[100], "--block", key=key)
    assert again.exit_code == 1
    assert "confirm: 1 of 2 decided and published, 1 already decided" in again.stdout
    decisions = [
        ReviewDecision.model_validate_json(r.value or b"")
        for r in read_to_end(cli_runtime.settings, [REVIEW_DECISIONS_TOPIC])
    ]
    assert sorted(str(d.event_id) for d in decisions if d.decision == "release") == sorted(ids[:100])
    assert [(str(d.event_id), d.block) for d in decisions if d.decision == "confirm"] == [(ids[100], ("sender",))]
    assert _run("list", key=key).stdout.splitlines()[-1] == "1-19 shown (oldest first); 19 event(s) waiting"
