"""The worker with the real spam engine: real broker, ``leadpipe worker`` as a subprocess, a private rspamd + Redis.

What must hold: every event with the person's words carries the engine's verdict (an e-mail scored from its raw
message as ingest received it); the engine stopped mid-stream loses nothing and waves nothing through (review:
quarantined as ``spam_engine_unavailable``; wait: held until the engine answers); the metric counts each answer;
reviewers' decisions teach the engine and the classifier once per event, with the reviewer on the audit line, and
``leadpipe spam rebuild`` teaches them again from the decisions topic.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml
from identity_helpers import key_for, person
from typer.testing import CliRunner

from pipeline.agents.launch import WorkerProcess, worker_env
from pipeline.cli import app as cli
from pipeline.config import Settings
from pipeline.db import ensure_schema
from pipeline.ingest.service import IngestService
from pipeline.kafka.consumer import Record, read_to_end
from pipeline.kafka.launcher import free_port
from pipeline.kafka.producer import ConfirmingPublisher, Outgoing
from pipeline.models.common import Channel, InteractionKind
from pipeline.models.contact import ContactEvent, Interaction, Person, Provenance
from pipeline.models.identity import Role
from pipeline.models.records import AcceptedRecord, QuarantineRecord
from pipeline.models.rights import AuditRecord
from pipeline.models.spam import EngineVerdict
from pipeline.policy.model import default_policy_path
from pipeline.review.service import ReviewService
from pipeline.runtime import Runtime
from pipeline.spam.launcher import LocalSpamEngine
from pipeline.spam.store import ClassifierStore

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]

PROCESSING = ("pipeline.agents.processing:register", "pipeline.agents.review:register")
OUTPUTS = ("contacts.accepted", "contacts.quarantine", "contacts.drops", "contacts.dlq")

#: An HTML-only e-mail: rspamd's MIME_HTML_ONLY fires on it as received, never on the rendered (plain text) form.
HTML_MAIL = (
    "From: Bea Lopez <bea.{n}@example.org>\r\nTo: sales@example.com\r\nSubject: Pricing for our team {n}\r\n"
    "Date: Fri, 05 Dec 2025 10:00:00 +0000\r\nMessage-ID: <{n}.{u}@example.org>\r\nMIME-Version: 1.0\r\n"
    'Content-Type: text/html; charset="utf-8"\r\n\r\n<html><body><p>Hello, could you send us pricing for forty '
    "seats and a short demo next week? Our team evaluates three vendors this quarter.</p></body></html>\r\n"
)


def _form(i: int, message: str, **interaction: Any) -> ContactEvent:
    now = datetime.now(UTC)
    kind = interaction.pop("kind", InteractionKind.CONTACT_US)
    channel = interaction.pop("channel", Channel.WEB_FORM)
    return ContactEvent(
        event_id=uuid.uuid4(),
        channel=channel,
        occurred_at=now,
        received_at=now,
        subject_key=f"sk_spam_{uuid.uuid4().hex[:24]}",
        person=Person(first_name="Ann", last_name=f"Tester{i}", email=f"ann.{i}@example.com"),
        interaction=Interaction(kind=kind, message=message, **interaction),
        provenance=Provenance(source_id="it", ip=f"198.51.100.{i % 250}"),
    )


@pytest.fixture
def runtime(kafka_settings: Settings, private_engine: LocalSpamEngine, tmp_path: Path) -> Iterator[Runtime]:
    values: dict[str, Any] = kafka_settings.model_dump()
    values.update(
        batch_timeout_s=0.1,
        worker_commit_interval_s=0.2,
        spam_engine_enabled=True,
        spam_engine_url=private_engine.url,
        spam_engine_controller_url=private_engine.controller_url,
        spam_engine_redis_port=private_engine.redis_port,
        spam_engine_timeout_s=3.0,
        spam_classifier_reload_s=0.5,
    )
    runtime = Runtime(type(kafka_settings)(**values))
    ensure_schema(runtime.engine)
    yield runtime
    runtime.engine.dispose()
    if not private_engine.status().running:
        private_engine.up()  # the next test starts with an engine


@pytest.fixture
def publisher(runtime: Runtime) -> Iterator[ConfirmingPublisher]:
    publisher = ConfirmingPublisher(runtime.settings)
    yield publisher
    publisher.close()


def _worker(settings: Settings, tmp_path: Path, web_port: int | None = None) -> WorkerProcess:
    web = {"LEADPIPE_WORKER_WEB_ENABLED": "true", "LEADPIPE_WORKER_WEB_PORT": str(web_port)} if web_port else {}
    return WorkerProcess(settings, tmp_path / "worker.log", PROCESSING, env=worker_env(settings, **web))


def _publish(runtime: Runtime, events: list[ContactEvent]) -> None:
    publisher = ConfirmingPublisher(runtime.settings)
    publisher.publish(Outgoing("contacts.normalized", e.subject_key, runtime.codec.seal_contact(e)) for e in events)
    publisher.close()


def _outputs(settings: Settings, ids: set[uuid.UUID], timeout_s: float = 120.0) -> dict[uuid.UUID, Record]:
    """The output record of each of ``ids`` (accepted or quarantined), waiting until all are there."""
    deadline = time.monotonic() + timeout_s
    while True:
        found: dict[uuid.UUID, Record] = {}
        for record in read_to_end(settings, OUTPUTS):
            if record.topic in ("contacts.accepted", "contacts.quarantine"):
                event_id = uuid.UUID(orjson.loads(record.value or b"{}")["event_id"])
                if event_id in ids:
                    found[event_id] = record
        if set(found) >= ids or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def _spam_of(record: Record) -> Any:
    model = AcceptedRecord if record.topic == "contacts.accepted" else QuarantineRecord
    return model.model_validate_json(record.value or b"").tags.spam


def _metric(port: int, result: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith(f'leadpipe_spam_engine_results_total{{result="{result}"}}'):
            return float(line.split()[-1])
    return 0.0


def test_engine_stopped_mid_stream_loses_nothing_and_waves_nothing_through(
    runtime: Runtime, publisher: ConfirmingPublisher, private_engine: LocalSpamEngine, tmp_path: Path
) -> None:
    settings = runtime.settings
    ingest = IngestService(runtime, publisher)
    mail = ingest.submit("mailbox", Channel.EMAIL, HTML_MAIL.format(n=1, u=uuid.uuid4().hex).encode(), "message/rfc822")
    assert mail.accepted
    first = [_form(i, f"Could you send pricing for {10 + i} seats and a demo next week?") for i in range(3)]
    page_view = _form(9, "", kind=InteractionKind.PAGE_VIEW, channel=Channel.WEBSITE, page_url="https://x.test/p")
    _publish(runtime, [*first, page_view])
    port = free_port()
    with _worker(settings, tmp_path, port) as worker:
        before = _outputs(settings, {*mail.event_ids, *(e.event_id for e in first), page_view.event_id})
        assert len(before) == 5, worker.log_tail()
        for event_id in [*mail.event_ids, *(e.event_id for e in first)]:
            verdict = _spam_of(before[event_id])
            assert isinstance(verdict.engine, EngineVerdict), verdict
            assert before[event_id].topic == "contacts.accepted"
        symbols = {s.name for s in _spam_of(before[mail.event_ids[0]]).engine.symbols}
        assert "MIME_HTML_ONLY" in symbols  # scored as received, not from the parsed text
        assert _spam_of(before[page_view.event_id]).engine is None  # no words of the person: never asked
        scored = _metric(port, "scored")
        assert scored >= 4

        assert private_engine.stop_rspamd()
        second = [_form(20 + i, f"We need {i + 2} licences for our office, please call back.") for i in range(3)]
        later_view = _form(29, "", kind=InteractionKind.PAGE_VIEW, channel=Channel.WEBSITE, page_url="https://x.test")
        _publish(runtime, [*second, later_view])
        after = _outputs(settings, {*(e.event_id for e in second), later_view.event_id})
        assert len(after) == 4, worker.log_tail()
        for event in second:
            record = after[event.event_id]
            assert record.topic == "contacts.quarantine", worker.log_tail()
            codes = [r.code for r in _spam_of(record).reasons]
            assert "spam_engine_unavailable" in codes
        assert after[later_view.event_id].topic == "contacts.accepted"
        assert _metric(port, "unreachable") >= 3
        assert _metric(port, "scored") == scored


def _policy_with(tmp_path: Path, **engine: Any) -> Path:
    policy = yaml.safe_load(default_policy_path().read_text())
    policy["spam"]["engine"].update(engine)
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    return path


def test_wait_mode_holds_the_event_until_the_engine_answers(
    runtime: Runtime, private_engine: LocalSpamEngine, tmp_path: Path
) -> None:
    values = runtime.settings.model_dump()
    values["policy_file"] = _policy_with(tmp_path, on_unavailable="wait", max_wait_s=120)
    settings = type(runtime.settings)(**values)
    waiting = _form(1, "Please send me your price list for the enterprise plan.")
    with _worker(settings, tmp_path) as worker:
        warm = _form(0, "Hello, is there a discount for schools?")
        _publish(runtime, [warm])
        assert _outputs(settings, {warm.event_id}), worker.log_tail()  # the worker runs and the engine answers
        assert private_engine.stop_rspamd()
        _publish(runtime, [waiting])
        assert not _outputs(settings, {waiting.event_id}, timeout_s=6.0)  # held, not scored without the engine
        private_engine.up()
        out = _outputs(settings, {waiting.event_id}, timeout_s=90.0)
        assert waiting.event_id in out, worker.log_tail()
    verdict = _spam_of(out[waiting.event_id])
    assert isinstance(verdict.engine, EngineVerdict)
    assert out[waiting.event_id].topic == "contacts.accepted"


def _audits(settings: Settings, action: str, count: int, timeout_s: float = 90.0) -> list[AuditRecord]:
    deadline = time.monotonic() + timeout_s
    while True:
        found = [
            audit
            for audit in (AuditRecord.model_validate_json(r.value or b"") for r in read_to_end(settings, ["audit"]))
            if audit.action == action
        ]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def test_reviewers_decisions_teach_the_filter_once_and_a_rebuild_teaches_them_again(
    runtime: Runtime,
    publisher: ConfirmingPublisher,
    private_engine: LocalSpamEngine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = runtime.settings
    text = "Cheap backlinks and guest posts for your site, {n} placements this week, reply to order now."
    bots = [_form(i, text.format(n=i + 3), honeypot="http://bot.test") for i in range(2)]
    _publish(runtime, bots)
    reviews = ReviewService(runtime, publisher)
    with _worker(settings, tmp_path) as worker:
        out = _outputs(settings, {b.event_id for b in bots})
        assert all(r.topic == "contacts.quarantine" for r in out.values()), worker.log_tail()
        shown = reviews.show(bots[0].event_id)  # what the reviewer reads: every signal with its weight
        assert isinstance(shown.engine, EngineVerdict) and shown.engine.symbols
        assert {"honeypot", "spam_engine"} <= {r["code"] for r in shown.reasons}
        rita, otto = person("rita", None, Role.REVIEWER), person("otto", None, Role.REVIEWER)
        released = reviews.decide(bots[0].event_id, "release", rita)
        confirmed = reviews.decide(bots[1].event_id, "confirm", otto)
        audits = {
            a.detail["decision_id"]: a
            for a in [*_audits(settings, "review_released", 1), *_audits(settings, "review_confirmed", 1)]
        }
    assert audits[str(released.decision_id)].actor == f"spam-review:{rita.actor}"
    assert audits[str(confirmed.decision_id)].actor == f"spam-review:{otto.actor}"
    for decision in (released, confirmed):
        learned = audits[str(decision.decision_id)].detail["learned"]
        assert learned == {"engine": "learned", "classifier": "learned"}, learned
    store = ClassifierStore.connect("127.0.0.1", private_engine.redis_port)
    assert store.label_of(bots[0].event_id) == "ham"
    assert store.label_of(bots[1].event_id) == "spam"

    # Redis lost the classifier: the decisions topic teaches both parts again; the engine kept its own (duplicate).
    store.clear()
    assert store.label_of(bots[0].event_id) is None
    for name, value in worker_env(settings, base={}).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LEADPIPE_API_KEY", key_for(settings, Role.REVIEWER, "rolf"))  # rebuild is a reviewer's
    from pipeline.config import get_settings

    get_settings.cache_clear()
    result = CliRunner().invoke(cli, ["spam", "rebuild"])
    get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "classifier learned 2" in result.output and "engine duplicate 2" in result.output, result.output
    assert store.label_of(bots[0].event_id) == "ham"
    assert store.label_of(bots[1].event_id) == "spam"
    again = CliRunner().invoke(cli, ["spam", "rebuild"])
    assert "classifier duplicate 2" in again.output, again.output
    audit = [AuditRecord.model_validate_json(r.value or b"") for r in read_to_end(settings, ["audit"])]
    rebuilt = [a for a in audit if a.action == "spam.rebuilt"]
    assert len(rebuilt) == 2 and all(a.principal and a.principal.display_name == "Rolf" for a in rebuilt)
    assert rebuilt[0].actor == rebuilt[0].principal.actor  # type: ignore[union-attr]
    assert rebuilt[0].detail == {"cleared": False, "decisions": {"classifier learned": 2, "engine duplicate": 2}}
