"""The Helm chart renders what production needs and never renders a secret.

Rendering needs the `helm` binary (build it with `go install helm.sh/helm/v3/cmd/helm@latest`); those tests skip
with that reason when it is not on PATH. The values-vs-Settings check runs everywhere.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from pipeline.agents.metrics import WorkerMetrics
from pipeline.config import Settings

CHART = Path(__file__).resolve().parents[3] / "deploy" / "helm" / "leadpipe"
TEST_VALUES = CHART / "ci" / "test-values.yaml"
HELM = shutil.which("helm")
needs_helm = pytest.mark.skipif(
    HELM is None, reason="helm is not on PATH (go install helm.sh/helm/v3/cmd/helm@latest builds it)"
)


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    assert HELM is not None
    return subprocess.run([HELM, *args], capture_output=True, text=True, timeout=120, check=False)


def render(*extra: str) -> list[dict[str, Any]]:
    result = helm("template", "rel", str(CHART), "-f", str(TEST_VALUES), *extra)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def args_of(deployment: dict[str, Any]) -> list[str]:
    args: list[str] = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    return args


def env_of(deployment: dict[str, Any]) -> dict[str, str | None]:
    return {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_values_name_real_settings() -> None:
    """Every LEADPIPE_* the chart sets is a field of Settings: a renamed setting cannot silently stop applying."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    names = [*values["config"], *values["secretEnv"]]
    assert names
    for name in names:
        field = name.removeprefix("LEADPIPE_").lower()
        assert name.startswith("LEADPIPE_") and field in Settings.model_fields, f"{name} is not a Settings field"
    assert values["existingSecret"] == ""  # the operator must name it; nothing secret ships with the chart


@needs_helm
def test_helm_lint_strict() -> None:
    result = helm("lint", "--strict", str(CHART), "-f", str(TEST_VALUES))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_helm
def test_rendered_workloads() -> None:
    docs = render()
    deployments = by_kind(docs, "Deployment")
    worker, api = deployments["rel-leadpipe-worker"], deployments["rel-leadpipe-api"]
    rights = deployments["rel-leadpipe-rights-worker"]
    only = ["--only", "pipeline.agents.processing:register", "--only", "pipeline.agents.review:register"]
    assert args_of(worker) == ["leadpipe", "worker", *only, "--only", "pipeline.agents.sinks:register"]
    assert args_of(rights) == ["leadpipe", "worker", "--only", "pipeline.agents.rights:register"]
    assert env_of(rights)["LEADPIPE_APP_ID"] == "leadpipe-rights"  # its own consumer group and leader topic
    assert "LEADPIPE_APP_ID" not in env_of(worker)
    assert worker["spec"]["selector"]["matchLabels"] != rights["spec"]["selector"]["matchLabels"]
    assert api["spec"]["template"]["spec"]["containers"][0]["args"] == ["leadpipe", "serve", "--workers", "1"]
    assert_api_probes_and_admin_port(api)

    service = by_kind(docs, "Service")["rel-leadpipe-api"]
    assert service["spec"]["selector"] == api["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["targetPort"] == "http"

    job = by_kind(docs, "Job")["rel-leadpipe-migrate"]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert [c["args"] for c in containers(job)] == [["leadpipe", "topics", "apply"], ["leadpipe", "db", "upgrade"]]

    config = by_kind(docs, "ConfigMap")["rel-leadpipe"]["data"]
    assert config["LEADPIPE_ENVIRONMENT"] == "production"
    assert "LEADPIPE_TOPIC_PARTITIONS" not in config  # null values are left to the application default
    assert by_kind(docs, "Secret") == {}

    for doc in (worker, rights, api, job):
        pod = doc["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["automountServiceAccountToken"] is False
        for container in containers(doc):
            where = f"{doc['metadata']['name']}/{container['name']}"
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["capabilities"]["drop"] == ["ALL"], where
            assert container["resources"]["requests"] and container["resources"]["limits"], where
            assert {m["mountPath"] for m in container["volumeMounts"]} >= {"/tmp", "/data"}, where
            env = {e["name"]: e for e in container["env"]}
            for name in ("LEADPIPE_DATABASE_URL", "LEADPIPE_SUBJECT_KEY_PEPPER", "LEADPIPE_KEY_ENCRYPTION_KEY"):
                assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "leadpipe-secrets", where
            assert all("value" not in e for e in env.values() if e["name"].endswith(("_TOKEN", "_PEPPER", "_KEY")))
    for doc in (worker, rights, api):
        container = doc["spec"]["template"]["spec"]["containers"][0]
        assert container["livenessProbe"] and container["readinessProbe"]
        assert "checksum/config" in doc["spec"]["template"]["metadata"]["annotations"]
    api_env = {e["name"]: e.get("value") for e in api["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert api_env["LEADPIPE_INGEST_HOST"] == "0.0.0.0"  # the default 127.0.0.1 would be unreachable in a pod
    for doc in (worker, rights):
        assert_worker_web_served(doc)


def assert_api_probes_and_admin_port(api: dict[str, Any]) -> None:
    """Readiness asks /readyz (brokers and database), liveness /healthz; Prometheus scrapes the admin port, which
    the Service does not expose (issue 13: /metrics and the docs were open on the API port)."""
    container = api["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    env = env_of(api)
    assert env["LEADPIPE_ADMIN_PORT"] == str(ports["admin"]) and env["LEADPIPE_ADMIN_HOST"] == "0.0.0.0"
    annotations = api["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(ports["admin"]) and annotations["prometheus.io/path"] == "/metrics"


def assert_worker_web_served(deployment: dict[str, Any]) -> None:
    """The worker's probes and Prometheus ask faust's web server: the chart must switch it on (it is off by default
    in Settings, and a probe against a closed port restarts the pod over and over) on the port it declares."""
    assert Settings.model_fields["worker_web_enabled"].default is False
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = env_of(deployment)
    assert env["LEADPIPE_WORKER_WEB_ENABLED"] == "true"
    (port,) = [p for p in container["ports"] if p["name"] == "web"]
    assert env["LEADPIPE_WORKER_WEB_PORT"] == str(port["containerPort"])
    for probe in (container["livenessProbe"], container["readinessProbe"]):
        assert probe["httpGet"] == {"path": "/", "port": "web"}
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port["containerPort"])
    assert annotations["prometheus.io/path"] == "/metrics"


@needs_helm
def test_one_combined_worker_when_asked() -> None:
    deployments = by_kind(render("--set", "worker.separateRightsWorker=false"), "Deployment")
    assert sorted(deployments) == ["rel-leadpipe-api", "rel-leadpipe-worker"]
    assert args_of(deployments["rel-leadpipe-worker"]) == ["leadpipe", "worker"]
    assert_worker_web_served(deployments["rel-leadpipe-worker"])


@needs_helm
def test_missing_secret_and_bad_config_fail_clearly() -> None:
    result = helm("template", "rel", str(CHART))
    assert result.returncode != 0 and "existingSecret: name the Secret" in result.stderr
    result = helm("template", "rel", str(CHART), "-f", str(TEST_VALUES), "--set", "config.DEBUG=1")
    assert result.returncode != 0 and "config.DEBUG: every key must be a LEADPIPE_* setting" in result.stderr


@needs_helm
def test_alert_rules_only_when_asked_and_only_on_metrics_the_worker_serves() -> None:
    assert by_kind(render(), "PrometheusRule") == {}
    rules = by_kind(render("--set", "prometheusRule.enabled=true"), "PrometheusRule")["rel-leadpipe"]
    alerts = {r["alert"]: r["expr"] for g in rules["spec"]["groups"] for r in g["rules"]}
    assert {"LeadpipeRightsRequestOverdue", "LeadpipeProcessingDeadLetters", "LeadpipeSinkFailures"} <= set(alerts)
    metrics = WorkerMetrics()
    metrics.track_rights(lambda: ({}, 0))
    families = list(text_string_to_metric_families(metrics.render().decode()))
    served = {f.name for f in families} | {f"{f.name}_total" for f in families if f.type == "counter"}
    for name, expr in alerts.items():
        used = set(re.findall(r"leadpipe_[a-z_]+", expr))
        assert used and used <= served, (name, used - served)  # a renamed metric would silence the alert
    assert "or vector(0)" in alerts["LeadpipeSpamReviewBacklog"]  # fires also when nobody ever reviewed
