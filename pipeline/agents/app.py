"""The faust app of the worker (``LeadpipeApp``), how it is configured, and what its agents share.

``build_app(runtime)`` makes one ``LeadpipeApp`` (aiokafka driver, ``processing_guarantee`` from settings,
exactly_once by default) with no agents; ``pipeline.agents.worker`` adds every area's agents to it.

Topics are never created by faust (``topic_allow_declare=False``): every topic the app reads or writes, including
the table changelogs and faust's leader-election topic ``<app_id>-__assignor-__leader``, is in ``topics.yaml``
and created by ``leadpipe topics apply``. ``topic_partitions`` is ``settings.topic_partitions`` or what
``topics.yaml`` gives ``contacts.normalized``. The faust app id (consumer group, transactional ids) is
``settings.topic(settings.app_id)``, so a test's topic prefix also isolates its consumer group.

State lives in memory (``store="memory://"``) and is rebuilt from the compacted changelog topics when partitions
are assigned; no local disk is needed, so a killed worker restarts anywhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

import faust

from pipeline.agents.batching import BatchHandler
from pipeline.agents.faust_adapter import BatchingAppMixin, BatchingConsumer
from pipeline.config import Settings
from pipeline.kafka.security import ssl_context
from pipeline.kafka.topics import default_topics_path, load_topics, make_admin
from pipeline.policy.model import load_policy
from pipeline.processors import CompiledPolicy, compile_policy
from pipeline.runtime import Runtime
from pipeline.topics import NORMALIZED_TOPIC

#: Per-partition producer batches: large enough that a batch of outputs rarely waits for the previous one.
PRODUCER_MAX_BATCH_BYTES = 512 * 1024
PRODUCER_LINGER_S = 0.005


class LeadpipeApp(BatchingAppMixin, faust.App):
    """faust.App with batch agents (``pipeline.agents.batching``) and a place for what its agents share."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batch_topics: list[Any] = []
        self.batch_handlers: dict[str, BatchHandler] = {}
        self.shared: dict[str, Any] = {}
        """Per app, what several agents use and faust must see declared once (tables, metrics), by name."""
        self.closers: list[Callable[[], None]] = []
        """Called once the app has shut down (agents and timers stopped): what an agent opened for itself, such as
        its own publisher, whose delivery-report thread would otherwise outlive the app."""

    def batch_agent(self, topic: Any, handler: BatchHandler) -> None:
        """Consume ``topic`` (a faust topic) in whole fetched batches with ``handler``.

        The topic joins the app's subscriptions (with acks enabled) when the app starts; its records never reach a
        stream. (Not at once: touching ``app.topics`` before the event loop runs binds faust's conductor to the
        wrong loop when the app is later started on another one, as tests do.)
        """
        self.batch_handlers[topic.get_topic_name()] = handler
        self.batch_topics.append(topic)

    async def on_start(self) -> None:
        await super().on_start()
        for topic in self.batch_topics:  # before the conductor starts and subscribes
            self.topics.add(topic)

    async def on_shutdown(self) -> None:
        await super().on_shutdown()
        while self.closers:
            await asyncio.to_thread(self.closers.pop())

    @property
    def batching_consumer(self) -> BatchingConsumer:
        return cast(BatchingConsumer, self.consumer)


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


def build_app(runtime: Runtime) -> LeadpipeApp:
    """The worker's faust app, configured from the runtime's settings, with no agents yet."""
    settings = runtime.settings
    partitions = topic_partitions(settings)
    session = settings.worker_session_timeout_s
    (settings.home / "faust").mkdir(parents=True, exist_ok=True)
    return LeadpipeApp(
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
