"""The spam engine launcher's offline configuration, where it puts things, and how it knows its own processes
(no daemon started here: a ``sleep`` stands in for one)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import Settings
from pipeline.kafka.launcher import free_port, process_start_time
from pipeline.spam import launcher
from pipeline.spam.launcher import OFFLINE_MODULES, SYSTEM_ROOT, LocalSpamEngine, SpamEngineLaunchError


def test_from_settings_takes_ports_from_the_urls(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    settings = make_settings(
        spam_engine_url="http://127.0.0.1:21433",
        spam_engine_controller_url="http://127.0.0.1:21434",
        spam_engine_redis_port=26379,
    )
    engine = LocalSpamEngine.from_settings(settings)
    assert (engine.port, engine.controller_port, engine.redis_port) == (21433, 21434, 26379)
    assert engine.url == "http://127.0.0.1:21433" and not engine.sa_rules
    expected = settings.home / "spam-engine"
    if os.geteuid() == 0 and not (tmp_path.stat().st_mode & 0o001):  # pytest's tmp is 0700: _rspamd cannot enter
        expected = SYSTEM_ROOT / "spam-engine"
    assert engine.root == expected


def test_the_configuration_is_offline_and_names_its_own_sockets(tmp_path: Path) -> None:
    engine = LocalSpamEngine(tmp_path / "engine", port=21433, controller_port=21434, redis_port=26379)
    engine.write_config()
    local, override = engine.rspamd_dir / "local.d", engine.rspamd_dir / "override.d"
    for module in (*OFFLINE_MODULES, "rbl", "dkim", "fuzzy_check", "neural", "greylist", "replies"):
        assert (local / f"{module}.conf").read_text() == "enabled = false;\n", module
    assert 'bind_socket = "127.0.0.1:21433";' in (override / "worker-normal.inc").read_text()
    assert 'bind_socket = "127.0.0.1:21434";' in (override / "worker-controller.inc").read_text()
    assert (override / "worker-proxy.inc").read_text() == "enabled = false;\n"
    bayes = (local / "classifier-bayes.conf").read_text()
    assert 'servers = "127.0.0.1:26379";' in bayes and "autolearn = false;" in bayes
    assert "DATE_IN_PAST" in (local / "headers_group.conf").read_text()
    assert not (local / "spamassassin.conf").exists()
    assert not engine._config_changed()
    (local / "stray.conf").write_text("enabled = true;\n")
    assert engine._config_changed()  # anything it would not write is a change too


def test_spamassassin_rules_are_asked_for_explicitly(tmp_path: Path) -> None:
    rules = Path("/usr/share/spamassassin")
    if not rules.is_dir():
        with pytest.raises(SpamEngineLaunchError, match="LEADPIPE_SPAM_SA_RULES=1"):
            LocalSpamEngine(tmp_path, port=1, controller_port=2, redis_port=3, sa_rules=True)
        return
    engine = LocalSpamEngine(tmp_path, port=1, controller_port=2, redis_port=3, sa_rules=True)
    engine.write_config()
    assert f'ruleset = "{rules}/*.cf";' in (engine.rspamd_dir / "local.d" / "spamassassin.conf").read_text()


def test_ports_must_differ(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must differ"):
        LocalSpamEngine(tmp_path, port=1, controller_port=1, redis_port=3)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
def test_a_daemon_is_known_by_its_pid_and_start_time_wherever_it_chdirs(tmp_path: Path) -> None:
    """rspamd chdirs into its rules directory while it loads them: a check by working directory in that moment
    took a starting engine for one that had exited (CI, 2026-12-06). Elsewhere, under another name: still ours."""
    engine = LocalSpamEngine(tmp_path / "engine", port=21433, controller_port=21434, redis_port=26379)
    engine.root.mkdir()
    elsewhere = subprocess.Popen(["sleep", "30"], cwd="/")  # neither rspamd's name nor the engine's directory
    try:
        started = process_start_time(elsewhere.pid)
        assert started is not None
        engine._pid_file("rspamd").write_text(f"{elsewhere.pid} {started}\n")
        assert engine._pid("rspamd") == elsewhere.pid
        engine._pid_file("rspamd").write_text(f"{elsewhere.pid} {int(started) + 1}\n")  # the pid, reused later
        assert engine._pid("rspamd") is None
        engine._pid_file("rspamd").write_text(f"{elsewhere.pid}\n")  # an older pid file: known by name and place
        assert engine._pid("rspamd") is None
    finally:
        elsewhere.kill()
        elsewhere.wait()
    engine._pid_file("rspamd").write_text(f"{elsewhere.pid} {started}\n")
    assert engine._pid("rspamd") is None  # gone


def _root_without_the_packages(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *, programs: bool) -> None:
    """Root on a machine where Debian's rspamd and redis-server packages (and so their system users) are missing;
    ``programs``: the programs are found all the same (built by hand, another distribution)."""
    monkeypatch.setattr(launcher.os, "geteuid", lambda: 0)
    monkeypatch.setattr(launcher, "SYSTEM_BIN", tmp_path / "no-bin", raising=False)
    monkeypatch.setattr(launcher.shutil, "which", lambda name: sys.executable if programs else None)

    def no_user(name: str) -> Any:
        raise KeyError(f"getpwnam(): name not found: {name!r}")

    monkeypatch.setattr(launcher.pwd, "getpwnam", no_user)


def _engine(tmp_path: Path) -> LocalSpamEngine:
    ports: list[int] = []
    while len(ports) < 3:
        if (port := free_port()) not in ports:
            ports.append(port)
    return LocalSpamEngine(tmp_path / "engine", port=ports[0], controller_port=ports[1], redis_port=ports[2])


def test_without_the_packages_up_says_what_to_install_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``leadpipe spam engine up`` (and ``leadpipe demo``) as root on a machine without rspamd and Redis: the
    launcher looked up the redis user before it looked for redis-server, and a KeyError ended the command."""
    _root_without_the_packages(monkeypatch, tmp_path, programs=False)
    with pytest.raises(SpamEngineLaunchError, match=r"redis-server not found: run scripts/ensure-spam-engine\.sh"):
        _engine(tmp_path).up()


def test_a_missing_service_user_is_said_too(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _root_without_the_packages(monkeypatch, tmp_path, programs=True)
    with pytest.raises(SpamEngineLaunchError, match=r"no system user 'redis'.*LEADPIPE_SPAM_ENGINE_ENABLED=false"):
        _engine(tmp_path).up()
