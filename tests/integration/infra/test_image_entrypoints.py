"""The image's commands, run exactly as the chart runs them, from a clean virtualenv built like the image's.

No container engine runs here, so the image itself is not built; what it would run is: the wheel is built from the
build context the .dockerignore lets through, installed into a clean virtualenv (no pip, no dev extras), and each
container of the rendered chart runs from it with its args, its environment (the ConfigMap, the Dockerfile's ENV,
the Secret's keys from test values) and its working directory, as uid 10001 (the chart's runAsUser) over files it
cannot write, with only its /data and /tmp writable: the read-only root file system. In helm install's order: the
topics hook Job, the migrations hook Job, the restore check hook Job, then the worker, rights worker and API, each
until its readiness and liveness probes answer and its /metrics serves leadpipe's metrics, then SIGTERM within its
grace period.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from dockerfile_parse import DockerfileParser
from helm_helpers import REPO, TEST_VALUES, by_kind, needs_helm, pod_spec, render

from pipeline.config import Settings
from pipeline.kafka.launcher import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow, needs_helm]

#: The chart's runAsUser/runAsGroup (values.yaml podSecurityContext; tests/unit/infra/test_image.py checks the
#: Dockerfile's USER is the same).
UID = GID = 10001
AS_ROOT = os.geteuid() == 0


@dataclass(frozen=True)
class ImageVenv:
    """A virtualenv built like the image's /opt/leadpipe, and the Dockerfile's final ENV."""

    root: Path
    bin: Path
    image_env: dict[str, str]


def _as_user() -> list[str]:
    """Run as the chart's uid/gid (root only can switch; otherwise as this user, which is weaker)."""
    return ["setpriv", f"--reuid={UID}", f"--regid={GID}", "--clear-groups", "--"] if AS_ROOT else []


def _python_for_image() -> str:
    """A Python >= 3.11 that uid 10001 may run (pyenv's under /root is not), like the image's /usr/local/bin one."""
    for candidate in ("/usr/local/bin/python3", "/usr/bin/python3", sys.executable):
        probe = [*_as_user(), candidate, "-c", "import sys; assert sys.version_info >= (3, 11)"]
        if Path(candidate).exists() and subprocess.run(probe, capture_output=True, check=False).returncode == 0:
            return candidate
    pytest.fail("no Python >= 3.11 that the chart's uid can run (the image's /usr/local/bin/python3 stands in)")


@pytest.fixture(scope="session")
def image_venv() -> Iterator[ImageVenv]:
    """The wheel, built once per session from the .dockerignore'd context, in a clean virtualenv."""
    from docker.utils.build import exclude_paths

    root = Path(tempfile.mkdtemp(prefix="leadpipe-image-"))
    root.chmod(0o755)  # traversable by the chart's uid, writable by root only
    context = root / "context"
    patterns = [p.strip() for p in (REPO / ".dockerignore").read_text().splitlines()]
    for relative in sorted(exclude_paths(str(REPO), [p for p in patterns if p and not p.startswith("#")])):
        source, target = REPO / relative, context / relative
        if source.is_dir() and not source.is_symlink():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target, follow_symlinks=False)
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    assert uv, "uv is a test dependency (pyproject.toml [test])"

    def run(*args: str) -> None:
        result = subprocess.run([uv, *args], capture_output=True, text=True, timeout=600, check=False)
        assert result.returncode == 0, result.stdout + result.stderr

    run("build", "--wheel", "--quiet", "--out-dir", str(root / "wheels"), str(context))
    (wheel,) = (root / "wheels").glob("leadpipe-*.whl")
    venv = root / "venv"
    run("venv", "--quiet", "--python", _python_for_image(), "--python-preference", "only-system", str(venv))
    run("pip", "install", "--quiet", "--compile-bytecode", "--python", str(venv / "bin" / "python"), str(wheel))
    image_env = dict(DockerfileParser(str(REPO / "Dockerfile")).envs)
    yield ImageVenv(root, venv / "bin", image_env)
    shutil.rmtree(root, ignore_errors=True)


@dataclass
class Pod:
    """One container of the rendered chart, made runnable here: /data and /tmp are directories of its own."""

    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    ports: dict[str, int]
    container: dict[str, Any]
    grace_s: int
    metrics_url: str | None = None
    """Where the pod's ``prometheus.io/*`` annotations send Prometheus."""


def _secret_values(database_url: str) -> dict[str, str]:
    """The keys of existingSecret the test gives (optional ones absent: HubSpot runs dry, no API tokens)."""
    return {
        "database-url": database_url,
        "subject-key-pepper": "image-test-pepper",
        "api-key-pepper": "image-test-api-key-pepper",
        "key-encryption-key": base64.urlsafe_b64encode(b"i" * 32).decode(),
    }


def make_pod(doc: dict[str, Any], docs: list[dict[str, Any]], venv: ImageVenv, secrets: dict[str, str]) -> Pod:
    (container,) = pod_spec(doc)["containers"]
    name = doc["metadata"]["name"]
    home = venv.root / "pods" / name
    mounts = {"/data": home / "data", "/tmp": home / "tmp"}
    for directory in mounts.values():
        directory.mkdir(parents=True, exist_ok=True)
        if AS_ROOT:
            os.chown(directory, UID, GID)

    def local(value: str) -> str:
        for mount, directory in mounts.items():
            if value == mount or value.startswith(f"{mount}/"):
                return str(directory) + value[len(mount) :]
        return value

    env = {k: local(v) for k, v in venv.image_env.items()}
    env["PATH"] = f"{venv.bin}:/usr/local/bin:/usr/bin:/bin"
    env["TMPDIR"] = str(mounts["/tmp"])
    for source in container.get("envFrom", []):
        config = by_kind(docs, "ConfigMap")[source["configMapRef"]["name"]]
        env.update({k: local(v) for k, v in config["data"].items()})
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = local(entry["value"])
        else:
            ref = entry["valueFrom"]["secretKeyRef"]
            if ref["key"] in secrets:
                env[entry["name"]] = secrets[ref["key"]]
            else:
                assert ref["optional"], f"{name}: secret key {ref['key']} is required but the test gives none"
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    argv = [*container.get("command", []), *container["args"]]
    grace = int(pod_spec(doc).get("terminationGracePeriodSeconds", 30))
    notes = doc["spec"]["template"]["metadata"].get("annotations", {})
    metrics = (
        f"http://127.0.0.1:{notes['prometheus.io/port']}{notes['prometheus.io/path']}"
        if notes.get("prometheus.io/scrape") == "true"
        else None
    )
    return Pod(name, argv, env, Path(local(container["workingDir"])), ports, container, grace, metrics)


def run_pod(pod: Pod, *extra: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_as_user(), *pod.argv, *extra],
        env=pod.env,
        cwd=pod.cwd,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # the kubelet's httpGet probe
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, ""


def _probe_url(pod: Pod, probe: dict[str, Any]) -> str:
    http = probe["httpGet"]
    port = http["port"] if isinstance(http["port"], int) else pod.ports[http["port"]]
    return f"http://127.0.0.1:{port}{http['path']}"


def serve_until_ready(pod: Pod, metric: str, timeout_s: float = 120) -> None:
    """Start the pod's command, wait until both probes answer 200 and /metrics serves ``metric``, then SIGTERM it
    and expect it gone within its termination grace period."""
    log = (pod.cwd.parent / "output.log").open("w")
    process = subprocess.Popen([*_as_user(), *pod.argv], env=pod.env, cwd=pod.cwd, stdout=log, stderr=log)
    try:
        ready = _probe_url(pod, pod.container["readinessProbe"])
        live = _probe_url(pod, pod.container["livenessProbe"])
        deadline = time.monotonic() + timeout_s
        while _get(ready)[0] != 200:
            output = (pod.cwd.parent / "output.log").read_text()
            assert process.poll() is None, f"{pod.name} exited with {process.returncode}:\n{output[-3000:]}"
            assert time.monotonic() < deadline, f"{pod.name}: {ready} never answered 200:\n{output[-3000:]}"
            time.sleep(0.5)
        assert _get(live)[0] == 200, f"{pod.name}: liveness probe {live} failed"
        assert pod.metrics_url is not None, f"{pod.name}: not annotated for Prometheus"
        status, body = _get(pod.metrics_url)  # where the annotations send the scraper
        assert status == 200 and f"# HELP {metric}" in body, f"{pod.name}: {pod.metrics_url} lacks {metric}"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=pod.grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            pytest.fail(f"{pod.name} did not stop within its grace period of {pod.grace_s}s after SIGTERM")
        finally:
            log.close()


@pytest.fixture
def chart_for_here(make_settings: Callable[..., Settings], kafka_bootstrap: str) -> tuple[Settings, list[str]]:
    """The test's broker, topic prefix and free ports as chart values (everything else: the chart's defaults)."""
    settings = make_settings(kafka_bootstrap_servers=kafka_bootstrap)
    sets = {
        "config.LEADPIPE_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "config.LEADPIPE_TOPIC_PREFIX": settings.topic_prefix,
        "config.LEADPIPE_TOPIC_PARTITIONS": "1",
        "config.LEADPIPE_LOG_LEVEL": "WARNING",
        "api.port": str(free_port()),
        "worker.webPort": str(free_port()),
    }
    return settings, [
        arg
        for name, value in sets.items()
        for arg in ("--set-string" if name.startswith("config.") else "--set", f"{name}={value}")
    ]


def test_every_chart_command_answers_help(image_venv: ImageVenv, tmp_path: Path) -> None:
    docs = render("--set", "migrations.enabled=true")
    secrets = _secret_values(f"sqlite:///{tmp_path / 'unused.sqlite3'}")
    pods = [
        make_pod(doc, docs, image_venv, secrets)
        for doc in docs
        if doc["kind"] in ("Deployment", "Job")
        and doc["metadata"]["labels"].get("app.kubernetes.io/component") != "spam-engine"  # rspamd's, not ours
    ]
    assert {tuple(p.argv[:2]) for p in pods} == {
        ("leadpipe", "worker"),
        ("leadpipe", "serve"),
        ("leadpipe", "topics"),
        ("leadpipe", "db"),
        ("leadpipe", "restore"),
    }
    for pod in pods:
        result = run_pod(pod, "--help", timeout_s=60)
        assert result.returncode == 0, f"{pod.name}: {pod.argv} --help failed:\n{result.stdout}{result.stderr}"
        assert "Usage: leadpipe" in result.stdout


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migrations_job_upgrades_a_real_database(
    image_venv: ImageVenv, tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    import sqlalchemy

    if backend == "sqlite" and AS_ROOT:
        # the database lives where the job's user may write (a PVC in a real cluster): a directory of its own under
        # the system's temp dir, not under pytest's basetemp, which any other pytest session starting on this
        # machine sets back to 0700
        tmp_path = Path(tempfile.mkdtemp(prefix="leadpipe-migrate-"))
        request.addfinalizer(lambda: shutil.rmtree(tmp_path, ignore_errors=True))
        tmp_path.chmod(0o777)
    database_url = f"sqlite:///{tmp_path / 'crm.sqlite3'}" if backend == "sqlite" else request.getfixturevalue("pg_url")
    docs = render()
    migrate = make_pod(by_kind(docs, "Job")["rel-leadpipe-migrate"], docs, image_venv, _secret_values(database_url))
    for attempt in range(2):  # a re-run (helm upgrade) finds the schema at head and changes nothing
        result = run_pod(migrate)
        assert result.returncode == 0, f"attempt {attempt}: {result.stdout}{result.stderr}"
    engine = sqlalchemy.create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as connection:
            version = connection.execute(sqlalchemy.text("SELECT version_num FROM alembic_version")).scalar_one()
    finally:
        engine.dispose()
    heads = sorted((REPO / "pipeline" / "migrations" / "versions").glob("*.py"))
    assert version.startswith(heads[-1].name.split("_")[0]), (version, heads[-1].name)


def test_helm_install_order_topics_migrations_then_pods_serve_their_probes(
    image_venv: ImageVenv, chart_for_here: tuple[Settings, list[str]], pg_url: str
) -> None:
    from pipeline.kafka.topics import diff_topics

    settings, sets = chart_for_here
    docs = render(*sets, values=TEST_VALUES)
    secrets = _secret_values(pg_url)
    jobs = by_kind(docs, "Job")
    ordered = sorted(jobs.values(), key=lambda j: int(j["metadata"]["annotations"]["helm.sh/hook-weight"]))
    assert [j["metadata"]["name"] for j in ordered] == [
        "rel-leadpipe-topics",
        "rel-leadpipe-migrate",
        "rel-leadpipe-restore",
    ]
    for job in ordered:
        result = run_pod(make_pod(job, docs, image_venv, secrets))
        assert result.returncode == 0, f"{job['metadata']['name']}: {result.stdout}{result.stderr}"
    assert diff_topics(settings.model_copy(update={"topic_partitions": 1})) == []

    deployments = by_kind(docs, "Deployment")
    api = make_pod(deployments["rel-leadpipe-api"], docs, image_venv, secrets)
    worker = make_pod(deployments["rel-leadpipe-worker"], docs, image_venv, secrets)
    rights = make_pod(deployments["rel-leadpipe-rights-worker"], docs, image_venv, secrets)
    assert worker.ports["web"] == rights.ports["web"]  # one port per pod in the cluster; one after the other here
    serve_until_ready(api, "leadpipe_ingest_requests")
    serve_until_ready(worker, "leadpipe_consumer_lag")
    serve_until_ready(rights, "leadpipe_rights_requests")
