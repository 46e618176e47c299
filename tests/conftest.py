"""Fixtures every test shares: a real Kafka broker, real databases, settings isolated per test.

Broker, in this order: ``KAFKA_BOOTSTRAP_SERVERS`` if set; testcontainers' Kafka when a Docker daemon answers;
else the project's own launcher (``pipeline.kafka.launcher``), a real Apache Kafka 4.x from Maven Central jars.
Integration tests never use a mock broker or faust's in-memory transport.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pipeline.config import Settings, explicit_settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from sqlalchemy import Engine

    from pipeline.crm.read import CrmReadModel
    from pipeline.runtime import Runtime
    from pipeline.sinks.crm.writer import CrmWriter

REPO = Path(__file__).resolve().parent.parent
DEFAULT_PG = "postgresql://leadpipe:leadpipe@127.0.0.1:5432/leadpipe"


def _docker_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=3)
        client.ping()
        return True
    except Exception:
        return False


_publishers_started: dict[int, tuple[Any, str]] = {}
_current_test = ["(no test)"]


@pytest.fixture(autouse=True)
def _name_the_running_test(request: pytest.FixtureRequest) -> None:
    _current_test[0] = request.node.nodeid


@pytest.fixture(scope="module", autouse=True)
def _publishers_closed() -> Iterator[None]:
    """Fail the module whose tests left a publisher's delivery-report poller running (closing it).

    A publisher left open keeps polling librdkafka after its test's topics were deleted; minutes later librdkafka's
    metadata refresh logs "partition count changed" lines into whatever test runs then (a CLI test's output).
    """
    from pipeline.kafka.producer import ConfirmingPublisher

    original = ConfirmingPublisher._ensure_poller

    def ensure_poller(self: ConfirmingPublisher) -> None:
        if self._poller is None:
            _publishers_started[id(self)] = (self, _current_test[0])
        original(self)

    ConfirmingPublisher._ensure_poller = ensure_poller  # type: ignore[method-assign]
    try:
        yield
    finally:
        ConfirmingPublisher._ensure_poller = original  # type: ignore[method-assign]
        leaked = [(p, test) for p, test in _publishers_started.values() if not p._stop.is_set()]
        _publishers_started.clear()
        for publisher, _test in leaked:
            publisher.close(timeout_s=1.0)
        if leaked:
            pytest.fail("publishers left open (closed now), started by: " + ", ".join(t for _, t in leaked))


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    """Tracing on for one test, its finished spans kept in memory (``pipeline.tracing.install``); off again after."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from pipeline import tracing

    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracing.install(provider)
    try:
        yield memory
    finally:
        tracing.install(None)
        provider.shutdown()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """host:port of a real Kafka broker for the whole session."""
    servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if servers:
        yield servers
        return
    if _docker_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer("apache/kafka:4.1.1").with_kraft() as container:
            yield container.get_bootstrap_server()
        return
    from pipeline.kafka.launcher import LocalKafka

    cache = os.environ.get("LEADPIPE_TEST_CACHE")
    broker = LocalKafka.for_tests(cache_dir=Path(cache) if cache else None)
    broker.up()
    try:
        yield broker.bootstrap_servers
    finally:
        broker.release()  # stops it unless another session (started_here or not) still uses it


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    """A PostgreSQL URL with the right to create databases (``.ci/run`` and ``make test`` start one)."""
    return os.environ.get("LEADPIPE_TEST_POSTGRES_URL", DEFAULT_PG)


@pytest.fixture
def pg_url(pg_admin_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    import psycopg

    name = f"lp_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(pg_admin_url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at LEADPIPE_TEST_POSTGRES_URL ({exc}); run scripts/ensure-postgres.sh"
        )
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base, _, _db = pg_admin_url.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every CRM test runs against both backends the product supports."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'crm.sqlite3'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def crm_engine(db_url: str) -> Iterator[Engine]:
    """The database at ``db_url`` (both backends), migrated to head."""
    from pipeline.db import ensure_schema, make_engine

    engine = make_engine(db_url)
    ensure_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def crm_writer(crm_engine: Engine) -> CrmWriter:
    from pipeline.sinks.crm.writer import CrmWriter

    return CrmWriter(crm_engine)


@pytest.fixture
def crm_read(crm_engine: Engine) -> CrmReadModel:
    from pipeline.crm.read import CrmReadModel

    return CrmReadModel(crm_engine)


@pytest.fixture
def make_settings(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., Settings]]:
    """Settings for one test: its own home, its own topic prefix, fixed test secrets. Never reads os.environ.

    A test that used the broker gets its prefixed topics deleted afterwards, so a long suite does not pile up
    thousands of partitions on a small broker.
    """
    prefix = f"t{uuid.uuid4().hex[:10]}."

    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "environment": "test",
            "home": tmp_path / "home",
            "cache_dir": Path(os.environ.get("LEADPIPE_TEST_CACHE", str(Path.home() / ".cache" / "leadpipe"))),
            "topic_prefix": prefix,
            "topic_partitions": 1,
            "subject_key_pepper": "test-pepper",
            "key_encryption_key": base64.urlsafe_b64encode(b"k" * 32).decode(),
            "log_format": "console",
            # The spam engine is asked only by the tests that start one (spam_engine fixture); elsewhere a worker
            # would send every event with words to review as spam_engine_unavailable.
            "spam_engine_enabled": False,
        }
        values.update(overrides)
        return explicit_settings(**values)

    yield build
    if "kafka_bootstrap" in request.fixturenames:
        from pipeline.kafka.topics import delete_prefixed_topics

        servers = request.getfixturevalue("kafka_bootstrap")
        try:
            delete_prefixed_topics(build(kafka_bootstrap_servers=servers), timeout_s=10)
        except Exception as exc:  # cleanup must not turn a passing test red; the broker may be gone already
            warnings.warn(f"could not delete topics {prefix}*: {exc}", stacklevel=1)


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """Settings with no broker (unit tests)."""
    return make_settings()


@pytest.fixture
def kafka_settings(make_settings: Callable[..., Settings], kafka_bootstrap: str) -> Settings:
    """Settings against the real broker, with this test's topics created from topics.yaml."""
    from pipeline.kafka.topics import apply_topics

    built = make_settings(kafka_bootstrap_servers=kafka_bootstrap)
    apply_topics(built)
    return built


@pytest.fixture
def cli_runtime(kafka_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    """A runtime on ``kafka_settings`` whose settings the ``leadpipe`` CLI also reads (as LEADPIPE_* variables)."""
    from pipeline.agents.launch import worker_env
    from pipeline.config import get_settings
    from pipeline.db import ensure_schema
    from pipeline.runtime import Runtime

    runtime = Runtime(kafka_settings)
    ensure_schema(runtime.engine)
    for name, value in worker_env(kafka_settings, base={}).items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield runtime
    get_settings.cache_clear()
    runtime.engine.dispose()


@dataclasses.dataclass(frozen=True)
class SpamEngineEndpoints:
    """Where the session's spam engine answers; ``launcher`` is None when it came from the environment."""

    url: str
    controller_url: str
    redis_port: int
    launcher: Any = None


@pytest.fixture(scope="session")
def spam_engine() -> Iterator[SpamEngineEndpoints]:
    """A real rspamd (+ its Redis) for the whole session, offline, shared with concurrent sessions.

    ``LEADPIPE_TEST_SPAM_ENGINE_URL`` (with ``..._CONTROLLER_URL`` and ``..._REDIS_PORT``) names a running one;
    else the project's launcher starts one (``scripts/ensure-spam-engine.sh`` installs the programs).
    """
    url = os.environ.get("LEADPIPE_TEST_SPAM_ENGINE_URL")
    if url:
        yield SpamEngineEndpoints(
            url,
            os.environ["LEADPIPE_TEST_SPAM_ENGINE_CONTROLLER_URL"],
            int(os.environ["LEADPIPE_TEST_SPAM_ENGINE_REDIS_PORT"]),
        )
        return
    from pipeline.spam.launcher import LocalSpamEngine

    cache = os.environ.get("LEADPIPE_TEST_CACHE")
    engine = LocalSpamEngine.for_tests(cache_dir=Path(cache) if cache else None)
    engine.up()
    try:
        yield SpamEngineEndpoints(engine.url, engine.controller_url, engine.redis_port, engine)
    finally:
        engine.release()  # stops it unless another session still uses it


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real OpenID Connect provider (Ory Hydra, in-memory) with static users and clients, for the whole session."""
    from oidc_provider import running_hydra

    yield from running_hydra(tmp_path_factory.mktemp("hydra"))
