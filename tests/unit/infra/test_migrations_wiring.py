"""Migrations see every table. (That ``pipeline.db`` imports no migration and no model is the layer contract's: db is
in the base layer, the migrations are an entry point; ``make lint`` runs it.)"""

from __future__ import annotations

import importlib
from pathlib import Path

import pipeline
from pipeline.db import Base
from pipeline.migrations import MODEL_MODULES

ROOT = Path(pipeline.__file__).parent


def test_every_module_with_tables_is_a_model_module() -> None:
    """A table whose module is not in MODEL_MODULES would be invisible to ``leadpipe db revision``."""
    for path in sorted(ROOT.rglob("*.py")):
        name = ".".join(("pipeline", *path.relative_to(ROOT).with_suffix("").parts)).removesuffix(".__init__")
        if ".migrations." not in name and not name.endswith("__main__"):  # alembic scripts run on import
            importlib.import_module(name)
    with_tables = {mapper.class_.__module__ for mapper in Base.registry.mappers}
    assert with_tables == {module.__name__ for module in MODEL_MODULES}


def test_every_revision_has_the_compact_header() -> None:
    """Revision files say who they follow in one line and repeat no autogenerate header, so they stay short and alike
    only where they must be (``pipeline/migrations/__init__.py`` says how a revision file looks)."""
    versions = sorted((ROOT / "migrations" / "versions").glob("*.py"))
    assert versions
    for path in versions:
        text = path.read_text(encoding="utf-8")
        assert text.startswith('"""'), f"{path.name}: starts with a docstring that says why"
        for stale in ("Revision ID:", "Revises:", "Create Date:", "branch_labels", "depends_on"):
            assert stale not in text, f"{path.name}: drop {stale!r} (compact header)"
        headers = [line for line in text.splitlines() if line.startswith("revision, down_revision = ")]
        assert len(headers) == 1, f"{path.name}: one line `revision, down_revision = ...`"
        assert path.name.startswith(headers[0].split('"')[1][:4]), f"{path.name}: file number matches the revision"
