"""``leadpipe dlq``: list, show and replay dead letters against the real broker (no worker needed: replaying is
publishing the original record back onto its source topic, which the worker then reads like any other); an admin's
API key runs the commands and the replay's audit names that admin."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from identity_helpers import key_for
from processing_harness import contact
from typer.testing import CliRunner

from pipeline.agents.app import policy_for
from pipeline.agents.processing import Consumed, ProcessingStep
from pipeline.cli import app as cli
from pipeline.crypto.sealing import subject_scope
from pipeline.kafka.consumer import read_to_end
from pipeline.kafka.producer import ConfirmingPublisher, Outgoing
from pipeline.models.common import Channel
from pipeline.models.identity import Role
from pipeline.models.records import DeadLetter
from pipeline.models.rights import AuditRecord
from pipeline.runtime import Runtime

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _run(*args: str) -> Any:
    return CliRunner().invoke(cli, ["dlq", *args])


def _processing_dead_letter(runtime: Runtime, step: ProcessingStep, i: int, offset: int) -> tuple[DeadLetter, bytes]:
    """A ContactRecord the chain dead-lettered (a rule raised), as the processing agent writes it."""
    record = runtime.codec.seal_contact(contact(i))
    value = record.model_dump_json().encode()
    item = Consumed(0, offset, record.subject_key.encode(), value)
    out = step.dead_letter(
        item, record, stage="spam", reason="rule_error:spam", error="KeyError: 'weights'", now=datetime.now(UTC)
    )
    assert out.value is not None
    return DeadLetter.model_validate_json(out.value), value


def test_list_show_and_replay(cli_runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = cli_runtime
    monkeypatch.setenv("LEADPIPE_API_KEY", key_for(runtime.settings, Role.ADMIN, "anna", display_name="Anna Ops"))
    step = ProcessingStep.from_runtime(runtime, policy_for(runtime.settings))
    fixed, fixed_value = _processing_dead_letter(runtime, step, 1, 10)
    erased, _ = _processing_dead_letter(runtime, step, 2, 11)
    refused = DeadLetter(
        dead_letter_id=uuid.uuid4(),
        stage="ingest",
        reason="invalid_email",
        error="email: not an e-mail address",
        channel=Channel.WEB_FORM,
        failed_at=datetime.now(UTC),
        content_type="application/x-www-form-urlencoded",
        payload=runtime.codec.seal_payload(b"your-email=nope", subject_key=None, record_id=uuid.uuid4()),
    )
    publisher = ConfirmingPublisher(runtime.settings)
    publisher.publish(
        [
            Outgoing("contacts.dlq", fixed.subject_key, fixed),
            Outgoing("contacts.dlq", erased.subject_key, erased),
            Outgoing("contacts.dlq.ingest", None, refused),
        ]
    )
    publisher.close()
    assert erased.subject_key is not None
    runtime.keystore.destroy(subject_scope(erased.subject_key), "erasure")

    listed = _run("list")
    assert listed.exit_code == 0, listed.output
    assert "3 dead letter(s)" in listed.output
    assert "1  contacts.dlq  process:spam  rule_error:spam" not in listed.output  # two of them, not one
    assert "2  contacts.dlq  process:spam  rule_error:spam" in listed.output
    assert "1  contacts.dlq.ingest  ingest  invalid_email" in listed.output
    assert "example.com" not in listed.output and "nope" not in listed.output
    only = _run("list", "--json", "--reason", "invalid_email")
    assert [json.loads(line)["dead_letter_id"] for line in only.stdout.splitlines()] == [str(refused.dead_letter_id)]

    shown = _run("show", str(fixed.dead_letter_id))
    assert shown.exit_code == 0, shown.output
    document = json.loads(shown.stdout)
    assert document["reason"] == "rule_error:spam" and document["has_payload"] is True
    assert "payload" not in document and "example.com" not in shown.output
    assert _run("show", str(fixed.dead_letter_id), "--payload").stdout_bytes == fixed_value
    gone = _run("show", str(erased.dead_letter_id), "--payload")
    assert gone.exit_code == 1 and "erased" in gone.output

    before = len(read_to_end(runtime.settings, ["contacts.normalized"]))
    dry = _run("replay", str(fixed.dead_letter_id), "--dry-run")
    assert dry.exit_code == 0 and "would_replay" in dry.output, dry.output
    assert len(read_to_end(runtime.settings, ["contacts.normalized"])) == before
    assert _run("replay").exit_code == 2  # neither ids nor --all with a filter: refuses to replay everything

    ids = [str(d.dead_letter_id) for d in (fixed, erased, refused)]
    replayed = _run("replay", *ids)
    assert replayed.exit_code == 1, replayed.output  # two of three could not be replayed
    outcomes = {words[0]: words[1] for words in map(str.split, replayed.output.splitlines()) if words[0] in ids}
    assert outcomes == {ids[0]: "replayed", ids[1]: "erased", ids[2]: "not_replayable"}

    normalized = read_to_end(runtime.settings, ["contacts.normalized"])
    assert [(r.key, r.value) for r in normalized[before:]] == [(fixed.subject_key.encode(), fixed_value)]
    audit = [AuditRecord.model_validate_json(r.value or b"") for r in read_to_end(runtime.settings, ["audit"])]
    [line] = [a for a in audit if a.action == "dead_letter_replayed"]
    assert (
        line.principal is not None and line.principal.display_name == "Anna Ops" and Role.ADMIN in line.principal.roles
    )
    assert line.actor == line.principal.actor and line.event_id == fixed.event_id
    assert line.detail["dead_letter_id"] == ids[0] and line.detail["to_topic"] == "contacts.normalized"
