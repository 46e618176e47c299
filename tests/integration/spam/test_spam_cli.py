"""``leadpipe spam score|learn`` against a private rspamd + Redis: files in, JSON lines and learned counts out."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from identity_helpers import key_for
from typer.testing import CliRunner

from pipeline.cli import app as cli
from pipeline.config import get_settings
from pipeline.kafka.consumer import read_to_end
from pipeline.models.identity import Role
from pipeline.models.rights import AuditRecord
from pipeline.runtime import Runtime
from pipeline.spam.launcher import LocalSpamEngine

pytestmark = [pytest.mark.integration]

MAIL = (
    "From: {name} <{addr}>\nTo: sales@example.com\nSubject: {subject}\nDate: Fri, 05 Dec 2025 10:00:00 +0000\n"
    "Message-ID: <{mid}@example.org>\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n{body}\n"
)


def _mail(i: int, subject: str, body: str) -> str:
    return MAIL.format(name=f"Sender {i}", addr=f"sender{i}@example.org", subject=subject, mid=f"m{i}", body=body)


@pytest.fixture
def env(
    private_engine: LocalSpamEngine, cli_runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """The CLI on the shared broker (its audit records) under a test prefix, with the private engine."""
    for name, value in {
        "LEADPIPE_SPAM_ENGINE_ENABLED": "true",  # the test broker's settings have it off (the workers' tests)
        "LEADPIPE_SPAM_ENGINE_URL": private_engine.url,
        "LEADPIPE_SPAM_ENGINE_CONTROLLER_URL": private_engine.controller_url,
        "LEADPIPE_SPAM_ENGINE_REDIS_PORT": str(private_engine.redis_port),
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    # score reads and learn teaches as a reviewer would (the embedded default's bootstrapped admin is no reviewer)
    (tmp_path / "home").mkdir(exist_ok=True)
    monkeypatch.setenv("LEADPIPE_API_KEY", key_for(get_settings(), Role.REVIEWER, "rita"))
    yield
    get_settings.cache_clear()


def test_score_prints_one_line_per_message_with_every_signal(env: None, tmp_path: Path) -> None:
    mbox = tmp_path / "inbox.mbox"
    mbox.write_text(
        "From a@b Fri Dec  5 10:00:00 2025\n"
        + _mail(1, "Demo next week", "Could we see a demo of the data platform next Tuesday?")
        + "\nFrom c@d Fri Dec  5 10:00:00 2025\n"
        + _mail(2, "You have won", "You have won! Claim your prize: cheap viagra and casino bonus, click here.")
    )
    maildir = tmp_path / "Maildir" / "cur"
    maildir.mkdir(parents=True)
    (maildir / "1733392800.M1P1.host:2,S").write_text(_mail(3, "Invoice 42", "Please find the invoice attached."))
    (tmp_path / "broken.eml").write_text("this is not a message with a sender\n")
    hostile = tmp_path / "hostile.eml"  # issue 14 item 4: a 14 KB Content-Type is refused, typed, before parsing
    hostile.write_bytes(b"From: a@example.com\r\nContent-Type: text/plain" + b";" * 7000 + b"\r\n\r\nHi")

    paths = [str(mbox), str(tmp_path / "Maildir"), str(tmp_path / "broken.eml"), str(hostile)]
    result = CliRunner().invoke(cli, ["spam", "score", *paths])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 5
    ham, spam, invoice, broken, refused = lines
    assert refused["verdict"] == "rejected" and refused["detail"].startswith("oversized_headers: "), refused
    assert ham["verdict"] == "ham" and invoice["verdict"] == "ham"
    assert spam["verdict"] == "spam" and spam["score"] >= spam["threshold"]
    codes = {r["code"]: r["weight"] for r in spam["reasons"]}
    assert codes["misleading_phrase"] == 3.0 and "spam_engine" in codes
    assert spam["engine"]["kind"] == "scored" and all("weight" in s for s in spam["engine"]["symbols"])
    assert spam["classifier"]["spam_learns"] == 0  # nothing learned yet: the classifier stays silent
    assert spam["file"].endswith("(message 2)")
    assert broken["verdict"] == "rejected" and broken["detail"]


def test_learn_teaches_both_parts_once(env: None, tmp_path: Path) -> None:
    spam_dir = tmp_path / "spam"
    spam_dir.mkdir()
    for i in range(3):
        body = f"Cheap backlinks for your site, {i + 5} guest posts a week, reply now to order."
        (spam_dir / f"{i}.eml").write_text(_mail(10 + i, f"SEO offer {i}", body))

    first = CliRunner().invoke(cli, ["spam", "learn", "--spam", str(spam_dir)])
    assert first.exit_code == 0, first.output
    assert "classifier learned 3" in first.output and "engine learned 3" in first.output, first.output
    again = CliRunner().invoke(cli, ["spam", "learn", "--spam", str(spam_dir)])
    assert "classifier duplicate 3" in again.output and "engine duplicate 3" in again.output, again.output
    flipped = CliRunner().invoke(cli, ["spam", "learn", "--ham", str(spam_dir / "0.eml")])
    assert "classifier relearned 1" in flipped.output, flipped.output
    neither = CliRunner().invoke(cli, ["spam", "learn", str(spam_dir)])
    assert neither.exit_code != 0

    audit = [AuditRecord.model_validate_json(r.value or b"") for r in read_to_end(get_settings(), ["audit"])]
    learned = [a for a in audit if a.action.startswith("spam.learned_")]
    assert [a.action for a in learned] == ["spam.learned_spam", "spam.learned_spam", "spam.learned_ham"]
    first_record, _, flipped_record = learned
    assert first_record.principal is not None and first_record.principal.display_name == "Rita"
    assert first_record.actor == first_record.principal.actor
    assert first_record.detail == {
        "label": "spam",
        "channel": "email",
        "sources": ["spam"],  # the path's name only, never where it lives
        "messages": {"classifier learned": 3, "engine learned": 3, "rejected": 0},
    }
    assert flipped_record.detail["sources"] == ["0.eml"]
    assert str(tmp_path) not in str([a.detail for a in learned]) and "backlinks" not in str(learned)


@pytest.fixture
def engine_off(cli_runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The CLI with the engine switched off, and its address one where nothing answers (were it asked anyway)."""
    monkeypatch.setenv("LEADPIPE_SPAM_ENGINE_ENABLED", "false")
    monkeypatch.setenv("LEADPIPE_SPAM_ENGINE_URL", "http://127.0.0.1:9/")
    monkeypatch.setenv("LEADPIPE_SPAM_ENGINE_CONTROLLER_URL", "http://127.0.0.1:9/")
    get_settings.cache_clear()
    (tmp_path / "home").mkdir(exist_ok=True)
    monkeypatch.setenv("LEADPIPE_API_KEY", key_for(get_settings(), Role.REVIEWER, "rita"))
    yield
    get_settings.cache_clear()


def test_score_with_the_engine_off_is_the_policys_rules_alone(engine_off: None, tmp_path: Path) -> None:
    """As the worker runs without the engine: no engine verdict is awaited, none is missing (a corpus scored on a
    machine without rspamd is not all quarantined as spam_engine_unavailable); learning is refused, said why."""
    (tmp_path / "ham.eml").write_text(_mail(1, "Demo next week", "Could we see a demo of the platform on Tuesday?"))
    (tmp_path / "spam.eml").write_text(
        _mail(2, "You have won", "You have won! Claim your prize: cheap viagra and casino bonus, click here.")
    )
    result = CliRunner().invoke(cli, ["spam", "score", str(tmp_path / "ham.eml"), str(tmp_path / "spam.eml")])
    assert result.exit_code == 0, result.output
    assert "LEADPIPE_SPAM_ENGINE_ENABLED=false" in result.stderr
    ham, spam = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert ham["verdict"] == "ham" and ham["outcome"] == "accepted", ham
    assert spam["verdict"] == "spam", spam
    for line in (ham, spam):
        assert line["engine"] is None and line["classifier"] is None
        assert "spam_engine_unavailable" not in {r["code"] for r in line["reasons"]}

    refused = CliRunner().invoke(cli, ["spam", "learn", "--spam", str(tmp_path / "spam.eml")])
    assert refused.exit_code == 2 and "LEADPIPE_SPAM_ENGINE_ENABLED=false" in refused.output, refused.output


def test_score_says_when_the_engine_does_not_answer(
    engine_off: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Switched on but not running: the messages wait for review, and the operator is told why and what to do."""
    monkeypatch.setenv("LEADPIPE_SPAM_ENGINE_ENABLED", "true")
    monkeypatch.setenv("LEADPIPE_SPAM_ENGINE_TIMEOUT_S", "1")
    get_settings.cache_clear()
    (tmp_path / "ham.eml").write_text(_mail(1, "Demo next week", "Could we see a demo of the platform on Tuesday?"))
    result = CliRunner().invoke(cli, ["spam", "score", str(tmp_path / "ham.eml")])
    assert result.exit_code == 0, result.output
    (line,) = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert line["engine"]["kind"] == "unavailable"
    assert "gave no verdict" in result.stderr and "leadpipe spam engine up" in result.stderr, result.stderr
