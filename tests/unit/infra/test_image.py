"""The Dockerfile builds what the chart runs: every command a chart template runs exists in the ``leadpipe`` CLI
(with the options it passes), and the image's user, paths, entry point and labels fit the chart.

No container engine runs here; tests/integration/infra/test_image_entrypoints.py runs those commands for real from
a clean virtualenv built like the image's.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main
import yaml
from dockerfile_parse import DockerfileParser
from helm_helpers import CHART, REPO, VALUES_FILES, containers, needs_helm, render, workloads
from typer.core import TyperGroup

from pipeline.cli import app


def parse_command(argv: list[str]) -> tuple[Any, Any]:
    """Resolve ``leadpipe argv...`` to its command and parsed context without running it; a missing command, an
    unknown option or a surplus argument raises (a ``typer.TyperException``: typer's bundled click's UsageError)."""
    command: Any = typer.main.get_command(app)
    context = command.make_context("leadpipe", list(argv))
    while isinstance(command, TyperGroup):
        rest = [*context._protected_args, *context.args]
        if not rest:
            raise typer.BadParameter(f"{command.name or 'leadpipe'} needs a sub-command")
        name, sub, rest = command.resolve_command(context, rest)
        assert name is not None and sub is not None
        context = sub.make_context(name, rest, parent=context)
        command = sub
    return command, context


def chart_commands(values: Path) -> list[tuple[str, list[str]]]:
    """(where, argv) of every container of every workload the chart renders with ``values``."""
    out = []
    for doc in workloads(render(values=values)):
        if doc["metadata"]["labels"].get("app.kubernetes.io/component") == "spam-engine":
            continue  # rspamd's and Redis' own images, not leadpipe's commands
        for container in containers(doc):
            argv = [*container.get("command", []), *container["args"]]
            out.append((f"{doc['kind']}/{doc['metadata']['name']}/{container['name']}", argv))
    return out


@needs_helm
@pytest.mark.parametrize("values", VALUES_FILES, ids=lambda p: p.name)
def test_every_command_the_chart_runs_exists_in_the_cli(values: Path) -> None:
    commands = chart_commands(values)
    assert commands
    for where, argv in commands:
        assert argv[0] == "leadpipe", where  # the image's PATH has it; the image has no ENTRYPOINT to prepend
        command, context = parse_command(argv[1:])
        assert command.callback is not None, where
        for reference in context.params.get("only") or []:  # worker --only module:function must import
            module, _, function = reference.partition(":")
            assert callable(getattr(importlib.import_module(module), function)), (where, reference)


def test_command_check_can_fail() -> None:
    parse_command(["worker", "--only", "pipeline.agents.rights:register"])
    for wrong in (["wokrer"], ["worker", "--onyl", "x"], ["db", "upgrade", "head", "extra"], ["topics"]):
        with pytest.raises(typer.TyperException):
            parse_command(wrong)


def _final_stage() -> tuple[DockerfileParser, list[dict[str, Any]]]:
    parser = DockerfileParser(str(REPO / "Dockerfile"))
    structure = parser.structure
    last_from = max(i for i, step in enumerate(structure) if step["instruction"] == "FROM")
    return parser, structure[last_from:]


def test_image_fits_the_chart() -> None:
    parser, final = _final_stage()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    version = next(
        line.split('"')[1] for line in (REPO / "pyproject.toml").read_text().splitlines() if line.startswith("version")
    )
    assert parser.baseimage.startswith("python:") and "-slim" in parser.baseimage
    instructions = [step["instruction"] for step in final]
    assert "ENTRYPOINT" not in instructions  # the chart's args are whole commands (["leadpipe", "serve"])
    (user,) = [step["value"] for step in final if step["instruction"] == "USER"]
    security = values["podSecurityContext"]
    assert user == f"{security['runAsUser']}:{security['runAsGroup']}"
    assert parser.envs["HOME"] == "/data" and parser.envs["LEADPIPE_HOME"].startswith("/data/")
    assert parser.envs["PYTHONDONTWRITEBYTECODE"] == "1"  # site-packages is read-only in the pod
    (volume,) = [step["value"] for step in final if step["instruction"] == "VOLUME"]
    assert set(yaml.safe_load(volume)) == {"/data", "/tmp"}  # the chart's emptyDir mounts
    assert parser.labels["org.opencontainers.image.version"] == version == chart["appVersion"]
    final_text = "\n".join(step["content"] for step in final)
    for forbidden in ("build-essential", "gcc", "apt-get install", "/wheels", "pip install"):
        assert forbidden not in final_text, f"the final stage must not carry {forbidden}"


def test_build_context_holds_what_the_builder_copies() -> None:
    """The .dockerignore allow-list lets in every path the Dockerfile COPYs from the context, and no tests."""
    from docker.utils.build import exclude_paths

    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()]
    included = exclude_paths(str(REPO), [p for p in patterns if p and not p.startswith("#")])
    parser = DockerfileParser(str(REPO / "Dockerfile"))
    copied = [
        source
        for step in parser.structure
        if step["instruction"] == "COPY" and "--from" not in step["value"]
        for source in step["value"].split()[:-1]
    ]
    assert copied
    for source in copied:
        assert source.rstrip("/") in included, f"{source} is COPYed but .dockerignore leaves it out"
    assert not any(p.startswith(("tests", ".venv", ".git/", "bench")) for p in included)
    assert "pipeline/kafka/topics.yaml" in included and "topics.yaml" in included  # the link and its target
