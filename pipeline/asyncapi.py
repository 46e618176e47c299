"""The AsyncAPI 3.0 document of every topic, generated from ``topics.yaml`` and the wire models (``schemas/``).

``topics.yaml`` is the one place that says, per topic, its key, the schema of its value, whether it carries sealed
personal data, and which applications publish and subscribe; the value schemas are the pydantic models of
``pipeline.schemas.SCHEMAS``. The committed ``docs/asyncapi.yaml`` is the contract other teams and tools read;
``leadpipe asyncapi check`` (in ``make lint``) fails when it differs from what the file and the models generate.

Mapping: each topic is a channel (address: the logical name; ``LEADPIPE_TOPIC_PREFIX`` is prepended at run time),
with the Kafka channel binding (partitions, replicas, the retention and compaction settings the binding knows; the
whole topic config in ``x-leadpipe-topic-config``); each (application, topic) pair is a send or receive operation
tagged with the application; each value schema is a message whose Kafka binding describes the key. The one Kafka
record header is the W3C ``traceparent`` when tracing is on (``pipeline.tracing``): routing fields (event id,
channel, timestamps, subject key, tags) are clear fields of the payload envelope, personal data is inside its
``sealed`` parts.
"""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from pipeline.clikit import exits, require_current, write_generated
from pipeline.config import explicit_settings
from pipeline.kafka.topics import TopicEntry, TopicSpec, TopicsSpec, load_topics
from pipeline.schemas import SCHEMAS, build_schema
from pipeline.tracing import TRACEPARENT

ASYNCAPI_VERSION = "3.0.0"
KAFKA_BINDING_VERSION = "0.5.0"
DEFAULT_PATH = Path(__file__).resolve().parent.parent / "docs" / "asyncapi.yaml"

#: Values that are not a pydantic model: the raw forms of two table changelogs, and faust's own records.
RAW_PAYLOADS: dict[str, dict[str, Any]] = {
    "anchor-datetime": {
        "type": "string",
        "format": "date-time",
        "description": "ISO-8601 anchor of a restarting retention clock (last service delivery or event "
        "registration), UTF-8.",
    },
    "rate-window": {
        "type": "array",
        "description": "Buckets of a sliding submission-rate window: [bucket start (epoch seconds), count] pairs.",
        "items": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2},
    },
    "faust-internal": {"description": "faust's leader election records; no application payload."},
}
#: Topic configs the Kafka channel binding describes (the rest stays in x-leadpipe-topic-config).
_BINDING_CONFIGS = ("retention.ms", "retention.bytes", "delete.retention.ms", "max.message.bytes")
_PERSONAL_DATA = {
    "sealed": "Carries personal data, sealed (AES-256-GCM) under the subject's data key: erasure destroys the key.",
    "pseudonymous": "Subject keys or keyed hashes only; nothing sealed, no personal data in clear.",
    "none": "No personal data.",
}
_HEADERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        TRACEPARENT: {
            "type": "string",
            "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
            "description": "W3C trace context of the span that produced the record (OpenTelemetry's messaging "
            "conventions); only when tracing is on (LEADPIPE_OTLP_TRACES_ENDPOINT).",
        }
    },
    "additionalProperties": False,
    "description": "No other Kafka record headers: routing fields are clear fields of the payload.",
}


def _camel(name: str) -> str:
    parts = name.replace("-", " ").replace("_", " ").split()
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


def _asyncapi_discriminators(node: Any) -> Any:
    """pydantic writes OpenAPI's ``discriminator`` object; an AsyncAPI 3 schema names the property alone."""
    if isinstance(node, dict):
        found = node.get("discriminator")
        fixed = {k: _asyncapi_discriminators(v) for k, v in node.items()}
        if isinstance(found, dict) and "propertyName" in found:
            fixed["discriminator"] = found["propertyName"]
        return fixed
    if isinstance(node, list):
        return [_asyncapi_discriminators(v) for v in node]
    return node


def _hoist(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """The model's schema with its ``$defs`` moved into ``defs`` and references pointed at components/schemas."""
    schema = {k: v for k, v in schema.items() if k not in ("$schema", "$id")}
    text = json.dumps(schema).replace('"#/$defs/', '"#/components/schemas/')
    schema = _asyncapi_discriminators(json.loads(text))
    for name, definition in schema.pop("$defs", {}).items():
        if defs.setdefault(name, definition) != definition:
            raise ValueError(f"two models define {name} differently: rename one")
    return schema


def _payloads(spec: TopicsSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    """(value name -> payload schema, shared definitions) for every value a topic names."""
    defs: dict[str, Any] = {}
    payloads: dict[str, Any] = {}
    for value in sorted({t.value for t in spec.topics if t.value}):
        if value in SCHEMAS:
            payloads[value] = _hoist(build_schema(value, SCHEMAS[value]), defs)
        elif value in RAW_PAYLOADS:
            payloads[value] = RAW_PAYLOADS[value]
        else:
            raise ValueError(f"topics.yaml names value {value!r}: neither in pipeline.schemas.SCHEMAS nor a raw form")
    clash = set(payloads) & set(defs)
    if clash:
        raise ValueError(f"value names clash with nested model names: {sorted(clash)}")
    return payloads, defs


def _channel(topic: TopicEntry, resolved: TopicSpec) -> dict[str, Any]:
    config = resolved.config
    binding: dict[str, Any] = {
        "topic": topic.name,
        "partitions": resolved.partitions,
        "replicas": resolved.replication_factor,
        "topicConfiguration": {
            "cleanup.policy": config.get("cleanup.policy", "delete").split(","),
            **{key: int(config[key]) for key in _BINDING_CONFIGS if key in config},
        },
        "bindingVersion": KAFKA_BINDING_VERSION,
    }
    assert topic.value is not None and topic.personal_data is not None
    return {
        "address": topic.name,
        "title": topic.name,
        "description": f"{topic.purpose} {_PERSONAL_DATA[topic.personal_data]}",
        "messages": {_camel(topic.value): {"$ref": f"#/components/messages/{_camel(topic.value)}"}},
        "tags": [{"name": f"personal-data:{topic.personal_data}"}],
        "bindings": {"kafka": binding},
        "x-leadpipe-personal-data": topic.personal_data,
        "x-leadpipe-key": topic.key,
        "x-leadpipe-topic-config": dict(sorted(config.items())),
    }


def build_document(spec: TopicsSpec | None = None) -> dict[str, Any]:
    """The AsyncAPI 3.0 document as a mapping (stable key order)."""
    spec = spec or load_topics()
    missing = [t.name for t in spec.topics if not (t.key and t.value and t.personal_data)]
    if missing:
        raise ValueError(f"topics.yaml: key, value and personal_data are required for the document: {missing}")
    payloads, defs = _payloads(spec)
    # The file's production values: no prefix, no cap at a cluster's broker count.
    resolved = {r.logical_name: r for r in spec.resolve(explicit_settings())}
    keys: dict[str, set[str]] = {}
    for topic in spec.topics:
        assert topic.value is not None and topic.key is not None
        keys.setdefault(topic.value, set()).add(topic.key)
    messages = {
        _camel(value): {
            "name": value,
            "title": value,
            "contentType": "application/json",
            "headers": _HEADERS,
            "payload": {"$ref": f"#/components/schemas/{value}"},
            "bindings": {
                "kafka": {
                    "key": {"type": "string", "description": "; or ".join(sorted(keys[value]))},
                    "bindingVersion": KAFKA_BINDING_VERSION,
                }
            },
        }
        for value in payloads
    }
    operations: dict[str, Any] = {}
    for topic in spec.topics:
        for action, names in (("send", topic.producers), ("receive", topic.consumers)):
            for name in names:
                application = spec.applications[name]
                operation: dict[str, Any] = {
                    "action": action,
                    "channel": {"$ref": f"#/channels/{topic.name}"},
                    "title": f"{application.title} {'publishes to' if action == 'send' else 'reads'} {topic.name}",
                    "tags": [{"$ref": f"#/components/tags/{name}"}],
                }
                if action == "receive" and application.group:
                    operation["bindings"] = {
                        "kafka": {
                            "groupId": {"type": "string", "enum": [application.group]},
                            "bindingVersion": KAFKA_BINDING_VERSION,
                        }
                    }
                operations[f"{name}.{action}.{topic.name}"] = operation
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "leadpipe topics",
            "version": importlib.metadata.version("leadpipe"),
            "description": "Every Kafka topic of leadpipe: key, value schema, personal data, retention and "
            "compaction, and which application publishes and reads it. Generated from topics.yaml and the wire "
            "models by `leadpipe asyncapi generate`; do not edit. Topic names take LEADPIPE_TOPIC_PREFIX at run "
            "time; the only record header is the W3C traceparent, when tracing is on.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "production": {
                "host": "kafka-bootstrap:9092",
                "protocol": "kafka",
                "description": "LEADPIPE_KAFKA_BOOTSTRAP_SERVERS (PLAINTEXT, SSL or SASL: LEADPIPE_KAFKA_SECURITY_*).",
            }
        },
        "channels": {topic.name: _channel(topic, resolved[topic.name]) for topic in spec.topics},
        "operations": operations,
        "components": {
            "schemas": {**payloads, **dict(sorted(defs.items()))},
            "messages": messages,
            "tags": {
                name: {"name": name, "description": f"{app.title}: {app.runs}"}
                for name, app in spec.applications.items()
            },
        },
    }


def render() -> str:
    """Stable YAML text: a diff shows only real changes."""
    text: str = yaml.safe_dump(build_document(), sort_keys=False, width=120, allow_unicode=True)
    return "# Generated by `leadpipe asyncapi generate` from topics.yaml and pipeline/models; do not edit.\n" + text


def check(path: Path = DEFAULT_PATH) -> str | None:
    """None when the committed document is current, else what to do."""
    if not path.exists():
        return f"{path}: missing"
    if path.read_text() != render():
        return f"{path}: differs from topics.yaml and the models"
    return None


app = typer.Typer(help="AsyncAPI 3.0 document of every topic (docs/asyncapi.yaml).", no_args_is_help=True)
_PathOption = Annotated[Path, typer.Option("--out", help="Where the document lives.")]


@app.command("generate")
def generate_command(path: _PathOption = DEFAULT_PATH) -> None:
    """Write the document from topics.yaml and the models.

    Example: leadpipe asyncapi generate
    """
    write_generated(path, render())


@app.command("check")
@exits({1: "the committed document is out of date"})
def check_command(path: _PathOption = DEFAULT_PATH) -> None:
    """Exit 1 when the committed document is out of date (run `leadpipe asyncapi generate`).

    Example: leadpipe asyncapi check
    """
    problem = check(path)
    require_current(
        [problem] if problem else [],
        generate="leadpipe asyncapi generate",
        current=f"{path} matches topics.yaml and the models",
    )
