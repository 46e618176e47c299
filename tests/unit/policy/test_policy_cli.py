"""``leadpipe policy check``: the same validation the worker runs at start, from the command line."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from pipeline.cli import app as cli
from pipeline.policy.model import default_policy_path


def test_check_accepts_the_packaged_policy_and_names_bad_entries(tmp_path: Path) -> None:
    ok = CliRunner().invoke(cli, ["policy", "check", str(default_policy_path())])
    assert ok.exit_code == 0 and "ok: policy version" in ok.output
    data = yaml.safe_load(default_policy_path().read_text())
    data["channels"]["chatbot"]["retention"] = "forever"
    bad = tmp_path / "policy.yaml"
    bad.write_text(yaml.safe_dump(data))
    refused = CliRunner().invoke(cli, ["policy", "check", str(bad)])
    assert refused.exit_code == 1
    assert "channels.chatbot.retention" in refused.output
