"""Rendering the Helm chart in tests: the `helm` binary (built by .ci/run with Go), the values combinations in
``ci/``, and the Node.js validators of ``scripts/ensure-node-tools.sh``.

Tests that need a tool skip with the reason when it is missing here, and run (and fail) when ``CI`` is set: a CI
run must never pass by skipping them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
CHART = REPO / "deploy" / "helm" / "leadpipe"
TEST_VALUES = CHART / "ci" / "test-values.yaml"
#: Every documented values combination (each file says what it combines).
VALUES_FILES = sorted((CHART / "ci").glob("*-values.yaml"))
HELM = shutil.which("helm")
NODE = shutil.which("node")


def requires(available: bool, reason: str) -> pytest.MarkDecorator:
    """Skip with ``reason`` when the tool is missing here; in CI run anyway, so a missing tool fails loudly."""
    return pytest.mark.skipif(not (available or os.environ.get("CI")), reason=reason)


def node_modules() -> Path | None:
    """Where scripts/ensure-node-tools.sh installed the validators, if it did."""
    default = Path.home() / ".cache" / "leadpipe" / "node-tools"
    root = Path(os.environ.get("LEADPIPE_NODE_TOOLS", str(default))) / "node_modules"
    return root if NODE is not None and root.is_dir() else None


needs_helm = requires(HELM is not None, "helm is not on PATH (go install helm.sh/helm/v3/cmd/helm@v3.22.0 builds it)")
needs_node_tools = requires(node_modules() is not None, "node validators missing: run scripts/ensure-node-tools.sh")


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    assert HELM is not None, "helm is not on PATH (.ci/run builds it with go install)"
    return subprocess.run([HELM, *args], capture_output=True, text=True, timeout=120, check=False)


def render(*extra: str, values: Path = TEST_VALUES) -> list[dict[str, Any]]:
    """``helm template rel <chart> -f values *extra`` as parsed documents."""
    result = helm("template", "rel", str(CHART), "-f", str(values), *extra)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = doc["spec"]["template"]["spec"]
    return spec


def containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(doc)
    return [*spec.get("initContainers", []), *spec["containers"]]


def workloads(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every rendered object that runs pods (Deployments and the hook Jobs)."""
    return [d for d in docs if d["kind"] in ("Deployment", "Job")]
