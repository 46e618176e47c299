"""``leadpipe spam score DIR`` on a public spam corpus's layout: every file accounted for, a summary that adds up.

SpamAssassin's ``cmds`` and TREC's ``full/index`` (the answer key) are no messages: named as skipped, never scored as
"rejected" mail. On thousands of messages the per-message JSON lines are for machines (stdout not a terminal, or
``--each``); the summary ends the output either way, and alone with ``--summary``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from identity_helpers import key_for
from typer.testing import CliRunner

from pipeline.cli import app as cli
from pipeline.config import get_settings
from pipeline.models.identity import Role
from pipeline.runtime import Runtime

pytestmark = [pytest.mark.integration]


@pytest.fixture
def engine_off(cli_runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The policy's rules alone (the worker's path without rspamd): what is counted, not how well it judges."""
    monkeypatch.setenv("LEADPIPE_SPAM_ENGINE_ENABLED", "false")
    get_settings.cache_clear()
    (tmp_path / "home").mkdir(exist_ok=True)
    monkeypatch.setenv("LEADPIPE_API_KEY", key_for(get_settings(), Role.REVIEWER, "rita"))
    yield
    get_settings.cache_clear()


def _corpus(root: Path, per_dir: int) -> int:
    n = 0
    for name, body in (("easy_ham", "Could we see a demo on Tuesday?"), ("spam", "You have won! Cheap viagra, casino")):
        folder = root / name
        folder.mkdir(parents=True)
        for k in range(1, per_dir + 1):
            n += 1
            (folder / f"{k:05d}.{n:032x}").write_text(
                f"From sender{n}@example.org  Thu Aug 22 13:17:22 2002\nFrom: Sender {n} <sender{n}@example.org>\n"
                f"Subject: Note {n}\nMessage-ID: <{n}@example.org>\n\n{body}\n"
            )
        (folder / "cmds").write_text(f"mv 00001.{1:032x} 00001.{2:032x}\n")
    (root / "no-sender.txt").write_text("Subject: meter 7268\n\nvols attached\n")  # Enron-Spam's: a message
    (root / "full").mkdir()
    (root / "full" / "index").write_text("spam ../data/inmail.1\nham ../data/inmail.2\n")
    return n + 1


def test_a_corpus_is_scored_with_its_files_that_are_no_message_named_and_a_summary(
    engine_off: None, tmp_path: Path
) -> None:
    messages = _corpus(tmp_path / "corpus", 150)
    result = CliRunner().invoke(cli, ["spam", "score", str(tmp_path / "corpus")])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == messages + 3
    skipped = sorted(
        line["file"].removeprefix(str(tmp_path / "corpus") + "/") for line in lines if line["verdict"] == "skipped"
    )
    assert skipped == ["easy_ham/cmds", "full/index", "spam/cmds"]
    judged = [line for line in lines if line["verdict"] in ("ham", "spam")]
    assert len(judged) == messages  # Enron-Spam's message without a sender too: on its content (it was "rejected")
    [no_sender] = [line for line in judged if line["file"].endswith("no-sender.txt")]
    assert no_sender["outcome"] == "dead_letter" and "no sender" in no_sender["note"]
    summary = result.stderr.splitlines()
    read = next(line for line in summary if " read = " in line)
    spam = sum(1 for line in judged if line["verdict"] == "spam")
    assert read == (
        f"{messages + 3} read = {messages} judged ({spam} spam, {messages - spam} ham) + 0 not judged "
        "+ 3 skipped (not a message)"
    ), result.stderr
    assert any("1 without a sender" in line for line in summary), summary

    quiet = CliRunner().invoke(cli, ["spam", "score", "--summary", str(tmp_path / "corpus")])
    assert quiet.exit_code == 0, quiet.output
    assert not [line for line in quiet.stdout.splitlines() if line.startswith("{")]
    assert read in quiet.stderr.splitlines()
