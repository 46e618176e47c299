"""Dead letters for the operator, without a broker: selecting them, what a replay does with each, and the CLI's
refusals. (Reading the real topics and replaying onto them: tests/integration/processing/test_processing_dlq_cli.py.)"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from identity_helpers import key_for, person
from ingest_helpers import RecordingPublisher
from typer.testing import CliRunner

from pipeline import cli as leadpipe_cli
from pipeline.cli import app as cli_app
from pipeline.config import Settings, get_settings
from pipeline.crypto.sealing import KeyDestroyedError, subject_scope
from pipeline.db import ensure_schema
from pipeline.dlq.service import DeadLetterService, Found, plan_replays, select_letters
from pipeline.kafka.consumer import Record
from pipeline.models.common import Channel
from pipeline.models.identity import Role
from pipeline.models.records import DeadLetter, Sealed
from pipeline.models.rights import AuditRecord
from pipeline.runtime import Runtime
from pipeline.topics import AUDIT_TOPIC, INGEST_DLQ_TOPIC, NORMALIZED_TOPIC, PROCESSING_DLQ_TOPIC, SINKS_DLQ_TOPIC

T0 = datetime(2025, 5, 1, 9, 0, tzinfo=UTC)
OPS = person("anna", "Anna Ops", Role.ADMIN)
PAYLOAD = b'{"person": {"email": "ann@example.com"}}'


@pytest.fixture
def runtime(make_settings: Callable[..., Settings]) -> Runtime:
    built = Runtime(make_settings())
    ensure_schema(built.engine)
    return built


def letter(
    runtime: Runtime | None = None,
    *,
    stage: str = "process:open",
    reason: str = "open_failed",
    offset: int = 1,
    minutes: int = 0,
    subject_key: str | None = "sk_ann",
    source_topic: str | None = NORMALIZED_TOPIC,
    payload: bytes | None = PAYLOAD,
) -> DeadLetter:
    def seal(letter_id: uuid.UUID) -> Sealed | None:
        if runtime is None or payload is None:
            return None
        return runtime.codec.seal_payload(payload, subject_key=subject_key, record_id=letter_id, own_key=True)

    return DeadLetter.build(
        stage=stage,
        reason=reason,
        error="cannot open the sealed body",
        failed_at=T0 + timedelta(minutes=minutes),
        seal=seal,
        channel=Channel.WEB_FORM,
        subject_key=subject_key,
        source_topic=source_topic,
        source_partition=0 if source_topic else None,
        source_offset=offset if source_topic else None,
        submission=None if source_topic else f"wp-contact:{offset}",
    )


def record(dead: DeadLetter | None, topic: str = PROCESSING_DLQ_TOPIC, offset: int = 0) -> Record:
    return Record(topic, 0, offset, None, dead.model_dump_json().encode() if dead else None)


# ---- selecting ------------------------------------------------------------------------------------------------


def test_every_given_filter_must_hold_and_the_oldest_come_first() -> None:
    late = letter(stage="process:spam", reason="rule_error:spam", offset=1, minutes=5)
    early = letter(stage="process:spam", reason="rule_error:spam", offset=2, minutes=1)
    other_reason = letter(stage="process:spam", reason="subject_mismatch", offset=3)
    sink = letter(stage="sink:crm", reason="crm_constraint", offset=4)
    records = [record(late), record(early), record(other_reason), record(sink, SINKS_DLQ_TOPIC)]

    assert [f.letter for f in select_letters(records).letters] == [other_reason, sink, early, late]
    spam = select_letters(records, stage="process:spam", reason="rule_error:spam")
    assert [f.letter for f in spam.letters] == [early, late]
    by_id = select_letters(records, stage="process:spam", ids=[sink.dead_letter_id, late.dead_letter_id])
    assert [f.letter for f in by_id.letters] == [late]
    assert [f.topic for f in select_letters(records, stage="sink:crm").letters] == [SINKS_DLQ_TOPIC]


def test_tombstones_are_skipped_and_other_records_counted_not_shown() -> None:
    garbage = Record(PROCESSING_DLQ_TOPIC, 0, 7, None, b'{"not": "a dead letter"}')
    listing = select_letters([record(None), garbage, record(letter())])
    assert len(listing.letters) == 1 and listing.unreadable == 1


def test_the_same_dead_letter_twice_is_listed_once_with_how_often() -> None:
    """The same bad file imported twice: one dead-letter id (its payload's), two records; listed (and replayed) once."""
    first = letter(stage="ingest", reason="invalid_email", source_topic=None, offset=1, minutes=1)
    again = first.model_copy(update={"failed_at": first.failed_at + timedelta(minutes=9)})
    listing = select_letters([record(first, INGEST_DLQ_TOPIC, 0), record(again, INGEST_DLQ_TOPIC, 1)])
    [found] = listing.letters
    assert (found.letter, found.times) == (again, 2)


def test_the_summary_counts_by_topic_stage_and_reason() -> None:
    records = [
        record(letter(stage="process:spam", reason="rule_error:spam", offset=1)),
        record(letter(stage="process:spam", reason="rule_error:spam", offset=2)),
        record(letter(stage="ingest", reason="invalid_email", source_topic=None), INGEST_DLQ_TOPIC),
    ]
    assert select_letters(records).summary() == {
        (PROCESSING_DLQ_TOPIC, "process:spam", "rule_error:spam"): 2,
        (INGEST_DLQ_TOPIC, "ingest", "invalid_email"): 1,
    }


def test_only_dead_letter_topics_are_read(runtime: Runtime) -> None:
    with pytest.raises(ValueError, match=r"not a dead-letter topic: contacts\.accepted"):
        DeadLetterService(runtime).find(["contacts.accepted"])


# ---- replaying ------------------------------------------------------------------------------------------------


def test_a_replay_publishes_the_opened_payload_onto_its_source_topic_then_its_audit(runtime: Runtime) -> None:
    dead = letter(runtime)
    service = DeadLetterService(runtime)
    results, outgoing = plan_replays([Found(PROCESSING_DLQ_TOPIC, dead)], service.payload, by=OPS, now=T0)

    [result] = results
    assert (result.outcome, result.to_topic, result.detail) == ("replayed", NORMALIZED_TOPIC, f"{len(PAYLOAD)} bytes")
    replayed, audit = outgoing
    assert (replayed.topic, replayed.key, replayed.value) == (NORMALIZED_TOPIC, "sk_ann", PAYLOAD)
    assert audit.topic == AUDIT_TOPIC and isinstance(audit.value, AuditRecord)
    assert audit.value.actor == OPS.actor and audit.value.action == "dead_letter_replayed"
    assert audit.value.principal == OPS  # the person who replayed it, by id and name
    assert audit.value.detail == {
        "dead_letter_id": str(dead.dead_letter_id),
        "dead_letter_topic": PROCESSING_DLQ_TOPIC,
        "stage": "process:open",
        "reason": "open_failed",
        "to_topic": NORMALIZED_TOPIC,
    }
    assert b"ann@example.com" not in audit.value.model_dump_json().encode()


def test_what_cannot_be_replayed_says_why_and_publishes_nothing(runtime: Runtime) -> None:
    ingest = letter(runtime, stage="ingest", source_topic=None)
    no_payload = letter(runtime, offset=2, payload=None)
    erased = letter(runtime, offset=3, subject_key="sk_gone")
    runtime.keystore.destroy(subject_scope("sk_gone"), "erasure")
    service = DeadLetterService(runtime)
    found = [Found(INGEST_DLQ_TOPIC, ingest), *(Found(PROCESSING_DLQ_TOPIC, d) for d in (no_payload, erased))]

    results, outgoing = plan_replays(found, service.payload, by=OPS, now=T0)

    assert [(r.outcome, r.to_topic) for r in results] == [
        ("not_replayable", None),
        ("no_payload", NORMALIZED_TOPIC),
        ("erased", NORMALIZED_TOPIC),
    ]
    assert "leadpipe import" in results[0].detail
    assert outgoing == []
    with pytest.raises(KeyDestroyedError):
        service.payload(erased)


def test_a_dry_run_says_what_would_be_replayed_and_publishes_nothing(runtime: Runtime) -> None:
    publisher = RecordingPublisher()
    service = DeadLetterService(runtime, publisher)  # type: ignore[arg-type]
    results = service.replay([Found(PROCESSING_DLQ_TOPIC, letter(runtime))], by=OPS, dry_run=True)
    assert [r.outcome for r in results] == ["would_replay"]
    assert publisher.records == []


def test_a_replay_publishes_every_record_of_the_call_in_one_confirmed_send(runtime: Runtime) -> None:
    publisher = RecordingPublisher()
    service = DeadLetterService(runtime, publisher)  # type: ignore[arg-type]
    letters = [Found(PROCESSING_DLQ_TOPIC, letter(runtime, offset=o)) for o in (1, 2)]
    results = service.replay(letters, by=OPS)
    assert [r.outcome for r in results] == ["replayed", "replayed"]
    assert publisher.topics() == [NORMALIZED_TOPIC, AUDIT_TOPIC, NORMALIZED_TOPIC, AUDIT_TOPIC]


# ---- the command line's own refusals (no broker needed) --------------------------------------------------------


@pytest.fixture
def cli_env(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("LEADPIPE_HOME", str(runtime.settings.home))
    monkeypatch.setenv("LEADPIPE_DATABASE_URL", runtime.settings.resolved_database_url)
    # the commands check the broker before they run (tests/unit/infra/test_cli_contract.py): the refusals here come
    # after that check, from the arguments alone
    monkeypatch.setattr(leadpipe_cli, "check_kafka", lambda _settings: None)
    monkeypatch.setenv("LEADPIPE_API_KEY", key_for(runtime.settings, Role.ADMIN))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.usefixtures("cli_env")
def test_replay_needs_ids_or_all_with_a_filter() -> None:
    result = CliRunner().invoke(cli_app, ["dlq", "replay", "--all"])
    assert result.exit_code == 2
    assert "name dead letters by id, or pass --all with --stage, --reason or --topic" in result.output


@pytest.mark.usefixtures("cli_env")
def test_list_refuses_a_topic_that_is_not_a_dead_letter_topic() -> None:
    result = CliRunner().invoke(cli_app, ["dlq", "list", "--topic", "contacts.accepted"])
    assert result.exit_code == 2
    assert "not a dead-letter topic: contacts.accepted" in result.output
