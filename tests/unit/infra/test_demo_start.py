"""``leadpipe demo`` as a new operator meets it: what is missing on the machine is said in one line, not a
traceback (the broker and the spam engine are started before anything else), and the commands it prints for looking
around its run work as printed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

import pipeline.demo as demo
from pipeline.cli import app
from pipeline.config import Settings, get_settings
from pipeline.db import ensure_schema
from pipeline.runtime import Runtime
from pipeline.spam.launcher import LocalSpamEngine, SpamEngineLaunchError


def test_a_spam_engine_that_cannot_start_is_one_message_and_exit_1(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(demo, "kafka_answers", lambda _servers: True)  # a broker is there; the engine is not

    def up(_engine: LocalSpamEngine) -> None:
        raise SpamEngineLaunchError("redis-server not found: run scripts/ensure-spam-engine.sh (needs root)")

    monkeypatch.setattr(LocalSpamEngine, "up", up)
    out = Console(record=True, width=200)
    assert demo.run_demo(make_settings(spam_engine_enabled=True), out, 1.0, keep_running=False) == 1
    said = out.export_text()
    assert "The demo cannot start: redis-server not found: run scripts/ensure-spam-engine.sh (needs root)" in said
    assert "Traceback" not in said


def test_the_look_around_commands_run_on_the_runs_database_with_its_operator_key(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo ends by printing how to look around its run: its database is named by URL, where a command needs an
    API key (docs/identity.md); without one the printed command was refused."""
    base = make_settings()
    run = demo.DemoRun.new(base)
    run.directory.mkdir(parents=True)
    runtime = Runtime(run.settings)
    ensure_schema(runtime.engine)
    key_file = demo.operator_key(run.settings, runtime, run.directory)
    runtime.engine.dispose()
    assert key_file.parent == run.directory and key_file.stat().st_mode & 0o777 == 0o600

    for name in [n for n in os.environ if n.startswith("LEADPIPE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("LEADPIPE_ENVIRONMENT", "test")
    monkeypatch.setenv("LEADPIPE_HOME", str(base.home))  # the secrets the demo used
    monkeypatch.setenv("LEADPIPE_DATABASE_URL", str(run.settings.database_url))
    get_settings.cache_clear()
    try:
        for command in (["crm", "search", "--name", "nobody"], ["dpo", "status"]):
            result = CliRunner().invoke(app, ["--key-file", str(key_file), *command])
            assert "refused" not in result.output, result.output
        found = CliRunner().invoke(app, ["--key-file", str(key_file), "crm", "search", "--name", "x"])
        assert "no contact found" in found.output, found.output
    finally:
        get_settings.cache_clear()


_TERMINATED = """
import os, pathlib, signal, sys, time
import pipeline.demo as demo
from pipeline.cli import app

def run_demo(*_args, **_kwargs):  # the demo's run, whose clean-up stops the worker and the broker it started
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)
        return 0
    finally:
        pathlib.Path(sys.argv[1]).write_text("cleaned up")

demo.run_demo = run_demo
app(["demo", "--no-serve"])
"""


def test_sigterm_ends_the_demo_through_its_clean_up(tmp_path: Path) -> None:
    """``kill`` or ``timeout`` on ``leadpipe demo`` killed it at once: the worker it had started (in a session of its
    own) ran on, holding the run's topics and CPU."""
    marker = tmp_path / "cleaned"
    env = {**os.environ, "LEADPIPE_HOME": str(tmp_path / "home"), "LEADPIPE_LOG_FORMAT": "json"}
    done = subprocess.run(
        [sys.executable, "-c", _TERMINATED, str(marker)], env=env, capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 128 + signal.SIGTERM, done.stderr.decode()[-2000:]
    assert marker.read_text() == "cleaned up"
