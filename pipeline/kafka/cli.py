"""``leadpipe kafka up|down|status|fetch`` (the local broker), ``leadpipe topics apply|diff|list``, ``leadpipe lag``."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from pipeline.clikit import KAFKA, exits, needs
from pipeline.config import get_settings
from pipeline.kafka.lag import consumer_lag
from pipeline.kafka.launcher import ForeignKafkaError, KafkaLaunchError, LocalKafka, find_java, resolve_jars
from pipeline.kafka.topics import TopicsFileError, apply_topics, default_topics_path, diff_topics, load_topics

kafka_app = typer.Typer(help="A local single-node Apache Kafka 4.x from Maven Central jars.", no_args_is_help=True)
topics_app = typer.Typer(help="Topics as code: topics.yaml against the cluster.", no_args_is_help=True)


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code)


@kafka_app.command("up")
@exits({1: "the broker could not be started (the message says what is missing)"})
def kafka_up(
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the broker to serve metadata.")] = 120.0,
) -> None:
    """Start the broker (ports LEADPIPE_KAFKA_PORT / LEADPIPE_KAFKA_CONTROLLER_PORT), or report the running one.

    The first start resolves the broker's jars from Maven Central (Java 17+ and Maven needed) into the cache.

    Example: leadpipe kafka up
    """
    broker = LocalKafka.from_settings(get_settings())
    broker.start_timeout_s = timeout
    try:
        status = broker.up()
    except ForeignKafkaError as exc:  # a broker is there already: the developer can use it, nothing to start
        typer.echo(f"not starting a broker: {exc}")
        return
    except KafkaLaunchError as exc:
        raise _fail(f"kafka up failed: {exc}") from None
    verb = "started" if broker.started_here else "already running"
    typer.echo(f"kafka {verb}: {status}")
    typer.echo(f"use it with: LEADPIPE_KAFKA_BOOTSTRAP_SERVERS={broker.bootstrap_servers}")


@kafka_app.command("down")
def kafka_down() -> None:
    """Stop the broker launched by `leadpipe kafka up` (never a broker it did not launch).

    Example: leadpipe kafka down
    """
    broker = LocalKafka.from_settings(get_settings())
    typer.echo("kafka stopped" if broker.down() else f"no broker launched from {broker.root} is running")


@kafka_app.command("status")
@exits({3: "no broker is running"})
def kafka_status() -> None:
    """Exit 0 when the broker is running, 3 when it is not.

    Example: leadpipe kafka status
    """
    status = LocalKafka.from_settings(get_settings()).status()
    typer.echo(str(status))
    if not status.running:
        raise typer.Exit(3)


@kafka_app.command("fetch")
def kafka_fetch() -> None:
    """Check Java and resolve the broker jars into the cache without starting anything (CI warms the cache).

    Example: leadpipe kafka fetch
    """
    settings = get_settings()
    try:
        java = find_java()
        libs = resolve_jars(settings.cache_dir, settings.kafka_version, settings.kafka_log4j_version)
    except KafkaLaunchError as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"java: {java}\nkafka {settings.kafka_version} jars: {libs}")


@topics_app.command("apply")
@needs(KAFKA)
@exits({2: "a difference apply does not change (fewer partitions, another replication factor): a person decides"})
def topics_apply() -> None:
    """Create missing topics, fix differing configs, add partitions. Idempotent.

    Example: leadpipe topics apply
    """
    settings = get_settings()
    try:
        report = apply_topics(settings)
    except (TopicsFileError, ConnectionError, RuntimeError, TimeoutError) as exc:
        raise _fail(f"topics apply failed: {exc}") from None
    typer.echo(str(report))
    if report.not_applied:
        raise typer.Exit(2)


@topics_app.command("diff")
@needs(KAFKA)
@exits({1: "the cluster differs from topics.yaml", 2: "the topics file or the cluster could not be read"})
def topics_diff() -> None:
    """Show drift between topics.yaml and the cluster; exit 1 when there is any.

    Example: leadpipe topics diff
    """
    settings = get_settings()
    try:
        drifts = diff_topics(settings)
    except (TopicsFileError, ConnectionError) as exc:
        raise _fail(f"topics diff failed: {exc}", code=2) from None
    for drift in drifts:
        typer.echo(str(drift))
    if drifts:
        raise typer.Exit(1)
    typer.echo("no drift: the cluster matches the topics file")


@topics_app.command("list")
def topics_list() -> None:
    """The topics of the file as they would be created with these settings (before the broker-count cap).

    Example: leadpipe topics list
    """
    settings = get_settings()
    path = default_topics_path(settings)
    try:
        spec = load_topics(path)
    except TopicsFileError as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"# {path}")
    for topic in spec.resolve(settings):
        config = ", ".join(f"{k}={v}" for k, v in sorted(topic.config.items()))
        typer.echo(f"{topic.name}\tpartitions={topic.partitions}\trf={topic.replication_factor}\t{config}")
        typer.echo(f"    {topic.purpose}")


@needs(KAFKA)
@exits({1: "a group could not be described or its offsets read (the message says which)"})
def lag(
    group: Annotated[
        list[str] | None,
        typer.Option("--group", "-g", help="Consumer group (repeatable); default: the workers' groups."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per partition, one per line.")] = False,
) -> None:
    """Each consumer group's lag per topic and partition: committed offset, end offset, records behind.

    Example: leadpipe lag

    Example: leadpipe lag --group leadpipe --json
    """
    try:
        rows = consumer_lag(get_settings(), group or None)
    except (LookupError, ConnectionError) as exc:
        raise _fail(str(exc)) from None
    if as_json:
        for row in rows:
            typer.echo(orjson.dumps(asdict(row)).decode())
        return
    if not rows:
        typer.echo("no committed offsets or assignments in the selected groups")
        return
    table = Table("group", "topic", "partition", "committed", "end", "lag")
    for row in rows:
        committed: Any = "-" if row.committed is None else row.committed
        table.add_row(row.group, row.topic, str(row.partition), str(committed), str(row.end), str(row.lag))
    Console().print(table)
    totals: dict[tuple[str, str], int] = {}
    for row in rows:
        totals[(row.group, row.topic)] = totals.get((row.group, row.topic), 0) + row.lag
    for (group_id, topic), total in sorted(totals.items()):
        typer.echo(f"{group_id} {topic}: {total} behind")
