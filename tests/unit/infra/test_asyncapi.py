"""docs/asyncapi.yaml: current with topics.yaml and the models, valid AsyncAPI 3.0 (the official JSON Schema and the
maintained parser), and true to the code: who reads and who writes each topic is what the agents subscribe to and
what each application's modules send.
"""

from __future__ import annotations

import ast
import base64
import importlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from helm_helpers import NODE, REPO, needs_node_tools, node_modules
from jsonschema import Draft7Validator
from typer.testing import CliRunner

from pipeline import asyncapi
from pipeline.agents import processing, review, rights, sinks
from pipeline.agents.worker import REGISTRARS, Registrar, create_app
from pipeline.cli import app as leadpipe_cli
from pipeline.config import explicit_settings
from pipeline.kafka.topics import TopicsFileError, load_topics
from pipeline.runtime import Runtime

DOCUMENT = REPO / "docs" / "asyncapi.yaml"
#: The worker's registrars and the application each one is in topics.yaml.
APPLICATIONS: dict[Registrar, str] = {
    processing.register: "processing",
    review.register: "review",
    sinks.register: "sinks",
    rights.register: "rights",
}
#: Calls whose first argument is the topic a record is sent to.
SEND_CALLS = {"Out", "Outgoing", "Message"}


def test_committed_document_is_current() -> None:
    assert asyncapi.DEFAULT_PATH == DOCUMENT
    assert asyncapi.check() is None, "docs/asyncapi.yaml is stale: run `leadpipe asyncapi generate`"


def test_cli_generate_and_check(tmp_path: Path) -> None:
    runner = CliRunner()
    target = tmp_path / "asyncapi.yaml"
    stale = runner.invoke(leadpipe_cli, ["asyncapi", "check", "--out", str(target)])
    assert stale.exit_code == 1 and "run `leadpipe asyncapi generate`" in stale.output
    assert runner.invoke(leadpipe_cli, ["asyncapi", "generate", "--out", str(target)]).exit_code == 0
    assert runner.invoke(leadpipe_cli, ["asyncapi", "check", "--out", str(target)]).exit_code == 0
    target.write_text(target.read_text().replace("retention.ms: 604800000", "retention.ms: 1", 1))
    assert runner.invoke(leadpipe_cli, ["asyncapi", "check", "--out", str(target)]).exit_code == 1


def test_every_topic_is_a_channel_with_its_contract() -> None:
    spec = load_topics()
    document = asyncapi.build_document(spec)
    assert set(document["channels"]) == set(spec.names())
    schemas = document["components"]["schemas"]
    for topic in spec.topics:
        channel = document["channels"][topic.name]
        binding = channel["bindings"]["kafka"]
        assert binding["topic"] == topic.name and binding["partitions"] >= 1
        policy = (topic.config.get("cleanup.policy") or "delete").split(",")
        assert binding["topicConfiguration"]["cleanup.policy"] == policy
        assert channel["x-leadpipe-personal-data"] == topic.personal_data
        ((_, ref),) = ((k, v["$ref"]) for k, v in channel["messages"].items())
        message = document["components"]["messages"][ref.rsplit("/", 1)[1]]
        payload = schemas[message["payload"]["$ref"].rsplit("/", 1)[1]]
        assert topic.key in message["bindings"]["kafka"]["key"]["description"]
        # What the file claims about personal data is what the model carries: a sealed part (the Sealed model of
        # pipeline/models/records.py) or none.
        reaches_sealed = "Sealed" in _reachable(payload, schemas)
        assert reaches_sealed == (topic.personal_data == "sealed"), topic.name
        operations = {k: v for k, v in document["operations"].items() if v["channel"]["$ref"].endswith(topic.name)}
        sends = {k.split(".")[0] for k, v in operations.items() if v["action"] == "send"}
        receives = {k.split(".")[0] for k, v in operations.items() if v["action"] == "receive"}
        assert sends == set(topic.producers) and receives == set(topic.consumers), topic.name
        assert topic.producers, f"{topic.name}: nobody publishes it"


def _reachable(schema: Any, schemas: dict[str, Any], seen: set[str] | None = None) -> set[str]:
    """Names of the component schemas ``schema`` refers to, directly or through others."""
    seen = set() if seen is None else seen
    if isinstance(schema, dict):
        ref = schema.get("$ref", "")
        name = ref.rsplit("/", 1)[1] if ref.startswith("#/components/schemas/") else None
        if name is not None and name not in seen:
            seen.add(name)
            _reachable(schemas[name], schemas, seen)
        for value in schema.values():
            _reachable(value, schemas, seen)
    elif isinstance(schema, list):
        for value in schema:
            _reachable(value, schemas, seen)
    return seen


def test_worker_agents_read_exactly_what_the_file_says(tmp_path: Path) -> None:
    """Each registrar's faust app subscribes to (agents, batch agents, table changelogs) the topics whose consumers
    name its application, no more and no less."""
    assert set(APPLICATIONS) == set(REGISTRARS), "a registrar without its application in topics.yaml (or gone)"
    settings = explicit_settings(
        environment="test",
        home=tmp_path,
        topic_replication_factor=1,  # no broker is asked for its size
        subject_key_pepper="p",
        key_encryption_key=base64.urlsafe_b64encode(b"k" * 32).decode(),
    )
    spec = load_topics()
    for registrar, application in APPLICATIONS.items():
        app = create_app(Runtime(settings), [registrar])
        read = {t.get_topic_name() for t in app.batch_topics}
        read |= {name for agent in app.agents.values() for name in getattr(agent.channel, "topics", ())}
        read |= {table.changelog_topic.get_topic_name() for table in app.tables.values()}
        declared = {t.name for t in spec.topics if application in t.consumers}
        assert read == declared, (application, read ^ declared)
        group = spec.applications[application].group
        expected_group = settings.app_id if application != "rights" else f"{settings.app_id}-rights"
        assert group == expected_group  # the chart's rights worker runs under <app id>-rights


def _send_calls(tree: ast.AST) -> Iterator[ast.Call]:
    """Every ``Out(topic, ...)``, ``Outgoing(topic, ...)``, ``Message(topic, ...)`` in a module."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in SEND_CALLS and node.args:
            yield node


def _sent_topics(module_name: str) -> tuple[set[str], int]:
    """Topics the module's send calls name through a module-level constant or a literal; and how many it could
    not resolve (a topic computed at run time, e.g. a dead letter's source topic)."""
    module = importlib.import_module(module_name)
    tree = ast.parse(Path(module.__file__ or "").read_text())
    found: set[str] = set()
    unresolved = 0
    for node in _send_calls(tree):
        first = node.args[0]
        value = first.value if isinstance(first, ast.Constant) else None
        if isinstance(first, ast.Name):
            value = getattr(module, first.id, None)
        if isinstance(value, str):
            found.add(value)
        else:
            unresolved += 1
    return found, unresolved


def test_every_send_in_the_code_is_declared() -> None:
    spec = load_topics()
    topics = set(spec.names())
    for name, application in spec.applications.items():
        for module in application.modules:
            sent, _ = _sent_topics(module)
            assert sent, f"{module}: no send found (moved?)"
            for topic in sent:
                assert topic in topics, f"{module} sends to {topic}, which topics.yaml does not have"
                producers = next(t.producers for t in spec.topics if t.name == topic)
                assert name in producers, f"{module} sends to {topic}, but topics.yaml names {producers} only"


def test_every_module_that_sends_belongs_to_an_application() -> None:
    """A send written in a module no application lists would escape the check above (and the contract)."""
    listed = {module for application in load_topics().applications.values() for module in application.modules}
    sending: set[str] = set()
    for path in sorted((REPO / "pipeline").rglob("*.py")):
        if any(_send_calls(ast.parse(path.read_text()))):
            sending.add(".".join(path.relative_to(REPO).with_suffix("").parts))
    assert sending - listed == set(), f"modules that send but no application in topics.yaml lists: {sending - listed}"


@needs_node_tools
def test_document_is_valid_asyncapi_3() -> None:
    """Against the official AsyncAPI 3.0.0 JSON Schema (npm @asyncapi/specs) and the maintained parser
    (@asyncapi/parser: references resolve, the spec's semantic rules); a broken document is rejected by both."""
    modules = node_modules()
    assert modules is not None and NODE is not None
    schema = json.loads((modules / "@asyncapi" / "specs" / "schemas" / "3.0.0-without-$id.json").read_text())
    validator = Draft7Validator(schema)
    document = yaml.safe_load(DOCUMENT.read_text())
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(document)]
    assert errors == []
    script = REPO / "tests" / "node" / "validate-asyncapi.mjs"

    def parse(path: Path) -> tuple[int, list[dict[str, Any]]]:
        result = subprocess.run(
            [NODE, str(script), str(modules), str(path)], capture_output=True, text=True, timeout=120, check=False
        )
        return result.returncode, [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]

    code, diagnostics = parse(DOCUMENT)
    assert code == 0 and [d for d in diagnostics if d["severity"] <= 1] == [], diagnostics
    broken = json.loads(json.dumps(document))
    first = next(iter(broken["operations"].values()))
    first["channel"]["$ref"] = "#/channels/no.such.topic"
    first["action"] = "publish"  # AsyncAPI 2's verb
    assert list(validator.iter_errors(broken))
    path = DOCUMENT.parent / ".asyncapi-broken.test.yaml"
    try:
        path.write_text(yaml.safe_dump(broken))
        code, diagnostics = parse(path)
    finally:
        path.unlink()
    assert code == 1 and any(d["severity"] == 0 for d in diagnostics)


def test_unknown_value_or_application_is_refused(tmp_path: Path) -> None:
    text = (REPO / "topics.yaml").read_text()
    wrong_app = tmp_path / "apps.yaml"
    wrong_app.write_text(text.replace("producers: [sinks]", "producers: [sinkz]", 1))
    with pytest.raises(TopicsFileError, match="no such application: sinkz"):
        load_topics(wrong_app)
    wrong_value = tmp_path / "value.yaml"
    wrong_value.write_text(text.replace("value: sink-result", "value: sink-results", 1))
    with pytest.raises(ValueError, match="sink-results"):
        asyncapi.build_document(load_topics(wrong_value))
