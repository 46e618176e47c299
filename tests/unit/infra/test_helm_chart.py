"""The Helm chart renders what production needs and never renders a secret.

Rendering needs the `helm` binary (.ci/run builds it with `go install helm.sh/helm/v3/cmd/helm@v3.22.0`), the
custom resources' check the Node.js validators of scripts/ensure-node-tools.sh; without them those tests skip with
the reason, except in CI (tests/helm_helpers.py). The values-vs-Settings and values-schema checks run everywhere.
Every file in the chart's ci/ folder is a documented values combination and goes through lint --strict, template
and the Kubernetes API schemas.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from typing import Any, cast

import httpx
import kubernetes_validate
import pytest
import yaml
from fastapi.testclient import TestClient
from helm_helpers import (
    CHART,
    NODE,
    TEST_VALUES,
    VALUES_FILES,
    by_kind,
    containers,
    helm,
    needs_helm,
    needs_node_tools,
    node_modules,
    pod_spec,
    render,
    workloads,
)
from ingest_helpers import RecordingPublisher
from jsonschema import Draft7Validator
from prometheus_client.parser import text_string_to_metric_families

from pipeline.agents.health import LIVE_PATH, READY_PATH, health_gauges
from pipeline.agents.metrics import WorkerMetrics
from pipeline.agents.worker import create_app, registrar
from pipeline.api.app import create_api
from pipeline.config import Settings, explicit_settings
from pipeline.kafka.lag import product_groups
from pipeline.kafka.producer import ConfirmingPublisher
from pipeline.kafka.topics import load_topics
from pipeline.runtime import Runtime

#: The Kubernetes release whose API schemas the rendered manifests must satisfy (kubernetes-validate ships them).
KUBERNETES_VERSION = "1.30"
#: Kinds served by operators, validated against their CRD models instead (tests/node/validate-crds.mjs).
CUSTOM_KINDS = {"ScaledObject", "PrometheusRule"}


def args_of(deployment: dict[str, Any]) -> list[str]:
    args: list[str] = pod_spec(deployment)["containers"][0]["args"]
    return args


def env_of(deployment: dict[str, Any]) -> dict[str, str | None]:
    return {e["name"]: e.get("value") for e in pod_spec(deployment)["containers"][0]["env"]}


@pytest.fixture
def served_metrics(make_settings: Callable[..., Settings]) -> set[str]:
    """Every metric name the worker (with rights and lag tracking) and the API (as ``leadpipe serve`` composes it,
    read from its ``/metrics``) expose, counters with _total."""
    worker = WorkerMetrics()
    worker.track_rights(lambda: ({}, 0))
    worker.track_lag(list)
    not_ready, not_live, _standing = health_gauges(worker.registry)
    not_ready.labels("uncommitted").set(0)
    not_live.labels("event_loop").set(0)
    text = worker.render().decode()
    api = create_api(Runtime(make_settings()), cast(ConfirmingPublisher, RecordingPublisher()))
    text += TestClient(api.state.admin).get("/metrics").text  # the admin port's /metrics, as the chart scrapes it
    families = list(text_string_to_metric_families(text))
    names = {f.name for f in families} | {f"{f.name}_total" for f in families if f.type == "counter"}
    names |= {f"{f.name}_{s}" for f in families if f.type == "histogram" for s in ("bucket", "sum", "count")}
    assert "leadpipe_ingest_events_total" in names and "leadpipe_ingest_refusals_total" in names
    return names


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

    jobs = by_kind(docs, "Job")
    topics, migrate, restore = jobs["rel-leadpipe-topics"], jobs["rel-leadpipe-migrate"], jobs["rel-leadpipe-restore"]
    assert [c["args"] for c in containers(topics)] == [["leadpipe", "topics", "apply"]]
    assert [c["args"] for c in containers(migrate)] == [["leadpipe", "db", "upgrade"]]
    assert [c["args"] for c in containers(restore)] == [["leadpipe", "restore", "verify", "--apply"]]
    for job in (topics, migrate, restore):
        assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert "serviceAccountName" not in pod_spec(job)  # the release's ServiceAccount does not exist yet
    weight = {name: int(j["metadata"]["annotations"]["helm.sh/hook-weight"]) for name, j in jobs.items()}
    # Helm runs hooks in weight order: the restore check needs the suppression topic and the migrated tables
    assert weight["rel-leadpipe-topics"] < weight["rel-leadpipe-migrate"] < weight["rel-leadpipe-restore"]

    config = by_kind(docs, "ConfigMap")["rel-leadpipe"]["data"]
    assert config["LEADPIPE_ENVIRONMENT"] == "production"
    assert "LEADPIPE_TOPIC_PARTITIONS" not in config  # null values are left to the application default
    assert by_kind(docs, "Secret") == {}

    for doc in (worker, rights, api, topics, migrate, restore):
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
        assert container["livenessProbe"] and container["readinessProbe"] and container["startupProbe"]
        assert "checksum/config" in doc["spec"]["template"]["metadata"]["annotations"]
    api_env = {e["name"]: e.get("value") for e in api["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert api_env["LEADPIPE_INGEST_HOST"] == "0.0.0.0"  # the default 127.0.0.1 would be unreachable in a pod
    for doc in (worker, rights):
        assert_worker_web_served(doc)


def assert_api_probes_and_admin_port(api: dict[str, Any]) -> None:
    """Readiness asks /readyz (brokers and database), liveness and the first start /healthz; Prometheus scrapes
    the admin port, which the Service does not expose (issue 13: /metrics and the docs were open on the API port)."""
    container = api["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
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
    # liveness: what a restart fixes; readiness: progress and dependencies (pipeline/agents/health.py); the first
    # start waits for faust's web server, which opens after the tables are recovered
    assert container["livenessProbe"]["httpGet"] == {"path": LIVE_PATH, "port": "web"}
    assert container["readinessProbe"]["httpGet"] == {"path": READY_PATH, "port": "web"}
    assert container["startupProbe"]["httpGet"] == {"path": LIVE_PATH, "port": "web"}
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300  # table recovery may take minutes
    assert "initialDelaySeconds" not in container["livenessProbe"]  # the startup probe holds it off instead
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port["containerPort"])
    assert annotations["prometheus.io/path"] == "/metrics"


@needs_helm
def test_one_combined_worker_when_asked() -> None:
    deployments = by_kind(render("--set", "worker.separateRightsWorker=false"), "Deployment")
    assert sorted(deployments) == ["rel-leadpipe-api", "rel-leadpipe-spam-engine", "rel-leadpipe-worker"]
    assert args_of(deployments["rel-leadpipe-worker"]) == ["leadpipe", "worker"]
    assert_worker_web_served(deployments["rel-leadpipe-worker"])


def serves(container: dict[str, Any], settings: Settings) -> Callable[[str, str], bool]:
    """Whether the process this container runs serves a path on a port (by name): a worker's faust web views (its
    app built from the container's own ``--only`` registrars), or the API's answer not being 404 (``http``: the API,
    ``admin``: its admin app)."""
    args = container["args"]
    runtime = Runtime(settings)
    if args[:2] == ["leadpipe", "worker"]:
        only = [args[i + 1] for i, arg in enumerate(args) if arg == "--only"]
        views = set(create_app(runtime, [registrar(r) for r in only] or None).web.views)
        return lambda port, path: port == "web" and path in views
    assert args[:2] == ["leadpipe", "serve"], args
    api = create_api(runtime, cast(ConfirmingPublisher, RecordingPublisher()))
    clients = {"http": TestClient(api), "admin": TestClient(api.state.admin)}
    return lambda port, path: port in clients and clients[port].get(path).status_code != 404


@needs_helm
@pytest.mark.parametrize("values", VALUES_FILES, ids=lambda p: p.name)
def test_every_probe_asks_a_path_its_process_serves(values: Any, make_settings: Callable[..., Settings]) -> None:
    """A probe on a path the process does not serve restarts the pod over and over (or keeps it out of rollouts):
    each probe of each long-running container must name a path that process serves on that port."""
    settings = make_settings(topic_replication_factor=1, worker_web_enabled=False)
    probed = 0
    for doc in workloads(render(values=values)):
        for container in containers(doc):
            probes = {k: container[k] for k in ("startupProbe", "livenessProbe", "readinessProbe") if k in container}
            if not probes or (not container["image"].startswith(("leadpipe", "registry")) and "args" not in container):
                continue
            if container.get("args", [])[:1] != ["leadpipe"]:
                continue  # the spam engine's rspamd and Redis: their images' own endpoints
            served = serves(container, settings)
            assert not served("web", "/not-served") and not served("http", "/not-served")  # the check can fail
            for kind, probe in probes.items():
                where = f"{values.name}: {doc['metadata']['name']}/{container['name']} {kind}"
                get = probe.get("httpGet")
                assert get is not None, f"{where}: an HTTP answer, not an open port (a blocked loop still accepts)"
                assert served(get["port"], get["path"]), f"{where}: {get} is not served"
                probed += 1
    assert probed >= 6  # the worker(s) and the API, three probes each


@needs_helm
def test_missing_secret_and_bad_config_fail_clearly() -> None:
    result = helm("template", "rel", str(CHART))
    assert result.returncode != 0 and "existingSecret: name the Secret" in result.stderr
    result = helm("template", "rel", str(CHART), "-f", str(TEST_VALUES), "--set", "config.DEBUG=1")
    assert result.returncode != 0 and "'DEBUG' does not match pattern '^LEADPIPE_" in result.stderr


@needs_helm
def test_alert_rules_only_when_asked_and_only_on_metrics_the_worker_serves(served_metrics: set[str]) -> None:
    assert by_kind(render(), "PrometheusRule") == {}
    rules = by_kind(render("--set", "prometheusRule.enabled=true"), "PrometheusRule")["rel-leadpipe"]
    alerts = {r["alert"]: r["expr"] for g in rules["spec"]["groups"] for r in g["rules"]}
    assert {"LeadpipeRightsRequestOverdue", "LeadpipeProcessingDeadLetters", "LeadpipeSinkFailures"} <= set(alerts)
    assert "leadpipe_worker_not_ready" in alerts["LeadpipeWorkerNotReady"]  # the worker's own stall signal
    served = served_metrics
    for name, expr in alerts.items():
        used = set(re.findall(r"leadpipe_[a-z_]+", expr))
        assert used and used <= served, (name, used - served)  # a renamed metric would silence the alert
    assert "or vector(0)" in alerts["LeadpipeSpamReviewBacklog"]  # fires also when nobody ever reviewed


def test_values_schema_is_strict_and_admits_the_defaults() -> None:
    """values.schema.json is a valid schema, values.yaml and every ci/ combination satisfy it, and it closes every
    object the chart reads (an unknown key is an error, not a silently ignored typo)."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    Draft7Validator.check_schema(schema)
    validator = Draft7Validator(schema)
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    assert list(validator.iter_errors(defaults)) == []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node:
                assert node.get("additionalProperties") is False, f"{where} admits unknown keys"
            for key, child in node.items():
                walk(child, f"{where}/{key}")

    walk({k: v for k, v in schema.items() if k != "properties"} | {"properties": schema["properties"]}, "#")
    documented = set(defaults)
    assert documented == set(schema["properties"]), "values.yaml and values.schema.json name different keys"


@needs_helm
@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("worker.replicaCount=two", "got string, want integer"),
        ("worker.replicaCuont=2", "additional properties 'replicaCuont' not allowed"),
        ("api.port=70000", "maximum"),
        ("securityContext.readOnlyRootFilesystem=false", "value must be true"),
        ("podSecurityContext.runAsNonRoot=false", "value must be true"),
        ("autoscaling.keda.enabled=yes", "want boolean"),
        ("image.pullPolicy=Sometimes", "value must be one of"),
    ],
)
def test_wrong_values_fail_install(setting: str, message: str) -> None:
    result = helm(
        "template",
        "rel",
        str(CHART),
        "-f",
        str(TEST_VALUES),
        "--set-string" if "=two" in setting or "=yes" in setting else "--set",
        setting,
    )
    assert result.returncode != 0, setting
    assert message in result.stderr, result.stderr


@needs_helm
@pytest.mark.parametrize("values", VALUES_FILES, ids=lambda p: p.name)
def test_every_values_combination_lints_renders_and_validates(values: Any) -> None:
    lint = helm("lint", "--strict", str(CHART), "-f", str(values))
    assert lint.returncode == 0, lint.stdout + lint.stderr
    docs = render(values=values)
    for doc in docs:
        if doc["kind"] in CUSTOM_KINDS:
            continue
        where = f"{values.name}: {doc['kind']}/{doc['metadata']['name']}"
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{where}: {exc.message} at {list(exc.path)}")
    for doc in workloads(docs):
        pod = pod_spec(doc)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["automountServiceAccountToken"] is False
        for container in containers(doc):
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
            assert container["resources"]["limits"]["memory"]
            for env in container.get("env", []):  # a secret is only ever a reference
                if env["name"] in yaml.safe_load((CHART / "values.yaml").read_text())["secretEnv"]:
                    assert set(env) == {"name", "valueFrom"}
    assert by_kind(docs, "Secret") == {}


@needs_helm
@needs_node_tools
def test_custom_resources_match_their_operators_crds(tmp_path: Any) -> None:
    """The ScaledObject and PrometheusRule of the all-features combination against the KEDA and Prometheus Operator
    CRD models; a wrong type in one is caught (the check can fail)."""
    (values,) = [v for v in VALUES_FILES if v.name == "production-values.yaml"]
    custom = [d for d in render(values=values) if d["kind"] in CUSTOM_KINDS]
    assert {d["kind"] for d in custom} == CUSTOM_KINDS
    broken = json.loads(json.dumps(custom[0]))
    broken["spec"]["maxReplicaCount" if broken["kind"] == "ScaledObject" else "groups"] = "many"
    docs = tmp_path / "docs.json"
    docs.write_text(json.dumps([*custom, broken]))
    script = CHART.parents[2] / "tests" / "node" / "validate-crds.mjs"
    assert NODE is not None
    result = subprocess.run(
        [NODE, str(script), str(node_modules()), str(docs)], capture_output=True, text=True, timeout=60, check=True
    )
    verdicts = [json.loads(line) for line in result.stdout.splitlines()]
    assert [v["error"] for v in verdicts[:-1]] == [None] * len(custom), verdicts
    assert verdicts[-1]["error"], "a broken resource passed the CRD check"


@needs_helm
def test_network_policy_opens_exactly_the_ports_the_pods_serve() -> None:
    assert by_kind(render(), "NetworkPolicy") == {}
    (values,) = [v for v in VALUES_FILES if v.name == "production-values.yaml"]
    docs = render(values=values)
    policies = by_kind(docs, "NetworkPolicy")
    components = {d["metadata"]["labels"]["app.kubernetes.io/component"]: d for d in workloads(docs)}
    covered: set[str] = set()
    for policy in policies.values():
        (selector,) = policy["spec"]["podSelector"]["matchExpressions"]
        selected = set(selector["values"])
        covered |= selected
        served = {
            p["containerPort"]
            for c in selected
            if c in components
            for x in containers(components[c])
            for p in x.get("ports", [])
        }
        opened = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
        assert opened == served, (policy["metadata"]["name"], opened, served)
        egress_ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
        if selected == {"spam-engine"}:  # offline rules: it connects nowhere but DNS
            assert egress_ports == {53}
            continue
        assert {53, 9093, 5432, 443, 11333, 6379} <= egress_ports
    assert covered >= set(components), "a pod runs without a NetworkPolicy"
    api, admin = policies["rel-leadpipe-api"]["spec"]["ingress"]
    assert api["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}]
    # the API's /metrics is on its admin port: Prometheus (metricsFrom) reaches it, the internet does not
    assert admin["ports"] == [{"port": 8081, "protocol": "TCP"}]
    assert admin["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    # the console (in the API's pods) reaches each worker's /metrics for its charts, in and out
    (workers,) = policies["rel-leadpipe-workers"]["spec"]["ingress"]
    api_pods = {"app.kubernetes.io/name": "leadpipe", "app.kubernetes.io/instance": "rel"}
    assert {"podSelector": {"matchLabels": {**api_pods, "app.kubernetes.io/component": "api"}}} in workers["from"]
    (to_workers,) = [
        r for r in policies["rel-leadpipe-api"]["spec"]["egress"] if {"port": 6066, "protocol": "TCP"} in r["ports"]
    ]
    (peer,) = to_workers["to"]
    assert peer["podSelector"]["matchLabels"] == api_pods
    assert peer["podSelector"]["matchExpressions"][0]["values"] == ["worker", "rights-worker"]
    # traces leave for the OTLP collector only through the rule the values add
    otlp = [
        r for r in policies["rel-leadpipe-api"]["spec"]["egress"] if {"port": 4318, "protocol": "TCP"} in r["ports"]
    ]
    assert len(otlp) == 1


@needs_helm
def test_keda_scales_the_worker_group_on_processing_and_sink_lag_up_to_the_partitions() -> None:
    (values,) = [v for v in VALUES_FILES if v.name == "combined-worker-values.yaml"]
    docs = render(values=values)
    scaled = by_kind(docs, "ScaledObject")["rel-leadpipe-worker"]
    worker = by_kind(docs, "Deployment")["rel-leadpipe-worker"]
    assert scaled["spec"]["scaleTargetRef"]["name"] == worker["metadata"]["name"]
    assert "replicas" not in worker["spec"]  # KEDA owns the count; helm upgrade must not reset it
    topics = load_topics()
    partitions = {t.logical_name: t.partitions for t in topics.resolve(explicit_settings())}
    assert scaled["spec"]["maxReplicaCount"] == partitions["contacts.normalized"] == partitions["contacts.accepted"]
    group = product_groups(explicit_settings(topic_prefix="acme.", app_id="leadpipe"))[0]
    triggers = {t["metadata"]["topic"]: t["metadata"] for t in scaled["spec"]["triggers"]}
    assert set(triggers) == {"acme.contacts.normalized", "acme.contacts.accepted"}
    assert {t["consumerGroup"] for t in triggers.values()} == {group}  # the faust app id the worker joins as
    assert all(t["allowIdleConsumers"] == "false" for t in triggers.values())
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())["autoscaling"]["keda"]
    assert defaults["partitions"] == topics.defaults.partitions  # the chart's default is topics.yaml's
    capped = render("--set", "config.LEADPIPE_TOPIC_PARTITIONS=3", values=values)
    assert by_kind(capped, "ScaledObject")["rel-leadpipe-worker"]["spec"]["maxReplicaCount"] == 3


@needs_helm
def test_dashboard_panels_stand_on_metrics_that_exist(served_metrics: set[str]) -> None:
    assert "rel-leadpipe-dashboard" not in by_kind(render(), "ConfigMap")
    config = by_kind(render("--set", "grafanaDashboard.enabled=true"), "ConfigMap")["rel-leadpipe-dashboard"]
    assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(config["data"]["leadpipe.json"])
    assert dashboard == json.loads((CHART / "dashboards" / "leadpipe.json").read_text())
    served = served_metrics
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    used: set[str] = set()
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = set(re.findall(r"leadpipe_[a-z_]+", target["expr"]))
            assert names and names <= served, (panel["title"], names - served)  # a renamed metric blanks a panel
            used |= names
    wanted = {
        "leadpipe_ingest_events_total",  # intake per channel
        "leadpipe_processing_records_total",  # outcomes, spam queue, processing dead letters
        "leadpipe_processing_drops_total",
        "leadpipe_sink_results_total",
        "leadpipe_sink_pauses_total",
        "leadpipe_sink_dead_letters_total",
        "leadpipe_rights_requests",
        "leadpipe_rights_requests_overdue",
        "leadpipe_consumer_lag",
    }
    assert wanted <= used, wanted - used
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])


@needs_helm
@pytest.mark.parametrize("values", VALUES_FILES, ids=lambda p: p.name)
def test_hubspot_budget_is_shared_by_every_pod_that_calls_hubspot(values: Any) -> None:
    """Every worker process limits itself; HubSpot counts the token across all of them: the pods' shares together
    (at KEDA's maximum replica count) stay within the configured budget."""
    docs = render(values=values)
    config = by_kind(docs, "ConfigMap")["rel-leadpipe"]["data"]
    budget = int(config["LEADPIPE_HUBSPOT_RATE_LIMIT_REQUESTS"])
    search = float(config["LEADPIPE_HUBSPOT_SEARCH_RATE_PER_S"])
    scaled = by_kind(docs, "ScaledObject")
    requests_total, search_total = 0, 0.0
    for name, deployment in by_kind(docs, "Deployment").items():
        if name == "rel-leadpipe-api":
            assert "LEADPIPE_HUBSPOT_RATE_LIMIT_REQUESTS" not in env_of(deployment)  # the API never calls HubSpot
            continue
        if name == "rel-leadpipe-spam-engine":  # rspamd and Redis: not leadpipe, no HubSpot
            continue
        pods = scaled[name]["spec"]["maxReplicaCount"] if name in scaled else deployment["spec"]["replicas"]
        env = env_of(deployment)
        requests_total += pods * int(env["LEADPIPE_HUBSPOT_RATE_LIMIT_REQUESTS"] or 0)
        search_total += pods * float(env["LEADPIPE_HUBSPOT_SEARCH_RATE_PER_S"] or 0)
    assert 0 < requests_total <= budget and 0 < search_total <= search + 1e-9
    assert requests_total > budget * 0.7 or values.name == "production-values.yaml"  # not needlessly small


def test_the_charts_rspamd_configuration_is_the_launchers() -> None:
    """files/rspamd is what ``leadpipe spam engine config --chart`` writes: one source of truth for both engines."""
    from pipeline.spam.launcher import CHART_ENGINE, rspamd_config

    expected = rspamd_config(*CHART_ENGINE)
    root = CHART / "files" / "rspamd"
    present = {str(p.relative_to(root)): p.read_text() for p in root.rglob("*") if p.is_file()}
    assert present == expected, "regenerate: leadpipe spam engine config --chart deploy/helm/leadpipe/files/rspamd"


@needs_helm
def test_spam_engine_service_and_the_workers_reach_it() -> None:
    docs = render()
    deployments = by_kind(docs, "Deployment")
    engine = deployments["rel-leadpipe-spam-engine"]
    names = [c["name"] for c in containers(engine)]
    assert names == ["rspamd", "redis"]
    configs = by_kind(docs, "ConfigMap")
    assert "classifier-bayes.conf" in configs["rel-leadpipe-spam-engine-local"]["data"]
    assert configs["rel-leadpipe-spam-engine-override"]["data"]["worker-normal.inc"].startswith(
        'bind_socket = "*:11333"'
    )
    assert "rel-leadpipe-spam-engine-redis" in by_kind(docs, "PersistentVolumeClaim")
    service_ports = {
        p["name"]: p["port"] for p in by_kind(docs, "Service")["rel-leadpipe-spam-engine"]["spec"]["ports"]
    }
    assert service_ports == {"normal": 11333, "controller": 11334, "redis": 6379}
    for name in ("rel-leadpipe-worker", "rel-leadpipe-api"):
        env = env_of(deployments[name])
        assert env["LEADPIPE_SPAM_ENGINE_URL"] == "http://rel-leadpipe-spam-engine:11333"
        assert env["LEADPIPE_SPAM_ENGINE_REDIS_HOST"] == "rel-leadpipe-spam-engine"
        assert env["LEADPIPE_SPAM_ENGINE_ENABLED"] == "true"
    off = by_kind(render("--set", "spamEngine.enabled=false"), "Deployment")
    assert "rel-leadpipe-spam-engine" not in off
    assert env_of(off["rel-leadpipe-worker"])["LEADPIPE_SPAM_ENGINE_ENABLED"] == "false"


@needs_helm
@pytest.mark.parametrize("values", VALUES_FILES, ids=lambda p: p.name)
def test_console_charts_read_every_worker_pods_metrics(values: Any, make_settings: Callable[..., Settings]) -> None:
    """The console's charts (spam share, sink health) add up the workers' counters: the API's
    LEADPIPE_CONSOLE_METRICS_URLS must name, for every worker Deployment the chart renders, a headless Service the
    chart renders that selects exactly that Deployment's pods, on a port whose process serves the path."""
    docs = render(values=values)
    deployments = by_kind(docs, "Deployment")
    services = by_kind(docs, "Service")
    urls = json.loads(env_of(deployments["rel-leadpipe-api"])["LEADPIPE_CONSOLE_METRICS_URLS"] or "")
    assert make_settings(console_metrics_urls=urls).console_metrics_urls == urls  # a value the setting takes
    workers = {
        n for n, d in deployments.items() if pod_spec(d)["containers"][0].get("args", [])[:2] == ["leadpipe", "worker"]
    }
    settings = make_settings(topic_replication_factor=1, worker_web_enabled=False)
    reached: list[str] = []
    for url in urls:
        assert url.startswith("dns+http://"), f"{url}: a Service's one address would answer for one pod at a time"
        target = httpx.URL(url.removeprefix("dns+"))
        service = services.get(target.host)
        assert service is not None, f"{url}: no such Service in the chart"
        spec = service["spec"]
        assert spec["clusterIP"] == "None" and spec["publishNotReadyAddresses"] is True, "each pod, ready or not"
        selected = [
            n
            for n, d in deployments.items()
            if spec["selector"].items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(selected) == 1 and selected[0] in workers, (url, selected)
        (port,) = [p for p in spec["ports"] if p["port"] == target.port]
        (container,) = pod_spec(deployments[selected[0]])["containers"]
        named = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert named[port["targetPort"]] == target.port, (url, named)
        env = env_of(deployments[selected[0]])
        assert env["LEADPIPE_WORKER_WEB_ENABLED"] == "true" and env["LEADPIPE_WORKER_WEB_PORT"] == str(target.port)
        assert serves(container, settings)(port["targetPort"], target.path), f"{url}: the worker does not serve it"
        reached += selected
    assert sorted(reached) == sorted(workers), "every worker Deployment's pods, each once"
    mine = render("--set", "config.LEADPIPE_CONSOLE_METRICS_URLS=[]", values=values)
    assert "LEADPIPE_CONSOLE_METRICS_URLS" not in env_of(by_kind(mine, "Deployment")["rel-leadpipe-api"])
