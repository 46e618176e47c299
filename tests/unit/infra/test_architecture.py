"""README's architecture table is the layer contract of pyproject.toml, and every module of pipeline/ is in a layer.

The contract itself is enforced by ``lint-imports`` (``make lint``); this checks what import-linter cannot: that the
README says what the contract says (fix: ``python scripts/architecture.py write``) and that no module escapes it.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[3]


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("architecture", REPO / "scripts" / "architecture.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(module)
    return module


architecture = _load_script()


def test_readme_block_is_the_rendered_contract() -> None:
    arch = architecture.load(REPO / "pyproject.toml")
    block = architecture.readme_block((REPO / "README.md").read_text())
    assert block == architecture.render(arch), "README.md is stale: run `python scripts/architecture.py write`"


def test_every_module_of_pipeline_is_in_exactly_one_layer() -> None:
    arch = architecture.load(REPO / "pyproject.toml")
    assert architecture.placement_problems(arch, REPO / "pipeline") == []
    assert architecture.problems(REPO) == []


def test_the_layers_are_the_four_of_the_design() -> None:
    arch = architecture.load(REPO / "pyproject.toml")
    assert [layer.name for layer in arch.layers] == ["entry points", "edges", "pure core", "base"]
    placed = {module: layer.name for layer in arch.layers for module in layer.modules}
    assert placed["pipeline.agents"] == placed["pipeline.cli"] == placed["pipeline.demo"] == "entry points"
    assert placed["pipeline.sinks"] == placed["pipeline.kafka.producer"] == placed["pipeline.http"] == "edges"
    assert placed["pipeline.normalize"] == placed["pipeline.sources"] == placed["pipeline.processors"] == "pure core"
    assert placed["pipeline.models"] == placed["pipeline.db"] == placed["pipeline.topics"] == "base"


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


def test_placement_reports_a_module_in_no_layer_and_code_in_a_package_that_spans_layers(tmp_path: Path) -> None:
    package = _tree(
        tmp_path,
        {
            "__init__.py": "",
            "low.py": "",
            "stray.py": "",
            "area/__init__.py": "from pkg.area import cli\n\nVALUE = cli\n",
            "area/cli.py": "",
            "area/service.py": "",
            "scripts/run.py": "",  # not in a package: not a module, never reported
        },
    )
    arch = architecture.load(REPO / "pyproject.toml")
    arch = replace(
        arch,
        root="pkg",
        layers=(
            architecture.Layer("top", "", ("pkg.area.cli",), independent=False),
            architecture.Layer("bottom", "", ("pkg.low", "pkg.area.service", "pkg.gone"), independent=False),
        ),
    )
    assert architecture.placement_problems(arch, package) == [
        "pkg.gone (layer bottom) is not a module of pkg",
        "pkg.area spans layers, so its __init__.py may re-export but hold no code",
        "pkg.stray is in no layer: add it to the layers contract in pyproject.toml",
    ]
    (package / "area" / "__init__.py").write_text('"""A facade."""\n\nfrom pkg.area import cli\n\n__all__ = ["cli"]\n')
    (package / "stray.py").unlink()
    arch = replace(arch, layers=(arch.layers[0], replace(arch.layers[1], modules=("pkg.low", "pkg.area.service"))))
    assert architecture.placement_problems(arch, package) == []


def test_a_changed_contract_makes_the_readme_stale(tmp_path: Path) -> None:
    pyproject = (REPO / "pyproject.toml").read_text()
    moved = pyproject.replace('"normalize : sources', '"sources', 1)
    moved = moved.replace('"config : ', '"normalize : config : ', 1)
    assert moved != pyproject
    (tmp_path / "pyproject.toml").write_text(moved)
    (tmp_path / "README.md").write_text((REPO / "README.md").read_text())
    (tmp_path / "pipeline").symlink_to(REPO / "pipeline")
    assert architecture.problems(tmp_path) == [
        "README.md's architecture block differs from the contract: run `python scripts/architecture.py write`"
    ]
    architecture.write(tmp_path)
    assert architecture.problems(tmp_path) == []
    assert "`normalize`, `policy.model`" in (tmp_path / "README.md").read_text()


def test_an_ignored_import_needs_a_reason(tmp_path: Path) -> None:
    arch = architecture.load(REPO / "pyproject.toml")
    ignoring = replace(arch, layer_contract={**arch.layer_contract, "ignore_imports": ["pipeline.db -> pipeline.cli"]})
    with pytest.raises(ValueError, match="without a reason"):
        architecture.render(ignoring)
    reasoned = replace(ignoring, reasons={"pipeline.db -> pipeline.cli": "an example"})
    rendered = architecture.render(reasoned)
    assert "Exceptions to the layers: except `pipeline.db -> pipeline.cli`: an example." in rendered


def test_lint_imports_keeps_every_contract() -> None:
    """The same run as ``make lint``, so ``make test`` alone also fails on an import across a layer."""
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([lint, "--no-cache"], cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-4000:]
    assert "0 broken" in done.stdout


def _backticked(text: str) -> list[str]:
    return re.findall(r"`([^`\s]+)`", text)


def test_docs_architecture_names_only_files_that_exist() -> None:
    """docs/architecture.md walks the code by file name: each one it names is there (relative to pipeline/)."""
    text = (REPO / "docs" / "architecture.md").read_text()
    named = [n for n in _backticked(text) if n.endswith((".py", ".yaml", "/")) and not n.startswith(("http:", "/v1"))]
    assert len(named) > 60
    missing = [n for n in named if not (REPO / "pipeline" / n).exists() and not (REPO / n).exists()]
    assert missing == []


def test_docs_architecture_says_what_every_folder_is_for() -> None:
    """The 'Which folder to touch' table names every package and top-level module of pipeline/."""
    text = (REPO / "docs" / "architecture.md").read_text()
    table = text[text.index("## Which folder to touch") :]
    named = set(_backticked(table))
    children = {
        f"pipeline/{p.name}/" if p.is_dir() else f"pipeline/{p.name}"
        for p in (REPO / "pipeline").iterdir()
        if (p.is_dir() and (p / "__init__.py").exists()) or (p.suffix == ".py" and p.name != "__init__.py")
    }
    assert children - named == set()
