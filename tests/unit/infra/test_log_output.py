"""Human output and log lines (issue 18): on a terminal a person sees the command's output and, from the log, only
warnings and errors, readable; a pipe or ``--log-format json`` gets JSON lines for machines. librdkafka's own log
goes through the same logger (levelled, redacted), never raw ``%3|...`` lines on the terminal."""

from __future__ import annotations

import io
import json
import logging
import socket
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import explicit_settings, get_settings
from pipeline.kafka.clients import LibrdkafkaLog
from pipeline.kafka.producer import ConfirmingPublisher, Outgoing, PublishError
from pipeline.logging import configure_logging, get_logger

log = get_logger("tests.log_output")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    yield
    configure_logging("INFO", "json", stream=sys.stderr)


def test_on_a_terminal_only_warnings_are_shown_and_readable() -> None:
    terminal = Terminal()
    configure_logging(None, "auto", stream=terminal)
    log.info("topics applied", created=0)
    log.warning("sink_paused", sink="hubspot")
    text = terminal.getvalue()
    assert "topics applied" not in text
    assert "sink_paused" in text and not text.lstrip().startswith("{")


def test_for_machines_json_lines_at_info() -> None:
    pipe = io.StringIO()
    configure_logging(None, "auto", stream=pipe)
    log.info("topics applied", created=0)
    line = json.loads(pipe.getvalue().splitlines()[-1])
    assert line["event"] == "topics applied" and line["level"] == "info"
    forced = Terminal()
    configure_logging(None, "json", stream=forced)  # --log-format json on a terminal: still JSON, still INFO
    log.info("topics applied", created=0)
    assert json.loads(forced.getvalue())["event"] == "topics applied"


def test_log_lines_go_to_the_stderr_of_the_moment(monkeypatch: pytest.MonkeyPatch) -> None:
    """rich's progress bar swaps sys.stderr for a proxy that prints above the bar: logs must follow it."""
    configure_logging("WARNING", "console")
    swapped = io.StringIO()
    monkeypatch.setattr(sys, "stderr", swapped)
    log.warning("hubspot_record_refused", category="VALIDATION_ERROR")
    assert "hubspot_record_refused" in swapped.getvalue()


@pytest.mark.parametrize(
    ("options", "level", "json_lines"),
    [
        ([], logging.INFO, True),
        (["--log-format", "console"], logging.WARNING, False),
        (["--debug"], logging.DEBUG, True),
    ],
)
def test_global_options_choose_format_and_level(
    options: list[str], level: int, json_lines: bool, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.delenv("LEADPIPE_LOG_FORMAT", raising=False)
    monkeypatch.delenv("LEADPIPE_LOG_LEVEL", raising=False)
    monkeypatch.setenv("LEADPIPE_HOME", str(tmp_path))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, [*options, "topics", "list"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert logging.getLogger().level == level
    rendered = logging.getLogger().handlers[0].format(logging.LogRecord("x", logging.WARNING, "", 0, "hello", (), None))
    assert rendered.startswith("{") is json_lines


def test_librdkafka_lines_become_levelled_events_and_repeats_quieten() -> None:
    stream = io.StringIO()
    configure_logging("DEBUG", "json", stream=stream)
    routed = LibrdkafkaLog()
    refused = "127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused (after {}ms)"
    routed.log(40, "%s [%s] %s", "FAIL", "rdkafka#producer-1", refused.format(0))
    routed.log(40, "%s [%s] %s", "FAIL", "rdkafka#producer-1", refused.format(3))  # the same line on reconnect
    routed.log(30, "%s [%s] %s", "GETPID", "rdkafka#producer-1", "Coordinator load in progress: retrying")
    LibrdkafkaLog(quiet=True).log(40, "%s [%s] %s", "FAIL", "rdkafka#producer-2", refused.format(0))
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["event"], line["level"], line["facility"]) for line in lines] == [
        ("librdkafka", "error", "FAIL"),
        ("librdkafka", "debug", "FAIL"),
        ("librdkafka", "warning", "GETPID"),
        ("librdkafka", "debug", "FAIL"),
    ]
    assert lines[0]["client"] == "rdkafka#producer-1" and "Connection refused" in lines[0]["detail"]


def test_a_real_client_never_writes_raw_librdkafka_lines(capfd: pytest.CaptureFixture[str], tmp_path: Any) -> None:
    """A producer whose broker refuses the connection: its lines arrive as JSON events, none raw on stderr."""
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = explicit_settings(home=tmp_path, kafka_bootstrap_servers=f"127.0.0.1:{port}")
    publisher = ConfirmingPublisher(settings)
    with pytest.raises(PublishError):
        publisher.publish([Outgoing("contacts.normalized", "k", b"{}")], timeout_s=1.5)
    publisher.close(timeout_s=0)
    captured = capfd.readouterr()
    assert "%3|" not in captured.err and "%4|" not in captured.err and "rdkafka" not in captured.err
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    refused = [e for e in events if e["event"] == "librdkafka" and "Connection refused" in e["detail"]]
    assert refused and refused[0]["level"] == "error"


def test_the_raw_record_reader_never_writes_raw_librdkafka_lines(
    capfd: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    """The spam worker's raw-record reader is a librdkafka client too: its refused connections are not raw lines."""
    import uuid
    from datetime import UTC, datetime

    from pipeline.kafka.raw import RawRecordReader

    configure_logging("INFO", "json", stream=io.StringIO())
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    reader = RawRecordReader(explicit_settings(home=tmp_path, kafka_bootstrap_servers=f"127.0.0.1:{port}"), "raw")
    assert reader.find(0, {uuid.uuid4(): datetime.now(UTC)}, timeout_s=1.5) == {}
    reader.close()
    captured = capfd.readouterr()
    assert "%3|" not in captured.err and "rdkafka" not in captured.err, captured.err
