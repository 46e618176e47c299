"""Migrations see every table, and the database layer does not depend on the migrations (no import cycle)."""

from __future__ import annotations

import importlib
import subprocess
import sys
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


def test_the_database_layer_imports_no_migration_and_no_model() -> None:
    """``pipeline.db`` is the base layer: Alembic finds the migrations by path, the models are above it."""
    above = ("pipeline.migrations", "pipeline.sinks", "pipeline.rights")
    probe = f"import sys, pipeline.db; print(sorted(m for m in sys.modules if m.startswith({above!r})))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"
