"""``leadpipe demo`` (``make demo``) end to end against the real broker, as a new operator meets it (issue 18): an
earlier run's topics and files are deleted first (nothing carries over), the report holds no log line (JSON or
raw librdkafka), ``not applicable`` is explained, the erased sample is named, HubSpot's evidence says the person was
not found in HubSpot, and the dry-run file no longer names the erased person."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka.admin import NewTopic
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import Settings, get_settings
from pipeline.kafka.topics import make_admin

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_demo_starts_clean_and_its_report_reads_for_a_person(
    kafka_settings: Settings,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    for name in list(os.environ):
        if name.startswith("LEADPIPE_"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    prefix = kafka_settings.topic_prefix  # the test's own: deleted afterwards, demo runs included
    for name, value in {
        "LEADPIPE_HOME": str(home),
        "LEADPIPE_KAFKA_BOOTSTRAP_SERVERS": kafka_settings.kafka_bootstrap_servers,
        "LEADPIPE_TOPIC_PREFIX": prefix,
        "LEADPIPE_TOPIC_PARTITIONS": "1",
        "COLUMNS": "200",  # rich's width: one report line per line
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()

    # what an earlier run left: its topics on the broker and its directory
    earlier = f"{prefix}demo-20250101T000000000."
    admin = make_admin(kafka_settings)
    for future in admin.create_topics([NewTopic(f"{earlier}contacts.quarantine", 1, 1)]).values():
        future.result(timeout=30)
    (home / "demo" / "20250101T000000000").mkdir(parents=True)
    (home / "demo" / "20250101T000000000" / "crm.sqlite3").write_bytes(b"an earlier run's CRM")

    try:
        result = CliRunner().invoke(app, ["demo", "--timeout", "150", "--no-serve"])
    finally:
        get_settings.cache_clear()
    report = result.output
    assert result.exit_code == 0, report
    said = " ".join(report.split())  # rich wraps long paths: compare words, not line breaks

    assert "1 earlier run(s) deleted, nothing carries over" in said
    deadline = time.monotonic() + 30  # a deleted topic leaves the metadata a moment after the delete returns
    while [n for n in make_admin(kafka_settings).list_topics(timeout=10).topics if n.startswith(earlier)]:
        assert time.monotonic() < deadline, "the earlier run's topics are still there"
        time.sleep(0.2)
    assert not (home / "demo" / "20250101T000000000").exists()

    lines = report.splitlines()
    assert not [line for line in lines if line.lstrip().startswith("{") or "rdkafka" in line or "%4|" in line]
    assert (
        "[1] not applicable, no_email: HubSpot keeps contacts by e-mail address and this event has none "
        "(not applicable = the sink had nothing to do for the event, which is not a failure)"
    ) in said
    assert "erasing the person of sample web_form/demo_request (Priya Raman)" in said
    assert "outcome: not found in HubSpot" in said
    assert "HubSpot dry-run file: 1 request(s) named Priya Raman before the erasure, 0 after" in said
    assert f"leadpipe --key-file {home / 'demo'}" in said and "operator-key spam review list" in said
    raw = capfd.readouterr()
    assert "%3|" not in raw.err + raw.out and "%4|" not in raw.err + raw.out

    (run_dir,) = (home / "demo").iterdir()
    assert "priya.raman" not in (run_dir / "hubspot-dry-run.jsonl").read_text().lower()
    assert "priya" not in (run_dir / "demo.log").read_text().lower()  # the log names nobody
