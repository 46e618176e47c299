"""The committed JSON Schemas in schemas/ are exactly what the models generate (fix: `leadpipe schemas generate`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import BaseModel

from pipeline import models
from pipeline.models import records, rights
from pipeline.schemas import DEFAULT_DIR, SCHEMAS, SUFFIX, check, generate, render

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_committed_schema_matches_model(name: str) -> None:
    path = REPO / "schemas" / f"{name}{SUFFIX}"
    assert path.exists(), f"{path} missing: run `leadpipe schemas generate`"
    assert path.read_text() == render(name, SCHEMAS[name]), f"{path} is stale: run `leadpipe schemas generate`"


def test_no_orphan_schema_files() -> None:
    assert DEFAULT_DIR == REPO / "schemas"
    assert check() == []


def test_every_record_and_rights_model_is_registered() -> None:
    """Each top-level wire model of records.py and rights.py has a schema (nested parts ride in $defs)."""
    registered = set(SCHEMAS.values())
    nested_only = {records.Sealed}
    for module in (records, rights):
        for value in vars(module).values():
            is_model = isinstance(value, type) and issubclass(value, BaseModel) and value is not models.StrictModel
            if is_model and value.__module__ == module.__name__ and value not in nested_only:
                assert value in registered, f"{value.__name__} crosses a topic but has no entry in SCHEMAS"


def test_files_are_stable_and_identified() -> None:
    for name in SCHEMAS:
        text = (REPO / "schemas" / f"{name}{SUFFIX}").read_text()
        assert text.endswith("}\n")
        document = json.loads(text)
        assert document["$id"] == f"urn:leadpipe:schema:{name}"
        assert text == json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_check_detects_a_changed_model(tmp_path: Path) -> None:
    generate(tmp_path)
    assert check(tmp_path) == []
    target = tmp_path / f"dead-letter{SUFFIX}"
    document = json.loads(target.read_text())
    document["properties"].pop("reason")  # what the file would look like before a field was added to the model
    target.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    (tmp_path / f"gone{SUFFIX}").write_text("{}\n")
    problems = check(tmp_path)
    assert any("dead-letter" in p and "differs from model" in p for p in problems)
    assert any(f"gone{SUFFIX}" in p and "no model is registered" in p for p in problems)
    assert set(generate(tmp_path)) == {target, tmp_path / f"gone{SUFFIX}"}
    assert check(tmp_path) == []


def test_cli_check_exit_codes(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from pipeline.schemas import app

    runner = CliRunner()
    stale = runner.invoke(app, ["check", "--dir", str(tmp_path)])
    assert stale.exit_code == 1 and "run `leadpipe schemas generate`" in stale.output
    assert runner.invoke(app, ["generate", "--dir", str(tmp_path)]).exit_code == 0
    fresh = runner.invoke(app, ["check", "--dir", str(tmp_path)])
    assert fresh.exit_code == 0, fresh.output
