"""The faust app of the worker, and how each area adds its agents to it.

``create_app(runtime)`` builds one ``faust.App`` (aiokafka driver, ``processing_guarantee`` from settings,
exactly_once by default) and calls every ``REGISTRARS`` entry: ``"module:function"`` where
``function(app, runtime) -> None`` adds agents, tables and timers. Add a line for a new area; keep agents thin.

Topics are never created by faust (``topic_allow_declare=False``): every topic the app reads or writes, including
the table changelogs and faust's leader-election topic ``<app_id>-__assignor-__leader``, is in ``topics.yaml``
and created by ``leadpipe topics apply``. ``topic_partitions`` is ``settings.topic_partitions`` or what
``topics.yaml`` gives ``contacts.normalized``. The faust app id (consumer group, transactional ids) is
``settings.topic(settings.app_id)``, so a test's topic prefix also isolates its consumer group.

State lives in memory (``store="memory://"``) and is rebuilt from the compacted changelog topics when partitions
are assigned; no local disk is needed, so a killed worker restarts anywhere.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import faust

from pipeline.agents.batching import LeadpipeApp
from pipeline.config import Settings
from pipeline.kafka.security import ssl_context
from pipeline.kafka.topics import default_topics_path, load_topics, make_admin
from pipeline.logging import get_logger
from pipeline.policy import load_policy
from pipeline.processors import CompiledPolicy, compile_policy
from pipeline.runtime import Runtime
from pipeline.topics import NORMALIZED_TOPIC

log = get_logger(__name__)

#: Every area's agents, as "module:function" with ``function(app, runtime) -> None``.
REGISTRARS: list[str] = [
    "pipeline.agents.processing:register",
    "pipeline.agents.review:register",
    "pipeline.agents.sinks:register",
    "pipeline.agents.rights:register",
]

#: Per-partition producer batches: large enough that a batch of outputs rarely waits for the previous one.
PRODUCER_MAX_BATCH_BYTES = 512 * 1024
PRODUCER_LINGER_S = 0.005


def topic_partitions(settings: Settings) -> dict[str, int]:
    """Logical topic name -> partition count, as ``leadpipe topics apply`` creates them."""
    specs = load_topics(default_topics_path(settings)).resolve(settings)
    return {spec.logical_name: spec.partitions for spec in specs}


@lru_cache(maxsize=8)
def _compiled(path: Path | None) -> CompiledPolicy:
    return compile_policy(load_policy(path))


def policy_for(settings: Settings) -> CompiledPolicy:
    """The policy the worker runs (``settings.policy_file`` or the packaged one), validated and compiled once."""
    return _compiled(settings.policy_file)


def _replication(settings: Settings) -> int:
    """Replication for anything faust would declare: topics.yaml's default, capped at the cluster's brokers."""
    if settings.topic_replication_factor:
        return settings.topic_replication_factor
    wanted = load_topics(default_topics_path(settings)).defaults.replication_factor
    try:
        brokers = len(make_admin(settings).list_topics(timeout=10).brokers)
    except Exception:  # the worker will fail to connect anyway, with a clearer error from the consumer
        brokers = 1
    return max(1, min(wanted, brokers))


def faust_credentials(settings: Settings) -> Any:
    """faust's ``broker_credentials`` (None: plaintext): SASL with or without TLS, or TLS alone."""
    protocol = settings.kafka_security_protocol
    context = ssl_context(settings)
    if protocol.startswith("SASL"):
        assert settings.kafka_sasl_password is not None
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password.get_secret_value(),
            ssl_context=context,
            mechanism=settings.kafka_sasl_mechanism,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def _brokers(settings: Settings) -> list[str]:
    return [f"kafka://{host.strip()}" for host in settings.kafka_bootstrap_servers.split(",") if host.strip()]


def create_app(runtime: Runtime, registrars: Sequence[str] | None = None) -> LeadpipeApp:
    """The worker's faust app with every registrar's agents added (default: ``REGISTRARS``)."""
    settings = runtime.settings
    partitions = topic_partitions(settings)
    session = settings.worker_session_timeout_s
    (settings.home / "faust").mkdir(parents=True, exist_ok=True)
    app = LeadpipeApp(
        settings.topic(settings.app_id),
        broker=_brokers(settings),
        processing_guarantee=settings.processing_guarantee,
        store="memory://",
        datadir=str(settings.home / "faust" / "{conf.name}-data"),  # not the working directory, faust's default
        autodiscover=False,
        topic_partitions=settings.topic_partitions or partitions[NORMALIZED_TOPIC],
        topic_replication_factor=_replication(settings),
        topic_allow_declare=False,
        topic_disable_leader=False,
        web_enabled=settings.worker_web_enabled,
        web_port=settings.worker_web_port,
        consumer_auto_offset_reset="earliest",
        consumer_group_instance_id=settings.worker_instance_id,
        broker_session_timeout=session,
        broker_heartbeat_interval=min(1.0, session / 3),
        broker_rebalance_timeout=max(session, 10.0),
        broker_request_timeout=max(session + 5.0, 30.0),
        broker_commit_interval=settings.worker_commit_interval_s,
        broker_max_poll_records=max(settings.batch_size * 2, 500),
        stream_wait_empty=False,
        producer_linger=PRODUCER_LINGER_S,
        producer_max_batch_size=PRODUCER_MAX_BATCH_BYTES,
        broker_credentials=faust_credentials(settings),
    )
    for reference in registrars if registrars is not None else REGISTRARS:
        module_name, _, function_name = reference.partition(":")
        register = getattr(importlib.import_module(module_name), function_name)
        register(app, runtime)
    log.info(
        "worker_app_created",
        app_id=app.conf.id,
        guarantee=settings.processing_guarantee,
        registrars=list(registrars if registrars is not None else REGISTRARS),
    )
    return app


def run_worker(runtime: Runtime, registrars: Sequence[str] | None = None) -> Any:
    """Run the worker in this process until it is stopped (SIGTERM/SIGINT); ends in ``SystemExit``."""
    from pipeline.db import ensure_schema

    policy_for(runtime.settings)  # refuse to start on an invalid policy, before joining the group
    ensure_schema(runtime.engine)
    app = create_app(runtime, registrars)
    worker = faust.Worker(
        app,
        loglevel=runtime.settings.log_level,
        quiet=True,
        redirect_stdouts=False,
        override_logging=False,  # keep leadpipe's redacting log set-up
    )
    return worker.execute_from_commandline()
