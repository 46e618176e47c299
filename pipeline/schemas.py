"""JSON Schemas of every record that crosses a topic, generated from the pydantic models into ``schemas/``.

The committed files are the contract other teams and tools read; ``leadpipe schemas check`` (and the drift test)
fails when a model changed and its schema was not regenerated. Adding a wire model is one line in ``SCHEMAS``.
The schemas are pydantic's *validation* schemas: what a consumer accepts from a topic.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel

from pipeline.clikit import exits, require_current
from pipeline.models.processing import DropRecord
from pipeline.models.records import AcceptedRecord, ContactBody, ContactRecord, DeadLetter, QuarantineRecord, RawRecord
from pipeline.models.review import BlocklistEntry, ReviewDecision
from pipeline.models.rights import AuditRecord, RightsCommand, RightsStatus, SinkResult, SuppressionRecord
from pipeline.rights.bodies import ExportDelivery, RectificationBody
from pipeline.rights.export import SubjectExport

#: schema file name (``schemas/<name>.schema.json``) -> the model. One line per wire model; keep it sorted.
SCHEMAS: dict[str, type[BaseModel]] = {
    "accepted-record": AcceptedRecord,
    "audit-record": AuditRecord,
    "blocklist-entry": BlocklistEntry,
    "contact-body": ContactBody,  # the plaintext inside ContactRecord.sealed
    "contact-record": ContactRecord,
    "dead-letter": DeadLetter,
    "drop-record": DropRecord,
    "export-delivery": ExportDelivery,  # the plaintext inside RightsCommand.sealed of an access request
    "quarantine-record": QuarantineRecord,
    "raw-record": RawRecord,
    "rectification-body": RectificationBody,  # the plaintext inside RightsCommand.sealed of a rectification
    "review-decision": ReviewDecision,
    "rights-command": RightsCommand,
    "rights-status": RightsStatus,
    "sink-result": SinkResult,
    "subject-export": SubjectExport,  # the portability file (access/portability exports), not a topic
    "suppression-record": SuppressionRecord,
}

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SUFFIX = ".schema.json"
DEFAULT_DIR = Path(__file__).resolve().parent.parent / "schemas"


def schema_id(name: str) -> str:
    return f"urn:leadpipe:schema:{name}"


def build_schema(name: str, model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(mode="validation")
    return {"$schema": SCHEMA_DIALECT, "$id": schema_id(name), **schema}


def render(name: str, model: type[BaseModel]) -> str:
    """Stable text: sorted keys, two-space indent, trailing newline, so a diff shows only real changes."""
    return json.dumps(build_schema(name, model), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def generate(directory: Path = DEFAULT_DIR) -> list[Path]:
    """Write every schema; remove files of models no longer registered. Returns the files that changed."""
    directory.mkdir(parents=True, exist_ok=True)
    changed: list[Path] = []
    for name, model in sorted(SCHEMAS.items()):
        path = directory / f"{name}{SUFFIX}"
        text = render(name, model)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            changed.append(path)
    for stale in sorted(directory.glob(f"*{SUFFIX}")):
        if stale.name.removesuffix(SUFFIX) not in SCHEMAS:
            stale.unlink()
            changed.append(stale)
    return changed


def check(directory: Path = DEFAULT_DIR) -> list[str]:
    """Every difference between the committed files and the models (empty: in sync)."""
    problems: list[str] = []
    for name, model in sorted(SCHEMAS.items()):
        path = directory / f"{name}{SUFFIX}"
        if not path.exists():
            problems.append(f"{path}: missing (model {model.__name__})")
        elif path.read_text() != render(name, model):
            problems.append(f"{path}: differs from model {model.__module__}.{model.__name__}")
    problems += [
        f"{stale}: no model is registered under this name in pipeline.schemas.SCHEMAS"
        for stale in sorted(directory.glob(f"*{SUFFIX}"))
        if stale.name.removesuffix(SUFFIX) not in SCHEMAS
    ]
    return problems


app = typer.Typer(help="JSON Schemas of the records on every topic.", no_args_is_help=True)
_DirOption = Annotated[Path, typer.Option("--dir", help="Where the schemas live.")]


@app.command("generate")
def generate_command(directory: _DirOption = DEFAULT_DIR) -> None:
    """Regenerate schemas/ from the models.

    Example: leadpipe schemas generate
    """
    changed = generate(directory)
    for path in changed:
        typer.echo(f"wrote {path}" if path.exists() else f"removed {path}")
    typer.echo(f"{len(SCHEMAS)} schemas, {len(changed)} changed")


@app.command("check")
@exits({1: "a committed schema differs from its model (run `leadpipe schemas generate`)"})
def check_command(directory: _DirOption = DEFAULT_DIR) -> None:
    """Exit 1 when a committed schema differs from its model (run `leadpipe schemas generate`).

    Example: leadpipe schemas check
    """
    require_current(
        check(directory), generate="leadpipe schemas generate", current=f"{len(SCHEMAS)} schemas match their models"
    )
